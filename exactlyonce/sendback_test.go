package exactlyonce

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/remoting"
)

// newSendBack reads the client's options with reflection: this notices a
// client whose fields moved (the send-back would silently fall back to the
// client's own, which loses rejected send-backs on v2.1.2).
func TestSendBackReadsClientOptions(t *testing.T) {
	build := func(opts ...consumer.Option) *sendBack {
		t.Helper()
		pc, err := consumer.NewPushConsumer(append(opts, consumer.WithGroupName("eo_sendback_opts"),
			consumer.WithNameServer([]string{"127.0.0.1:9876"}))...)
		if err != nil {
			t.Fatal(err)
		}
		return newSendBack(func() any { return pc })
	}
	if s := build(); s == nil || s.maxReconsumeTimes != 16 {
		t.Fatalf("default client: send-back %+v, want maxReconsumeTimes 16", s)
	}
	if s := build(consumer.WithMaxReconsumeTimes(3)); s == nil || s.maxReconsumeTimes != 3 {
		t.Fatalf("WithMaxReconsumeTimes(3): send-back %+v", s)
	}
	if s := build(consumer.WithConsumerModel(consumer.BroadCasting)); s != nil {
		t.Fatal("broadcasting client: want no send-back (no retry topic)")
	}
	if s := build(consumer.WithCredentials(primitive.Credentials{AccessKey: "ak", SecretKey: "sk"})); s != nil {
		t.Fatal("client with ACL credentials: want the client's own (signed) send-back")
	}
	if s := newSendBack(func() any { return struct{}{} }); s != nil {
		t.Fatal("not a client: want no send-back")
	}
}

