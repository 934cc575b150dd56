//go:build !race

// rocketmq-client-go v2.1.2 has data races of its own (process queue tree map,
// subscription data, client close flag), which fail any test driving it under
// -race; race_test.go covers the broker under -race with raw protocol clients.

package rocketmqtest_test

import (
	"context"
	"fmt"
	"hash/crc32"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

func TestSendSyncConsumeConcurrently(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	const topic, n = "orders", 50
	p := newProducer(t, b)
	var sent []string
	for i := range n {
		msg := primitive.NewMessage(topic, []byte(fmt.Sprintf("m%03d", i)))
		msg.WithKeys([]string{fmt.Sprint("k", i)})
		res, err := p.SendSync(context.Background(), msg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != primitive.SendOK {
			t.Fatalf("status %v", res.Status)
		}
		sent = append(sent, res.MsgID)
	}

	var got collector
	c := newConsumer(t, b, "g1")
	err := c.Subscribe(topic, consumer.MessageSelector{}, func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		got.add(msgs...)
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "all messages consumed", func() bool { return got.len() >= n })

	var ids, bodies []string
	for _, m := range got.snapshot() {
		ids = append(ids, m.MsgId)
		bodies = append(bodies, string(m.Body))
		if m.Topic != topic || m.StoreHost != b.Addr() {
			t.Errorf("topic %q store host %q", m.Topic, m.StoreHost)
		}
	}
	sort.Strings(ids)
	sort.Strings(sent)
	sort.Strings(bodies)
	if fmt.Sprint(ids) != fmt.Sprint(sent) {
		t.Errorf("consumed ids differ from sent ids")
	}
	if bodies[0] != "m000" || bodies[n-1] != fmt.Sprintf("m%03d", n-1) {
		t.Errorf("bodies %v", bodies)
	}
}

// consumeAll subscribes a new consumer of the group to the topic and returns
// its collector; the consumer acks everything.
func consumeAll(t *testing.T, b *rocketmqtest.Broker, group, topic string, sel consumer.MessageSelector, opts ...consumer.Option) *collector {
	got, _ := consumeAllWith(t, b, group, topic, sel, opts...)
	return got
}

// consumeAllWith is consumeAll returning the consumer too.
func consumeAllWith(t *testing.T, b *rocketmqtest.Broker, group, topic string, sel consumer.MessageSelector, opts ...consumer.Option) (*collector, pushConsumer) {
	t.Helper()
	var got collector
	c := newConsumer(t, b, group, opts...)
	err := c.Subscribe(topic, sel, func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		got.add(msgs...)
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return &got, c
}

func bodies(msgs []*primitive.MessageExt) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.Body))
	}
	sort.Strings(out)
	return out
}

func TestSendAsyncOneWayBatch(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	const topic = "mixed"
	p := newProducer(t, b)
	got := consumeAll(t, b, "g", topic, consumer.MessageSelector{})

	done := make(chan error, 1)
	err := p.SendAsync(context.Background(), func(_ context.Context, res *primitive.SendResult, err error) {
		if err == nil && res.Status != primitive.SendOK {
			err = fmt.Errorf("status %v", res.Status)
		}
		done <- err
	}, primitive.NewMessage(topic, []byte("async")))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := p.SendOneWay(context.Background(), primitive.NewMessage(topic, []byte("oneway"))); err != nil {
		t.Fatal(err)
	}
	batch := []*primitive.Message{
		primitive.NewMessage(topic, []byte("batch-1")),
		primitive.NewMessage(topic, []byte("batch-2")),
		primitive.NewMessage(topic, []byte("batch-3")),
	}
	res, err := p.SendSync(context.Background(), batch...)
	if err != nil {
		t.Fatal(err)
	}
	if ids := strings.Split(res.OffsetMsgID, ","); len(ids) != 3 {
		t.Errorf("batch OffsetMsgID %q, want 3 ids", res.OffsetMsgID)
	}

	want := []string{"async", "batch-1", "batch-2", "batch-3", "oneway"}
	eventually(t, 10*time.Second, "5 messages", func() bool { return got.len() >= len(want) })
	if g := bodies(got.snapshot()); fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("consumed %v, want %v", g, want)
	}
	// A batch is stored in one queue, in order, at consecutive offsets.
	var batchMsgs []*primitive.MessageExt
	for _, m := range b.QueueMessages(topic, res.MessageQueue.QueueId) {
		if strings.HasPrefix(string(m.Body), "batch-") {
			batchMsgs = append(batchMsgs, m)
		}
	}
	for i, m := range batchMsgs {
		if m.Queue.QueueId != res.MessageQueue.QueueId || m.QueueOffset != res.QueueOffset+int64(i) {
			t.Errorf("batch message %d in queue %d at %d, want queue %d at %d", i, m.Queue.QueueId, m.QueueOffset, res.MessageQueue.QueueId, res.QueueOffset+int64(i))
		}
		if m.MsgId != m.OffsetMsgId {
			t.Errorf("batch message without UNIQ_KEY: MsgId %s should fall back to OffsetMsgId %s", m.MsgId, m.OffsetMsgId)
		}
	}
}

