package mqdatasource_test

import (
	"context"
	"database/sql"
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

func TestRollbackLeavesNoRecord(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		d := delivery("g", "rolled-back")
		ctx := mqdatasource.WithDelivery(context.Background(), d)
		if mqdatasource.ClaimAttempted(ctx) {
			t.Fatal("ClaimAttempted before any transaction")
		}
		tx, err := f.ds.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, f.Rebind("UPDATE "+f.account+" SET balance = balance + 1 WHERE id = ?"), 1); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if mqdatasource.ClaimCommitted(ctx) || !mqdatasource.ClaimAttempted(ctx) {
			t.Fatalf("after rollback: ClaimCommitted %v, ClaimAttempted %v; want false, true",
				mqdatasource.ClaimCommitted(ctx), mqdatasource.ClaimAttempted(ctx))
		}
		if f.hasRecord(t, d) || f.balance(t, 1) != 0 {
			t.Fatalf("after rollback: record=%v balance=%d, want no record and 0", f.hasRecord(t, d), f.balance(t, 1))
		}
		// The handler may retry within the same delivery after a rollback.
		if err := f.increment(ctx, 1); err != nil {
			t.Fatalf("retry in the same delivery context: %v", err)
		}
		if !mqdatasource.ClaimCommitted(ctx) {
			t.Fatal("ClaimCommitted false after commit")
		}
		// A redelivery is then a duplicate.
		if applied, err := f.deliver(t, "g", "rolled-back", 1); err != nil || applied {
			t.Fatalf("redelivery: applied=%v err=%v, want a duplicate", applied, err)
		}
		if b := f.balance(t, 1); b != 1 || !f.hasRecord(t, d) {
			t.Fatalf("balance %d record %v, want 1 and a record", b, f.hasRecord(t, d))
		}
	})
}

func TestBusinessUniqueViolationIsNotDuplicate(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 2)
		e.Exec(t, "UPDATE "+f.account+" SET ref = 'taken' WHERE id = 1")
		d := delivery("g", "unique-violation")
		ctx := mqdatasource.WithDelivery(context.Background(), d)
		tx, err := f.ds.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tx.ExecContext(ctx, f.Rebind("UPDATE "+f.account+" SET ref = 'taken' WHERE id = ?"), 2)
		if err == nil {
			t.Fatal("business unique violation: no error")
		}
		if errors.Is(err, mqdatasource.ErrAlreadyConsumed) || mqdatasource.IsRetryable(err) {
			t.Fatalf("business unique violation classified as duplicate or retryable: %v", err)
		}
		_ = tx.Rollback()
		if f.hasRecord(t, d) {
			t.Fatal("record left after the rolled back transaction")
		}
		// The claim is free again: the delivery can be handled (differently).
		if err := f.increment(ctx, 2); err != nil {
			t.Fatal(err)
		}

		// PostgreSQL: the failed statement aborted the transaction, so a
		// Commit that ignores it commits nothing, claim included.
		if e.Name == "postgres" {
			d := delivery("g", "ignored-error")
			ctx := mqdatasource.WithDelivery(context.Background(), d)
			tx, err := f.ds.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, f.Rebind("UPDATE "+f.account+" SET ref = 'taken' WHERE id = ?"), 2); err == nil {
				t.Fatal("no error")
			}
			if err := tx.Commit(); err == nil || mqdatasource.ClaimCommitted(ctx) {
				t.Fatalf("Commit after a failed statement: %v, claim committed %v; want an error and no claim", err, mqdatasource.ClaimCommitted(ctx))
			}
			if f.hasRecord(t, d) {
				t.Fatal("record committed with a failed transaction")
			}
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

func TestDeliveryReused(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		ctx := mqdatasource.WithDelivery(context.Background(), delivery("g", "reused"))

		tx1, err := f.ds.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		// A second transaction while the first is open.
		if _, err := f.ds.BeginTx(ctx, nil); !errors.Is(err, mqdatasource.ErrDeliveryReused) || errors.Is(err, mqdatasource.ErrAlreadyConsumed) {
			t.Fatalf("second BeginTx while the first is open: %v, want ErrDeliveryReused", err)
		}
		if err := tx1.Commit(); err != nil {
			t.Fatal(err)
		}
		// And after it committed (GORM's per-write default transactions
		// would end up here).
		_, err = f.ds.BeginTx(ctx, nil)
		if !errors.Is(err, mqdatasource.ErrDeliveryReused) || errors.Is(err, mqdatasource.ErrAlreadyConsumed) {
			t.Fatalf("BeginTx after commit: %v, want ErrDeliveryReused", err)
		}
		// A fresh delivery of the same message is a duplicate, not misuse.
		_, err = f.ds.BeginTx(mqdatasource.WithDelivery(context.Background(), delivery("g", "reused")), nil)
		if !errors.Is(err, mqdatasource.ErrAlreadyConsumed) {
			t.Fatalf("redelivery: %v, want ErrAlreadyConsumed", err)
		}
	})
}

