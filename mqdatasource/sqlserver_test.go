package mqdatasource_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	_ "github.com/microsoft/go-mssqldb"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// TestSQLServer runs the claim against a real SQL Server when MSSQL_DSN is
// set (e.g. sqlserver://sa:pass@localhost:1433?database=test); no server
// can run where the tests are developed, so it is skipped otherwise.
func TestSQLServer(t *testing.T) {
	dsn := os.Getenv("MSSQL_DSN")
	if dsn == "" {
		t.Skip("MSSQL_DSN not set: skipping the SQL Server integration test")
	}
	ctx := context.Background()
	admin, err := sql.Open("sqlserver", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	table, account := dbtest.UniqueName(t, "tr"), dbtest.UniqueName(t, "acct")
	ds, err := mqdatasource.Open("sqlserver", dsn, mqdatasource.WithTable(table), mqdatasource.WithSchemaCheck(false))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if ds.Dialect().Name() != "sqlserver" {
		t.Fatalf("dialect %s", ds.Dialect().Name())
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP TABLE IF EXISTS " + table)
		_, _ = admin.Exec("DROP TABLE IF EXISTS " + account)
	})
	if err := ds.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if err := ds.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if err := ds.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema of the migrated table: %v", err)
	}
	if _, err := admin.Exec("CREATE TABLE " + account + " (id int PRIMARY KEY, balance int NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	const messages = 5
	for i := 1; i <= messages; i++ {
		if _, err := admin.Exec("INSERT INTO "+account+" (id, balance) VALUES (@p1, 0)", i); err != nil {
			t.Fatal(err)
		}
	}
	increment := func(ctx context.Context, id int) error {
		tx, err := ds.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE "+account+" SET balance = balance + 1 WHERE id = @p1", id); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	deliver := func(key string, id int) (bool, error) {
		return redeliver(ctx, "g", key, func(ctx context.Context) error { return increment(ctx, id) })
	}

	// Rollback leaves no record.
	errFail := errors.New("handler failed")
	res, err := ds.Deliver(ctx, delivery("g", "rolled-back"), func(ctx context.Context) error {
		if err := increment(ctx, 1); err != nil {
			return err
		}
		return errFail
	})
	if res != mqdatasource.Failed || !errors.Is(err, errFail) {
		t.Fatalf("failing delivery: %v, %v; want failed with the handler's error", res, err)
	}
	if ok, err := ds.IsConsumed(ctx, delivery("g", "rolled-back")); err != nil || ok {
		t.Fatalf("IsConsumed after rollback = %v, %v", ok, err)
	}

	// Concurrent deliveries apply once.
	var mu sync.Mutex
	applied := map[int]int{}
	var wg sync.WaitGroup
	for m := 1; m <= messages; m++ {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := deliver(fmt.Sprintf("msg-%d", m), m)
				if err != nil {
					t.Errorf("deliver: %v", err)
				}
				if ok {
					mu.Lock()
					applied[m]++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for m := 1; m <= messages; m++ {
		var b int
		if err := admin.QueryRow("SELECT balance FROM "+account+" WHERE id = @p1", m).Scan(&b); err != nil {
			t.Fatal(err)
		}
		if b != 1 || applied[m] != 1 {
			t.Errorf("message %d: balance %d, applied %d times; want 1", m, b, applied[m])
		}
	}
	if ok, err := ds.IsConsumed(ctx, delivery("g", "msg-1")); err != nil || !ok {
		t.Fatalf("IsConsumed = %v, %v; want true", ok, err)
	}
	if n, err := ds.Purge(ctx, time.Now().Add(time.Hour), mqdatasource.WithPurgeBatchSize(2)); err != nil || n != messages {
		t.Fatalf("Purge = %d, %v; want %d", n, err, messages)
	}
}
