package mqdatasource_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

func TestConcurrentDeliveriesApplyOnce(t *testing.T) {
	const messages, copies = 12, 6
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, messages)
		f.ds.DB().SetMaxOpenConns(24)
		var applied [messages + 1]atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, messages*copies)
		for m := 1; m <= messages; m++ {
			for range copies {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := f.deliver(t, "group-a", fmt.Sprintf("msg-%d", m), m)
					if err != nil {
						errs <- err
					}
					if ok {
						applied[m].Add(1)
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("delivery failed: %v", err)
		}
		for m := 1; m <= messages; m++ {
			if n := applied[m].Load(); n != 1 {
				t.Errorf("message %d: applied by %d deliveries, want 1", m, n)
			}
			if b := f.balance(t, m); b != 1 {
				t.Errorf("account %d: balance %d, want 1", m, b)
			}
		}
		if n := f.records(t); n != messages {
			t.Errorf("%d records, want %d", n, messages)
		}
	})
}

// TestClaimFirstLoserBlocks: two deliveries of one message at once. The
// claim is the delivery transaction's first statement, so the second
// blocks on the first's claim and, when the first commits, finds the
// record without running any business statement (fn is not called); when
// the first rolls back, the second gets the claim and applies the message.
func TestClaimFirstLoserBlocks(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		for _, tc := range []struct {
			name        string
			firstErr    error // what the first delivery's fn returns
			wantSecond  mqdatasource.Result
			wantBalance int64
		}{
			{"first commits", nil, mqdatasource.Duplicate, 1},
			{"first rolls back", errors.New("handler failed"), mqdatasource.Committed, 100},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, e, 1)
				d := delivery("g", "claim-first")
				bg := context.Background()
				holding, release := make(chan struct{}), make(chan struct{})
				type outcome struct {
					res mqdatasource.Result
					err error
				}
				first := make(chan outcome, 1)
				go func() {
					res, err := f.ds.Deliver(bg, d, func(ctx context.Context) error {
						if err := f.update(ctx, 1, 1); err != nil {
							return err
						}
						close(holding)
						<-release
						return tc.firstErr
					})
					first <- outcome{res, err}
				}()
				select {
				case <-holding:
				case o := <-first:
					t.Fatalf("first delivery ended before holding its claim: %v, %v", o.res, o.err)
				}
				var secondRan atomic.Bool
				second := make(chan outcome, 1)
				go func() {
					res, err := f.ds.Deliver(bg, d, func(ctx context.Context) error {
						secondRan.Store(true)
						return f.update(ctx, 1, 100)
					})
					second <- outcome{res, err}
				}()
				waitLockWaiter(t, e, f.table) // the second's claim waits for the first's
				close(release)
				o1, o2 := <-first, <-second
				if tc.firstErr == nil {
					wantResult(t, "first delivery", o1.res, o1.err, mqdatasource.Committed, nil)
				} else {
					wantResult(t, "first delivery", o1.res, o1.err, mqdatasource.Failed, tc.firstErr)
				}
				wantResult(t, "second delivery", o2.res, o2.err, tc.wantSecond, nil)
				if ran := secondRan.Load(); ran != (tc.wantSecond == mqdatasource.Committed) {
					t.Errorf("second delivery's fn ran: %v", ran)
				}
				if b, n := f.balance(t, 1), f.records(t); b != tc.wantBalance || n != 1 {
					t.Fatalf("balance %d, %d records; want %d and 1", b, n, tc.wantBalance)
				}
			})
		}
	})
}

// TestFailedDeliveryLeavesNoRecord: a handler error rolls the claim back
// with the work, and Deliver returns that very error; the redelivery
// applies the message once.
func TestFailedDeliveryLeavesNoRecord(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		d := delivery("g", "rolled-back")
		errHandler := errors.New("handler failed")
		res, err := mqdatasource.Deliver(context.Background(), d, func(ctx context.Context) error {
			if err := f.increment(ctx, 1); err != nil {
				return err
			}
			return errHandler
		})
		wantResult(t, "failing delivery", res, err, mqdatasource.Failed, errHandler)
		if f.hasRecord(t, d) || f.balance(t, 1) != 0 {
			t.Fatalf("after the failed delivery: record=%v balance=%d, want no record and 0", f.hasRecord(t, d), f.balance(t, 1))
		}
		for i, want := range []bool{true, false} {
			if applied, err := f.deliver(t, "g", "rolled-back", 1); err != nil || applied != want {
				t.Fatalf("redelivery %d: applied=%v err=%v, want applied=%v", i+1, applied, err, want)
			}
		}
		if b := f.balance(t, 1); b != 1 || !f.hasRecord(t, d) {
			t.Fatalf("balance %d record %v, want 1 and a record", b, f.hasRecord(t, d))
		}
	})
}

