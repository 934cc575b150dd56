//go:build !race

// rocketmq-client-go v2.1.2 has data races of its own (process queue tree map,
// subscription data, client close flag), which fail any test driving it under
// -race; race_test.go covers the broker under -race with raw protocol clients.

package rocketmqtest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

func TestOrderlyConsumer(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("ordered", 4))
	p := newProducer(t, b, producer.WithQueueSelector(producer.NewHashQueueSelector()))
	keys := []string{"alice", "bob", "carol"}
	const perKey = 20
	for i := range perKey {
		for _, k := range keys {
			msg := primitive.NewMessage("ordered", []byte(fmt.Sprintf("%s:%02d", k, i)))
			msg.WithShardingKey(k)
			if _, err := p.SendSync(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
		}
	}

	var (
		mu   sync.Mutex
		seen = map[string][]string{}
	)
	c := newConsumer(t, b, "ordered-g", consumer.WithConsumerOrder(true), consumer.WithMaxReconsumeTimes(1))
	err := c.Subscribe("ordered", consumer.MessageSelector{}, func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			body := string(m.Body)
			// bob:05 always fails: after MaxReconsumeTimes local retries the
			// client sends it to the DLQ and goes on with the queue.
			if body == "bob:05" {
				if oc, ok := primitive.GetOrderlyCtx(ctx); ok {
					oc.SuspendCurrentQueueTimeMillis = 1
				}
				return consumer.SuspendCurrentQueueAMoment, nil
			}
			k, _, _ := strings.Cut(body, ":")
			seen[k] = append(seen[k], body)
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "all keys consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen["alice"]) == perKey && len(seen["bob"]) == perKey-1 && len(seen["carol"]) == perKey
	})
	mu.Lock()
	for _, k := range keys {
		prev := -1
		for _, body := range seen[k] {
			var i int
			fmt.Sscanf(body[len(k)+1:], "%d", &i)
			if i <= prev {
				t.Errorf("%s consumed out of order: %v", k, seen[k])
				break
			}
			prev = i
		}
	}
	mu.Unlock()

	dlq := b.Messages("%DLQ%ordered-g")
	if len(dlq) != 1 || string(dlq[0].Body) != "bob:05" {
		t.Errorf("DLQ holds %v, want bob:05", bodies(dlq))
	}
	// The consumer holds the locks of the queues it consumes.
	ids := b.ConsumerIDs("ordered-g")
	if len(ids) != 1 {
		t.Fatalf("consumer ids %v", ids)
	}
	for q := range 4 {
		if owner := b.LockOwner("ordered-g", "ordered", q); owner != ids[0] {
			t.Errorf("queue %d locked by %q, want %q", q, owner, ids[0])
		}
	}
}