func TestStatementsOutsideTransaction(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		d := delivery("g", "outside")
		ctx := mqdatasource.WithDelivery(context.Background(), d)
		update := f.Rebind("UPDATE " + f.account + " SET balance = balance + 1 WHERE id = ?")

		if _, err := f.ds.DB().ExecContext(ctx, update, 1); !errors.Is(err, mqdatasource.ErrNoTransaction) {
			t.Fatalf("Exec outside a transaction: %v, want ErrNoTransaction", err)
		}
		stmt, err := f.ds.DB().PrepareContext(ctx, update)
		if err != nil {
			t.Fatal(err)
		}
		defer stmt.Close()
		if _, err := stmt.ExecContext(ctx, 1); !errors.Is(err, mqdatasource.ErrNoTransaction) {
			t.Fatalf("prepared Exec outside a transaction: %v, want ErrNoTransaction", err)
		}
		if b := f.balance(t, 1); b != 0 {
			t.Fatalf("balance %d after refused writes, want 0", b)
		}
		var n int
		if err := f.ds.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM "+f.account).Scan(&n); err != nil || n != 1 {
			t.Fatalf("Query outside a transaction: n=%d err=%v, want it to pass through", n, err)
		}
		if _, err := f.ds.DB().ExecContext(mqdatasource.WithoutDelivery(ctx), update, 1); err != nil {
			t.Fatalf("Exec with WithoutDelivery: %v", err)
		}
		if b := f.balance(t, 1); b != 1 || f.hasRecord(t, d) {
			t.Fatalf("balance %d record %v, want 1 and no record", b, f.hasRecord(t, d))
		}
	})
}

