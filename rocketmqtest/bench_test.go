//go:build !race

package rocketmqtest_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// BenchmarkProduceConsume sends b.N 1 KiB messages through one
// rocketmq-client-go producer and receives them with one push consumer, over
// loopback TCP: "async" sends one message per request, at most 256 in flight;
// "batch16" sends batches of 16 messages, at most 16 batches in flight.
// msgs/s counts messages both sent and consumed per second of the whole run.
func BenchmarkProduceConsume(b *testing.B) {
	b.Run("async", func(b *testing.B) { benchProduceConsume(b, 1, 256) })
	b.Run("batch16", func(b *testing.B) { benchProduceConsume(b, 16, 16) })
}

func benchProduceConsume(b *testing.B, batch, inflightMax int) {
	broker := rocketmqtest.NewBroker(b, rocketmqtest.WithTopic("bench", 4))
	p := newProducer(b, broker, producer.WithRetry(0))
	var consumed atomic.Int64
	done := make(chan struct{})
	total := int64(b.N)
	c := newConsumer(b, broker, "bench-g", consumer.WithConsumeMessageBatchMaxSize(32), consumer.WithPullBatchSize(32))
	err := c.Subscribe("bench", consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		if consumed.Add(int64(len(msgs))) >= total {
			select {
			case <-done:
			default:
				close(done)
			}
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 1024)
	for i := range body {
		body[i] = byte('a' + i%26)
	}

	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	inflight := make(chan struct{}, inflightMax)
	var (
		wg      sync.WaitGroup
		sendErr atomic.Value
	)
	for sent := 0; sent < b.N; sent += batch {
		msgs := make([]*primitive.Message, min(batch, b.N-sent))
		for i := range msgs {
			msgs[i] = primitive.NewMessage("bench", body)
		}
		inflight <- struct{}{}
		wg.Add(1)
		err := p.SendAsync(context.Background(), func(_ context.Context, _ *primitive.SendResult, err error) {
			if err != nil {
				sendErr.Store(err)
			}
			<-inflight
			wg.Done()
		}, msgs...)
		if err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	if err, _ := sendErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatalf("consumed %d of %d", consumed.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
