package exactlyonce_test

// Runnable examples: each starts an in-process broker (rocketmqtest), opens
// a DataSource on the MySQL or MariaDB database named by MYSQL_DSN, produces
// deposits to a wallet, one of them sent twice, and prints what the
// consumer applied. `go test` runs them against that database
// (scripts/testdb.sh provides one); without MYSQL_DSN, or under -race
// (rocketmq-client-go v2.1.2 races with itself), TestMain skips them
// (dbExamples in example_skip_test.go).

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mysqldriver"
	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// A Handler subscribed through NewConsumer (Consumer.Subscribe runs it
// with Listener) opens its transaction through the DataSource with the
// context it is given: the transaction's first statement claims the
// message. The deposit sent twice is applied once.
func ExampleConsumer_Subscribe() {
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

	broker, err := rocketmqtest.New(rocketmqtest.WithTopic("deposits", 4))
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()

	deposit := func(ctx context.Context, msg *primitive.MessageExt) error {
		tx, err := ds.BeginTx(ctx, nil) // claims the message first
		if err != nil {
			return err // ErrAlreadyConsumed: acknowledged without running again
		}
		defer tx.Rollback()
		amount, err := strconv.Atoi(string(msg.Body))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE "+wallet+" SET balance = balance + ? WHERE id = 1", amount); err != nil {
			return err // rolled back; the message is retried
		}
		return tx.Commit()
	}
	stats := &exactlyonce.Stats{}
	c, err := exactlyonce.NewConsumer(ds, "wallet-service",
		exactlyonce.WithClientOptions(
			consumer.WithNameServer(primitive.NamesrvAddr{broker.Addr()}),
			consumer.WithInstance("example-subscribe"),
			consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		),
		exactlyonce.WithMetrics(stats))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Subscribe("deposits", consumer.MessageSelector{}, deposit); err != nil {
		log.Fatal(err)
	}
	if err := c.Start(); err != nil {
		log.Fatal(err)
	}
	defer c.Shutdown(ctx)

	p, err := rocketmq.NewProducer(
		producer.WithNameServer(primitive.NamesrvAddr{broker.Addr()}),
		producer.WithInstanceName("example-subscribe"))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown()
	// Each deposit carries its business key; "deposit-2" is sent again, as
	// a producer does when a send times out after the broker stored it.
	for _, d := range []struct{ key, amount string }{
		{"deposit-1", "10"}, {"deposit-2", "20"}, {"deposit-3", "30"}, {"deposit-2", "20"},
	} {
		msg := primitive.NewMessage("deposits", []byte(d.amount))
		if err := exactlyonce.SetBusinessKey(msg, d.key); err != nil {
			log.Fatal(err)
		}
		if _, err := p.SendSync(ctx, msg); err != nil {
			log.Fatal(err)
		}
	}

	// Wait until the four messages have been consumed.
	applied := func() int64 { return stats.Count(exactlyonce.OutcomeProcessed) }
	skipped := func() int64 {
		return stats.Count(exactlyonce.OutcomeDuplicate) +
			stats.Count(exactlyonce.OutcomeSkippedCache) + stats.Count(exactlyonce.OutcomeSkippedTable)
	}
	for deadline := time.Now().Add(30 * time.Second); applied()+skipped() < 4 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}

	var balance, records int
	_ = db.QueryRow("SELECT balance FROM " + wallet + " WHERE id = 1").Scan(&balance)
	_ = db.QueryRow("SELECT COUNT(*) FROM " + claims + " WHERE consumer_group = 'wallet-service'").Scan(&records)
	fmt.Println("applied:", applied(), "duplicates:", skipped())
	fmt.Println("balance:", balance)
	fmt.Println("claim records:", records)
	// Output:
	// applied: 3 duplicates: 1
	// balance: 60
	// claim records: 3
}

