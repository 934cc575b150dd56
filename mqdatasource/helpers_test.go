package mqdatasource_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// connector returns a driver connector for e, optionally through addr (a
// TCP proxy) instead of the server's own address.
func connector(t *testing.T, e *dbtest.Env, addr string) driver.Connector {
	t.Helper()
	switch e.Name {
	case "mysql":
		cfg, err := mysql.ParseDSN(e.DSN)
		if err != nil {
			t.Fatal(err)
		}
		if addr != "" {
			cfg.Addr = addr
		}
		c, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	default:
		cfg, err := pgx.ParseConfig(e.DSN)
		if err != nil {
			t.Fatal(err)
		}
		if addr != "" {
			host, port, _ := strings.Cut(addr, ":")
			var p int
			fmt.Sscan(port, &p)
			cfg.Host, cfg.Port = host, uint16(p)
		}
		return stdlib.GetConnector(*cfg)
	}
}

// serverAddr returns host:port of e's server.
func serverAddr(t *testing.T, e *dbtest.Env) string {
	t.Helper()
	switch e.Name {
	case "mysql":
		cfg, err := mysql.ParseDSN(e.DSN)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Addr
	default:
		cfg, err := pgx.ParseConfig(e.DSN)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	}
}

// fixture is a migrated claim table and an account table on one database.
type fixture struct {
	*dbtest.Env
	ds      *mqdatasource.DataSource
	table   string // claim table
	account string // business table: id, balance
}

// newFixture creates a claim table (through Migrate) and an account table
// with rows 1..accounts at balance 0, and opens a DataSource on them. The
// tables are dropped when the test ends.
func newFixture(t *testing.T, e *dbtest.Env, accounts int, opts ...mqdatasource.Option) *fixture {
	t.Helper()
	return newFixtureVia(t, e, "", accounts, opts...)
}

func newFixtureVia(t *testing.T, e *dbtest.Env, addr string, accounts int, opts ...mqdatasource.Option) *fixture {
	t.Helper()
	f := &fixture{Env: e, table: dbtest.UniqueName(t, "tr"), account: dbtest.UniqueName(t, "acct")}
	opts = append([]mqdatasource.Option{mqdatasource.WithTable(f.table), mqdatasource.WithSchemaCheck(false)}, opts...)
	ds, err := mqdatasource.OpenConnector(connector(t, e, addr), opts...)
	if err != nil {
		t.Fatalf("OpenConnector: %v", err)
	}
	f.ds = ds
	t.Cleanup(func() {
		ds.Close()
		e.Exec(t, "DROP TABLE IF EXISTS "+f.table)
		e.Exec(t, "DROP TABLE IF EXISTS "+f.account)
	})
	if err := ds.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	e.Exec(t, "CREATE TABLE "+f.account+" (id int PRIMARY KEY, balance int NOT NULL, ref varchar(64) UNIQUE)")
	for i := 1; i <= accounts; i++ {
		e.Exec(t, "INSERT INTO "+f.account+" (id, balance) VALUES (?, 0)", i)
	}
	return f
}

func (f *fixture) balance(t *testing.T, id int) int64 {
	t.Helper()
	return f.QueryInt(t, "SELECT balance FROM "+f.account+" WHERE id = ?", id)
}

func (f *fixture) records(t *testing.T) int64 {
	t.Helper()
	return f.QueryInt(t, "SELECT COUNT(*) FROM "+f.table)
}

func (f *fixture) hasRecord(t *testing.T, d mqdatasource.Delivery) bool {
	t.Helper()
	return f.QueryInt(t, "SELECT COUNT(*) FROM "+f.table+" WHERE message_id = ?", d.MessageID()) == 1
}

// claimOnly delivers d with nothing but the claim: Committed, or Duplicate
// as ErrAlreadyConsumed.
func claimOnly(ds *mqdatasource.DataSource, d mqdatasource.Delivery) error {
	res, err := ds.Deliver(context.Background(), d, func(context.Context) error { return nil })
	if res == mqdatasource.Duplicate {
		return fmt.Errorf("%w: message id %q", mqdatasource.ErrAlreadyConsumed, d.MessageID())
	}
	return err
}

// delivery returns a delivery of message key to group.
func delivery(group, key string) mqdatasource.Delivery {
	return mqdatasource.Delivery{ConsumerGroup: group, Key: key, Topic: "T", BrokerName: "broker-a", QueueID: 1, QueueOffset: 42}
}