// A send-back goes to the master of the message's queue's broker in the
// route, and to the message's store host only when the route has no
// address for it.
func TestSendBackAddress(t *testing.T) {
	s := &sendBack{brokerAddr: func(name string) string {
		return map[string]string{"broker-a": "10.0.0.1:10911"}[name]
	}}
	m := newMsg("t", "a", 1)
	m.StoreHost = "192.168.0.9:10911"
	ctxQueue := &primitive.MessageQueue{Topic: "t", BrokerName: "broker-a"}
	for _, c := range []struct {
		name       string
		msgQueue   *primitive.MessageQueue
		deliveryMQ *primitive.MessageQueue
		want       string
	}{
		{"message's queue", &primitive.MessageQueue{BrokerName: "broker-a"}, nil, "10.0.0.1:10911"},
		{"delivery's queue", nil, ctxQueue, "10.0.0.1:10911"},
		{"broker not in the route", &primitive.MessageQueue{BrokerName: "broker-b"}, ctxQueue, m.StoreHost},
		{"no queue", nil, nil, m.StoreHost},
	} {
		m.Queue = c.msgQueue
		if got := s.addr(m, c.deliveryMQ); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// fakeSendBack answers send-backs with codes in turn (the last one
// repeated) and records their header fields.
type fakeSendBack struct {
	mu    sync.Mutex
	codes []int
	sent  []map[string]string
}

func (f *fakeSendBack) sendBack(maxTimes int32) *sendBack {
	return &sendBack{maxReconsumeTimes: maxTimes, call: func(_ context.Context, _ string, code int, ext map[string]string) (*remoting.Response, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if code != remoting.ConsumerSendMsgBack {
			return nil, fmt.Errorf("request %d", code)
		}
		f.sent = append(f.sent, ext)
		c := f.codes[min(len(f.sent), len(f.codes))-1]
		return &remoting.Response{Code: c, Remark: "fake"}, nil
	}}
}

func (f *fakeSendBack) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

// A concurrent delivery whose send-back the broker refuses is run again,
// and acknowledged to the client only once a send-back is accepted; only
// the failed message of the batch is sent back, with the client's group
// and maximum.
func TestSendBackRefusedRunsAgain(t *testing.T) {
	st := newFakeStore(t)
	fake := &fakeSendBack{codes: []int{1, remoting.Success}} // SYSTEM_ERROR, then accepted
	runs := map[string]int{}
	f := newListener(st.DataSource, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
		runs[m.MsgId]++
		if m.MsgId == "bad" {
			return errors.New("business failure")
		}
		return commitWith(st)(ctx, m)
	}, nil, []Option{quiet, withGate(newGate()), withSendBack(fake.sendBack(3))}).consume
	ctx, _ := clientCtx("ns%"+testGroup, false)
	bad := newMsg("t", "bad", 2)
	bad.CommitLogOffset = 4242
	stamped := time.Now().Add(-time.Hour) // as if refused for an hour
	bad.WithProperty(primitive.PropertyConsumeStartTime, strconv.FormatInt(stamped.UnixMilli(), 10))
	res, err := f(ctx, newMsg("t", "good", 1), bad)
	if res != consumer.ConsumeSuccess || err != nil {
		t.Fatalf("result %v, %v: want success once the send-back is accepted", res, err)
	}
	if runs["good"] != 1 || runs["bad"] != 2 || fake.count() != 2 {
		t.Fatalf("runs %v, %d send-backs: want bad run again after the refused send-back", runs, fake.count())
	}
	// Run again with a fresh consume start, so that the client's
	// cleanExpiredMsg does not take it for a message stuck since then.
	if ms, _ := strconv.ParseInt(bad.GetProperty(primitive.PropertyConsumeStartTime), 10, 64); time.Since(time.UnixMilli(ms)) > time.Minute {
		t.Fatalf("consume start %v after the second run, want restamped", time.UnixMilli(ms))
	}
	want := map[string]string{"group": "ns%" + testGroup, "originTopic": "t", "offset": "4242", "delayLevel": "0", "originMsgId": "bad", "maxReconsumeTimes": "3"}
	if got := fake.sent[1]; !maps.Equal(got, want) {
		t.Fatalf("send-back %v, want %v", got, want)
	}
}

// A message whose send-back keeps being refused is held, not acknowledged,
// when the consumer shuts down: redelivered from the committed offset.
func TestSendBackRefusedHeldOnShutdown(t *testing.T) {
	st := newFakeStore(t)
	fake := &fakeSendBack{codes: []int{1}}
	g := newGate()
	f := newListener(st.DataSource, testGroup, func(context.Context, *primitive.MessageExt) error {
		return errors.New("business failure")
	}, nil, []Option{quiet, withGate(g), withSendBack(fake.sendBack(16))}).consume
	type result struct {
		res consumer.ConsumeResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, _ := clientCtx(testGroup, false)
		res, err := f(ctx, newMsg("t", "a", 1))
		done <- result{res, err}
	}()
	eventually(t, 10*time.Second, "a refused send-back", func() bool { return fake.count() >= 1 })
	g.close()
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("returned before release: %v, %v", r.res, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	g.release()
	if r := <-done; r.res != consumer.ConsumeRetryLater || !errors.Is(r.err, ErrShutdown) {
		t.Fatalf("result %v, %v: want a held retry", r.res, r.err)
	}
}

// clientSuspends does what the orderly client's checkReconsumeTimes does
// with a suspended batch, failing the test where the client would
// dead-letter a message with its unchecked send-back (upstream #1106).
func clientSuspends(t *testing.T, limit int32, msgs ...*primitive.MessageExt) {
	t.Helper()
	for _, m := range msgs {
		if m.ReconsumeTimes > limit {
			t.Fatalf("%s: ReconsumeTimes %d > %d: the client would dead-letter it unchecked", m.MsgId, m.ReconsumeTimes, limit)
		}
		m.ReconsumeTimes++
	}
}

// An orderly message past the client's maximum is dead-lettered by the
// listener with a checked send-back: while the broker refuses it, the queue
// is suspended and the client is never left to dead-letter it (nor the
// messages after it, which it counts too); once accepted, the rest of the
// batch runs.
func TestOrderlyDeadLetterChecked(t *testing.T) {
	st := newFakeStore(t)
	fake := &fakeSendBack{codes: []int{1, remoting.Success}} // SYSTEM_ERROR, then stored
	sb := fake.sendBack(16)
	sb.orderlyMax = 1
	runs := map[string]int{}
	f := newListener(st.DataSource, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
		runs[m.MsgId]++
		if m.MsgId == "bad" {
			return errBusiness
		}
		return commitWith(st)(ctx, m)
	}, nil, []Option{quiet, withGate(newGate()), withSendBack(sb)}).consume
	bad, next := newMsg("t", "bad", 1), newMsg("t", "next", 2)
	batch := []*primitive.MessageExt{bad, next}
	for range 2 { // failures up to the maximum: suspended, counted against bad only
		if ok, err := deliver(t, f, true, batch...); ok || !errors.Is(err, errBusiness) {
			t.Fatalf("%v, %v: want a suspension for the failure", ok, err)
		}
		clientSuspends(t, sb.orderlyMax, batch...)
	}
	if bad.ReconsumeTimes != 2 || next.ReconsumeTimes != 0 || fake.count() != 0 {
		t.Fatalf("reconsume times bad %d, next %d, %d send-backs: want 2, 0, none yet", bad.ReconsumeTimes, next.ReconsumeTimes, fake.count())
	}
	// Past the maximum, the broker refuses: suspended again, held at the maximum.
	if ok, err := deliver(t, f, true, batch...); ok || !errors.Is(err, errBusiness) {
		t.Fatalf("%v, %v: want a suspension when the DLQ refuses", ok, err)
	}
	clientSuspends(t, sb.orderlyMax, batch...)
	// Accepted: dead-lettered, and the next message runs.
	if ok, err := deliver(t, f, true, batch...); !ok || err != nil {
		t.Fatalf("%v, %v: want success once dead-lettered", ok, err)
	}
	if runs["bad"] != 4 || runs["next"] != 1 || fake.count() != 2 || !st.isCommitted("next#"+testGroup) || st.isCommitted("bad#"+testGroup) {
		t.Fatalf("runs %v, %d send-backs: want bad run 4 times, dead-lettered on the second try, next applied once", runs, fake.count())
	}
	if got := fake.sent[1]; got["delayLevel"] != "-1" || got["originMsgId"] != "bad" || got["group"] != testGroup {
		t.Fatalf("dead-letter send-back %v", got)
	}
}

// A message dead-lettered by the listener that comes back with its batch
// (a later message of the batch failed) is not run again.
func TestOrderlyDeadLetteredNotRunAgain(t *testing.T) {
	st := newFakeStore(t)
	fake := &fakeSendBack{codes: []int{remoting.Success}}
	sb := fake.sendBack(16)
	sb.orderlyMax = 0
	runs := map[string]int{}
	f := newListener(st.DataSource, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
		runs[m.MsgId]++
		if m.MsgId == "bad" || (m.MsgId == "late" && runs["late"] == 1) {
			return errBusiness
		}
		return commitWith(st)(ctx, m)
	}, nil, []Option{quiet, withGate(newGate()), withSendBack(sb)}).consume
	bad, good, late := newMsg("t", "bad", 1), newMsg("t", "good", 2), newMsg("t", "late", 3)
	bad.ReconsumeTimes = 3 // well past the maximum of 0 (a lower maximum since)
	batch := []*primitive.MessageExt{bad, good, late}
	if ok, err := deliver(t, f, true, batch...); ok || !errors.Is(err, errBusiness) {
		t.Fatalf("%v, %v: want a suspension for late's failure", ok, err)
	}
	clientSuspends(t, sb.orderlyMax, batch...)
	if ok, err := deliver(t, f, true, batch...); !ok || err != nil {
		t.Fatalf("%v, %v: want success", ok, err)
	}
	if runs["bad"] != 1 || runs["good"] != 1 || runs["late"] != 2 || fake.count() != 1 {
		t.Fatalf("runs %v, %d send-backs: want bad dead-lettered once and not run again", runs, fake.count())
	}
}
