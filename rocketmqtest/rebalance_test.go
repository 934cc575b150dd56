//go:build !race

// rocketmq-client-go v2.1.2 has data races of its own (process queue tree map,
// subscription data, client close flag), which fail any test driving it under
// -race; race_test.go covers the broker under -race with raw protocol clients.

package rocketmqtest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// TestRebalance runs up to 3 consumers of one group on a 6-queue topic and
// checks that the queues are shared 6, 3+3, 2+2+2, then 3+3 again when one
// leaves: the broker notifies the group on every join and leave.
func TestRebalance(t *testing.T) {
	t.Parallel()
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("shared", 6))
	p := newProducer(t, b)

	type delivery struct {
		consumer int
		queue    int
	}
	var (
		mu    sync.Mutex
		byMsg = map[string]delivery{}
	)
	start := func(i int) pushConsumer {
		c := newConsumer(t, b, "sharing")
		err := c.Subscribe("shared", consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				byMsg[string(m.Body)] = delivery{i, m.Queue.QueueId}
			}
			return consumer.ConsumeSuccess, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}

	round := 0
	// expectSplit sends rounds of 12 messages (2 per queue) until one round is
	// consumed with each queue owned by a single consumer and each consumer
	// among the expected ones owning queuesEach queues.
	expectSplit := func(consumers []int, queuesEach int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			round++
			prefix := fmt.Sprintf("r%d-", round)
			for i := range 12 {
				if _, err := p.SendSync(context.Background(), primitive.NewMessage("shared", []byte(fmt.Sprint(prefix, i)))); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 10*time.Second, "round consumed", func() bool {
				mu.Lock()
				defer mu.Unlock()
				for i := range 12 {
					if _, ok := byMsg[fmt.Sprint(prefix, i)]; !ok {
						return false
					}
				}
				return true
			})
			owners := map[int]map[int]bool{} // queue -> consumers
			mu.Lock()
			for i := range 12 {
				d := byMsg[fmt.Sprint(prefix, i)]
				if owners[d.queue] == nil {
					owners[d.queue] = map[int]bool{}
				}
				owners[d.queue][d.consumer] = true
			}
			mu.Unlock()
			perConsumer := map[int]int{}
			ok := len(owners) == 6
			for _, cs := range owners {
				ok = ok && len(cs) == 1
				for c := range cs {
					perConsumer[c]++
				}
			}
			for _, c := range consumers {
				ok = ok && perConsumer[c] == queuesEach
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("queues not split %d each among consumers %v: %v", queuesEach, consumers, owners)
			}
		}
	}

	start(1)
	expectSplit([]int{1}, 6)
	start(2)
	expectSplit([]int{1, 2}, 3)
	c3 := start(3)
	if ids := b.ConsumerIDs("sharing"); len(ids) != 3 {
		t.Fatalf("consumer ids %v, want 3", ids)
	}
	expectSplit([]int{1, 2, 3}, 2)
	if err := c3.Shutdown(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "consumer 3 gone", func() bool { return len(b.ConsumerIDs("sharing")) == 2 })
	expectSplit([]int{1, 2}, 3)
}