func TestTagFiltering(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("tagged", 2))
	p := newProducer(t, b)
	for i, tag := range []string{"a", "b", "c", "a", "", "b"} {
		msg := primitive.NewMessage("tagged", []byte(fmt.Sprintf("%d-%s", i, tag)))
		if tag != "" {
			msg.WithTag(tag)
		}
		if _, err := p.SendSync(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	ab := consumeAll(t, b, "g-ab", "tagged", consumer.MessageSelector{Type: consumer.TAG, Expression: "a || b"})
	all := consumeAll(t, b, "g-all", "tagged", consumer.MessageSelector{Type: consumer.TAG, Expression: "*"})
	eventually(t, 10*time.Second, "all 6 messages for *", func() bool { return all.len() >= 6 })
	eventually(t, 10*time.Second, "4 messages for a||b", func() bool { return ab.len() >= 4 })
	if g := bodies(ab.snapshot()); fmt.Sprint(g) != "[0-a 1-b 3-a 5-b]" {
		t.Errorf("a||b consumed %v", g)
	}
}

func TestStoredMessageFields(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("fields", 1))
	p := newProducer(t, b)
	var results []*primitive.SendResult
	for i := range 2 {
		msg := primitive.NewMessage("fields", []byte(fmt.Sprint("body-", i)))
		msg.WithTag("TagA")
		msg.WithKeys([]string{"k1", "k2"})
		msg.WithProperty("custom", "v")
		res, err := p.SendSync(context.Background(), msg)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res)
	}
	got := consumeAll(t, b, "g", "fields", consumer.MessageSelector{})
	eventually(t, 10*time.Second, "2 messages", func() bool { return got.len() >= 2 })

	stored := b.Messages("fields")
	consumed := got.snapshot()
	sort.Slice(consumed, func(i, j int) bool { return consumed[i].QueueOffset < consumed[j].QueueOffset })
	for i, res := range results {
		for _, m := range []*primitive.MessageExt{stored[i], consumed[i]} {
			if m.MsgId != res.MsgID || m.OffsetMsgId != res.OffsetMsgID || m.QueueOffset != res.QueueOffset {
				t.Errorf("message %d: MsgId %s OffsetMsgId %s offset %d; send result %s %s %d",
					i, m.MsgId, m.OffsetMsgId, m.QueueOffset, res.MsgID, res.OffsetMsgID, res.QueueOffset)
			}
			if m.GetTags() != "TagA" || m.GetKeys() != "k1 k2" || m.GetProperty("custom") != "v" || m.GetProperty("CLUSTER") != "DefaultCluster" {
				t.Errorf("message %d properties %v", i, m.GetProperties())
			}
			if m.StoreHost != b.Addr() || !strings.HasPrefix(m.BornHost, "127.0.0.1:") {
				t.Errorf("message %d hosts: born %s store %s", i, m.BornHost, m.StoreHost)
			}
			if m.BodyCRC != int32(crc32.ChecksumIEEE(m.Body)) || m.ReconsumeTimes != 0 || m.Queue.QueueId != 0 {
				t.Errorf("message %d: crc %d reconsume %d queue %d", i, m.BodyCRC, m.ReconsumeTimes, m.Queue.QueueId)
			}
			if m.BornTimestamp <= 0 || m.StoreTimestamp < m.BornTimestamp-1000 {
				t.Errorf("message %d timestamps born %d store %d", i, m.BornTimestamp, m.StoreTimestamp)
			}
		}
	}
	// Commit-log offsets advance by the stored size; OffsetMsgId encodes them.
	if stored[1].CommitLogOffset != stored[0].CommitLogOffset+int64(stored[0].StoreSize) {
		t.Errorf("commit log offsets %d, %d with size %d", stored[0].CommitLogOffset, stored[1].CommitLogOffset, stored[0].StoreSize)
	}
	id, err := primitive.UnmarshalMsgID([]byte(stored[1].OffsetMsgId))
	if err != nil || id.Offset != stored[1].CommitLogOffset || fmt.Sprintf("%s:%d", id.Addr, id.Port) != b.Addr() {
		t.Errorf("OffsetMsgId %s decodes to %+v, %v", stored[1].OffsetMsgId, id, err)
	}
}

func TestDelayedMessage(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithDelayScale(10*time.Millisecond))
	p := newProducer(t, b)
	got := consumeAll(t, b, "g", "later", consumer.MessageSelector{})
	msg := primitive.NewMessage("later", []byte("hi"))
	msg.WithDelayTimeLevel(2) // 5 s, scaled to 50 ms
	start := time.Now()
	if _, err := p.SendSync(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if n := len(b.Messages("SCHEDULE_TOPIC_XXXX")); n != 1 {
		t.Errorf("%d messages in the schedule topic, want 1", n)
	}
	eventually(t, 10*time.Second, "delayed message", func() bool { return got.len() == 1 })
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("delivered after %v, want at least 50ms", d)
	}
	m := got.snapshot()[0]
	// DELAY stays, as on 5.x.
	if m.GetProperty("DELAY") != "2" || m.GetProperty("REAL_TOPIC") != "later" || string(m.Body) != "hi" {
		t.Errorf("delivered properties %v", m.GetProperties())
	}
}
