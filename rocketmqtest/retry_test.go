//go:build !race

// rocketmq-client-go v2.1.2 has data races of its own (process queue tree map,
// subscription data, client close flag), which fail any test driving it under
// -race; race_test.go covers the broker under -race with raw protocol clients.

package rocketmqtest_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// attempts records each delivery of a message to a listener that fails the
// first `fail` deliveries.
type attempts struct {
	mu         sync.Mutex
	reconsumes []int32
	topics     []string
	msgIDs     []string
}

func (a *attempts) listener(fail int) func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	return func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, m := range msgs {
			a.reconsumes = append(a.reconsumes, m.ReconsumeTimes)
			a.topics = append(a.topics, m.Topic)
			a.msgIDs = append(a.msgIDs, m.MsgId)
		}
		if len(a.reconsumes) <= fail {
			return consumer.ConsumeRetryLater, nil
		}
		return consumer.ConsumeSuccess, nil
	}
}

func (a *attempts) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.reconsumes)
}

func TestSendBackRetries(t *testing.T) {
	t.Parallel()
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithDelayScale(time.Millisecond))
	p := newProducer(t, b)
	res, err := p.SendSync(context.Background(), primitive.NewMessage("work", []byte("job")))
	if err != nil {
		t.Fatal(err)
	}
	var a attempts
	c := newConsumer(t, b, "workers")
	if err := c.Subscribe("work", consumer.MessageSelector{}, a.listener(2)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "3 deliveries", func() bool { return a.count() >= 3 })

	a.mu.Lock()
	defer a.mu.Unlock()
	for i, rt := range a.reconsumes {
		if rt != int32(i) || a.msgIDs[i] != res.MsgID || a.topics[i] != "work" {
			t.Errorf("delivery %d: ReconsumeTimes %d MsgId %s topic %s; want %d %s work", i, rt, a.msgIDs[i], a.topics[i], i, res.MsgID)
		}
	}
	retries := b.Messages("%RETRY%workers")
	if len(retries) != 2 {
		t.Fatalf("%d retry messages, want 2", len(retries))
	}
	for i, m := range retries {
		if m.GetProperty("RETRY_TOPIC") != "work" || m.MsgId != res.MsgID || m.ReconsumeTimes != int32(i+1) ||
			m.GetProperty("ORIGIN_MESSAGE_ID") != res.OffsetMsgID || m.GetProperty("DELAY") != strconv.Itoa(3+i) {
			t.Errorf("retry %d: reconsume %d props %v", i, m.ReconsumeTimes, m.GetProperties())
		}
	}
	// Level 3+ReconsumeTimes each time: both passed through the schedule topic.
	if n := len(b.Messages("SCHEDULE_TOPIC_XXXX")); n != 2 {
		t.Errorf("%d scheduled messages, want 2", n)
	}
}

func TestSendBackDLQ(t *testing.T) {
	t.Parallel()
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithDelayScale(time.Millisecond))
	p := newProducer(t, b)
	res, err := p.SendSync(context.Background(), primitive.NewMessage("work", []byte("poison")))
	if err != nil {
		t.Fatal(err)
	}
	var a attempts
	c := newConsumer(t, b, "workers", consumer.WithMaxReconsumeTimes(2))
	if err := c.Subscribe("work", consumer.MessageSelector{}, a.listener(1000)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "message in the DLQ", func() bool { return len(b.Messages("%DLQ%workers")) == 1 })
	dlq := b.Messages("%DLQ%workers")[0]
	if dlq.MsgId != res.MsgID || dlq.ReconsumeTimes != 3 || string(dlq.Body) != "poison" || dlq.GetProperty("RETRY_TOPIC") != "work" {
		t.Errorf("DLQ message %v reconsume %d props %v", string(dlq.Body), dlq.ReconsumeTimes, dlq.GetProperties())
	}
	if n := a.count(); n != 3 {
		t.Errorf("%d deliveries, want 3 (first + 2 reconsumes)", n)
	}
}

// With the broker's own maximum, used when the client sends none (a Java
// client before 3.4.9), a retry-topic send past it goes to the DLQ; one at
// the maximum stays in the retry topic, as on 5.x.
func TestRetryTopicSendPastMaxGoesToDLQ(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithMaxReconsumeTimes(1))
	c := dial(t, b)
	for i, times := range []string{"1", "2"} {
		resp := c.roundTrip(&rocketmqtest.Command{Code: rocketmqtest.CodeSendMessage, Opaque: int32(i + 1), Body: []byte("x"),
			ExtFields: map[string]string{"producerGroup": "p", "topic": "%RETRY%g", "queueId": "0", "sysFlag": "0",
				"bornTimestamp": "1", "flag": "0", "properties": "", "reconsumeTimes": times}})
		if resp.Code != 0 {
			t.Fatalf("send: %+v", resp)
		}
	}
	if n, m := len(b.Messages("%RETRY%g")), len(b.Messages("%DLQ%g")); n != 1 || m != 1 {
		t.Errorf("%d messages in %%RETRY%%g and %d in %%DLQ%%g, want 1 and 1", n, m)
	}
}
