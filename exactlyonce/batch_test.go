package exactlyonce

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/memdb"
)

// batchRecorder is a BatchHandler that adds one to counter 1 per message,
// through the delivery's context, and records the batches it was given.
type batchRecorder struct {
	st      *fakeStore
	fail    func(m *primitive.MessageExt) error // nil: never
	mu      sync.Mutex
	batches [][]string
}

func (r *batchRecorder) handle(ctx context.Context, msgs []*primitive.MessageExt) error {
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.MsgId)
	}
	r.mu.Lock()
	r.batches = append(r.batches, ids)
	r.mu.Unlock()
	for _, m := range msgs {
		if _, err := r.st.DB().ExecContext(ctx, "UPDATE counter SET n = n + $1 WHERE id = $2", 1, 1); err != nil {
			return err
		}
		if r.fail != nil {
			if err := r.fail(m); err != nil {
				return err
			}
		}
	}
	return nil
}

func msgs(keys ...string) []*primitive.MessageExt {
	out := make([]*primitive.MessageExt, len(keys))
	for i, k := range keys {
		out[i] = newMsg("t", k, int64(i))
	}
	return out
}

func TestBatchListenerOneTransaction(t *testing.T) {
	modes(t, func(t *testing.T, orderly bool) {
		st := newFakeStore(t)
		st.markCommitted(id("b"))
		r := &batchRecorder{st: st}
		stats := &Stats{}
		f := BatchListener(st.DataSource, testGroup, r.handle, quiet, WithMetrics(stats))
		if ok, err := deliver(t, f, orderly, msgs("a", "b", "c", "d")...); !ok {
			t.Fatal(err)
		}
		// b skipped by the one pre-check query; a, c, d in one transaction.
		if !slices.EqualFunc(r.batches, [][]string{{"a", "c", "d"}}, slices.Equal) {
			t.Fatalf("batches %v", r.batches)
		}
		if st.mem.Count(memdb.Lookup) != 1 || st.mem.Count(memdb.Commit) != 1 || st.mem.Counter(1) != 3 {
			t.Fatalf("%d lookups, %d commits, counter %d; want 1, 1, 3", st.mem.Count(memdb.Lookup), st.mem.Count(memdb.Commit), st.mem.Counter(1))
		}
		if s := stats.Snapshot(); s["processed"] != 3 || s["skipped_table"] != 1 {
			t.Fatal(s)
		}
		// Redelivered: all skipped from the cache, no query.
		if ok, err := deliver(t, f, orderly, msgs("a", "b", "c", "d")...); !ok {
			t.Fatal(err)
		}
		if s := stats.Snapshot(); s["skipped_cache"] != 4 || st.mem.Count(memdb.Lookup) != 1 {
			t.Fatal(s)
		}
	})
}

// A message failing in the middle of a batch: the batch rolls back, its
// messages run alone; the neighbours apply once, the failing one is
// retried (orderly: and the ones after it wait).
func TestBatchListenerIsolatesFailure(t *testing.T) {
	modes(t, func(t *testing.T, orderly bool) {
		st := newFakeStore(t)
		errBad := errors.New("bad message")
		bad := true
		r := &batchRecorder{st: st, fail: func(m *primitive.MessageExt) error {
			if m.MsgId == "b" && bad {
				return errBad
			}
			return nil
		}}
		stats := &Stats{}
		f := BatchListener(st.DataSource, testGroup, r.handle, quiet, WithMetrics(stats), WithLocalRetries(0))
		ok, err := deliver(t, f, orderly, msgs("a", "b", "c")...)
		if ok || !errors.Is(err, errBad) {
			t.Fatalf("ok %v err %v", ok, err)
		}
		want := [][]string{{"a", "b", "c"}, {"a"}, {"b"}, {"c"}}
		applied := int64(2)
		if orderly {
			want, applied = want[:3], 1
		}
		if !slices.EqualFunc(r.batches, want, slices.Equal) || st.mem.Counter(1) != applied {
			t.Fatalf("batches %v, counter %d; want %v, %d", r.batches, st.mem.Counter(1), want, applied)
		}
		bad = false
		if ok, err := deliver(t, f, orderly, msgs("a", "b", "c")...); !ok {
			t.Fatal(err)
		}
		if st.mem.Counter(1) != 3 || !st.isCommitted(id("b")) {
			t.Fatalf("counter %d after the redelivery, want 3", st.mem.Counter(1))
		}
		s := stats.Snapshot()
		if s["processed"] != 3 || s["failed"] != 1 || s["messages"] != 6 {
			t.Fatal(s)
		}
	})
}

func TestBatchListenerPanic(t *testing.T) {
	st := newFakeStore(t)
	r := &batchRecorder{st: st, fail: func(m *primitive.MessageExt) error {
		if m.MsgId == "b" {
			panic("boom")
		}
		return nil
	}}
	stats := &Stats{}
	f := BatchListener(st.DataSource, testGroup, r.handle, quiet, WithMetrics(stats))
	ok, err := deliver(t, f, false, msgs("a", "b")...)
	var pe *PanicError
	if ok || !errors.As(err, &pe) {
		t.Fatalf("ok %v err %v", ok, err)
	}
	if s := stats.Snapshot(); s["processed"] != 1 || s["panic"] != 1 || st.mem.Counter(1) != 1 || st.mem.Open() != 0 {
		t.Fatalf("stats %v, counter %d, %d open", s, st.mem.Counter(1), st.mem.Open())
	}
}

func TestBatchListenerInvalid(t *testing.T) {
	modes(t, func(t *testing.T, orderly bool) {
		st := newFakeStore(t)
		r := &batchRecorder{st: st}
		stats := &Stats{}
		f := BatchListener(st.DataSource, testGroup, r.handle, quiet, WithMetrics(stats), WithKeyFunc(func(m *primitive.MessageExt) (string, error) {
			if m.MsgId == "b" {
				return "", nil
			}
			return DefaultKey(m)
		}))
		ok, err := deliver(t, f, orderly, msgs("a", "b", "c")...)
		if ok || !errors.Is(err, ErrNoKey) {
			t.Fatalf("ok %v err %v", ok, err)
		}
		want := [][]string{{"a", "c"}}
		if orderly {
			want = [][]string{{"a"}}
		}
		if !slices.EqualFunc(r.batches, want, slices.Equal) {
			t.Fatalf("batches %v, want %v", r.batches, want)
		}
		if s := stats.Snapshot(); s["invalid"] != 1 || s["messages"] != 3 {
			t.Fatal(s)
		}
	})
}