// increment is the non-idempotent handler: one transaction with the claim
// (from ctx) and balance = balance + 1.
func (f *fixture) increment(ctx context.Context, id int) error {
	tx, err := f.ds.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, f.Rebind("UPDATE "+f.account+" SET balance = balance + 1 WHERE id = ?"), id); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// deliver runs increment for one delivery of (group, key) the way a
// consumer would (see redeliver). It reports whether this call applied the
// message.
func (f *fixture) deliver(t *testing.T, group, key string, id int) (applied bool, err error) {
	t.Helper()
	return redeliver(context.Background(), group, key, func(ctx context.Context) error { return f.increment(ctx, id) })
}

// redeliver runs apply as one delivery of (group, key) the way a consumer
// would: retry retryable errors as a redelivery (a new Deliver), stop at
// Committed or Duplicate. It reports whether this call applied the
// message.
func redeliver(ctx context.Context, group, key string, apply func(ctx context.Context) error) (applied bool, err error) {
	for attempt := 0; ; attempt++ {
		res, err := mqdatasource.Deliver(ctx, delivery(group, key), apply)
		switch {
		case res == mqdatasource.Committed:
			return true, nil
		case res == mqdatasource.Duplicate:
			return false, nil
		case err == nil:
			return false, fmt.Errorf("delivery ended %v", res)
		case mqdatasource.IsRetryable(err) && attempt < 100:
			continue
		default:
			return false, err
		}
	}
}

// update adds delta to account id's balance with ctx, through the pool
// (and so through the delivery's transaction when ctx carries one).
func (f *fixture) update(ctx context.Context, id, delta int) error {
	_, err := f.ds.DB().ExecContext(ctx, f.Rebind("UPDATE "+f.account+" SET balance = balance + ? WHERE id = ?"), delta, id)
	return err
}

// wantResult fails the test unless Deliver returned want and an error
// matching wantErr (nil: no error).
func wantResult(t *testing.T, what string, res mqdatasource.Result, err error, want mqdatasource.Result, wantErr error) {
	t.Helper()
	if res != want || (wantErr == nil) != (err == nil) || (wantErr != nil && !errors.Is(err, wantErr)) {
		t.Fatalf("%s: %v, %v; want %v, %v", what, res, err, want, wantErr)
	}
}

// sessionID returns the server's id of the connection that runs ctx's
// statements (the delivery connection inside a delivery).
func sessionID(t *testing.T, ctx context.Context, e *dbtest.Env, db *sql.DB) int64 {
	t.Helper()
	q := map[string]string{"mysql": "SELECT CONNECTION_ID()", "postgres": "SELECT pg_backend_pid()"}[e.Name]
	var id int64
	if err := db.QueryRowContext(ctx, q).Scan(&id); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return id
}

// killSession ends the server session id from a connection of db's pool
// outside any delivery (KILL CONNECTION, pg_terminate_backend).
func killSession(t *testing.T, ctx context.Context, e *dbtest.Env, db *sql.DB, id int64) {
	t.Helper()
	ctx = mqdatasource.WithoutDelivery(ctx)
	switch e.Name {
	case "mysql":
		if _, err := db.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)); err != nil {
			t.Fatalf("KILL CONNECTION %d: %v", id, err)
		}
	default:
		var ok bool
		if err := db.QueryRowContext(ctx, "SELECT pg_terminate_backend($1)", id).Scan(&ok); err != nil || !ok {
			t.Fatalf("pg_terminate_backend(%d): %v, %v", id, ok, err)
		}
	}
}

// waitLockWaiter returns once some other session waits for a lock in a
// statement that mentions table. It polls the server's catalog: the wait
// is for a state, not for a time. On MariaDB it looks for the statement in
// the process list rather than for a LOCK WAIT in innodb_trx, which MariaDB
// 10.11 may not show for tens of seconds; a one-row statement still running
// while another session holds its row is the waiter. On a timeout it
// reports an error and returns, so that callers release the lock holder
// and the test ends instead of hanging in its cleanup; it is safe to call
// from a goroutine.
func waitLockWaiter(t *testing.T, e *dbtest.Env, table string) {
	t.Helper()
	q := map[string]string{
		"mysql":    "SELECT COUNT(*) FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND info LIKE ?",
		"postgres": "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE ?",
	}[e.Name]
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := e.Admin.QueryRow(e.Rebind(q), "%"+table+"%").Scan(&n); err != nil {
			t.Errorf("waiting for a lock waiter on %s: %v", table, err)
			return
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("no session waits for a lock on %s after 30s", table)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