// TestBusinessUniqueViolationIsNotDuplicate: a business table's unique key
// violation is the handler's error, neither a duplicate nor retryable. A
// handler that ignores it and returns nil commits on MySQL (the failed
// statement alone was undone) and fails on PostgreSQL (the error aborted
// the transaction); the claim goes with the outcome.
func TestBusinessUniqueViolationIsNotDuplicate(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 2)
		e.Exec(t, "UPDATE "+f.account+" SET ref = 'taken' WHERE id = 1")
		bg := context.Background()
		violate := func(ctx context.Context) error {
			_, err := f.ds.DB().ExecContext(ctx, f.Rebind("UPDATE "+f.account+" SET ref = 'taken' WHERE id = ?"), 2)
			if err == nil {
				t.Fatal("business unique violation: no error")
			}
			if errors.Is(err, mqdatasource.ErrAlreadyConsumed) || mqdatasource.IsRetryable(err) {
				t.Fatalf("business unique violation classified as duplicate or retryable: %v", err)
			}
			return err
		}
		d := delivery("g", "unique-violation")
		var verr error
		res, err := mqdatasource.Deliver(bg, d, func(ctx context.Context) error {
			verr = violate(ctx)
			return verr
		})
		wantResult(t, "delivery returning the violation", res, err, mqdatasource.Failed, verr)
		if f.hasRecord(t, d) {
			t.Fatal("record left after the failed delivery")
		}
		// The claim is free again: the delivery can be handled (differently).
		if applied, err := f.deliver(t, "g", "unique-violation", 2); err != nil || !applied {
			t.Fatalf("redelivery: applied=%v, %v", applied, err)
		}

		// A handler that ignores the error and goes on.
		d = delivery("g", "ignored-error")
		res, err = mqdatasource.Deliver(bg, d, func(ctx context.Context) error {
			_ = violate(ctx)
			_ = f.update(ctx, 1, 10)
			return nil
		})
		switch e.Name {
		case "mysql":
			wantResult(t, "delivery ignoring the violation", res, err, mqdatasource.Committed, nil)
			if b := f.balance(t, 1); b != 10 || !f.hasRecord(t, d) {
				t.Fatalf("balance %d, record %v; want 10 and a record", b, f.hasRecord(t, d))
			}
		default:
			if res != mqdatasource.Failed || err == nil {
				t.Fatalf("delivery ignoring the violation: %v, %v; want failed", res, err)
			}
			if b := f.balance(t, 1); b != 0 || f.hasRecord(t, d) {
				t.Fatalf("balance %d, record %v; want 0 and no record", b, f.hasRecord(t, d))
			}
		}
		if b := f.balance(t, 2); b != 1 {
			t.Fatalf("account 2 balance %d, want 1", b)
		}
	})
}

func TestTwoConsumerGroupsEachApplyOnce(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		for _, g := range []string{"group-a", "group-b", "group-a", "group-b"} {
			if _, err := f.deliver(t, g, "shared-key", 1); err != nil {
				t.Fatal(err)
			}
		}
		if b := f.balance(t, 1); b != 2 {
			t.Fatalf("balance %d, want 2 (once per group)", b)
		}
		for _, g := range []string{"group-a", "group-b"} {
			if !f.hasRecord(t, delivery(g, "shared-key")) {
				t.Errorf("no record for %s", g)
			}
		}
	})
}

// TestStatementsOutsideTransaction: statements made with the delivery's
// context outside any transaction (Exec, a statement prepared inside or
// outside the delivery, Query) run in the delivery's transaction and share
// its outcome; WithoutDelivery runs outside it and survives its rollback.
func TestStatementsOutsideTransaction(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		for _, tc := range []struct {
			name        string
			fnErr       error
			wantBalance int64 // of account 1; account 2 gets the WithoutDelivery update
		}{
			{"committed", nil, 3},
			{"rolled back", errors.New("handler failed"), 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, e, 2)
				bg := context.Background()
				d := delivery("g", "outside")
				update := f.Rebind("UPDATE " + f.account + " SET balance = balance + 1 WHERE id = ?")
				outside, err := f.ds.DB().PrepareContext(bg, update) // prepared without a delivery
				if err != nil {
					t.Fatal(err)
				}
				defer outside.Close()
				res, err := mqdatasource.Deliver(bg, d, func(ctx context.Context) error {
					if _, err := f.ds.DB().ExecContext(ctx, update, 1); err != nil {
						return err
					}
					inside, err := f.ds.DB().PrepareContext(ctx, update)
					if err != nil {
						return err
					}
					defer inside.Close()
					if _, err := inside.ExecContext(ctx, 1); err != nil {
						return err
					}
					if _, err := outside.ExecContext(ctx, 1); err != nil {
						return err
					}
					var b int64
					if err := f.ds.DB().QueryRowContext(ctx, f.Rebind("SELECT balance FROM "+f.account+" WHERE id = ?"), 1).Scan(&b); err != nil {
						return err
					}
					if b != 3 {
						t.Errorf("the delivery reads balance %d, want its own 3", b)
					}
					if _, err := f.ds.DB().ExecContext(mqdatasource.WithoutDelivery(ctx), update, 2); err != nil {
						return err
					}
					if b := f.balance(t, 2); b != 1 {
						t.Errorf("WithoutDelivery update not committed at once: balance %d", b)
					}
					return tc.fnErr
				})
				if tc.fnErr == nil {
					wantResult(t, "Deliver", res, err, mqdatasource.Committed, nil)
				} else {
					wantResult(t, "Deliver", res, err, mqdatasource.Failed, tc.fnErr)
				}
				if b1, b2, rec := f.balance(t, 1), f.balance(t, 2), f.hasRecord(t, d); b1 != tc.wantBalance || b2 != 1 || rec != (tc.fnErr == nil) {
					t.Fatalf("balances %d %d, record %v; want %d 1 %v", b1, b2, rec, tc.wantBalance, tc.fnErr == nil)
				}
			})
		}
	})
}