func TestInvalidDelivery(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		if err := f.ds.CheckSchema(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			d    mqdatasource.Delivery
		}{
			{"empty key", delivery("g", "")},
			{"empty group", delivery("", "k")},
			{"too long", delivery("g", strings.Repeat("k", mqdatasource.MaxMessageIDLen))},
			{"invalid utf8", delivery("g", "k\xff")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := mqdatasource.WithDelivery(context.Background(), tc.d)
				_, err := f.ds.BeginTx(ctx, nil)
				if !errors.Is(err, mqdatasource.ErrInvalidDelivery) {
					t.Fatalf("BeginTx: %v, want ErrInvalidDelivery", err)
				}
				if _, err := f.ds.IsConsumed(context.Background(), tc.d); !errors.Is(err, mqdatasource.ErrInvalidDelivery) {
					t.Fatalf("IsConsumed: %v, want ErrInvalidDelivery", err)
				}
			})
		}
		if n := f.records(t); n != 0 {
			t.Fatalf("%d records, want 0", n)
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
			if _, err := ds.BeginTx(mqdatasource.WithDelivery(context.Background(), d), nil); !errors.Is(err, mqdatasource.ErrInvalidDelivery) {
				t.Fatalf("BeginTx: %v, want ErrInvalidDelivery", err)
			}
			if _, err := ds.IsConsumed(context.Background(), d); !errors.Is(err, mqdatasource.ErrInvalidDelivery) {
				t.Fatalf("IsConsumed: %v, want ErrInvalidDelivery", err)
			}
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
		full := func(table string, ctime, unique string) string {
			return fmt.Sprintf("CREATE TABLE %s (%s, consumer_group varchar(255) NOT NULL, message_id varchar(255) NOT NULL %s, topic_name varchar(255) NOT NULL, ctime %s NOT NULL, queue_id int NOT NULL, %s bigint NOT NULL, broker_name varchar(255) NOT NULL)",
				table, idCol, unique, ctime, offset)
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
		tx, err := ds.BeginTx(mqdatasource.WithDelivery(ctx, d), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
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
		if _, err := ds.BeginTx(mqdatasource.WithDelivery(ctx, d), nil); !errors.Is(err, mqdatasource.ErrAlreadyConsumed) {
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
		for _, tc := range []struct {
			d    mqdatasource.Delivery
			want bool
		}{
			{delivery("g", "p-0"), true},
			{delivery("other", "p-0"), false},
			{delivery("g", "P-0"), false}, // case-sensitive
			{delivery("g", "never"), false},
		} {
			// A delivery in ctx must not matter.
			got, err := f.ds.IsConsumed(mqdatasource.WithDelivery(ctx, tc.d), tc.d)
			if err != nil || got != tc.want {
				t.Errorf("IsConsumed(%s) = %v, %v; want %v", tc.d.MessageID(), got, err, tc.want)
			}
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
	})
}

// TestDeadlockAbortsTransaction: after a deadlock the server has rolled
// the victim back; a later statement on it must not run (MySQL would run it
// in autocommit) and Commit must report ErrTxAborted.
func TestDeadlockAbortsTransaction(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 3)
		upd := f.Rebind("UPDATE " + f.account + " SET balance = balance + 1 WHERE id = ?")
		ctxA := mqdatasource.WithDelivery(context.Background(), delivery("g", "dl-a"))
		ctxB := mqdatasource.WithDelivery(context.Background(), delivery("g", "dl-b"))
		txA, err := f.ds.BeginTx(ctxA, nil)
		if err != nil {
			t.Fatal(err)
		}
		txB, err := f.ds.BeginTx(ctxB, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, txA, ctxA, upd, 1)
		mustExec(t, txB, ctxB, upd, 2)
		errA := make(chan error, 1)
		go func() {
			_, err := txA.ExecContext(ctxA, upd, 2)
			errA <- err
		}()
		_, errB := txB.ExecContext(ctxB, upd, 1)
		var victim *sql.Tx
		var vctx context.Context
		var vkey string
		var verr error
		if errB != nil {
			victim, vctx, vkey, verr = txB, ctxB, "dl-b", errB
			if err := <-errA; err != nil {
				t.Fatalf("both failed: %v / %v", err, errB)
			}
			if err := txA.Commit(); err != nil {
				t.Fatal(err)
			}
		} else {
			victim, vctx, vkey, verr = txA, ctxA, "dl-a", <-errA
			if verr == nil {
				t.Fatal("no deadlock")
			}
			if err := txB.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		if !mqdatasource.IsRetryable(verr) {
			t.Fatalf("deadlock error %v is not retryable", verr)
		}
		_, err = victim.ExecContext(vctx, f.Rebind("UPDATE "+f.account+" SET balance = balance + 100 WHERE id = ?"), 3)
		if !errors.Is(err, mqdatasource.ErrTxAborted) {
			t.Fatalf("statement after the deadlock: %v, want ErrTxAborted", err)
		}
		if err := victim.Commit(); !errors.Is(err, mqdatasource.ErrTxAborted) || !mqdatasource.IsRetryable(err) {
			t.Fatalf("Commit after the deadlock: %v, want retryable ErrTxAborted", err)
		}
		if b := f.balance(t, 3); b != 0 {
			t.Fatalf("account 3 balance %d: a statement ran outside the aborted transaction", b)
		}
		// The redelivery applies the victim's message.
		if applied, err := f.deliver(t, "g", vkey, 3); err != nil || !applied {
			t.Fatalf("redelivery: applied=%v err=%v", applied, err)
		}
		if b1, b2, b3 := f.balance(t, 1), f.balance(t, 2), f.balance(t, 3); b1+b2 != 2 || b3 != 1 {
			t.Fatalf("balances %d %d %d, want the survivor's two updates and one redelivered", b1, b2, b3)
		}
	})
}

