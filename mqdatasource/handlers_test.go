package mqdatasource_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// TestHandlerStyles: plain database/sql handlers of every transaction
// style, each delivered twice: the first delivery's Result, the final
// balance and record, and that the second is a clean duplicate.
func TestHandlerStyles(t *testing.T) {
	errTxOptions := mqdatasource.ErrTxOptions
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		for _, tc := range []struct {
			name        string
			fn          func(f *fixture) func(ctx context.Context) error
			want        mqdatasource.Result
			wantErr     error
			wantBalance int64 // after the first delivery
		}{
			{"exec outside a transaction", func(f *fixture) func(context.Context) error {
				return func(ctx context.Context) error {
					if err := f.update(ctx, 1, 2); err != nil {
						return err
					}
					return f.update(ctx, 1, 3)
				}
			}, mqdatasource.Committed, nil, 5},
			{"several BeginTx/Commit pairs", func(f *fixture) func(context.Context) error {
				return func(ctx context.Context) error {
					for range 3 {
						if err := f.increment(ctx, 1); err != nil {
							return err
						}
					}
					return nil
				}
			}, mqdatasource.Committed, nil, 3},
			{"inner rollback", func(f *fixture) func(context.Context) error {
				return func(ctx context.Context) error {
					if err := f.increment(ctx, 1); err != nil {
						return err
					}
					tx, err := f.ds.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					if _, err := tx.ExecContext(ctx, f.Rebind("UPDATE "+f.account+" SET balance = balance + 10 WHERE id = ?"), 1); err != nil {
						return err
					}
					if err := tx.Rollback(); err != nil {
						return err
					}
					return nil // the handler goes on as if the rest were fine
				}
			}, mqdatasource.Failed, mqdatasource.ErrRollbackOnly, 0},
			{"rows left open, then a statement", func(f *fixture) func(context.Context) error {
				return func(ctx context.Context) error {
					rows, err := f.ds.DB().QueryContext(ctx, "SELECT id FROM "+f.account)
					if err != nil {
						return err
					}
					defer rows.Close()
					err = f.update(ctx, 1, 1)
					if !errors.Is(err, mqdatasource.ErrDeliveryBusy) {
						return fmt.Errorf("statement with rows open: %v, want ErrDeliveryBusy", err)
					}
					return err
				}
			}, mqdatasource.Failed, mqdatasource.ErrDeliveryBusy, 0},
			{"isolation mismatch", func(f *fixture) func(context.Context) error {
				return func(ctx context.Context) error {
					if err := f.update(ctx, 1, 1); err != nil {
						return err
					}
					_, err := f.ds.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
					return err
				}
			}, mqdatasource.Failed, errTxOptions, 0},
			{"two goroutines sharing ctx", func(f *fixture) func(context.Context) error {
				return func(ctx context.Context) error {
					var wg sync.WaitGroup
					errs := make([]error, 2)
					for i := range errs {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for range 5 {
								if err := f.increment(ctx, 1+i); err != nil {
									errs[i] = err
									return
								}
							}
						}()
					}
					wg.Wait()
					return errors.Join(errs...)
				}
			}, mqdatasource.Committed, nil, 5},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, e, 2)
				d := delivery("g", "style")
				res, err := mqdatasource.Deliver(context.Background(), d, tc.fn(f))
				wantResult(t, "first delivery", res, err, tc.want, tc.wantErr)
				if b, rec := f.balance(t, 1), f.hasRecord(t, d); b != tc.wantBalance || rec != (tc.want == mqdatasource.Committed) {
					t.Fatalf("after the first delivery: balance %d, record %v; want %d, %v", b, rec, tc.wantBalance, tc.want == mqdatasource.Committed)
				}
				if tc.want == mqdatasource.Failed {
					// A clean redelivery applies the message once.
					if applied, err := f.deliver(t, "g", "style", 1); err != nil || !applied {
						t.Fatalf("clean redelivery: applied=%v, %v", applied, err)
					}
				}
				balances := []int64{f.balance(t, 1), f.balance(t, 2)}
				res, err = mqdatasource.Deliver(context.Background(), d, tc.fn(f))
				wantResult(t, "duplicate delivery", res, err, mqdatasource.Duplicate, nil)
				if b1, b2, n := f.balance(t, 1), f.balance(t, 2), f.records(t); b1 != balances[0] || b2 != balances[1] || n != 1 {
					t.Fatalf("after the duplicate: balances %d %d, %d records; want %v and 1", b1, b2, n, balances)
				}
			})
		}
	})
}

// TestSwallowedDuplicate: a handler that swallows ErrAlreadyConsumed and
// returns nil is a Duplicate, not a failure; nothing is applied twice.
func TestSwallowedDuplicate(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		d := delivery("g", "swallow")
		fn := func(ctx context.Context) error {
			if err := f.increment(ctx, 1); err != nil && !errors.Is(err, mqdatasource.ErrAlreadyConsumed) {
				return err
			}
			return nil
		}
		for i, want := range []mqdatasource.Result{mqdatasource.Committed, mqdatasource.Duplicate, mqdatasource.Duplicate} {
			res, err := mqdatasource.Deliver(context.Background(), d, fn)
			wantResult(t, fmt.Sprintf("delivery %d", i+1), res, err, want, nil)
		}
		if b, n := f.balance(t, 1), f.records(t); b != 1 || n != 1 {
			t.Fatalf("balance %d, %d records; want 1 and 1", b, n)
		}
	})
}