// TestInvalidDelivery: a delivery that cannot be claimed is refused before
// any SQL, by ClaimIn (fn is not called) and by the first statement.
func TestInvalidDelivery(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		bg := context.Background()
		if err := f.ds.CheckSchema(bg); err != nil {
			t.Fatal(err)
		}
		refused := func(t *testing.T, ds *mqdatasource.DataSource, d mqdatasource.Delivery) {
			t.Helper()
			called := false
			res, err := ds.Deliver(bg, d, func(context.Context) error { called = true; return nil })
			wantResult(t, "ds.Deliver", res, err, mqdatasource.Failed, mqdatasource.ErrInvalidDelivery)
			if called {
				t.Error("fn called for an invalid delivery")
			}
			res, err = mqdatasource.Deliver(bg, d, func(ctx context.Context) error {
				_, err := ds.DB().ExecContext(ctx, "UPDATE "+f.account+" SET balance = balance + 1")
				if !errors.Is(err, mqdatasource.ErrInvalidDelivery) {
					t.Errorf("statement: %v, want ErrInvalidDelivery", err)
				}
				return err
			})
			wantResult(t, "Deliver", res, err, mqdatasource.Failed, mqdatasource.ErrInvalidDelivery)
			if _, err := ds.IsConsumed(bg, d); !errors.Is(err, mqdatasource.ErrInvalidDelivery) {
				t.Fatalf("IsConsumed: %v, want ErrInvalidDelivery", err)
			}
		}
		for _, tc := range []struct {
			name string
			d    mqdatasource.Delivery
		}{
			{"empty key", delivery("g", "")},
			{"empty group", delivery("", "k")},
			{"group with #", delivery("g#h", "k")},
			{"too long", delivery("g", strings.Repeat("k", mqdatasource.MaxMessageIDLen))},
			{"invalid utf8", delivery("g", "k\xff")},
		} {
			t.Run(tc.name, func(t *testing.T) { refused(t, f.ds, tc.d) })
		}
		if n, b := f.records(t), f.balance(t, 1); n != 0 || b != 0 {
			t.Fatalf("%d records, balance %d; want 0 and 0", n, b)
		}

		// A message_id column shorter than MaxMessageIDLen: the length
		// CheckSchema learned decides.
		t.Run("too long for the column", func(t *testing.T) {
			table := dbtest.UniqueName(t, "tr")
			e.CreateClaimTable(t, table, "varchar(100) NOT NULL UNIQUE")
			ds, err := mqdatasource.Open(e.Driver, e.DSN, mqdatasource.WithTable(table))
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			d := delivery("g", strings.Repeat("k", 118)) // 120 characters with "#g"
			if err := d.Validate(); err != nil {
				t.Fatalf("Validate: %v, want nil (the id fits MaxMessageIDLen)", err)
			}
			refused(t, ds, d)
			if n := e.QueryInt(t, "SELECT COUNT(*) FROM "+table); n != 0 {
				t.Fatalf("%d records, want 0", n)
			}
		})

		// A message_id column longer than MaxMessageIDLen: the learned
		// length decides too, so an id Delivery.Validate refuses fits.
		t.Run("longer than MaxMessageIDLen for a wider column", func(t *testing.T) {
			table := dbtest.UniqueName(t, "tr")
			e.CreateClaimTable(t, table, "varchar(300) NOT NULL UNIQUE")
			ds, err := mqdatasource.Open(e.Driver, e.DSN, mqdatasource.WithTable(table))
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			d := delivery("g", strings.Repeat("k", 278)) // 280 characters with "#g"
			if err := d.Validate(); !errors.Is(err, mqdatasource.ErrInvalidDelivery) {
				t.Fatalf("Validate: %v, want ErrInvalidDelivery (over MaxMessageIDLen)", err)
			}
			if err := ds.ValidateDelivery(d); err != nil {
				t.Fatalf("ValidateDelivery: %v, want nil (the column holds 300)", err)
			}
			if err := claimOnly(ds, d); err != nil {
				t.Fatalf("first claim: %v", err)
			}
			if err := claimOnly(ds, d); !errors.Is(err, mqdatasource.ErrAlreadyConsumed) {
				t.Fatalf("second claim: %v, want ErrAlreadyConsumed", err)
			}
			if done, err := ds.IsConsumed(context.Background(), d); err != nil || !done {
				t.Fatalf("IsConsumed: %v, %v, want true", done, err)
			}
			if n := e.QueryInt(t, "SELECT COUNT(*) FROM "+table+" WHERE message_id = ?", d.MessageID()); n != 1 {
				t.Fatalf("%d records of the id, want 1", n)
			}
		})
	})
}

