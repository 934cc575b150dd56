package exactlyonce

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

func TestNewConsumerArguments(t *testing.T) {
	if _, err := NewConsumer(nil, "g"); err == nil {
		t.Error("nil DataSource accepted")
	}
	if _, err := NewConsumer(&mqdatasource.DataSource{}, ""); !errors.Is(err, ErrGroup) {
		t.Errorf("empty group: %v", err)
	}
}

func TestNewConsumerPurgeDurations(t *testing.T) {
	client := WithClientOptions(consumer.WithNameServer(primitive.NamesrvAddr{"127.0.0.1:1"}), consumer.WithInstance("eo-purge-args"))
	for _, c := range []struct {
		keep, every time.Duration
		ok          bool
	}{
		{0, 0, true}, // no purge
		{time.Hour, time.Minute, true},
		{time.Hour, 0, false},
		{0, time.Minute, false},
		{-time.Hour, time.Minute, false},
		{time.Hour, -time.Minute, false},
		{-time.Hour, -time.Minute, false},
	} {
		_, err := NewConsumer(&mqdatasource.DataSource{}, "eo_purge_args", quiet, client, WithPurge(c.keep, c.every))
		if (err == nil) != c.ok {
			t.Errorf("WithPurge(%v, %v): err = %v, want ok = %v", c.keep, c.every, err, c.ok)
		}
	}
}

func TestConsumerShutdownBeforeStart(t *testing.T) {
	c, err := NewConsumer(&mqdatasource.DataSource{}, "eo_unstarted", quiet,
		WithClientOptions(consumer.WithNameServer(primitive.NamesrvAddr{"127.0.0.1:1"}), consumer.WithInstance("eo-unstarted")))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown before Start: %v", err)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := c.Start(); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Start after Shutdown: %v", err)
	}
	if err := c.Subscribe("t", consumer.MessageSelector{}, nil); err == nil {
		t.Fatal("nil handler accepted")
	}
}

// Options of the whole Consumer given to one subscription would be ignored:
// they are refused instead.
func TestSubscribeRefusesConsumerOptions(t *testing.T) {
	c, err := NewConsumer(&mqdatasource.DataSource{}, "eo_sub_opts", quiet,
		WithClientOptions(consumer.WithNameServer(primitive.NamesrvAddr{"127.0.0.1:1"}), consumer.WithInstance("eo-sub-opts")))
	if err != nil {
		t.Fatal(err)
	}
	h := func(context.Context, *primitive.MessageExt) error { return nil }
	txh := func(context.Context, *sql.Tx, *primitive.MessageExt) error { return nil }
	for name, o := range map[string]Option{
		"WithClientOptions": WithClientOptions(consumer.WithConsumerOrder(true)),
		"WithPurge":         WithPurge(time.Hour, time.Minute),
	} {
		if err := c.Subscribe("t", consumer.MessageSelector{}, h, o); err == nil || !strings.Contains(err.Error(), "NewConsumer") {
			t.Errorf("Subscribe with %s: %v, want an error pointing to NewConsumer", name, err)
		}
		if err := c.SubscribeTx("t", consumer.MessageSelector{}, txh, o); err == nil {
			t.Errorf("SubscribeTx with %s accepted", name)
		}
	}
	if err := c.Subscribe("t", consumer.MessageSelector{}, h, WithCacheSize(10)); err != nil {
		t.Errorf("Subscribe with a listener option: %v", err)
	}
}

// recorder is a PushConsumer that records what is done to it, in order,
// with the other events of a test.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) record(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) Start() error                 { r.record("start"); return nil }
func (r *recorder) Shutdown() error              { r.record("client shutdown"); return nil }
func (r *recorder) PersistConsumerOffset() error { r.record("persist offsets"); return nil }
func (r *recorder) Subscribe(string, consumer.MessageSelector, func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error)) error {
	return nil
}
func (r *recorder) Unsubscribe(string) error           { return nil }
func (r *recorder) Suspend()                           {}
func (r *recorder) Resume()                            {}
func (r *recorder) GetOffsetDiffMap() map[string]int64 { return nil }

// Shutdown's order: the running handler finishes first; then the purge stops, the offsets are persisted and the
// client is shut down; only then does a call held by the closed gate
// return.
func TestConsumerShutdownOrder(t *testing.T) {
	r := &recorder{}
	purgeDone := make(chan struct{})
	c := &Consumer{cfg: newConfig([]Option{quiet}), gate: newGate(), client: r, started: true,
		purgeStop: func() { r.record("purge stopped"); close(purgeDone) }, purgeDone: purgeDone}
	st := newFakeStore(t)
	stats := &Stats{}
	release := make(chan struct{})
	listener := newListener(st.DataSource, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
		if m.MsgId == "running" {
			<-release
		}
		tx, err := st.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		err = tx.Commit()
		r.record(m.MsgId + " committed")
		return err
	}, nil, []Option{quiet, WithMetrics(stats), withGate(c.gate)}).consume
	go func() {
		ctx, _ := clientCtx(testGroup, false)
		_, _ = listener(ctx, newMsg("t", "running", 1))
	}()
	eventually(t, 10*time.Second, "the handler running", func() bool { return c.gate.runningCalls() == 1 })
	shut := make(chan error, 1)
	go func() { shut <- c.Shutdown(context.Background()) }()
	eventually(t, 10*time.Second, "the gate closed", c.gate.draining)
	go func() {
		ctx, _ := clientCtx(testGroup, false)
		res, _ := listener(ctx, newMsg("t", "late", 2))
		r.record(fmt.Sprintf("late returned %v", res))
	}()
	eventually(t, 10*time.Second, "the late call refused", func() bool { return stats.Count(OutcomeNotRun) == 1 })
	if got := r.snapshot(); len(got) != 0 {
		t.Fatalf("%q before the running handler finished", got)
	}
	close(release)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the late call returned", func() bool { return len(r.snapshot()) == 5 })
	want := []string{
		"running committed",
		"purge stopped", "persist offsets", "client shutdown",
		fmt.Sprintf("late returned %v", consumer.ConsumeRetryLater),
	}
	if got := r.snapshot(); !slices.Equal(got, want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
	if !st.isCommitted(id("running")) || st.isCommitted(id("late")) {
		t.Fatal("want the running message committed and the late one not run")
	}
}
