//go:build !race

// rocketmq-client-go v2.1.2 has data races of its own (process queue tree map,
// subscription data, client close flag), which fail any test driving it under
// -race; race_test.go covers the broker under -race with raw protocol clients.

package rocketmqtest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

func TestDropOffsetCommitsRedelivers(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	p := newProducer(t, b)
	send(t, p, "ledger", seq("a", 0, 8)...)
	got, c := consumeAllWith(t, b, "bookkeeper", "ledger", consumer.MessageSelector{})
	eventually(t, 10*time.Second, "8 consumed", func() bool { return got.len() == 8 })
	eventually(t, 10*time.Second, "offsets committed", func() bool {
		_ = c.PersistConsumerOffset()
		return committed(b, "bookkeeper", "ledger", 4) == 8
	})

	drop := b.DropOffsetCommits()
	send(t, p, "ledger", seq("b", 0, 4)...)
	eventually(t, 10*time.Second, "4 more consumed", func() bool { return got.len() == 12 })
	hits := drop.Hits()
	_ = c.PersistConsumerOffset()
	eventually(t, 5*time.Second, "the persist to be dropped", func() bool { return drop.Hits() > hits })
	if n := committed(b, "bookkeeper", "ledger", 4); n != 8 {
		t.Fatalf("committed %d with commits dropped, want 8", n)
	}
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// Shutdown persists the offsets once more: drop that too.
	eventually(t, 5*time.Second, "consumer disconnected", func() bool { return len(b.ConsumerIDs("bookkeeper")) == 0 })
	before := drop.Hits()
	drop.Remove()
	if after := drop.Hits(); after != before || after == 0 {
		t.Errorf("Hits after Remove = %d, want the %d counted before", after, before)
	}

	// A new consumer of the group gets the 4 messages again.
	again := consumeAll(t, b, "bookkeeper", "ledger", consumer.MessageSelector{})
	eventually(t, 10*time.Second, "redelivery", func() bool { return again.len() >= 4 })
	if g := bodies(again.snapshot()); fmt.Sprint(g) != fmt.Sprint(seq("b", 0, 4)) {
		t.Errorf("redelivered %v", g)
	}
}

func TestDelayOffsetCommits(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	p := newProducer(t, b)
	send(t, p, "slow", "x")
	got, c := consumeAllWith(t, b, "g", "slow", consumer.MessageSelector{})
	eventually(t, 10*time.Second, "consumed", func() bool { return got.len() == 1 })
	eventually(t, 10*time.Second, "x committed", func() bool {
		_ = c.PersistConsumerOffset()
		return committed(b, "g", "slow", 4) == 1
	})
	// Only the commits of y are measured: none can be sent before y is.
	b.DelayOffsetCommits(300 * time.Millisecond)
	start := time.Now()
	send(t, p, "slow", "y")
	eventually(t, 10*time.Second, "delayed commit", func() bool {
		_ = c.PersistConsumerOffset()
		return committed(b, "g", "slow", 4) == 2
	})
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("commit visible after %v, want at least 300ms", d)
	}
}