func TestSchemaCheck(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		wantFile := map[string]string{"mysql": "schema/transaction_record.sql", "postgres": "schema/transaction_record.postgres.sql"}[e.Name]
		offset := map[string]string{"mysql": "`offset`", "postgres": `"offset"`}[e.Name]
		idCol := map[string]string{"mysql": "id bigint AUTO_INCREMENT PRIMARY KEY", "postgres": "id bigserial PRIMARY KEY"}[e.Name]
		// utf8mb4 (the test server's default is latin1): the check
		// refuses a message_id that cannot store every key.
		charset := map[string]string{"mysql": " DEFAULT CHARSET = utf8mb4"}[e.Name]
		full := func(table string, ctime, unique string) string {
			return fmt.Sprintf("CREATE TABLE %s (%s, consumer_group varchar(255) NOT NULL, message_id varchar(255) NOT NULL %s, topic_name varchar(255) NOT NULL, ctime %s NOT NULL, queue_id int NOT NULL, %s bigint NOT NULL, broker_name varchar(255) NOT NULL)%s",
				table, idCol, unique, ctime, offset, charset)
		}
		for _, tc := range []struct {
			name    string
			create  func(table string) string // "" = no table
			problem string
		}{
			{"missing table", nil, "does not exist"},
			{"missing column", func(tb string) string {
				return fmt.Sprintf("CREATE TABLE %s (%s, message_id varchar(255) NOT NULL UNIQUE)", tb, idCol)
			}, "column consumer_group is missing"},
			{"wrong type", func(tb string) string { return full(tb, "int", "UNIQUE") }, "column ctime is"},
			{"no unique key", func(tb string) string { return full(tb, "bigint", "") }, "no unique key on message_id"},
			{"ok", func(tb string) string { return full(tb, "bigint", "UNIQUE") }, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				table := dbtest.UniqueName(t, "tr")
				if tc.create != nil {
					e.Exec(t, tc.create(table))
					t.Cleanup(func() { e.Exec(t, "DROP TABLE IF EXISTS "+table) })
				}
				ds, err := mqdatasource.Open(e.Driver, e.DSN, mqdatasource.WithTable(table))
				if tc.problem == "" {
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					ds.Close()
					return
				}
				if err == nil {
					ds.Close()
					t.Fatal("Open succeeded, want a schema error")
				}
				var se *mqdatasource.SchemaError
				if !errors.Is(err, mqdatasource.ErrSchema) || !errors.As(err, &se) {
					t.Fatalf("Open: %v, want a *SchemaError wrapping ErrSchema", err)
				}
				if se.Table != table || se.Migration != wantFile || !strings.Contains(se.Problem, tc.problem) {
					t.Fatalf("SchemaError %+v, want table %s, migration %s, problem containing %q", se, table, wantFile, tc.problem)
				}
				if !strings.Contains(err.Error(), wantFile) {
					t.Fatalf("message %q does not name %s", err, wantFile)
				}
			})
		}
	})
}

// TestSchemaCheckSearchPath: on PostgreSQL the claim's unqualified table
// name resolves along search_path, so the schema check must find the table
// where the INSERT does, not only in current_schema().
func TestSchemaCheckSearchPath(t *testing.T) {
	for _, e := range dbtest.Envs(t) {
		if e.Name != "postgres" {
			continue
		}
		first, second := dbtest.UniqueName(t, "sp_a"), dbtest.UniqueName(t, "sp_b")
		for _, s := range []string{first, second} {
			e.Exec(t, "CREATE SCHEMA "+s)
			t.Cleanup(func() { e.Exec(t, "DROP SCHEMA "+s+" CASCADE") })
		}
		withPath := func(path string) string {
			u, err := url.Parse(e.DSN)
			if err != nil {
				t.Fatalf("POSTGRES_DSN: %v", err)
			}
			q := u.Query()
			q.Set("search_path", path)
			u.RawQuery = q.Encode()
			return u.String()
		}
		ctx := context.Background()
		// The table lives in the second schema only.
		setup, err := mqdatasource.Open(e.Driver, withPath(second), mqdatasource.WithSchemaCheck(false))
		if err != nil {
			t.Fatal(err)
		}
		defer setup.Close()
		if err := setup.Migrate(ctx); err != nil {
			t.Fatal(err)
		}

		// Both schemas on the path, the first (current_schema()) empty.
		ds, err := mqdatasource.Open(e.Driver, withPath(first+","+second))
		if err != nil {
			t.Fatalf("Open with the table in the second schema of search_path: %v", err)
		}
		defer ds.Close()
		d := delivery("g", "search-path")
		if err := claimOnly(ds, d); err != nil {
			t.Fatal(err)
		}
		if n := e.QueryInt(t, "SELECT COUNT(*) FROM "+second+".transaction_record WHERE message_id = $1", d.MessageID()); n != 1 {
			t.Fatalf("%d records in %s, want 1", n, second)
		}
		if ok, err := ds.IsConsumed(ctx, d); err != nil || !ok {
			t.Fatalf("IsConsumed = %v, %v; want true", ok, err)
		}
		// Migrate uses that table: it must not shadow it with a new, empty
		// one in the first schema, where the next claims would land.
		if err := ds.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if n := e.QueryInt(t, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1", first); n != 0 {
			t.Fatalf("Migrate created %d tables in %s, want 0", n, first)
		}
		if err := claimOnly(ds, d); !errors.Is(err, mqdatasource.ErrAlreadyConsumed) {
			t.Fatalf("second delivery after Migrate: %v, want ErrAlreadyConsumed", err)
		}

		// Off the path, the table is missing, however current_schema() reads.
		_, err = mqdatasource.Open(e.Driver, withPath(first))
		var se *mqdatasource.SchemaError
		if !errors.As(err, &se) || !strings.Contains(se.Problem, "does not exist") {
			t.Fatalf("Open with the table off search_path: %v, want a SchemaError saying it does not exist", err)
		}
		return
	}
	t.Skip("POSTGRES_DSN not set")
}

