package exactlyonce

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	rmqerrors "github.com/apache/rocketmq-client-go/v2/errors"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// retryCounter is a slog handler that counts StartContext's retry records.
type retryCounter struct{ n *atomic.Int32 }

func (h retryCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h retryCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "retrying") {
		h.n.Add(1)
	}
	return nil
}
func (h retryCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h retryCounter) WithGroup(string) slog.Handler      { return h }

// startTestConsumer builds a Consumer on the name server at addr with a
// TxHandler subscribed to topic, logging its retries to retries.
func startTestConsumer(t *testing.T, f *fixture, addr, group, topic string, retries *atomic.Int32) *Consumer {
	t.Helper()
	c, err := NewConsumer(f.ds, group, WithLogger(slog.New(retryCounter{retries})), WithClientOptions(
		consumer.WithNameServer(primitive.NamesrvAddr{addr}),
		consumer.WithInstance(instanceName(t)),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Shutdown(ctx)
	})
	if err := c.SubscribeTx(topic, consumer.MessageSelector{}, f.applier(group)); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestE2EStartWaitsForBroker: StartContext with a name server that is not
// up yet retries, rebuilding the client, until the broker appears at that
// address 1.5 s later; the consumer then consumes.
func TestE2EStartWaitsForBroker(t *testing.T) {
	skipIfRace(t)
	f := newFixture(t, oneDB(t))
	const topic, group = "late", "eo_late_broker"
	addr := dbtest.FreeAddr(t)
	var retries atomic.Int32
	c := startTestConsumer(t, f, addr, group, topic, &retries)

	brokers := make(chan *rocketmqtest.Broker, 1)
	timer := time.AfterFunc(1500*time.Millisecond, func() {
		b, err := rocketmqtest.New(rocketmqtest.WithAddr(addr), rocketmqtest.WithTopic(topic, 2),
			rocketmqtest.WithDelayScale(time.Millisecond))
		if err != nil {
			t.Errorf("start the broker on %s: %v", addr, err)
		}
		brokers <- b
	})
	defer timer.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := c.StartContext(ctx)
	b := <-brokers
	if b == nil {
		t.FailNow()
	}
	t.Cleanup(b.Close)
	if err != nil {
		t.Fatalf("StartContext: %v", err)
	}
	t.Logf("started after %v and %d retries", time.Since(start).Round(time.Millisecond), retries.Load())
	if retries.Load() == 0 {
		t.Error("no retry logged before the broker appeared")
	}
	send(t, newProducer(t, fakeBroker{b}), messages(topic, "m", 3)...)
	f.eventuallyApplied(t, 30*time.Second, "the messages sent after the late start", 3)
}

// TestE2EStartGivesUp: with no name server, StartContext gives up when its
// context ends, naming the client's last error; Ready answers during the
// retries; Shutdown ends a Start that is still retrying at once.
func TestE2EStartGivesUp(t *testing.T) {
	skipIfRace(t)
	f := newFixture(t, oneDB(t))
	t.Run("context ends", func(t *testing.T) {
		var retries atomic.Int32
		c := startTestConsumer(t, f, dbtest.FreeAddr(t), "eo_no_broker", "nowhere", &retries)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := c.StartContext(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "route info not found") {
			t.Fatalf("%v: want the deadline and the client's route error", err)
		}
		if retries.Load() == 0 {
			t.Error("no retry logged")
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		var retries atomic.Int32
		c := startTestConsumer(t, f, dbtest.FreeAddr(t), "eo_no_broker_shutdown", "nowhere", &retries)
		errc := make(chan error, 1)
		go func() { errc <- c.StartContext(context.Background()) }()
		time.Sleep(500 * time.Millisecond)
		// The retrying start holds no lock that Ready needs: a probe
		// answers at once.
		asked := time.Now()
		if err := c.Ready(context.Background()); !errors.Is(err, ErrNotStarted) || time.Since(asked) > 100*time.Millisecond {
			t.Errorf("Ready during the start: %v after %v, want ErrNotStarted at once", err, time.Since(asked))
		}
		begun := time.Now()
		if err := c.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-errc; !errors.Is(err, ErrShutdown) {
			t.Fatalf("StartContext: %v, want ErrShutdown", err)
		}
		if d := time.Since(begun); d > 10*time.Second {
			t.Errorf("Shutdown took %v to end the retrying Start", d)
		}
	})
}

// TestE2EStartPermanentError: a group already started in this process
// under the same client instance fails at once (the client's ErrCreated),
// without retries.
func TestE2EStartPermanentError(t *testing.T) {
	skipIfRace(t)
	f := newFixture(t, oneDB(t))
	b := newBroker(t)
	const topic, group = "twice", "eo_twice"
	b.CreateTopic(topic, 1)
	instance := instanceName(t)
	build := func(retries *atomic.Int32) *Consumer {
		c, err := NewConsumer(f.ds, group, WithLogger(slog.New(retryCounter{retries})), WithClientOptions(
			consumer.WithNameServer(primitive.NamesrvAddr{b.Addr()}), consumer.WithInstance(instance)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
		if err := c.SubscribeTx(topic, consumer.MessageSelector{}, f.applier(group)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	var r1, r2 atomic.Int32
	if err := build(&r1).Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := build(&r2).Start()
	if !errors.Is(err, rmqerrors.ErrCreated) {
		t.Fatalf("second Start: %v, want ErrCreated", err)
	}
	if r2.Load() != 0 || time.Since(start) > 5*time.Second {
		t.Errorf("second Start retried %d times in %v, want a failure at once", r2.Load(), time.Since(start))
	}
}