// A TxHandler, given to a plain rocketmq-client-go push consumer through
// TxListener, gets a transaction that already holds the claim: returning
// nil commits it, an error rolls it back and the message is retried.
func ExampleTxListener_pushConsumer() {
	ctx := context.Background()
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	claims, wallet := "eo_claims_"+suffix, "eo_wallet_"+suffix

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

	broker, err := rocketmqtest.New(rocketmqtest.WithTopic("deposits", 4))
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()

	deposit := func(ctx context.Context, tx *sql.Tx, msg *primitive.MessageExt) error {
		amount, err := strconv.Atoi(string(msg.Body))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE "+wallet+" SET balance = balance + ? WHERE id = 1", amount)
		return err
	}
	stats := &exactlyonce.Stats{}
	c, err := rocketmq.NewPushConsumer(
		consumer.WithGroupName("wallet-service"),
		consumer.WithNameServer(primitive.NamesrvAddr{broker.Addr()}),
		consumer.WithInstance("example-txlistener"),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	)
	if err != nil {
		log.Fatal(err)
	}
	err = c.Subscribe("deposits", consumer.MessageSelector{},
		exactlyonce.TxListener(ds, "wallet-service", deposit, exactlyonce.WithMetrics(stats)))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Start(); err != nil {
		log.Fatal(err)
	}
	defer c.Shutdown()

	// WrapProducer stamps each message with a key once; sending the same
	// *Message again, as after a send timeout, keeps it.
	p, err := exactlyonce.NewProducer(
		producer.WithNameServer(primitive.NamesrvAddr{broker.Addr()}),
		producer.WithInstanceName("example-txlistener"))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown()
	msgs := []*primitive.Message{
		primitive.NewMessage("deposits", []byte("10")),
		primitive.NewMessage("deposits", []byte("20")),
		primitive.NewMessage("deposits", []byte("30")),
	}
	for _, msg := range append(msgs, msgs[1]) { // the second one twice
		if _, err := p.SendSync(ctx, msg); err != nil {
			log.Fatal(err)
		}
	}

	applied := func() int64 { return stats.Count(exactlyonce.OutcomeProcessed) }
	skipped := func() int64 {
		return stats.Count(exactlyonce.OutcomeDuplicate) +
			stats.Count(exactlyonce.OutcomeSkippedCache) + stats.Count(exactlyonce.OutcomeSkippedTable)
	}
	for deadline := time.Now().Add(30 * time.Second); applied()+skipped() < 4 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}

	var balance, records int
	_ = db.QueryRow("SELECT balance FROM " + wallet + " WHERE id = 1").Scan(&balance)
	_ = db.QueryRow("SELECT COUNT(*) FROM " + claims + " WHERE consumer_group = 'wallet-service'").Scan(&records)
	fmt.Println("applied:", applied(), "duplicates:", skipped())
	fmt.Println("balance:", balance)
	fmt.Println("claim records:", records)
	// Output:
	// applied: 3 duplicates: 1
	// balance: 60
	// claim records: 3
}

// A BatchHandler applies the messages of a delivery (up to
// ConsumeMessageBatchMaxSize) in one transaction: the listener claims them
// in one statement and hands the handler only those not applied yet.
func ExampleBatchListener() {
	ctx := context.Background()
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	claims, wallet := "eo_claims_"+suffix, "eo_wallet_"+suffix

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

	// One queue, so that the deposits arrive in batches.
	broker, err := rocketmqtest.New(rocketmqtest.WithTopic("deposits", 1))
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()

	deposits := func(ctx context.Context, msgs []*primitive.MessageExt) error {
		total := 0
		for _, msg := range msgs {
			amount, err := strconv.Atoi(string(msg.Body))
			if err != nil {
				return err // the batch rolls back; each message is then run alone
			}
			total += amount
		}
		// ctx joins the batch's transaction, which holds the claims.
		_, err := ds.DB().ExecContext(ctx, "UPDATE "+wallet+" SET balance = balance + ? WHERE id = 1", total)
		return err
	}
	stats := &exactlyonce.Stats{}
	c, err := rocketmq.NewPushConsumer(
		consumer.WithGroupName("wallet-service"),
		consumer.WithNameServer(primitive.NamesrvAddr{broker.Addr()}),
		consumer.WithInstance("example-batchlistener"),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithConsumeMessageBatchMaxSize(16),
	)
	if err != nil {
		log.Fatal(err)
	}
	err = c.Subscribe("deposits", consumer.MessageSelector{},
		exactlyonce.BatchListener(ds, "wallet-service", deposits, exactlyonce.WithMetrics(stats)))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Start(); err != nil {
		log.Fatal(err)
	}
	defer c.Shutdown()

	p, err := rocketmq.NewProducer(
		producer.WithNameServer(primitive.NamesrvAddr{broker.Addr()}),
		producer.WithInstanceName("example-batchlistener"))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown()
	// Ten deposits of 1 to 10 with their business keys; deposit-5 is sent
	// twice.
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 5} {
		msg := primitive.NewMessage("deposits", []byte(strconv.Itoa(n)))
		if err := exactlyonce.SetBusinessKey(msg, "deposit-"+strconv.Itoa(n)); err != nil {
			log.Fatal(err)
		}
		if _, err := p.SendSync(ctx, msg); err != nil {
			log.Fatal(err)
		}
	}

	applied := func() int64 { return stats.Count(exactlyonce.OutcomeProcessed) }
	skipped := func() int64 {
		return stats.Count(exactlyonce.OutcomeDuplicate) +
			stats.Count(exactlyonce.OutcomeSkippedCache) + stats.Count(exactlyonce.OutcomeSkippedTable)
	}
	for deadline := time.Now().Add(30 * time.Second); applied()+skipped() < 11 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}

	var balance, records int
	_ = db.QueryRow("SELECT balance FROM " + wallet + " WHERE id = 1").Scan(&balance)
	_ = db.QueryRow("SELECT COUNT(*) FROM " + claims + " WHERE consumer_group = 'wallet-service'").Scan(&records)
	fmt.Println("applied:", applied(), "duplicates:", skipped())
	fmt.Println("balance:", balance)
	fmt.Println("claim records:", records)
	// Output:
	// applied: 10 duplicates: 1
	// balance: 55
	// claim records: 10
}
