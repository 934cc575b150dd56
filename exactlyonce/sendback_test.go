package exactlyonce

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
		return newSendBack(pc)
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
	if s := newSendBack(struct{}{}); s != nil {
		t.Fatal("not a client: want no send-back")
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
	res, err := f(ctx, newMsg("t", "good", 1), bad)
	if res != consumer.ConsumeSuccess || err != nil {
		t.Fatalf("result %v, %v: want success once the send-back is accepted", res, err)
	}
	if runs["good"] != 1 || runs["bad"] != 2 || fake.count() != 2 {
		t.Fatalf("runs %v, %d send-backs: want bad run again after the refused send-back", runs, fake.count())
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
