package mqdatasource_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// precheckCase is a delivery and what IsConsumed must say of it.
type precheckCase struct {
	d       mqdatasource.Delivery
	want    bool
	wantErr error
}

// precheckCases claims order-a in ds (on a column that takes order-a and
// ORDER-A for one value) and returns a consumed case, two new ones and a
// collision.
func precheckCases(t *testing.T, ds *mqdatasource.DataSource) []precheckCase {
	t.Helper()
	if err := claimOnly(ds, delivery("G", "order-a")); err != nil {
		t.Fatal(err)
	}
	return []precheckCase{
		{d: delivery("G", "order-a"), want: true},
		{d: delivery("other", "order-a")},
		{d: delivery("G", "never")},
		{d: delivery("G", "ORDER-A"), wantErr: mqdatasource.ErrKeyCollision},
	}
}

func (c precheckCase) check(ctx context.Context, ds *mqdatasource.DataSource) error {
	got, err := ds.IsConsumed(ctx, c.d)
	if got != c.want || (c.wantErr == nil) != (err == nil) || (c.wantErr != nil && !errors.Is(err, c.wantErr)) {
		return fmt.Errorf("IsConsumed(%s) = %v, %v; want %v, %v", c.d.MessageID(), got, err, c.want, c.wantErr)
	}
	return nil
}

// openPrecheck opens a DataSource on a new claim table whose message_id
// collation is case-insensitive, with a pool of poolSize connections that
// are never closed for being idle (each new one would prepare the lookup
// again).
func openPrecheck(t *testing.T, e *dbtest.Env, poolSize int) *mqdatasource.DataSource {
	t.Helper()
	table := dbtest.UniqueName(t, "pre")
	e.CreateClaimTable(t, table, ciCollation(t, e))
	ds, err := mqdatasource.OpenConnector(connector(t, e, ""), mqdatasource.WithTable(table),
		mqdatasource.WithLogger(slog.New(slog.DiscardHandler))) // the collation is meant

	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { ds.Close() })
	ds.DB().SetMaxOpenConns(poolSize)
	ds.DB().SetMaxIdleConns(poolSize)
	return ds
}

// TestIsConsumedPreparedLookup: IsConsumed prepares its lookup once for
// the DataSource and answers as before (consumed, new, a key collision),
// from goroutines that start together (and so race to prepare it), each
// inside a delivery of its own that the lookup neither joins nor claims.
// On MariaDB the pool's sessions prepare it at most once each, however
// many calls run. Close closes it.
func TestIsConsumedPreparedLookup(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		const poolSize, goroutines, calls = 3, 8, 25
		ds := openPrecheck(t, e, poolSize)
		cases := precheckCases(t, ds)
		before := sessionPrepares(t, e, ds, poolSize)

		start := make(chan struct{})
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				d := delivery("G", "probe-"+string(rune('a'+g)))
				res, err := mqdatasource.Deliver(context.Background(), d, func(ctx context.Context) error {
					for i := range calls {
						if err := cases[(g+i)%len(cases)].check(ctx, ds); err != nil {
							return err
						}
					}
					return nil
				})
				if res != mqdatasource.Unclaimed || err != nil {
					t.Errorf("goroutine %d: %v, %v; want unclaimed, nil", g, res, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		lookup := mqdatasource.LookupStmt(ds)
		if lookup == nil {
			t.Fatal("no prepared lookup after IsConsumed")
		}

		if before != nil {
			after := sessionPrepares(t, e, ds, poolSize)
			var n int64
			for id, c := range after {
				n += c - before[id]
			}
			if n > poolSize {
				t.Errorf("%d statements prepared by the pool for %d IsConsumed calls, want at most %d (one per connection)", n, goroutines*calls, poolSize)
			}
		}

		if err := ds.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := lookup.QueryRow("x").Err(); err == nil || err.Error() != "sql: statement is closed" {
			t.Fatalf("lookup after Close: %v, want sql: statement is closed", err)
		}
		if _, err := ds.IsConsumed(context.Background(), cases[0].d); err == nil {
			t.Fatal("IsConsumed after Close: no error")
		}
	})
}

// TestIsConsumedPreparedInDelivery: the lookup's first call, which
// prepares it, and the later ones run outside the delivery of their
// context: inside a delivery that has claimed its message, IsConsumed of
// that message reads the committed records, where the claim is not yet.
func TestIsConsumedPreparedInDelivery(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		ds := openPrecheck(t, e, 1)
		d := delivery("G", "claimed")
		res, err := ds.Deliver(context.Background(), d, func(ctx context.Context) error {
			for i := range 2 {
				if got, err := ds.IsConsumed(ctx, d); got || err != nil {
					t.Errorf("call %d inside its claimed delivery: IsConsumed = %v, %v; want false, nil", i+1, got, err)
				}
			}
			return nil
		})
		wantResult(t, "delivery", res, err, mqdatasource.Committed, nil)
		if got, err := ds.IsConsumed(context.Background(), d); !got || err != nil {
			t.Fatalf("after the commit: IsConsumed = %v, %v; want true, nil", got, err)
		}
	})
}

// TestIsConsumedWaitsForPrepareWithinCtx: a call that finds another's
// prepare of the lookup under way waits for it no longer than its own
// context, and the lookup is prepared once that prepare is over.
func TestIsConsumedWaitsForPrepareWithinCtx(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		ds := openPrecheck(t, e, 1)
		d := delivery("G", "waiting")
		release := mqdatasource.HoldLookupLock(ds)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if got, err := ds.IsConsumed(ctx, d); got || !errors.Is(err, context.DeadlineExceeded) {
			release()
			t.Fatalf("IsConsumed while the lookup is being prepared = %v, %v; want false, context.DeadlineExceeded", got, err)
		}
		release()
		if got, err := ds.IsConsumed(context.Background(), d); got || err != nil {
			t.Fatalf("IsConsumed = %v, %v; want false, nil", got, err)
		}
	})
}

// sessionPrepares returns, on MariaDB, how many statements each session of
// ds's pool has prepared (session Com_stmt_prepare, by CONNECTION_ID),
// holding poolSize connections at once so that each is a distinct session;
// nil on other databases. The global counter would count the shared
// server's other clients too.
func sessionPrepares(t *testing.T, e *dbtest.Env, ds *mqdatasource.DataSource, poolSize int) map[int64]int64 {
	t.Helper()
	if e.Name != "mysql" {
		return nil
	}
	ctx := context.Background()
	out := map[int64]int64{}
	for range poolSize {
		c, err := ds.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var id, n int64
		var name string
		// No arguments: go-sql-driver sends them as text, without a
		// prepare of their own.
		if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Com_stmt_prepare'").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		out[id] = n
	}
	return out
}
