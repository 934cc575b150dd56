package exactlyonce_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"syscall"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// A Handler opens its transaction itself, through the DataSource, with the
// context it is given: the first statement of that transaction claims the
// message. The only change to an existing consumer is the Subscribe line.
func ExampleListener() {
	ds, err := mqdatasource.Open("mysql", "app:secret@tcp(127.0.0.1:3306)/shop?parseTime=true")
	if err != nil {
		log.Fatal(err)
	}
	decrementStock := func(ctx context.Context, msg *primitive.MessageExt) error {
		tx, err := ds.BeginTx(ctx, nil) // claims the message first
		if err != nil {
			return err // ErrAlreadyConsumed is acknowledged by the listener
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "UPDATE product SET stock = stock - 1 WHERE sku = ?", string(msg.Body)); err != nil {
			return err // rolled back; the message is retried
		}
		return tx.Commit()
	}

	c, err := rocketmq.NewPushConsumer(
		consumer.WithGroupName("stock-service"),
		consumer.WithNameServer(primitive.NamesrvAddr{"127.0.0.1:9876"}),
	)
	if err != nil {
		log.Fatal(err)
	}
	// WithSendBack: the listener sends failed messages back itself and
	// checks the answer, which rocketmq-client-go v2.1.2 ignores.
	err = c.Subscribe("orders", consumer.MessageSelector{},
		exactlyonce.Listener(ds, "stock-service", decrementStock, exactlyonce.WithSendBack(c)))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Start(); err != nil {
		log.Fatal(err)
	}
}

// A TxHandler gets a transaction that already holds the claim; returning nil
// commits it, returning an error (or panicking) rolls it back and retries
// the message. The same listener works for an orderly consumer: failures
// then suspend the queue for the back-off instead of being acknowledged.
func ExampleTxListener() {
	ds, err := mqdatasource.Open("pgx", "postgres://app@127.0.0.1/shop")
	if err != nil {
		log.Fatal(err)
	}
	applyPrice := func(ctx context.Context, tx *sql.Tx, msg *primitive.MessageExt) error {
		_, err := tx.ExecContext(ctx, "UPDATE product SET price = $1 WHERE sku = $2", string(msg.Body), msg.GetKeys())
		return err
	}

	c, err := rocketmq.NewPushConsumer(
		consumer.WithGroupName("price-service"),
		consumer.WithNameServer(primitive.NamesrvAddr{"127.0.0.1:9876"}),
		consumer.WithConsumerOrder(true),
	)
	if err != nil {
		log.Fatal(err)
	}
	err = c.Subscribe("price-changes", consumer.MessageSelector{},
		exactlyonce.TxListener(ds, "price-service", applyPrice,
			exactlyonce.WithSuspendBackoff(2*time.Second)))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Start(); err != nil {
		log.Fatal(err)
	}
}

