//go:build !race

// rocketmq-client-go v2.1.2 has data races of its own (process queue tree map,
// subscription data, client close flag), which fail any test driving it under
// -race; race_test.go covers the broker under -race with raw protocol clients.

package rocketmqtest_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// committed sums the group's committed offsets over the topic's queues.
func committed(b *rocketmqtest.Broker, group, topic string, queues int) int64 {
	var sum int64
	for q := range queues {
		sum += max(b.CommittedOffset(group, topic, q), 0)
	}
	return sum
}

func send(t *testing.T, p interface {
	SendSync(context.Context, ...*primitive.Message) (*primitive.SendResult, error)
}, topic string, bodies ...string) {
	t.Helper()
	for _, body := range bodies {
		if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte(body))); err != nil {
			t.Fatal(err)
		}
	}
}

func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%02d", prefix, i))
	}
	return out
}

func TestConsumerRestartResumesFromCommittedOffset(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	p := newProducer(t, b)
	send(t, p, "events", seq("a", 0, 10)...)

	first, c1 := consumeAllWith(t, b, "resume", "events", consumer.MessageSelector{})
	eventually(t, 10*time.Second, "first 10", func() bool { return first.len() == 10 })
	eventually(t, 10*time.Second, "offsets committed", func() bool {
		_ = c1.PersistConsumerOffset()
		return committed(b, "resume", "events", 4) == 10
	})
	if err := c1.Shutdown(); err != nil {
		t.Fatal(err)
	}

	send(t, p, "events", seq("b", 0, 5)...)
	second := consumeAll(t, b, "resume", "events", consumer.MessageSelector{})
	eventually(t, 10*time.Second, "next 5", func() bool { return second.len() >= 5 })
	// Each queue is consumed in order, so redelivered old messages would have
	// come before the new ones.
	if got := bodies(second.snapshot()); fmt.Sprint(got) != fmt.Sprint(seq("b", 0, 5)) {
		t.Errorf("restarted consumer got %v, want only the 5 new messages", got)
	}
}

func TestBrokerRestartKeepsMessagesAndOffsets(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithLogger(testLogger(t)))
	addr := b.Addr()
	p := newProducer(t, b)
	got, c := consumeAllWith(t, b, "survivor", "durable", consumer.MessageSelector{})
	send(t, p, "durable", seq("before", 0, 8)...)
	eventually(t, 10*time.Second, "8 before restart", func() bool { return got.len() == 8 })
	eventually(t, 10*time.Second, "offsets committed", func() bool {
		_ = c.PersistConsumerOffset()
		return committed(b, "survivor", "durable", 4) == 8
	})

	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	if b.Addr() != addr {
		t.Fatalf("address changed from %s to %s", addr, b.Addr())
	}
	if n := len(b.Messages("durable")); n != 8 || committed(b, "survivor", "durable", 4) != 8 {
		t.Fatalf("after restart: %d messages, committed %d", n, committed(b, "survivor", "durable", 4))
	}
	send(t, p, "durable", seq("after", 0, 8)...)
	eventually(t, 20*time.Second, "8 after restart", func() bool { return got.len() >= 16 })
	want := append(seq("after", 0, 8), seq("before", 0, 8)...)
	if g := bodies(got.snapshot()); fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("consumed %v", g)
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

// TestConsumerAfterNegativeCommitMissesNothing is the skip an independent
// client hit: it committed -1 for a still empty queue, messages were sent,
// and a consumer of the group started with ConsumeFromLastOffset. The Java
// broker never answers a stored -1 (it answers 0 while the queue's first
// message is in memory), so rocketmq-client-go starts at 0 and gets every
// message; answering -1 made it start at the max offset and skip them all.
func TestConsumerAfterNegativeCommitMissesNothing(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("late", 2))
	c := dial(t, b)
	// A pull adds the group to the broker's subscription-group table, so
	// that its commits are taken, without making it a member (a heartbeat
	// would, and take queues from the consumer below).
	c.send(rocketmqtest.CodePullMessage, false, `{"consumerGroup":"late","topic":"late","queueId":0,"queueOffset":0,`+
		`"maxMsgNums":1,"sysFlag":4,"commitOffset":0,"suspendTimeoutMillis":0,"subscription":"*","subVersion":0}`, nil)
	for q := range 2 {
		c.send(rocketmqtest.CodeUpdateConsumerOffset, true,
			fmt.Sprintf(`{"consumerGroup":"late","topic":"late","queueId":%d,"commitOffset":-1}`, q), nil)
	}
	// Handled in order: the one-way commits are stored before this answer.
	if resp := c.send(rocketmqtest.CodeQueryConsumerOffset, false, `{"consumerGroup":"late","topic":"late","queueId":0}`, nil); resp.Code != 22 {
		t.Fatalf("empty queue after a -1 commit: %+v, want QUERY_NOT_FOUND", resp)
	}
	send(t, newProducer(t, b), "late", seq("m", 0, 6)...)

	got := consumeAll(t, b, "late", "late", consumer.MessageSelector{},
		consumer.WithConsumeFromWhere(consumer.ConsumeFromLastOffset))
	eventually(t, 15*time.Second, "the 6 messages sent after the -1 commit", func() bool { return got.len() >= 6 })
	if g := bodies(got.snapshot()); fmt.Sprint(g) != fmt.Sprint(seq("m", 0, 6)) {
		t.Errorf("consumed %v", g)
	}
}
