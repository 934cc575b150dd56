package mqdatasource_test

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mysqldriver"
)

// TestMain skips the examples that need the database named by MYSQL_DSN
// (scripts/testdb.sh provides one) when it is not set, saying so.
func TestMain(m *testing.M) {
	if os.Getenv("MYSQL_DSN") == "" {
		flag.Parse()
		skip := "^ExampleDataSource_Deliver$"
		if prev := flag.Lookup("test.skip").Value.String(); prev != "" {
			skip = prev + "|" + skip
		}
		if err := flag.Set("test.skip", skip); err != nil {
			panic(err)
		}
		fmt.Fprintln(os.Stderr, "mqdatasource: skipping ExampleDataSource_Deliver: MYSQL_DSN is not set (run under scripts/testdb.sh)")
	}
	os.Exit(m.Run())
}

// Deliver applies a message without a broker or a consumer library: the
// caller says which message it is (its key and consumer group), and
// everything done through the DataSource with the context it is given runs
// in one transaction that begins with the claim. A message delivered again
// is a Duplicate, and fn does not run.
func ExampleDataSource_Deliver() {
	ctx := context.Background()
	// Unique table names, so that the example can run against any database.
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	claims, wallet := "eo_claims_"+suffix, "eo_wallet_"+suffix

	// WithMigrate creates the claim table if it is missing.
	ds, err := mqdatasource.Open("mysql", os.Getenv("MYSQL_DSN"),
		mqdatasource.WithTable(claims), mqdatasource.WithMigrate())
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close()
	db := ds.DB()
	defer db.Exec("DROP TABLE " + claims)
	if _, err := db.Exec("CREATE TABLE " + wallet + " (id int PRIMARY KEY, balance int NOT NULL)"); err != nil {
		log.Fatal(err)
	}
	defer db.Exec("DROP TABLE " + wallet)
	if _, err := db.Exec("INSERT INTO " + wallet + " VALUES (1, 0)"); err != nil {
		log.Fatal(err)
	}

	// Deposits as they might arrive from any queue; deposit-2 comes twice.
	for _, m := range []struct {
		key    string
		amount int
	}{{"deposit-1", 10}, {"deposit-2", 20}, {"deposit-3", 30}, {"deposit-2", 20}} {
		d := mqdatasource.Delivery{ConsumerGroup: "wallet-service", Key: m.key, Topic: "deposits"}
		res, err := ds.Deliver(ctx, d, func(ctx context.Context) error {
			_, err := db.ExecContext(ctx, "UPDATE "+wallet+" SET balance = balance + ? WHERE id = 1", m.amount)
			return err
		})
		if err != nil {
			log.Fatal(err) // nothing was committed: deliver it again later
		}
		fmt.Println(m.key, res) // committed or duplicate: acknowledge it
	}

	var balance, records int
	_ = db.QueryRow("SELECT balance FROM " + wallet + " WHERE id = 1").Scan(&balance)
	_ = db.QueryRow("SELECT COUNT(*) FROM " + claims + " WHERE consumer_group = 'wallet-service'").Scan(&records)
	fmt.Println("balance:", balance)
	fmt.Println("claim records:", records)
	// Output:
	// deposit-1 committed
	// deposit-2 committed
	// deposit-3 committed
	// deposit-2 duplicate
	// balance: 60
	// claim records: 3
}