// NewConsumer builds the push consumer and shuts it down gracefully: running
// handlers finish (or are cancelled when the grace period ends) before the
// client stops, and nothing that did not commit is acknowledged.
func ExampleNewConsumer() {
	ds, err := mqdatasource.Open("mysql", "app:secret@tcp(127.0.0.1:3306)/shop?parseTime=true")
	if err != nil {
		log.Fatal(err)
	}
	stats := &exactlyonce.Stats{}
	c, err := exactlyonce.NewConsumer(ds, "stock-service",
		exactlyonce.WithClientOptions(
			consumer.WithNameServer(primitive.NamesrvAddr{"127.0.0.1:9876"}),
			consumer.WithConsumeMessageBatchMaxSize(8),
		),
		exactlyonce.WithMetrics(stats),
		exactlyonce.WithPurge(72*time.Hour, time.Hour),
	)
	if err != nil {
		log.Fatal(err)
	}
	err = c.SubscribeTx("orders", consumer.MessageSelector{Type: consumer.TAG, Expression: "paid"},
		func(ctx context.Context, tx *sql.Tx, msg *primitive.MessageExt) error {
			_, err := tx.ExecContext(ctx, "UPDATE product SET stock = stock - 1 WHERE sku = ?", string(msg.Body))
			return err
		})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Start(); err != nil {
		log.Fatal(err)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil {
		log.Print(err) // some handlers were cancelled; their messages are redelivered
	}
	log.Print(stats.Snapshot())
}

// WrapProducer stamps every message the producer sends (batch members
// included) with an EXTEND_UNIQ_INFO key that another producer process
// cannot issue; consumers whose producers are all wrapped can then refuse
// unstamped messages.
func ExampleWrapProducer() {
	p, err := rocketmq.NewProducer(producer.WithNameServer(primitive.NamesrvAddr{"127.0.0.1:9876"}))
	if err != nil {
		log.Fatal(err)
	}
	p = exactlyonce.WrapProducer(p) // or exactlyonce.NewProducer(opts...)
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown()
	batch := []*primitive.Message{
		primitive.NewMessage("orders", []byte("order-1")),
		primitive.NewMessage("orders", []byte("order-2")),
	}
	if _, err := p.SendSync(context.Background(), batch...); err != nil {
		log.Print(err) // resending batch keeps its keys
	}
	fmt.Println(len(batch[0].GetProperty(exactlyonce.PropertyExtendUniqInfo)))

	// On the consumer side:
	_ = exactlyonce.WithRequireProducerKey()
}

// StampKey gives messages a dedupe key that survives the application
// sending the same *Message again, including the messages of a batch, which
// the Go producer sends without UNIQ_KEY.
func ExampleStampKey() {
	batch := []*primitive.Message{
		primitive.NewMessage("orders", []byte("order-1")),
		primitive.NewMessage("orders", []byte("order-2")),
	}
	exactlyonce.StampKey(batch...)
	first := batch[0].GetProperty(exactlyonce.PropertyExtendUniqInfo)

	// ... producer.SendSync(ctx, batch...) fails with a timeout; send again:
	exactlyonce.StampKey(batch...)
	fmt.Println("same key on resend:", batch[0].GetProperty(exactlyonce.PropertyExtendUniqInfo) == first)
	fmt.Println("distinct keys:", first != batch[1].GetProperty(exactlyonce.PropertyExtendUniqInfo))
	// Output:
	// same key on resend: true
	// distinct keys: true
}

// SetBusinessKey makes a business identifier the dedupe key, so that two
// messages built separately for the same fact are applied once.
func ExampleSetBusinessKey() {
	msg := primitive.NewMessage("price-changes", []byte(`{"sku":"SKU-1","price":1999}`))
	if err := exactlyonce.SetBusinessKey(msg, "price:SKU-1:v42"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(msg.GetProperty(exactlyonce.PropertyExtendUniqInfo))

	err := exactlyonce.SetBusinessKey(msg, "")
	fmt.Println(errors.Is(err, exactlyonce.ErrBadKey))
	// Output:
	// price:SKU-1:v42
	// true
}

// DefaultKey reads the key the consumer dedupes on.
func ExampleDefaultKey() {
	msg := &primitive.MessageExt{MsgId: "7F000001000C18B4AAC2663E41C80000"}
	msg.WithProperty("UNIQ_KEY", "7F000001000C18B4AAC2663E41C80000")
	key, _ := exactlyonce.DefaultKey(msg)
	fmt.Println(key)

	msg.WithProperty(exactlyonce.PropertyExtendUniqInfo, "price:SKU-1:v42")
	key, _ = exactlyonce.DefaultKey(msg)
	fmt.Println(key)
	// Output:
	// 7F000001000C18B4AAC2663E41C80000
	// price:SKU-1:v42
}

// ReadyHandler serves a readiness probe: 503 until StartContext has
// succeeded, while a database does not answer, and from the moment
// Shutdown begins; 200 otherwise. Here the consumer is not started yet.
func ExampleConsumer_ReadyHandler() {
	// No schema check: this example has no database to connect to.
	ds, err := mqdatasource.Open("mysql", "app:secret@tcp(127.0.0.1:3306)/shop", mqdatasource.WithSchemaCheck(false))
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close()
	c, err := exactlyonce.NewConsumer(ds, "stock-service", exactlyonce.WithClientOptions(
		consumer.WithNameServer(primitive.NamesrvAddr{"127.0.0.1:9876"})))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Shutdown(context.Background())
	// In a service: http.Handle("/readyz", c.ReadyHandler()), then
	// c.StartContext(ctx) with the start-up deadline the service allows.
	rec := httptest.NewRecorder()
	c.ReadyHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output: 503 exactlyonce: consumer not started
}

// MultiMetrics (or several sinks given to WithMetrics) sends every count to
// each sink: here two Stats, in a service Stats and a Prometheus adapter.
func ExampleMultiMetrics() {
	a, b := &exactlyonce.Stats{}, &exactlyonce.Stats{}
	m := exactlyonce.MultiMetrics(a, nil, b)
	m.MessageDone(exactlyonce.Labels{Group: "stock-service", Topic: "orders"}, exactlyonce.OutcomeProcessed)
	m.HandlerDone(exactlyonce.Labels{Group: "stock-service", Topic: "orders"}, exactlyonce.OutcomeProcessed, 3*time.Millisecond)
	fmt.Println(a.Count(exactlyonce.OutcomeProcessed), b.Count(exactlyonce.OutcomeProcessed), b.Snapshot()["handler_ms_total"])
	// Output: 1 1 3
}
