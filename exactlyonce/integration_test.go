package exactlyonce

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// Integration tests: the listener with real MessageExt values on MariaDB and
// PostgreSQL (scripts/testdb.sh go test ./exactlyonce/).

// styles builds a listener of each handler style applying msg through f.
func styles(f *fixture, group string, fail func(m *primitive.MessageExt) error, opts ...Option) map[string]ListenerFunc {
	if fail == nil {
		fail = func(*primitive.MessageExt) error { return nil }
	}
	opts = append([]Option{quiet}, opts...)
	return map[string]ListenerFunc{
		"Handler": Listener(f.ds, group, func(ctx context.Context, m *primitive.MessageExt) error {
			tx, err := f.ds.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if err := f.apply(ctx, tx, group, m.MsgId, int(m.QueueOffset)); err != nil {
				return err
			}
			if err := fail(m); err != nil {
				return err
			}
			return tx.Commit()
		}, opts...),
		"TxHandler": TxListener(f.ds, group, func(ctx context.Context, tx *sql.Tx, m *primitive.MessageExt) error {
			if err := f.apply(ctx, tx, group, m.MsgId, int(m.QueueOffset)); err != nil {
				return err
			}
			return fail(m)
		}, opts...),
	}
}

func eachStyle(t *testing.T, f func(t *testing.T, style string)) {
	for _, s := range []string{"Handler", "TxHandler"} {
		t.Run(s, func(t *testing.T) { f(t, s) })
	}
}

// deliverUntilOK delivers msg (a fresh copy each time, as a redelivery is)
// until the listener returns success.
func deliverUntilOK(t *testing.T, f ListenerFunc, group string, orderly bool, mk func() []*primitive.MessageExt) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		ctx, _ := clientCtx(group, orderly)
		res, err := f(ctx, mk()...)
		if res == consumer.ConsumeSuccess {
			if err != nil {
				t.Errorf("success with error %v", err)
			}
			return
		}
		if attempt == 30 {
			t.Errorf("no success after 30 deliveries: %v", err)
			return
		}
	}
}

func TestIntegrationConcurrentDuplicates(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		eachStyle(t, func(t *testing.T, style string) {
			f := newFixture(t, e)
			const n, consumers = 25, 4
			stats := &Stats{}
			var wg sync.WaitGroup
			for c := 0; c < consumers; c++ {
				// One listener per simulated consumer process: no shared cache.
				l := styles(f, testGroup, nil, WithMetrics(stats))[style]
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range n {
						deliverUntilOK(t, l, testGroup, false, func() []*primitive.MessageExt {
							return []*primitive.MessageExt{newMsg("t", fmt.Sprintf("M%03d", i), int64(i))}
						})
					}
				}()
			}
			wg.Wait()
			rows, distinct := f.appliedCount(t)
			if rows != n || distinct != n || f.recordCount(t) != n {
				t.Fatalf("applied rows %d distinct %d records %d, want %d each", rows, distinct, f.recordCount(t), n)
			}
			s := stats.Snapshot()
			if s["processed"] != n {
				t.Fatalf("processed %d, want %d: %v", s["processed"], n, s)
			}
			if skipped := s["skipped_table"] + s["duplicate"] + s["skipped_cache"]; skipped != n*(consumers-1) {
				t.Fatalf("duplicates %d, want %d: %v", skipped, n*(consumers-1), s)
			}
		})
	})
}

func TestIntegrationBatchRedelivery(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		eachStyle(t, func(t *testing.T, style string) {
			modes(t, func(t *testing.T, orderly bool) {
				f := newFixture(t, e)
				failing := true
				fail := func(m *primitive.MessageExt) error {
					if m.MsgId == "B3" && failing {
						return errBusiness
					}
					return nil
				}
				batch := func() []*primitive.MessageExt {
					var out []*primitive.MessageExt
					for i := 1; i <= 5; i++ {
						out = append(out, newMsg("t", fmt.Sprintf("B%d", i), int64(i)))
					}
					return out
				}
				stats1 := &Stats{}
				ok, err := deliver(t, styles(f, testGroup, fail, WithMetrics(stats1))[style], orderly, batch()...)
				if ok || !errors.Is(err, errBusiness) {
					t.Fatalf("first delivery ok=%v err=%v", ok, err)
				}
				wantFirst := int64(4) // concurrent: the others commit
				if orderly {
					wantFirst = 2 // orderly: stops at the failure
				}
				if rows, _ := f.appliedCount(t); rows != wantFirst {
					t.Fatalf("after the failed batch %d rows, want %d", rows, wantFirst)
				}
				// Redelivery to another process (fresh cache): the committed
				// ones are skipped by the table lookup.
				failing = false
				stats2 := &Stats{}
				if ok, err := deliver(t, styles(f, testGroup, fail, WithMetrics(stats2))[style], orderly, batch()...); !ok {
					t.Fatal(err)
				}
				rows, distinct := f.appliedCount(t)
				if rows != 5 || distinct != 5 {
					t.Fatalf("rows %d distinct %d", rows, distinct)
				}
				if stats2.Count(OutcomeSkippedTable) != wantFirst || stats2.Count(OutcomeProcessed) != 5-wantFirst {
					t.Fatalf("redelivery stats %v", stats2.Snapshot())
				}
			})
		})
	})
}

