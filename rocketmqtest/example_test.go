//go:build !race

// rocketmq-client-go v2.1.2 has data races of its own (process queue tree map,
// subscription data, client close flag), which fail any test driving it under
// -race; race_test.go covers the broker under -race with raw protocol clients.

package rocketmqtest_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// A test starts a broker, produces and consumes through the real client, and
// injects a fault: with DuplicateSends every message is stored twice, as after
// a producer retry, and the consumer sees the same MsgId twice.
func Example() {
	b, err := rocketmqtest.New(rocketmqtest.WithDelayScale(time.Millisecond))
	if err != nil {
		panic(err)
	}
	defer b.Close()

	p, _ := rocketmq.NewProducer(
		producer.WithNameServer([]string{b.Addr()}),
		producer.WithInstanceName("example"),
	)
	if err := p.Start(); err != nil {
		panic(err)
	}
	defer p.Shutdown()

	var (
		mu       sync.Mutex
		consumed = map[string][]string{} // body -> msg ids
		total    int
	)
	c, _ := rocketmq.NewPushConsumer(
		consumer.WithNameServer([]string{b.Addr()}),
		consumer.WithGroupName("example-group"),
		consumer.WithInstance("example"),
	)
	_ = c.Subscribe("prices", consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			consumed[string(m.Body)] = append(consumed[string(m.Body)], m.MsgId)
			total++
		}
		return consumer.ConsumeSuccess, nil
	})
	if err := c.Start(); err != nil {
		panic(err)
	}
	defer c.Shutdown()

	_, _ = p.SendSync(context.Background(), primitive.NewMessage("prices", []byte("apple=3")))
	dup := b.DuplicateSends()
	_, _ = p.SendSync(context.Background(), primitive.NewMessage("prices", []byte("pear=5")))
	dup.Remove()

	// Up to 30 s: longer than the client's 20 s long poll, so that one pull
	// the client holds past the arrival (seen once, in a loaded full run)
	// delays the output instead of changing it.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := total
		mu.Unlock()
		if n == 3 {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	bodies := make([]string, 0, len(consumed))
	for body := range consumed {
		bodies = append(bodies, body)
	}
	sort.Strings(bodies)
	for _, body := range bodies {
		ids := consumed[body]
		fmt.Printf("%s: delivered %d time(s), same MsgId: %v\n", body, len(ids), ids[0] == ids[len(ids)-1])
	}
	fmt.Println("stored in topic:", len(b.Messages("prices")))
	// Output:
	// apple=3: delivered 1 time(s), same MsgId: true
	// pear=5: delivered 2 time(s), same MsgId: true
	// stored in topic: 3
}