func TestRejectSendBacksSkipsMessage(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("jobs", 1), rocketmqtest.WithDelayScale(time.Millisecond))
	p := newProducer(t, b)
	reject := b.RejectSendBacks()
	var calls atomic.Int32
	c := newConsumer(t, b, "g")
	err := c.Subscribe("jobs", consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		calls.Add(int32(len(msgs)))
		for _, m := range msgs {
			if string(m.Body) == "fails" {
				return consumer.ConsumeRetryLater, nil
			}
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	send(t, p, "jobs", "fails")
	eventually(t, 10*time.Second, "the send-back", func() bool { return reject.Hits() == 1 })
	send(t, p, "jobs", "next")
	// The client took the rejected send-back for a success: its offset moves
	// past the failed message and nothing is retried.
	eventually(t, 10*time.Second, "offset past both messages", func() bool {
		_ = c.PersistConsumerOffset()
		return b.CommittedOffset("g", "jobs", 0) == 2
	})
	if n := len(b.Messages("%RETRY%g")); n != 0 {
		t.Errorf("%d retry messages, want 0", n)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("listener saw %d messages, want 2", n)
	}
}

func TestFailSendBacksRetriesLocally(t *testing.T) {
	t.Parallel()
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithDelayScale(time.Millisecond))
	p := newProducer(t, b)
	fail := b.FailSendBacks()
	var a attempts
	c := newConsumer(t, b, "g")
	if err := c.Subscribe("jobs", consumer.MessageSelector{}, a.listener(1)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	send(t, p, "jobs", "once")
	// The client waits 3 s for the send-back, then 5 s, then runs the listener
	// again itself.
	eventually(t, 20*time.Second, "local retry", func() bool { return a.count() == 2 })
	a.mu.Lock()
	defer a.mu.Unlock()
	if fmt.Sprint(a.reconsumes) != "[0 1]" || fail.Hits() != 1 {
		t.Errorf("reconsume times %v, hits %d", a.reconsumes, fail.Hits())
	}
	if n := len(b.Messages("%RETRY%g")); n != 0 {
		t.Errorf("%d retry messages, want 0", n)
	}
}

func TestDuplicateSends(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	p := newProducer(t, b)
	dup := b.DuplicateSends()
	res, err := p.SendSync(context.Background(), primitive.NewMessage("dups", []byte("once")))
	if err != nil {
		t.Fatal(err)
	}
	dup.Remove()
	send(t, p, "dups", "plain")
	got := consumeAll(t, b, "g", "dups", consumer.MessageSelector{})
	eventually(t, 10*time.Second, "3 deliveries", func() bool { return got.len() >= 3 })
	var copies []*primitive.MessageExt
	for _, m := range got.snapshot() {
		if string(m.Body) == "once" {
			copies = append(copies, m)
		}
	}
	if len(copies) != 2 || copies[0].MsgId != res.MsgID || copies[1].MsgId != res.MsgID || copies[0].OffsetMsgId == copies[1].OffsetMsgId {
		t.Errorf("copies %v", copies)
	}
}

func TestDelayAndDropResponses(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	p := newProducer(t, b, producer.WithRetry(0), producer.WithSendMsgTimeout(time.Second))
	send(t, p, "resp", "warmup")

	delay := b.DelayResponses(rocketmqtest.CodeSendMessage, 200*time.Millisecond)
	start := time.Now()
	send(t, p, "resp", "slow")
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("send took %v with a 200ms response delay", d)
	}
	delay.Remove()

	drop := b.DropResponses(rocketmqtest.CodeSendMessage)
	_, err := p.SendSync(context.Background(), primitive.NewMessage("resp", []byte("lost-ack")))
	if err == nil {
		t.Fatal("send succeeded without a response")
	}
	drop.Remove()
	// The broker stored it although the producer saw an error.
	if g := bodies(b.Messages("resp")); fmt.Sprint(g) != "[lost-ack slow warmup]" {
		t.Errorf("stored %v", g)
	}
}

func TestPauseResume(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	p := newProducer(t, b)
	send(t, p, "paused", "warmup")
	b.Pause()
	done := make(chan error, 1)
	go func() {
		_, err := p.SendSync(context.Background(), primitive.NewMessage("paused", []byte("held")))
		done <- err
	}()
	eventually(t, 5*time.Second, "send queued", func() bool {
		return slices.Contains(b.PausedRequests(), rocketmqtest.CodeSendMessage)
	})
	if n := b.MaxOffset("paused", 0) + b.MaxOffset("paused", 1) + b.MaxOffset("paused", 2) + b.MaxOffset("paused", 3); n != 1 {
		t.Fatalf("%d messages stored while paused, want 1", n)
	}
	select {
	case err := <-done:
		t.Fatalf("send returned while paused: %v", err)
	default:
	}
	b.Resume()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(b.Messages("paused")); n != 2 {
		t.Errorf("%d messages after resume, want 2", n)
	}
}