func TestIntegrationTwoGroups(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e)
		const n = 10
		for _, g := range []string{"group_a", "group_b"} {
			l := styles(f, g, nil)["TxHandler"]
			for range 2 { // each message twice per group
				for i := range n {
					deliverUntilOK(t, l, g, false, func() []*primitive.MessageExt {
						return []*primitive.MessageExt{newMsg("t", fmt.Sprintf("G%d", i), int64(i))}
					})
				}
			}
		}
		rows, distinct := f.appliedCount(t)
		if rows != 2*n || distinct != 2*n || f.recordCount(t) != 2*n {
			t.Fatalf("rows %d distinct %d records %d, want %d", rows, distinct, f.recordCount(t), 2*n)
		}
	})
}

func TestIntegrationErrorsAndPanics(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		eachStyle(t, func(t *testing.T, style string) {
			modes(t, func(t *testing.T, orderly bool) {
				f := newFixture(t, e)
				var mode string
				fail := func(m *primitive.MessageExt) error {
					switch mode {
					case "error":
						return errBusiness
					case "panic":
						panic("handler bug")
					}
					return nil
				}
				stats := &Stats{}
				l := styles(f, testGroup, fail, WithMetrics(stats))[style]
				msg := func() *primitive.MessageExt { return newMsg("t", "E1", 1) }
				for _, mode = range []string{"error", "panic"} {
					ok, err := deliver(t, l, orderly, msg())
					var pe *PanicError
					if ok || (mode == "error" && !errors.Is(err, errBusiness)) || (mode == "panic" && !errors.As(err, &pe)) {
						t.Fatalf("%s: ok=%v err=%v", mode, ok, err)
					}
					// Rolled back: nothing applied, nothing recorded. (A
					// Handler's transaction left open by the panic is rolled
					// back when its context is cancelled: poll.)
					eventually(t, 10*time.Second, "rolled back", func() bool { rows, _ := f.appliedCount(t); return rows == 0 && f.recordCount(t) == 0 })
				}
				mode = ""
				if ok, err := deliver(t, l, orderly, msg()); !ok {
					t.Fatal(err)
				}
				if rows, _ := f.appliedCount(t); rows != 1 {
					t.Fatalf("rows %d", rows)
				}
				s := stats.Snapshot()
				if s["failed"] != 1 || s["panic"] != 1 || s["processed"] != 1 {
					t.Fatal(s)
				}
			})
		})
	})
}

// A Handler that rolls a transaction of its delivery back (or swallows the
// error that made it roll back) and returns nil has not applied its work:
// the delivery is rolled back and retried, not acknowledged.
func TestIntegrationSwallowedRollbackRetried(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		modes(t, func(t *testing.T, orderly bool) {
			f := newFixture(t, e)
			swallow := true
			l := Listener(f.ds, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
				tx, err := f.ds.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				if err := f.apply(ctx, tx, testGroup, m.MsgId, int(m.QueueOffset)); err != nil {
					return err
				}
				if swallow {
					return nil // "nothing to do after all": the work is rolled back
				}
				return tx.Commit()
			}, quiet)
			msg := func() *primitive.MessageExt { return newMsg("t", "S1", 1) }
			ok, err := deliver(t, l, orderly, msg())
			if ok || !errors.Is(err, mqdatasource.ErrRollbackOnly) {
				t.Fatalf("swallowed rollback: acknowledged=%v err=%v, want a retry with ErrRollbackOnly", ok, err)
			}
			if rows, _ := f.appliedCount(t); rows != 0 || f.recordCount(t) != 0 {
				t.Fatalf("after the rollback: %d rows applied, %d records; want none", rows, f.recordCount(t))
			}
			swallow = false
			if ok, err := deliver(t, l, orderly, msg()); !ok {
				t.Fatalf("redelivery: %v", err)
			}
			if rows, _ := f.appliedCount(t); rows != 1 || f.recordCount(t) != 1 {
				t.Fatalf("after the redelivery: %d rows applied, %d records; want 1 and 1", rows, f.recordCount(t))
			}
		})
	})
}