func mustExec(t *testing.T, tx *sql.Tx, ctx context.Context, q string, args ...any) {
	t.Helper()
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestConnectionKilledMidTransaction: the server session is killed from
// another session while the transaction is open.
func TestConnectionKilledMidTransaction(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		ctx := mqdatasource.WithDelivery(context.Background(), delivery("g", "killed"))
		tx, err := f.ds.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, tx, ctx, f.Rebind("UPDATE "+f.account+" SET balance = balance + 1 WHERE id = ?"), 1)
		var id int64
		idQuery := map[string]string{"mysql": "SELECT CONNECTION_ID()", "postgres": "SELECT pg_backend_pid()"}[e.Name]
		if err := tx.QueryRowContext(ctx, idQuery).Scan(&id); err != nil {
			t.Fatal(err)
		}
		switch e.Name {
		case "mysql":
			e.Exec(t, fmt.Sprintf("KILL %d", id))
		default:
			var ok bool
			if err := e.Admin.QueryRow("SELECT pg_terminate_backend($1)", id).Scan(&ok); err != nil || !ok {
				t.Fatalf("pg_terminate_backend: %v %v", ok, err)
			}
		}
		_, err = tx.ExecContext(ctx, f.Rebind("UPDATE "+f.account+" SET balance = balance + 1 WHERE id = ?"), 1)
		if err == nil || !mqdatasource.IsRetryable(err) {
			t.Fatalf("statement on the killed connection: %v, want a retryable error", err)
		}
		cerr := tx.Commit()
		if cerr == nil || !mqdatasource.IsRetryable(cerr) {
			t.Fatalf("Commit on the killed connection: %v, want a retryable error", cerr)
		}
		t.Logf("statement: %v; commit: %v", err, cerr)
		if applied, err := f.deliver(t, "g", "killed", 1); err != nil || !applied {
			t.Fatalf("redelivery: applied=%v err=%v", applied, err)
		}
		if b := f.balance(t, 1); b != 1 {
			t.Fatalf("balance %d, want 1", b)
		}
	})
}

// TestConnectionLostAroundCommit: a proxy drops the connection right when
// COMMIT passes, before or after the server ran it. The client cannot know
// the outcome: Commit returns ErrCommitUnknown, and the redelivery applies
// the message only if the first commit did not land.
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
				ctx := mqdatasource.WithDelivery(context.Background(), delivery("g", "commit-cut"))
				tx, err := f.ds.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				mustExec(t, tx, ctx, f.Rebind("UPDATE "+f.account+" SET balance = balance + 1 WHERE id = ?"), 1)
				p.armCommitCut(tc.mode)
				err = tx.Commit()
				<-p.cut
				if !errors.Is(err, mqdatasource.ErrCommitUnknown) || !mqdatasource.IsRetryable(err) {
					t.Fatalf("Commit: %v, want retryable ErrCommitUnknown", err)
				}
				t.Logf("Commit: %v", err)
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

// TestSessionStateBetweenTransactions: on one pooled connection, claimed
// transactions (which MySQL begins without START TRANSACTION, see
// beginImplicit), plain transactions and statements outside any
// transaction alternate; every statement outside a transaction is committed
// on its own at once (visible from another session), and the session
// reports autocommit on.
func TestSessionStateBetweenTransactions(t *testing.T) {
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
				t.Fatalf("balance %d seen from another session, want %d: a statement outside a transaction was not committed", b, want)
			}
			if e.Name == "mysql" {
				var ac int
				if err := f.ds.DB().QueryRowContext(bg, "SELECT @@autocommit").Scan(&ac); err != nil || ac != 1 {
					t.Fatalf("@@autocommit = %d, %v; want 1", ac, err)
				}
			}
		}
		if err := f.increment(mqdatasource.WithDelivery(bg, delivery("g", "s1")), 1); err != nil {
			t.Fatal(err)
		}
		outside(2)
		if err := f.increment(bg, 1); err != nil { // plain transaction
			t.Fatal(err)
		}
		outside(4)
		ctx := mqdatasource.WithDelivery(bg, delivery("g", "s2"))
		tx, err := f.ds.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, tx, ctx, update, 1)
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		outside(5)
		// A duplicate leaves the session clean too.
		if err := f.increment(mqdatasource.WithDelivery(bg, delivery("g", "s1")), 1); !errors.Is(err, mqdatasource.ErrAlreadyConsumed) {
			t.Fatalf("duplicate: %v", err)
		}
		outside(6)
		// Claimed transactions back to back, then a plain one.
		for _, k := range []string{"s3", "s4"} {
			if err := f.increment(mqdatasource.WithDelivery(bg, delivery("g", k)), 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.increment(bg, 1); err != nil {
			t.Fatal(err)
		}
		outside(10)
		// A run of claims, the last rolled back, then a duplicate.
		for _, k := range []string{"s5", "s6"} {
			if err := f.increment(mqdatasource.WithDelivery(bg, delivery("g", k)), 1); err != nil {
				t.Fatal(err)
			}
		}
		ctx = mqdatasource.WithDelivery(bg, delivery("g", "s7"))
		tx, err = f.ds.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, tx, ctx, update, 1)
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if err := f.increment(mqdatasource.WithDelivery(bg, delivery("g", "s6")), 1); !errors.Is(err, mqdatasource.ErrAlreadyConsumed) {
			t.Fatalf("duplicate: %v", err)
		}
		outside(13)
		if n := f.records(t); n != 5 {
			t.Fatalf("%d records, want 5", n)
		}
	})
}