func TestCloseClientConnections(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	p := newProducer(t, b)
	got := consumeAll(t, b, "g", "cut", consumer.MessageSelector{})
	send(t, p, "cut", "before")
	eventually(t, 10*time.Second, "first message", func() bool { return got.len() == 1 })
	if !slices.ContainsFunc(b.Clients(), func(c rocketmqtest.ClientInfo) bool { return slices.Contains(c.ConsumerGroups, "g") }) {
		t.Fatalf("consumer not among clients %+v", b.Clients())
	}
	b.CloseClientConnections()
	if n := len(b.Clients()); n != 0 {
		t.Fatalf("%d clients after closing connections", n)
	}
	eventually(t, 10*time.Second, "send after reconnect", func() bool {
		_, err := p.SendSync(context.Background(), primitive.NewMessage("cut", []byte("after")))
		return err == nil
	})
	eventually(t, 15*time.Second, "consumer back", func() bool { return got.len() >= 2 })
}

func TestControlKey(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	p := newProducer(t, b, producer.WithRetry(0))
	send(t, p, "ctl", "warmup")

	// One-shot: the first send is refused, the next goes through.
	b.ControlKey(rocketmqtest.CodeSendMessage, func(req *rocketmqtest.Command) (*rocketmqtest.Command, error, bool) {
		return &rocketmqtest.Command{Code: 2, Remark: "broker busy"}, nil, true
	})
	_, err := p.SendSync(context.Background(), primitive.NewMessage("ctl", []byte("refused")))
	if err == nil || !strings.Contains(err.Error(), "broker busy") {
		t.Fatalf("first send: %v, want the control's error", err)
	}
	send(t, p, "ctl", "accepted")

	// KeepControl: count every send, let them through.
	var seen atomic.Int32
	b.ControlKey(rocketmqtest.CodeSendMessage, func(req *rocketmqtest.Command) (*rocketmqtest.Command, error, bool) {
		seen.Add(1)
		return nil, nil, false
	})
	send(t, p, "ctl", "c1", "c2")
	if seen.Load() != 2 {
		t.Errorf("unhandled control saw %d requests, want 2 (it stays installed)", seen.Load())
	}
	var kept atomic.Int32
	b.ControlKey(rocketmqtest.CodeSendMessage, func(req *rocketmqtest.Command) (*rocketmqtest.Command, error, bool) {
		b.KeepControl()
		kept.Add(1)
		return &rocketmqtest.Command{Code: 2, Remark: "still busy"}, nil, true
	})
	for range 2 {
		if _, err := p.SendSync(context.Background(), primitive.NewMessage("ctl", []byte("x"))); err == nil {
			t.Fatal("send succeeded under a kept control")
		}
	}
	if kept.Load() != 2 {
		t.Errorf("kept control ran %d times, want 2", kept.Load())
	}
	if g := bodies(b.Messages("ctl")); fmt.Sprint(g) != "[accepted c1 c2 warmup]" {
		t.Errorf("stored %v", g)
	}
}

func TestControlKeyErrorClosesConnection(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	b.ControlKey(rocketmqtest.AnyCode, func(req *rocketmqtest.Command) (*rocketmqtest.Command, error, bool) {
		return nil, errors.New("cut"), true
	})
	c := dial(t, b)
	c.write(rocketmqtest.EncodeFrame(&rocketmqtest.Command{Code: rocketmqtest.CodeGetMinOffset, Opaque: 1,
		ExtFields: map[string]string{"topic": "x", "queueId": "0"}}))
	if _, err := c.read(); err == nil {
		t.Fatal("connection still open")
	}
}

func TestRewindOffsetsRedeliversToRunningConsumer(t *testing.T) {
	t.Parallel()
	b := rocketmqtest.NewBroker(t)
	p := newProducer(t, b)
	send(t, p, "replay", seq("m", 0, 6)...)
	got := consumeAll(t, b, "g", "replay", consumer.MessageSelector{})
	eventually(t, 10*time.Second, "6 consumed", func() bool { return got.len() == 6 })
	// No check of the committed offsets right after the rewind: a pull the
	// running consumer sent before it may still carry the old offset.
	b.RewindOffsets("g", "replay")
	// rocketmq-client-go pauses 10 s when told to reset its offsets.
	eventually(t, 25*time.Second, "redelivery", func() bool { return got.len() >= 12 })
	want := append(seq("m", 0, 6), seq("m", 0, 6)...)
	if g := bodies(got.snapshot()); fmt.Sprint(g) != fmt.Sprint(slices.Sorted(slices.Values(want))) {
		t.Errorf("consumed %v", g)
	}
}