// Several transactions in one handler (like GORM's per-write default
// transactions) are one delivery: both writes apply once, and a
// redelivery is a duplicate.
func TestIntegrationSeveralTransactions(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e)
		stats := &Stats{}
		l := Listener(f.ds, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
			for i := range 2 {
				tx, err := f.ds.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				if err := f.apply(ctx, tx, testGroup, fmt.Sprintf("%s-%d", m.MsgId, i), 1); err != nil {
					return err
				}
				if err := tx.Commit(); err != nil {
					return err
				}
			}
			return nil
		}, quiet, WithMetrics(stats), WithTableCheck(false), WithCacheSize(0))
		for range 2 {
			if ok, err := deliver(t, l, false, newMsg("t", "R1", 1)); !ok {
				t.Fatal(err)
			}
		}
		if rows, distinct := f.appliedCount(t); rows != 2 || distinct != 2 || f.recordCount(t) != 1 {
			t.Fatalf("%d rows (%d distinct), %d records; want both writes once, one record", rows, distinct, f.recordCount(t))
		}
		if s := stats.Snapshot(); s["processed"] != 1 || s["duplicate"] != 1 {
			t.Fatal(s)
		}
	})
}

// Shutdown while a handler runs: when the grace period ends its context is
// cancelled, its transaction rolls back, and the delivery is not
// acknowledged.
func TestIntegrationShutdownCancelsHandler(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		eachStyle(t, func(t *testing.T, style string) {
			f := newFixture(t, e)
			g := newGate()
			inTx, proceed := make(chan struct{}), make(chan struct{})
			block := func(m *primitive.MessageExt) error {
				close(inTx)
				<-proceed // a slow handler that ignores ctx
				return nil
			}
			l := styles(f, testGroup, block, withGate(g))[style]
			type result struct {
				res consumer.ConsumeResult
				err error
			}
			done := make(chan result, 1)
			go func() {
				ctx, _ := clientCtx(testGroup, false)
				res, err := l(ctx, newMsg("t", "S1", 1))
				done <- result{res, err}
			}()
			<-inTx
			g.close()
			g.cancel() // the grace period is over
			close(proceed)
			// The call leaves the gate, but is held until the client
			// is shut down (release), so that it is not sent back.
			if err := g.wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-done:
				t.Fatalf("returned before release: %v %v", r.res, r.err)
			default:
			}
			g.release()
			r := <-done
			if r.res == consumer.ConsumeSuccess || !errors.Is(r.err, ErrShutdown) {
				t.Fatalf("res %v err %v: a cancelled handler must not be acknowledged", r.res, r.err)
			}
			eventually(t, 10*time.Second, "rolled back", func() bool { rows, _ := f.appliedCount(t); return rows == 0 && f.recordCount(t) == 0 })
		})
	})
}

func TestIntegrationPurgeLoop(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e)
		l := styles(f, testGroup, nil)["TxHandler"]
		for i := range 3 {
			if ok, err := deliver(t, l, false, newMsg("t", fmt.Sprintf("P%d", i), int64(i))); !ok {
				t.Fatal(err)
			}
		}
		if f.recordCount(t) != 3 {
			t.Fatal("records not written")
		}
		cfg := newConfig([]Option{quiet, WithPurge(time.Nanosecond, 10*time.Millisecond)})
		c := &Consumer{ds: f.ds, cfg: cfg, purgeDone: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		go c.purgeLoop(ctx)
		eventually(t, 10*time.Second, "records purged", func() bool { return f.recordCount(t) == 0 })
		cancel()
		<-c.purgeDone
	})
}