// TestMigrateIsIdempotent: several Migrate calls at once, on a table that
// does not exist yet, race to create it; all succeed and one table results.
func TestMigrateIsIdempotent(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		table := dbtest.UniqueName(t, "tr")
		t.Cleanup(func() { e.Exec(t, "DROP TABLE IF EXISTS "+table) })
		const n = 6
		dss := make([]*mqdatasource.DataSource, n)
		for i := range dss {
			ds, err := mqdatasource.OpenConnector(connector(t, e, ""), mqdatasource.WithTable(table), mqdatasource.WithSchemaCheck(false))
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			if err := ds.DB().Ping(); err != nil { // connect before the race
				t.Fatal(err)
			}
			dss[i] = ds
		}
		if n := e.QueryInt(t, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = ?", table); n != 0 {
			t.Fatalf("%d tables named %s before Migrate, want 0", n, table)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, n)
		for i, ds := range dss {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = ds.Migrate(context.Background())
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Migrate %d: %v", i, err)
			}
		}
		if err := dss[0].CheckSchema(context.Background()); err != nil {
			t.Fatalf("CheckSchema after Migrate: %v", err)
		}
		if n := e.QueryInt(t, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = ?", table); n != 1 {
			t.Fatalf("%d tables named %s after Migrate, want 1", n, table)
		}
	})
}

func TestIsConsumedAndPurge(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		ctx := context.Background()
		const n = 25
		for i := range n {
			if _, err := f.deliver(t, "g", fmt.Sprintf("p-%d", i), 1); err != nil {
				t.Fatal(err)
			}
		}
		// Inside a delivery, IsConsumed neither joins nor claims it.
		res, err := mqdatasource.Deliver(ctx, delivery("g", "probe"), func(ctx context.Context) error {
			for _, tc := range []struct {
				d    mqdatasource.Delivery
				want bool
			}{
				{delivery("g", "p-0"), true},
				{delivery("other", "p-0"), false},
				{delivery("g", "P-0"), false}, // case-sensitive
				{delivery("g", "never"), false},
				{delivery("g", "probe"), false},
			} {
				got, err := f.ds.IsConsumed(ctx, tc.d)
				if err != nil || got != tc.want {
					t.Errorf("IsConsumed(%s) = %v, %v; want %v", tc.d.MessageID(), got, err, tc.want)
				}
			}
			return nil
		})
		wantResult(t, "delivery that only calls IsConsumed", res, err, mqdatasource.Unclaimed, nil)
		if got := f.records(t); got != n {
			t.Fatalf("%d records, want %d", got, n)
		}
		if got, err := f.ds.Purge(ctx, time.UnixMilli(0)); err != nil || got != 0 {
			t.Fatalf("Purge(epoch) = %d, %v; want 0", got, err)
		}
		// Several purgers at once, small chunks: every row deleted once.
		var total atomic.Int64
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := f.ds.Purge(ctx, time.Now().Add(time.Hour), mqdatasource.WithPurgeBatchSize(4))
				if err != nil {
					t.Errorf("Purge: %v", err)
				}
				total.Add(got)
			}()
		}
		wg.Wait()
		if got, left := total.Load(), f.records(t); got != n || left != 0 {
			t.Fatalf("purged %d, %d left; want %d and 0", got, left, n)
		}
		// A purged record no longer stops a duplicate.
		if applied, err := f.deliver(t, "g", "p-0", 1); err != nil || !applied {
			t.Fatalf("delivery after purge: applied=%v, %v", applied, err)
		}
	})
}

