package exactlyonce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// batchApplier is a BatchHandler recording one application row per message
// through the delivery's context; fail, if set, fails a message.
func (f *fixture) batchApplier(fail func(m *primitive.MessageExt) error) BatchHandler {
	return func(ctx context.Context, msgs []*primitive.MessageExt) error {
		for _, m := range msgs {
			if _, err := f.ds.DB().ExecContext(ctx, f.Rebind("INSERT INTO "+f.applied+" (grp, k, seq) VALUES (?, ?, ?)"), testGroup, m.MsgId, int(m.QueueOffset)); err != nil {
				return err
			}
			if fail != nil {
				if err := fail(m); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

func batchMsgs(from, n int) []*primitive.MessageExt {
	out := make([]*primitive.MessageExt, n)
	for i := range n {
		out[i] = newMsg("t", fmt.Sprintf("K%03d", from+i), int64(from+i))
	}
	return out
}

// Duplicates inside a batch, across batches, and from two consumers at once:
// every message applied once.
func TestIntegrationBatchDuplicates(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e)
		const n = 48
		stats := &Stats{}
		var wg sync.WaitGroup
		for c := range 2 {
			// Two consumers (no shared cache) with overlapping batches of 8.
			l := BatchListener(f.ds, testGroup, f.batchApplier(nil), quiet, WithMetrics(stats))
			wg.Go(func() {
				for from := c * 4; from < n; from += 8 {
					batch := batchMsgs(from%n, min(8, n-from))
					batch = append(batch, batch[0]) // a duplicate inside the batch
					deliverUntilOK(t, l, testGroup, false, func() []*primitive.MessageExt { return batch })
				}
				// And everything once more.
				for from := 0; from < n; from += 8 {
					deliverUntilOK(t, l, testGroup, false, func() []*primitive.MessageExt { return batchMsgs(from, 8) })
				}
			})
		}
		wg.Wait()
		if rows, distinct := f.appliedCount(t); rows != n || distinct != n || f.recordCount(t) != n {
			t.Fatalf("%d rows (%d distinct), %d records; want %d each", rows, distinct, f.recordCount(t), n)
		}
		if s := stats.Snapshot(); s["processed"] != n {
			t.Fatal(s)
		}
	})
}

// A failing message in the middle of a batch: its neighbours apply once,
// it is retried alone and applies once when it succeeds.
func TestIntegrationBatchFailureIsolated(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		modes(t, func(t *testing.T, orderly bool) {
			f := newFixture(t, e)
			var failing atomic.Bool
			failing.Store(true)
			l := BatchListener(f.ds, testGroup, f.batchApplier(func(m *primitive.MessageExt) error {
				if m.MsgId == "K002" && failing.Load() {
					return errBusiness
				}
				return nil
			}), quiet, WithLocalRetries(0))
			if ok, err := deliver(t, l, orderly, batchMsgs(0, 5)...); ok || !errors.Is(err, errBusiness) {
				t.Fatalf("ok %v err %v", ok, err)
			}
			want := int64(4) // all but K002
			if orderly {
				want = 2 // K000, K001: the queue waits at K002
			}
			if rows, _ := f.appliedCount(t); rows != want || f.recordCount(t) != want {
				t.Fatalf("%d rows, %d records after the failure; want %d", rows, f.recordCount(t), want)
			}
			failing.Store(false)
			if ok, err := deliver(t, l, orderly, batchMsgs(0, 5)...); !ok {
				t.Fatal(err)
			}
			if rows, distinct := f.appliedCount(t); rows != 5 || distinct != 5 || f.recordCount(t) != 5 {
				t.Fatalf("%d rows (%d distinct), %d records; want 5 each", rows, distinct, f.recordCount(t))
			}
		})
	})
}

// The batch's connection killed before the listener commits: nothing is
// committed, the retry applies every message once.
func TestIntegrationBatchConnectionKilled(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e)
		idQuery, killQuery := "SELECT CONNECTION_ID()", "KILL CONNECTION ?"
		if e.Name == "postgres" {
			idQuery, killQuery = "SELECT pg_backend_pid()", "SELECT pg_terminate_backend($1)"
		}
		var killed atomic.Bool
		apply := f.batchApplier(nil)
		l := BatchListener(f.ds, testGroup, func(ctx context.Context, msgs []*primitive.MessageExt) error {
			if err := apply(ctx, msgs); err != nil {
				return err
			}
			if killed.Swap(true) {
				return nil
			}
			var id int64
			if err := f.ds.DB().QueryRowContext(ctx, idQuery).Scan(&id); err != nil {
				return err
			}
			_, err := f.ds.DB().ExecContext(mqdatasource.WithoutDelivery(ctx), killQuery, id)
			return err
		}, quiet)
		if ok, err := deliver(t, l, false, batchMsgs(0, 6)...); !ok {
			t.Fatalf("not applied after the retry in place: %v", err)
		}
		if rows, distinct := f.appliedCount(t); !killed.Load() || rows != 6 || distinct != 6 || f.recordCount(t) != 6 {
			t.Fatalf("killed %v; %d rows (%d distinct), %d records; want 6 each", killed.Load(), rows, distinct, f.recordCount(t))
		}
	})
}
