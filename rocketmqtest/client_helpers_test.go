//go:build !race

// rocketmq-client-go v2.1.2 has data races of its own (process queue tree map,
// subscription data, client close flag), which fail any test driving it under
// -race; race_test.go covers the broker under -race with raw protocol clients.

package rocketmqtest_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

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
