package brokertest

import (
	"context"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// The helpers against the real broker: what they report is what a client
// does to it.
func TestApache(t *testing.T) {
	if raceEnabled {
		// scripts/test.sh runs it again without -race.
		t.Skip("skipped under -race: rocketmq-client-go v2.1.2 has data races of its own")
	}
	rlog.SetLogLevel("error")
	b := Apache(t)
	if Apache(t) != b {
		t.Error("a second Apache call looked the broker up again")
	}
	if v := b.Version(); !regexp.MustCompile(`^5\.\d+\.\d+$`).MatchString(v) {
		t.Errorf("Version() = %q, want 5.x.y", v)
	}
	topic, group := UniqueName(t, "bt"), UniqueName(t, "bt_group")
	b.CreateTopic(t, topic, 2)

	p, err := rocketmq.NewProducer(producer.WithNameServer(primitive.NamesrvAddr{b.NameServer()}),
		producer.WithGroupName(UniqueName(t, "bt_producer")), producer.WithInstanceName(UniqueName(t, "bt")),
		producer.WithQueueSelector(producer.NewManualQueueSelector()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		m := primitive.NewMessage(topic, []byte("x"))
		m.Queue = &primitive.MessageQueue{Topic: topic, BrokerName: "broker-a", QueueId: 1}
		if _, err := p.SendSync(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// The broker builds its queue index from the commit log a moment
	// after it answers the send.
	waitFor(t, "3 messages in queue 1", func() bool { return b.MaxOffset(t, topic, 1) == 3 })
	if got := b.MaxOffset(t, topic, 0); got != 0 {
		t.Errorf("MaxOffset of queue 0 = %d, want 0", got)
	}
	if got := b.MaxOffset(t, "%RETRY%"+group, 0); got != 0 {
		t.Errorf("MaxOffset of a topic never created = %d, want 0", got)
	}
	if got := b.CommittedOffset(t, group, topic, 1); got > 0 {
		t.Errorf("CommittedOffset before any commit = %d, want 0 or -1", got)
	}

	// A consumer: connected while it runs, its commits seen, gone after.
	var consumed atomic.Int64
	c, err := rocketmq.NewPushConsumer(consumer.WithNameServer(primitive.NamesrvAddr{b.NameServer()}),
		consumer.WithGroupName(group), consumer.WithInstance(UniqueName(t, "bt")),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Subscribe(topic, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		consumed.Add(int64(len(msgs)))
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the consumer connected", func() bool { return len(b.ConsumerIDs(t, group)) == 1 })
	waitFor(t, "3 messages consumed", func() bool { return consumed.Load() == 3 })
	waitFor(t, "offset 3 committed", func() bool {
		_ = c.(interface{ PersistConsumerOffset() error }).PersistConsumerOffset()
		return b.CommittedOffset(t, group, topic, 1) == 3
	})
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the consumer gone", func() bool { return len(b.ConsumerIDs(t, group)) == 0 })
	b.SetOffset(t, group, topic, 1, 1)
	if got := b.CommittedOffset(t, group, topic, 1); got != 1 {
		t.Errorf("CommittedOffset after SetOffset(1) = %d", got)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