// TestContextCancelledMidTransaction: database/sql rolls back a transaction
// whose context ends; the claim goes with it (the redelivery is not blocked
// by a claim left open, and applies).
func TestContextCancelledMidTransaction(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		f.ds.DB().SetMaxOpenConns(1)
		// A claim first, so that on MySQL the next claim is begun without
		// START TRANSACTION (the implicit-transaction path).
		if _, err := f.deliver(t, "g", "before", 1); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(mqdatasource.WithDelivery(context.Background(), delivery("g", "cancelled")))
		tx, err := f.ds.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, tx, ctx, f.Rebind("UPDATE "+f.account+" SET balance = balance + 1 WHERE id = ?"), 1)
		cancel()
		if err := tx.Commit(); err == nil {
			t.Fatal("Commit after cancel succeeded")
		}
		if mqdatasource.ClaimCommitted(ctx) {
			t.Fatal("ClaimCommitted after cancel")
		}
		if applied, err := f.deliver(t, "g", "cancelled", 1); err != nil || !applied {
			t.Fatalf("redelivery: applied=%v err=%v", applied, err)
		}
		if b := f.balance(t, 1); b != 2 {
			t.Fatalf("balance %d, want 2", b)
		}
	})
}

// TestLockTimeout: a lock wait timeout is retryable. MySQL (with the default
// innodb_rollback_on_timeout=OFF) fails only the statement, so the
// transaction goes on; PostgreSQL aborts the transaction, so it is refused.
func TestLockTimeout(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 2)
		upd := f.Rebind("UPDATE " + f.account + " SET balance = balance + 1 WHERE id = ?")
		ctxA := mqdatasource.WithDelivery(context.Background(), delivery("g", "holder"))
		txA, err := f.ds.BeginTx(ctxA, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, txA, ctxA, upd, 1)

		ctxB := mqdatasource.WithDelivery(context.Background(), delivery("g", "waiter"))
		txB, err := f.ds.BeginTx(ctxB, nil)
		if err != nil {
			t.Fatal(err)
		}
		setTimeout := map[string]string{"mysql": "SET SESSION innodb_lock_wait_timeout = 1", "postgres": "SET LOCAL lock_timeout = '100ms'"}[e.Name]
		mustExec(t, txB, ctxB, setTimeout)
		_, err = txB.ExecContext(ctxB, upd, 1)
		if err == nil || !mqdatasource.IsRetryable(err) {
			t.Fatalf("update of a locked row: %v, want a retryable lock timeout", err)
		}
		_, err = txB.ExecContext(ctxB, upd, 2)
		switch e.Name {
		case "mysql":
			if err != nil {
				t.Fatalf("statement after 1205 (rollback_on_timeout OFF): %v", err)
			}
			mustExec(t, txB, ctxB, "SET SESSION innodb_lock_wait_timeout = DEFAULT")
			if err := txB.Commit(); err != nil {
				t.Fatal(err)
			}
		default:
			if !errors.Is(err, mqdatasource.ErrTxAborted) {
				t.Fatalf("statement after 55P03: %v, want ErrTxAborted", err)
			}
			if err := txB.Commit(); !errors.Is(err, mqdatasource.ErrTxAborted) {
				t.Fatalf("Commit after 55P03: %v, want ErrTxAborted", err)
			}
		}
		if err := txA.Commit(); err != nil {
			t.Fatal(err)
		}
		wantB := map[string]int64{"mysql": 1, "postgres": 0}[e.Name]
		if b := f.balance(t, 2); b != wantB {
			t.Fatalf("account 2 balance %d, want %d", b, wantB)
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
		if err := f.increment(mqdatasource.WithDelivery(context.Background(), d), 1); err != nil {
			t.Fatal(err)
		}
		after := time.Now().UnixMilli()
		offset := map[string]string{"mysql": "`offset`", "postgres": `"offset"`}[e.Name]
		var (
			group, id, topic, broker string
			ctime, off               int64
			queue                    int
		)
		err := e.Admin.QueryRow("SELECT consumer_group, message_id, topic_name, ctime, queue_id, "+offset+", broker_name FROM "+f.table).
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