// TestDeadlockAbortsTransaction: two deliveries deadlock. The server has
// rolled the victim back; a later statement of the victim must not run
// (MySQL would run it in autocommit) and, although its handler ignores the
// errors and returns nil, Deliver fails with a retryable ErrTxAborted.
func TestDeadlockAbortsTransaction(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 3)
		type outcome struct {
			key               string
			res               mqdatasource.Result
			err               error
			stmtErr, afterErr error
		}
		locked := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
		out := make(chan outcome, 2)
		for i, key := range []string{"dl-a", "dl-b"} {
			go func() {
				o := outcome{key: key}
				o.res, o.err = f.ds.Deliver(context.Background(), delivery("g", key), func(ctx context.Context) error {
					if err := f.update(ctx, 1+i, 1); err != nil {
						return err
					}
					close(locked[i])
					<-locked[1-i]
					if o.stmtErr = f.update(ctx, 2-i, 1); o.stmtErr != nil {
						o.afterErr = f.update(ctx, 3, 100)
					}
					return nil // a handler that ignores its errors
				})
				out <- o
			}()
		}
		o1, o2 := <-out, <-out
		victim, survivor := o1, o2
		if o1.stmtErr == nil {
			victim, survivor = o2, o1
		}
		if victim.stmtErr == nil || survivor.stmtErr != nil {
			t.Fatalf("statement errors %v / %v, want exactly one deadlock", o1.stmtErr, o2.stmtErr)
		}
		if !mqdatasource.IsRetryable(victim.stmtErr) {
			t.Fatalf("deadlock error %v is not retryable", victim.stmtErr)
		}
		if !errors.Is(victim.afterErr, mqdatasource.ErrTxAborted) {
			t.Fatalf("statement after the deadlock: %v, want ErrTxAborted", victim.afterErr)
		}
		wantResult(t, "victim", victim.res, victim.err, mqdatasource.Failed, mqdatasource.ErrTxAborted)
		if !mqdatasource.IsRetryable(victim.err) {
			t.Fatalf("victim's Deliver error %v is not retryable", victim.err)
		}
		wantResult(t, "survivor", survivor.res, survivor.err, mqdatasource.Committed, nil)
		if b := f.balance(t, 3); b != 0 || f.hasRecord(t, delivery("g", victim.key)) {
			t.Fatalf("account 3 balance %d, victim record %v: a statement ran outside the aborted transaction", b, f.hasRecord(t, delivery("g", victim.key)))
		}
		// The redelivery applies the victim's message.
		if applied, err := f.deliver(t, "g", victim.key, 3); err != nil || !applied {
			t.Fatalf("redelivery: applied=%v err=%v", applied, err)
		}
		if b1, b2, b3 := f.balance(t, 1), f.balance(t, 2), f.balance(t, 3); b1+b2 != 2 || b3 != 1 {
			t.Fatalf("balances %d %d %d, want the survivor's two updates and one redelivered", b1, b2, b3)
		}
		if n := f.records(t); n != 2 {
			t.Fatalf("%d records, want 2", n)
		}
	})
}

// TestConnectionKilled: the server session of the delivery connection is
// killed from another session (through the same DataSource, outside the
// delivery) while the delivery runs: after a statement of the handler, or
// after its Commit call and before Deliver commits. Deliver fails with a
// retryable error even when the handler ignores its errors; the
// redelivery applies the message exactly once.
func TestConnectionKilled(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		for _, tc := range []struct {
			name     string
			stmtThen bool // a statement after the kill
		}{
			{"then a statement", true},
			{"after the handler's commit call", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, e, 1)
				bg := context.Background()
				var stmtErr error
				res, err := mqdatasource.Deliver(bg, delivery("g", "killed"), func(ctx context.Context) error {
					tx, err := f.ds.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					if _, err := tx.ExecContext(ctx, f.Rebind("UPDATE "+f.account+" SET balance = balance + 1 WHERE id = ?"), 1); err != nil {
						return err
					}
					id := sessionID(t, ctx, e, f.ds.DB())
					if tc.stmtThen {
						killSession(t, ctx, e, f.ds.DB(), id)
						_, stmtErr = tx.ExecContext(ctx, f.Rebind("UPDATE "+f.account+" SET balance = balance + 1 WHERE id = ?"), 1)
						_ = tx.Commit()
						return nil // ignores the error
					}
					if err := tx.Commit(); err != nil {
						return err
					}
					killSession(t, ctx, e, f.ds.DB(), id)
					return nil
				})
				if tc.stmtThen && (stmtErr == nil || !mqdatasource.IsRetryable(stmtErr)) {
					t.Fatalf("statement on the killed connection: %v, want a retryable error", stmtErr)
				}
				if res != mqdatasource.Failed || err == nil || !mqdatasource.IsRetryable(err) {
					t.Fatalf("Deliver: %v, %v; want failed, retryable", res, err)
				}
				t.Logf("statement: %v; Deliver: %v", stmtErr, err)
				if b, n := f.balance(t, 1), f.records(t); b != 0 || n != 0 {
					t.Fatalf("balance %d, %d records after the kill; want 0 and 0", b, n)
				}
				for i, want := range []bool{true, false} {
					if applied, err := f.deliver(t, "g", "killed", 1); err != nil || applied != want {
						t.Fatalf("redelivery %d: applied=%v err=%v, want %v", i+1, applied, err, want)
					}
				}
				if b, n := f.balance(t, 1), f.records(t); b != 1 || n != 1 {
					t.Fatalf("balance %d, %d records; want 1 and 1", b, n)
				}
			})
		}
	})
}

