package mqdatasource_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

func ExampleDelivery_MessageID() {
	d := mqdatasource.Delivery{ConsumerGroup: "price-sync", Key: "7F0000010001B4AAC6DC3E4D0B2E0000"}
	fmt.Println(d.MessageID())
	// Output: 7F0000010001B4AAC6DC3E4D0B2E0000#price-sync
}

func ExampleDelivery_Validate() {
	for _, d := range []mqdatasource.Delivery{
		{ConsumerGroup: "g", Key: "k1"},
		{ConsumerGroup: "g"},
	} {
		err := d.Validate()
		fmt.Println(err == nil, errors.Is(err, mqdatasource.ErrInvalidDelivery))
	}
	// Output:
	// true false
	// false true
}

func ExampleValidateTableName() {
	for _, name := range []string{"transaction_record", "orders.transaction_record", "t; DROP TABLE x"} {
		err := mqdatasource.ValidateTableName(name)
		fmt.Printf("%q ok=%v\n", name, err == nil)
	}
	// Output:
	// "transaction_record" ok=true
	// "orders.transaction_record" ok=false
	// "t; DROP TABLE x" ok=false
}

func ExampleIsRetryable() {
	deadlock := &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"}
	fmt.Println(mqdatasource.IsRetryable(deadlock))
	fmt.Println(mqdatasource.IsRetryable(fmt.Errorf("commit: %w", mqdatasource.ErrCommitUnknown)))
	fmt.Println(mqdatasource.IsRetryable(mqdatasource.ErrAlreadyConsumed))
	// Output:
	// true
	// true
	// false
}

// OpenContext waits for a database that is not up yet, within the
// caller's deadline; here nothing ever listens, so it gives up, naming the
// last error.
func ExampleOpenContext() {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := mqdatasource.OpenContext(ctx, "mysql", "app@tcp(127.0.0.1:1)/shop",
		mqdatasource.WithLogger(slog.New(slog.DiscardHandler))) // quiet retries
	var last net.Error // the last attempt's: connection refused
	fmt.Println(errors.Is(err, context.DeadlineExceeded), errors.As(err, &last))
	// Output: true true
}

func ExampleIsTransient() {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	fmt.Println(mqdatasource.IsTransient(refused))
	fmt.Println(mqdatasource.IsTransient(&mysql.MySQLError{Number: 1045, Message: "Access denied for user 'app'"}))
	// Output:
	// true
	// false
}

// A handler applies a price change exactly once: the claim is inserted by
// BeginTx, the UPDATE joins it, and a redelivery gets ErrAlreadyConsumed.
func Example() {
	ds, err := mqdatasource.Open("mysql", os.Getenv("MYSQL_DSN"))
	if err != nil {
		log.Fatal(err) // e.g. the claim table is missing: apply schema/transaction_record.sql
	}
	defer ds.Close()

	d := mqdatasource.Delivery{ConsumerGroup: "price-sync", Key: "7F0000010001B4AAC6DC3E4D0B2E0000", Topic: "price", BrokerName: "broker-a", QueueID: 3, QueueOffset: 1042}
	// Everything done with ctx through ds runs in one transaction that
	// begins with the claim and commits when the function returns nil.
	res, err := ds.Deliver(context.Background(), d, func(ctx context.Context) error {
		_, err := ds.DB().ExecContext(ctx, "UPDATE product SET price = ? WHERE sku = ?", 1999, "sku-1")
		return err
	})
	switch {
	case res == mqdatasource.Committed, res == mqdatasource.Duplicate:
		// acknowledge the message
	case mqdatasource.IsRetryable(err):
		// redeliver soon
	default:
		// a bug or bad data: log, redeliver later or dead-letter
	}
}

// Existing connectors work too; the schema check can run later.
func ExampleOpenConnector() {
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.DBName, cfg.User = "tcp", "127.0.0.1:3306", "shop", "app"
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		log.Fatal(err)
	}
	ds, err := mqdatasource.OpenConnector(c, mqdatasource.WithTable("mq_claims"), mqdatasource.WithSchemaCheck(false))
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close()
	if err := ds.Migrate(context.Background()); err != nil { // CREATE TABLE IF NOT EXISTS mq_claims ...
		log.Fatal(err)
	}
}

// NewConnector gives the wrapped connector, for a *sql.DB built by hand.
func ExampleNewConnector() {
	c, err := mysql.NewConnector(mysql.NewConfig())
	if err != nil {
		log.Fatal(err)
	}
	wc, err := mqdatasource.NewConnector(c)
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(wc)
	defer db.Close()
	db.SetMaxOpenConns(20)
}

// Purge keeps the table small; run it periodically from any number of
// processes.
func ExampleDataSource_Purge() {
	ds, err := mqdatasource.Open("mysql", os.Getenv("MYSQL_DSN"))
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close()
	n, err := ds.Purge(context.Background(), time.Now().Add(-72*time.Hour))
	if err != nil {
		log.Print(err)
	}
	log.Printf("purged %d claim records", n)
}

// Statements made with the delivery's context join its transaction, in a
// transaction or not; WithoutDelivery opts out, for a write that must
// survive the delivery's rollback.
func ExampleWithoutDelivery() {
	var ds *mqdatasource.DataSource // opened elsewhere
	var d mqdatasource.Delivery

	_, _ = ds.Deliver(context.Background(), d, func(ctx context.Context) error {
		// Its own autocommit statement, kept whatever the delivery does.
		if _, err := ds.DB().ExecContext(mqdatasource.WithoutDelivery(ctx), "INSERT INTO audit_log (msg) VALUES ('received')"); err != nil {
			return err
		}
		// In the delivery's transaction, after the claim.
		_, err := ds.DB().ExecContext(ctx, "UPDATE account SET balance = balance + 5 WHERE id = 1")
		return err
	})
}
