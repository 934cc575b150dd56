package mqdatasource_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// TestDuplicateOfLongIDWithoutSchemaCheck: without CheckSchema (NewConnector,
// WithSchemaCheck(false)) the wrapper does not know the name of the unique
// key, and the table may come from the Java client, whose key has another
// name than schema/transaction_record.sql's. The duplicate is then
// recognised by the entry of the 1062 message, which the server truncates
// (MariaDB: 61 characters and "..."): a redelivery of a message whose id
// is longer must still be ErrAlreadyConsumed, not a plain 1062 error.
func TestDuplicateOfLongIDWithoutSchemaCheck(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		if e.Name != "mysql" {
			t.Skip("PostgreSQL detects a duplicate by the rows the claim inserted, not by an error message")
		}
		table := dbtest.UniqueName(t, "javatr")
		t.Cleanup(func() { e.Exec(t, "DROP TABLE IF EXISTS "+table) })
		// The Java ExactlyOnceConsumer's table (ons-client-ext); " stands for `.
		e.Exec(t, strings.ReplaceAll(`CREATE TABLE "`+table+`" (
  "consumer_group" varchar(128) NOT NULL DEFAULT '',
  "message_id" varchar(255) NOT NULL DEFAULT '',
  "topic_name" varchar(255) NOT NULL DEFAULT '',
  "ctime" bigint(20) NOT NULL,
  "queue_id" int(11) NOT NULL,
  "offset" bigint(20) NOT NULL,
  "broker_name" varchar(255) NOT NULL DEFAULT '',
  "id" bigint(20) NOT NULL AUTO_INCREMENT,
  PRIMARY KEY ("id"),
  UNIQUE KEY "message_id_unique_key" ("message_id"),
  KEY "ctime_key" ("ctime")
) ENGINE=InnoDB`, `"`, "`"))
		ds, err := mqdatasource.OpenConnector(connector(t, e, ""), mqdatasource.WithTable(table), mqdatasource.WithSchemaCheck(false))
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Close()
		// A RocketMQ msgId and a typical group name: 32 + 1 + 38 characters.
		d := delivery("GID_price_change_downstream_inventory", "7F0000010B1C18B4AAC27A4C1D2E0001")
		if n := len(d.MessageID()); n <= 64 {
			t.Fatalf("message id of %d characters: the test needs one the server truncates", n)
		}
		if err := claimOnly(ds, d); err != nil {
			t.Fatal(err)
		}
		err = claimOnly(ds, d)
		if !errors.Is(err, mqdatasource.ErrAlreadyConsumed) {
			t.Fatalf("redelivery: %v, want ErrAlreadyConsumed", err)
		}
		if !strings.Contains(err.Error(), d.MessageID()) {
			t.Errorf("error %q does not name the message id", err)
		}
	})
}
