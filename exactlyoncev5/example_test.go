package exactlyoncev5_test

import (
	"context"
	"database/sql"
	"log"
	"os"
	"os/signal"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/credentials"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/exactlyoncev5"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mysqldriver" // the "mysql" driver, for Example_pushConsumer
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/pgxdriver"   // the "pgx" driver, for Example_simpleConsumer
)

// A push consumer that applies each order payment once: the handler's
// statements through ds with ctx run in the message's delivery transaction.
func Example_pushConsumer() {
	ds, err := mqdatasource.Open("mysql", os.Getenv("MYSQL_DSN"))
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close()
	var stats exactlyonce.Stats
	c, err := exactlyoncev5.NewPushConsumer(ds,
		&rmq.Config{Endpoint: "127.0.0.1:8081", ConsumerGroup: "payments", Credentials: &credentials.SessionCredentials{}},
		func(ctx context.Context, mv *rmq.MessageView) error {
			_, err := ds.DB().ExecContext(ctx, "UPDATE account SET paid = paid + 1 WHERE id = ?", string(mv.GetBody()))
			return err
		},
		exactlyoncev5.WithMetrics(&stats),
		exactlyoncev5.WithPushOptions(rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{"payments": rmq.SUB_ALL})))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Start(); err != nil {
		log.Fatal(err)
	}
	stop, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	<-stop.Done()
	// Wait up to 30 s for running handlers, then cancel them.
	grace, cancelGrace := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelGrace()
	if err := c.Shutdown(grace); err != nil {
		log.Print(err)
	}
}

// A SimpleConsumer loop with a TxHandler: receive, deliver, Ack; a slow
// handler keeps its message invisible.
func Example_simpleConsumer() {
	ds, err := mqdatasource.Open("pgx", os.Getenv("POSTGRES_DSN"))
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close()
	sc, err := rmq.NewSimpleConsumer(
		&rmq.Config{Endpoint: "127.0.0.1:8081", ConsumerGroup: "stock", Credentials: &credentials.SessionCredentials{}},
		// The proxy wants a long poll's deadline to leave room for it.
		rmq.WithSimpleAwaitDuration(5*time.Second),
		rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{"stock": rmq.SUB_ALL}))
	if err != nil {
		log.Fatal(err)
	}
	if err := sc.Start(); err != nil {
		log.Fatal(err)
	}
	c, err := exactlyoncev5.NewSimpleTxConsumer(ds, "stock", sc, func(ctx context.Context, tx *sql.Tx, mv *rmq.MessageView) error {
		_, err := tx.ExecContext(ctx, "UPDATE product SET stock = stock - 1 WHERE sku = $1", string(mv.GetBody()))
		return err
	}, exactlyoncev5.WithInvisibleDuration(30*time.Second), exactlyoncev5.WithRetryBackoff(time.Second, time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		stop, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
		defer cancel()
		<-stop.Done()
		grace, cancelGrace := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancelGrace()
		_ = c.Shutdown(grace) // stops sc too
	}()
	if err := c.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}