// A message id within MaxMessageIDLen but longer than the actual message_id
// column: the DataSource knows the column's length from its schema check, so
// the message fails at once with ErrInvalidDelivery, as the claim would,
// without running the handler, with the table pre-check or without.
func TestIntegrationIDTooLongForColumn(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		table := dbtest.UniqueName(t, "tr")
		e.CreateClaimTable(t, table, "varchar(100) NOT NULL UNIQUE")
		ds, err := mqdatasource.Open(e.Driver, e.DSN, mqdatasource.WithTable(table))
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Close()
		key := strings.Repeat("k", 118) // 129 characters with "#test_group"
		eachStyle(t, func(t *testing.T, style string) {
			modes(t, func(t *testing.T, orderly bool) {
				for _, tableCheck := range []bool{true, false} {
					var ran atomic.Int64
					stats := &Stats{}
					opts := []Option{quiet, WithMetrics(stats), WithTableCheck(tableCheck)}
					l := TxListener(ds, testGroup, func(context.Context, *sql.Tx, *primitive.MessageExt) error { ran.Add(1); return nil }, opts...)
					if style == "Handler" {
						l = Listener(ds, testGroup, func(context.Context, *primitive.MessageExt) error { ran.Add(1); return nil }, opts...)
					}
					ok, err := deliver(t, l, orderly, newMsg("t", key, 1))
					if ok || !errors.Is(err, mqdatasource.ErrInvalidDelivery) {
						t.Fatalf("acknowledged=%v err=%v, want a retry with ErrInvalidDelivery", ok, err)
					}
					if ran.Load() != 0 || stats.Count(OutcomeInvalid) != 1 || stats.Messages() != 1 {
						t.Fatalf("table check %v: handler ran %d times, stats %v; want one invalid, handler not run", tableCheck, ran.Load(), stats.Snapshot())
					}
				}
			})
		})
		if n := e.QueryInt(t, "SELECT COUNT(*) FROM "+table); n != 0 {
			t.Fatalf("%d records, want 0", n)
		}
	})
}

// A handler that writes to MariaDB and PostgreSQL: each database applies
// every message once, also after a commit that reached only the first
// (the second's delivery connection killed before the listener commits).
func TestIntegrationTwoDatabases(t *testing.T) {
	envs := dbtest.Envs(t)
	if len(envs) < 2 {
		t.Skip("needs MYSQL_DSN and POSTGRES_DSN")
	}
	a, b := newFixture(t, envs[0]), newFixture(t, envs[1])
	if b.Name != "postgres" {
		t.Fatalf("second database is %s, want postgres", b.Name)
	}
	var killed atomic.Bool
	kill := false
	stats := &Stats{}
	runs := map[string]int{}
	write := func(ctx context.Context, f *fixture, m *primitive.MessageExt) error {
		_, err := f.ds.DB().ExecContext(ctx, f.Rebind("INSERT INTO "+f.applied+" (grp, k, seq) VALUES (?, ?, ?)"), testGroup, m.MsgId, 1)
		return err
	}
	l := Listener(a.ds, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
		runs[m.MsgId]++
		if err := write(ctx, a, m); err != nil {
			return err
		}
		if err := write(ctx, b, m); err != nil {
			return err
		}
		if kill && !killed.Load() {
			// End PostgreSQL's delivery connection: the listener's commit
			// then reaches MariaDB only.
			var pid int
			if err := b.ds.DB().QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				return err
			}
			if _, err := b.ds.DB().ExecContext(mqdatasource.WithoutDelivery(ctx), "SELECT pg_terminate_backend($1)", pid); err != nil {
				return err
			}
			killed.Store(true)
		}
		return nil
	}, quiet, WithMetrics(stats), WithDataSources(b.ds), WithCacheSize(0), WithTableCheck(false))

	for _, key := range []string{"D1", "D1"} {
		if ok, err := deliver(t, l, false, newMsg("t", key, 1)); !ok {
			t.Fatal(err)
		}
	}
	kill = true
	if ok, err := deliver(t, l, false, newMsg("t", "D2", 2)); !ok {
		t.Fatalf("after the partial commit, retried in place: %v", err)
	}
	if !killed.Load() || runs["D2"] != 2 {
		t.Fatalf("killed %v, D2 ran %d times; want the partial commit and one retry", killed.Load(), runs["D2"])
	}
	if ok, err := deliver(t, l, false, newMsg("t", "D2", 2)); !ok {
		t.Fatal(err)
	}
	for _, f := range []*fixture{a, b} {
		if rows, distinct := f.appliedCount(t); rows != 2 || distinct != 2 || f.recordCount(t) != 2 {
			t.Errorf("%s: %d rows (%d distinct), %d records; want 2 messages applied once each", f.Name, rows, distinct, f.recordCount(t))
		}
	}
	// D1, D2 processed (D2 after a failed first attempt, retried in
	// place); their redeliveries duplicates.
	if s := stats.Snapshot(); s["processed"] != 2 || s["duplicate"] != 2 || s["failed"] != 0 {
		t.Fatal(s)
	}
}