// TestConnectionLostAroundCommit: a proxy drops the delivery connection
// right when Deliver's COMMIT passes, before or after the server ran it.
// The client cannot know the outcome: Deliver fails with a retryable
// ErrCommitUnknown, and the redelivery applies the message only if the
// first commit did not land.
func TestConnectionLostAroundCommit(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		for _, tc := range []struct {
			name       string
			mode       cutMode
			redelivery bool // whether the redelivery applies
		}{
			{"before the server got COMMIT", cutBeforeCommit, true},
			{"after the server answered COMMIT", cutAfterResponse, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := newProxy(t, serverAddr(t, e))
				f := newFixtureVia(t, e, p.addr(), 1)
				res, err := mqdatasource.Deliver(context.Background(), delivery("g", "commit-cut"), func(ctx context.Context) error {
					if err := f.increment(ctx, 1); err != nil {
						return err
					}
					p.armCommitCut(tc.mode) // the handler's Commit is behind it
					return nil
				})
				<-p.cut
				wantResult(t, "Deliver", res, err, mqdatasource.Failed, mqdatasource.ErrCommitUnknown)
				if !mqdatasource.IsRetryable(err) {
					t.Fatalf("Deliver: %v is not retryable", err)
				}
				t.Logf("Deliver: %v", err)
				applied, err := f.deliver(t, "g", "commit-cut", 1)
				if err != nil || applied != tc.redelivery {
					t.Fatalf("redelivery: applied=%v err=%v, want applied=%v", applied, err, tc.redelivery)
				}
				if b := f.balance(t, 1); b != 1 {
					t.Fatalf("balance %d, want 1", b)
				}
				if n := f.records(t); n != 1 {
					t.Fatalf("%d records, want 1", n)
				}
			})
		}
	})
}

// TestSessionStateBetweenDeliveries: deliveries (committed, failed,
// duplicate) alternate with statements outside any delivery on a pool of
// one connection; delivery transactions run on delivery connections of
// their own (which on MySQL run with autocommit=0), so every statement
// outside a delivery is committed on its own at once (visible from another
// session), and the pool's session reports autocommit on.
func TestSessionStateBetweenDeliveries(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		f.ds.DB().SetMaxOpenConns(1)
		bg := context.Background()
		update := f.Rebind("UPDATE " + f.account + " SET balance = balance + 1 WHERE id = ?")
		outside := func(want int64) {
			t.Helper()
			if _, err := f.ds.DB().ExecContext(bg, update, 1); err != nil {
				t.Fatal(err)
			}
			if b := f.balance(t, 1); b != want {
				t.Fatalf("balance %d seen from another session, want %d: a statement outside a delivery was not committed", b, want)
			}
			if e.Name == "mysql" {
				var ac int
				if err := f.ds.DB().QueryRowContext(bg, "SELECT @@autocommit").Scan(&ac); err != nil || ac != 1 {
					t.Fatalf("@@autocommit = %d, %v; want 1", ac, err)
				}
			}
		}
		deliver := func(key string, fnErr error, want mqdatasource.Result) {
			t.Helper()
			res, err := mqdatasource.Deliver(bg, delivery("g", key), func(ctx context.Context) error {
				if err := f.increment(ctx, 1); err != nil {
					return err
				}
				return fnErr
			})
			if res != want || (want == mqdatasource.Failed) != (err != nil) {
				t.Fatalf("delivery %s: %v, %v; want %v", key, res, err, want)
			}
		}
		errFail := errors.New("handler failed")
		deliver("s1", nil, mqdatasource.Committed)
		outside(2)
		if err := f.increment(bg, 1); err != nil { // a transaction outside any delivery
			t.Fatal(err)
		}
		outside(4)
		deliver("s2", errFail, mqdatasource.Failed)
		outside(5)
		deliver("s1", nil, mqdatasource.Duplicate)
		outside(6)
		deliver("s3", nil, mqdatasource.Committed)
		deliver("s4", nil, mqdatasource.Committed)
		if err := f.increment(bg, 1); err != nil {
			t.Fatal(err)
		}
		outside(10)
		deliver("s5", nil, mqdatasource.Committed)
		deliver("s6", errFail, mqdatasource.Failed)
		deliver("s5", nil, mqdatasource.Duplicate)
		outside(12)
		if n := f.records(t); n != 4 {
			t.Fatalf("%d records, want 4", n)
		}
	})
}

// TestContextCancelledMidStatement: a statement of the delivery whose
// context (derived from fn's, a request timeout) ends while it waits for a
// lock: the driver may have cut it off mid-way, so the delivery's
// transaction is refused from then on, and Deliver fails, retryably, even
// though the handler ignores the error; the redelivery applies.
func TestContextCancelledMidStatement(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 2)
		bg := context.Background()
		// Another session holds account 1's row.
		holder, err := e.Admin.BeginTx(bg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Rollback()
		if _, err := holder.ExecContext(bg, e.Rebind("UPDATE "+f.account+" SET balance = balance WHERE id = ?"), 1); err != nil {
			t.Fatal(err)
		}
		var stmtErr, afterErr error
		res, err := mqdatasource.Deliver(bg, delivery("g", "cancelled"), func(ctx context.Context) error {
			if err := f.update(ctx, 2, 1); err != nil {
				return err
			}
			sctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				waitLockWaiter(t, e, f.account)
				cancel()
			}()
			stmtErr = f.update(sctx, 1, 1)
			<-done
			afterErr = f.update(ctx, 2, 1)
			return nil
		})
		if err := holder.Rollback(); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(stmtErr, context.Canceled) {
			t.Fatalf("cancelled statement: %v, want context.Canceled", stmtErr)
		}
		if afterErr == nil {
			t.Fatal("statement after the cancelled one ran")
		}
		if res != mqdatasource.Failed || !mqdatasource.IsRetryable(err) {
			t.Fatalf("Deliver: %v, %v; want failed, retryable", res, err)
		}
		t.Logf("after: %v; Deliver: %v", afterErr, err)
		if b1, b2, n := f.balance(t, 1), f.balance(t, 2), f.records(t); b1 != 0 || b2 != 0 || n != 0 {
			t.Fatalf("balances %d %d, %d records; want nothing committed", b1, b2, n)
		}
		if applied, err := f.deliver(t, "g", "cancelled", 1); err != nil || !applied {
			t.Fatalf("redelivery: applied=%v err=%v", applied, err)
		}
		if b, n := f.balance(t, 1), f.records(t); b != 1 || n != 1 {
			t.Fatalf("balance %d, %d records; want 1 and 1", b, n)
		}
	})
}

