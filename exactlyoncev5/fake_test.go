package exactlyoncev5

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
	"unsafe"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/memdb"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// view builds a MessageView as the client decodes one. The client has no
// exported constructor (its fields are set from the protobuf message), so
// the test sets the unexported fields by name; a client upgrade that renames
// them fails here, loudly.
func view(t testing.TB, id, topic string, props map[string]string, keys []string, group string, attempt int32) *rmq.MessageView {
	t.Helper()
	mv := &rmq.MessageView{}
	v := reflect.ValueOf(mv).Elem()
	set := func(name string, val any) {
		f := v.FieldByName(name)
		if !f.IsValid() {
			t.Fatalf("MessageView has no field %s", name)
		}
		reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(reflect.ValueOf(val))
	}
	set("messageId", id)
	set("topic", topic)
	set("properties", props)
	set("keys", keys)
	set("deliveryAttempt", attempt)
	if group != "" {
		set("messageGroup", &group)
	}
	return mv
}

// newMemDS returns a real DataSource over the in-memory driver of
// internal/memdb, as package exactlyonce's unit tests use.
func newMemDS(t *testing.T) (*mqdatasource.DataSource, *memdb.DB) {
	t.Helper()
	mem := memdb.New()
	ds, err := mqdatasource.OpenConnector(mem, mqdatasource.WithDialect(mqdatasource.PostgreSQL()), mqdatasource.WithSchemaCheck(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	return ds, mem
}

// fakeSimple is a SimpleClient over a queue of messages: Receive hands out
// what is queued (blocking until something is, or ctx ends), and the test
// reads what was acknowledged and given back.
type fakeSimple struct {
	mu       sync.Mutex
	queue    []*rmq.MessageView
	more     chan struct{}
	acked    []string
	changes  []change
	ackErr   error
	stopped  bool
	receives int
}

type change struct {
	id string
	d  time.Duration
}

func newFakeSimple(mvs ...*rmq.MessageView) *fakeSimple {
	return &fakeSimple{queue: mvs, more: make(chan struct{}, 1)}
}

func (f *fakeSimple) push(mvs ...*rmq.MessageView) {
	f.mu.Lock()
	f.queue = append(f.queue, mvs...)
	f.mu.Unlock()
	select {
	case f.more <- struct{}{}:
	default:
	}
}

func (f *fakeSimple) Receive(ctx context.Context, max int32, _ time.Duration) ([]*rmq.MessageView, error) {
	for {
		f.mu.Lock()
		f.receives++
		if len(f.queue) > 0 {
			n := min(int(max), len(f.queue))
			out := f.queue[:n:n]
			f.queue = f.queue[n:]
			f.mu.Unlock()
			return out, nil
		}
		f.mu.Unlock()
		select {
		case <-f.more:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (f *fakeSimple) Ack(_ context.Context, mv *rmq.MessageView) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ackErr != nil {
		return f.ackErr
	}
	f.acked = append(f.acked, mv.GetMessageId())
	return nil
}

func (f *fakeSimple) ChangeInvisibleDuration(mv *rmq.MessageView, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, change{mv.GetMessageId(), d})
	return nil
}

func (f *fakeSimple) GracefulStop() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return errors.New("already stopped")
	}
	f.stopped = true
	return nil
}

func (f *fakeSimple) snapshot() (acked []string, changes []change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.acked...), append([]change(nil), f.changes...)
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