// TestPanicAfterCommitCall: a handler that panics after its first Commit
// call: Deliver rolls everything back and re-panics; the redelivery
// applies once.
func TestPanicAfterCommitCall(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		d := delivery("g", "panic")
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Fatalf("recovered %v, want the handler's panic", r)
				}
			}()
			_, _ = mqdatasource.Deliver(context.Background(), d, func(ctx context.Context) error {
				if err := f.increment(ctx, 1); err != nil {
					return err
				}
				panic("boom")
			})
			t.Fatal("Deliver returned")
		}()
		if b, n := f.balance(t, 1), f.records(t); b != 0 || n != 0 {
			t.Fatalf("after the panic: balance %d, %d records; want 0 and 0", b, n)
		}
		for i, want := range []bool{true, false} {
			if applied, err := f.deliver(t, "g", "panic", 1); err != nil || applied != want {
				t.Fatalf("redelivery %d: applied=%v, %v; want %v", i+1, applied, err, want)
			}
		}
		if b, n := f.balance(t, 1), f.records(t); b != 1 || n != 1 {
			t.Fatalf("balance %d, %d records; want 1 and 1", b, n)
		}
	})
}

// TestStatementAfterDeliver: a statement made with a delivery's context
// after Deliver returned is refused with ErrDeliveryDone and runs nowhere.
func TestStatementAfterDeliver(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		var kept context.Context
		res, err := mqdatasource.Deliver(context.Background(), delivery("g", "done"), func(ctx context.Context) error {
			kept = ctx
			return f.update(ctx, 1, 1)
		})
		wantResult(t, "Deliver", res, err, mqdatasource.Committed, nil)
		if err := f.update(kept, 1, 100); !errors.Is(err, mqdatasource.ErrDeliveryDone) {
			t.Fatalf("statement after Deliver: %v, want ErrDeliveryDone", err)
		}
		if _, err := f.ds.BeginTx(kept, nil); !errors.Is(err, mqdatasource.ErrDeliveryDone) {
			t.Fatalf("BeginTx after Deliver: %v, want ErrDeliveryDone", err)
		}
		if b, n := f.balance(t, 1), f.records(t); b != 1 || n != 1 {
			t.Fatalf("balance %d, %d records; want 1 and 1", b, n)
		}
	})
}

// TestTwoDatabases: one handler writes to MariaDB and PostgreSQL, both
// claimed first (ClaimIn). Each database applies the message once, also
// when the first delivery committed in MariaDB only (PostgreSQL's delivery
// connection killed before Deliver commits): that is ErrPartialCommit, and
// the redelivery runs the handler again, rolled back in MariaDB (recorded)
// and committed in PostgreSQL.
func TestTwoDatabases(t *testing.T) {
	envs := map[string]*dbtest.Env{}
	for _, e := range dbtest.Envs(t) {
		envs[e.Name] = e
	}
	my, pg := envs["mysql"], envs["postgres"]
	if my == nil || pg == nil {
		t.Skip("needs both MYSQL_DSN and POSTGRES_DSN")
	}
	for _, tc := range []struct {
		name    string
		partial bool
	}{{"both commit", false}, {"partial commit", true}} {
		t.Run(tc.name, func(t *testing.T) {
			fm, fp := newFixture(t, my, 1), newFixture(t, pg, 1)
			d := delivery("g", "two-db")
			runs := 0
			deliver := func(kill bool) (mqdatasource.Result, error) {
				return mqdatasource.Deliver(context.Background(), d, func(ctx context.Context) error {
					runs++
					if err := fm.increment(ctx, 1); err != nil {
						return err
					}
					if err := fp.increment(ctx, 1); err != nil {
						return err
					}
					if kill {
						killSession(t, ctx, pg, fp.ds.DB(), sessionID(t, ctx, pg, fp.ds.DB()))
					}
					return nil
				}, mqdatasource.ClaimIn(fm.ds, nil), mqdatasource.ClaimIn(fp.ds, nil))
			}
			res, err := deliver(tc.partial)
			if tc.partial {
				wantResult(t, "first delivery", res, err, mqdatasource.Failed, mqdatasource.ErrPartialCommit)
				if !mqdatasource.IsRetryable(err) {
					t.Errorf("ErrPartialCommit %v is not retryable", err)
				}
				if bm, bp := fm.balance(t, 1), fp.balance(t, 1); bm != 1 || bp != 0 || !fm.hasRecord(t, d) || fp.hasRecord(t, d) {
					t.Fatalf("after the partial commit: balances %d (mariadb) %d (postgres); want 1 0", bm, bp)
				}
				res, err = deliver(false)
			}
			wantResult(t, "delivery", res, err, mqdatasource.Committed, nil)
			res, err = deliver(false)
			wantResult(t, "duplicate", res, err, mqdatasource.Duplicate, nil)
			wantRuns := map[bool]int{false: 1, true: 2}[tc.partial]
			if runs != wantRuns {
				t.Errorf("handler ran %d times, want %d (not for the duplicate)", runs, wantRuns)
			}
			for _, f := range []*fixture{fm, fp} {
				if b, n := f.balance(t, 1), f.records(t); b != 1 || n != 1 {
					t.Errorf("%s: balance %d, %d records; want 1 and 1", f.Name, b, n)
				}
			}
		})
	}
}