// TestLockTimeout: a lock wait timeout is retryable. MySQL (with the default
// innodb_rollback_on_timeout=OFF) fails only the statement, so the
// delivery goes on and commits; PostgreSQL aborts the transaction, so its
// next statement is refused and Deliver fails.
func TestLockTimeout(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 2)
		bg := context.Background()
		holding, release, holderDone := make(chan struct{}), make(chan struct{}), make(chan error, 1)
		go func() {
			res, err := f.ds.Deliver(bg, delivery("g", "holder"), func(ctx context.Context) error {
				if err := f.update(ctx, 1, 1); err != nil {
					return err
				}
				close(holding)
				<-release
				return nil
			})
			if res != mqdatasource.Committed {
				err = fmt.Errorf("holder: %v, %w", res, err)
			}
			holderDone <- err
		}()
		<-holding
		var timeoutErr, nextErr error
		res, err := f.ds.Deliver(bg, delivery("g", "waiter"), func(ctx context.Context) error {
			setTimeout := map[string]string{"mysql": "SET SESSION innodb_lock_wait_timeout = 1", "postgres": "SET LOCAL lock_timeout = '100ms'"}[e.Name]
			if _, err := f.ds.DB().ExecContext(ctx, setTimeout); err != nil {
				return err
			}
			timeoutErr = f.update(ctx, 1, 1)
			nextErr = f.update(ctx, 2, 1)
			if e.Name == "mysql" {
				// The delivery connection is reused: leave its session as found.
				if _, err := f.ds.DB().ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = DEFAULT"); err != nil {
					return err
				}
			}
			return nil
		})
		close(release)
		if err := <-holderDone; err != nil {
			t.Fatal(err)
		}
		if timeoutErr == nil || !mqdatasource.IsRetryable(timeoutErr) {
			t.Fatalf("update of a locked row: %v, want a retryable lock timeout", timeoutErr)
		}
		switch e.Name {
		case "mysql":
			if nextErr != nil {
				t.Fatalf("statement after 1205 (rollback_on_timeout OFF): %v", nextErr)
			}
			wantResult(t, "waiter", res, err, mqdatasource.Committed, nil)
		default:
			if !errors.Is(nextErr, mqdatasource.ErrTxAborted) {
				t.Fatalf("statement after 55P03: %v, want ErrTxAborted", nextErr)
			}
			wantResult(t, "waiter", res, err, mqdatasource.Failed, mqdatasource.ErrTxAborted)
		}
		wantB := map[string]int64{"mysql": 1, "postgres": 0}[e.Name]
		if b1, b2 := f.balance(t, 1), f.balance(t, 2); b1 != 1 || b2 != wantB {
			t.Fatalf("balances %d %d, want 1 %d", b1, b2, wantB)
		}
		if got := f.hasRecord(t, delivery("g", "waiter")); got != (wantB == 1) {
			t.Fatalf("waiter record %v", got)
		}
	})
}

// TestRecordColumns: the claim row holds the delivery as the Java client
// stores it (message_id = key#group, ctime in epoch milliseconds).
func TestRecordColumns(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		d := mqdatasource.Delivery{ConsumerGroup: "grp", Key: "7F0000010001B4AAC6DC3E4D0B2E0000", Topic: "price", BrokerName: "broker-b", QueueID: 7, QueueOffset: 1 << 40}
		before := time.Now().UnixMilli()
		res, err := mqdatasource.Deliver(context.Background(), d, func(ctx context.Context) error { return f.increment(ctx, 1) })
		wantResult(t, "Deliver", res, err, mqdatasource.Committed, nil)
		after := time.Now().UnixMilli()
		offset := map[string]string{"mysql": "`offset`", "postgres": `"offset"`}[e.Name]
		var (
			group, id, topic, broker string
			ctime, off               int64
			queue                    int
		)
		err = e.Admin.QueryRow("SELECT consumer_group, message_id, topic_name, ctime, queue_id, "+offset+", broker_name FROM "+f.table).
			Scan(&group, &id, &topic, &ctime, &queue, &off, &broker)
		if err != nil {
			t.Fatal(err)
		}
		if group != "grp" || id != "7F0000010001B4AAC6DC3E4D0B2E0000#grp" || topic != "price" || queue != 7 || off != 1<<40 || broker != "broker-b" {
			t.Errorf("record %q %q %q %d %d %q", group, id, topic, queue, off, broker)
		}
		if ctime < before || ctime > after {
			t.Errorf("ctime %d not in [%d, %d] (epoch milliseconds)", ctime, before, after)
		}
	})
}
