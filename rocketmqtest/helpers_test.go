package rocketmqtest_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

func TestMain(m *testing.M) {
	rlog.SetLogLevel("fatal")
	os.Exit(m.Run())
}

var instanceSeq atomic.Int64

// instance returns a client instance name unique in this process: clients of
// rocketmq-client-go with the same instance name share one connection pool
// and name server list.
func instance(t testing.TB) string {
	return fmt.Sprintf("%s-%d", t.Name(), instanceSeq.Add(1))
}

func newProducer(t testing.TB, b *rocketmqtest.Broker, opts ...producer.Option) rocketmq.Producer {
	t.Helper()
	opts = append([]producer.Option{
		producer.WithNameServer([]string{b.Addr()}),
		producer.WithInstanceName(instance(t)),
		producer.WithGroupName("producer-" + t.Name()),
		producer.WithRetry(2),
	}, opts...)
	p, err := rocketmq.NewProducer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown() })
	return p
}

// pushConsumer is the concrete push consumer with its exported rebalance hooks.
type pushConsumer interface {
	Start() error
	Shutdown() error
	Subscribe(string, consumer.MessageSelector, func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error)) error
	Rebalance()
	PersistConsumerOffset() error
}

func newConsumer(t testing.TB, b *rocketmqtest.Broker, group string, opts ...consumer.Option) pushConsumer {
	t.Helper()
	opts = append([]consumer.Option{
		consumer.WithNameServer([]string{b.Addr()}),
		consumer.WithGroupName(group),
		consumer.WithInstance(instance(t)),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	}, opts...)
	c, err := consumer.NewPushConsumer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	pc, ok := any(c).(pushConsumer)
	if !ok {
		t.Fatalf("push consumer %T lacks Rebalance/PersistConsumerOffset", c)
	}
	t.Cleanup(func() { _ = pc.Shutdown() })
	return pc
}

// collector records consumed messages by body.
type collector struct {
	mu   sync.Mutex
	msgs []*primitive.MessageExt
}

func (c *collector) add(msgs ...*primitive.MessageExt) {
	c.mu.Lock()
	c.msgs = append(c.msgs, msgs...)
	c.mu.Unlock()
}

func (c *collector) snapshot() []*primitive.MessageExt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*primitive.MessageExt(nil), c.msgs...)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testLogger logs through t.Log, so broker logs show only for failed tests.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
