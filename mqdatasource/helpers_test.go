package mqdatasource_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// env is one real database the integration tests run against.
type env struct {
	name  string // "mysql" or "postgres"
	dsn   string
	admin *sql.DB // plain connection pool, not wrapped: for setup, checks, kills
}

// envs returns the databases configured in the environment (MYSQL_DSN,
// POSTGRES_DSN; scripts/testdb.sh sets both), skipping those that are not.
func envs(t *testing.T) []*env {
	t.Helper()
	var out []*env
	for _, e := range []struct{ name, variable, driver string }{
		{"mysql", "MYSQL_DSN", "mysql"},
		{"postgres", "POSTGRES_DSN", "pgx"},
	} {
		dsn := os.Getenv(e.variable)
		if dsn == "" {
			t.Logf("%s not set: skipping %s (run under scripts/testdb.sh)", e.variable, e.name)
			continue
		}
		admin, err := sql.Open(e.driver, dsn)
		if err != nil {
			t.Fatalf("open %s: %v", e.name, err)
		}
		t.Cleanup(func() { admin.Close() })
		out = append(out, &env{name: e.name, dsn: dsn, admin: admin})
	}
	if len(out) == 0 {
		t.Skip("no database configured: set MYSQL_DSN and/or POSTGRES_DSN, or run under scripts/testdb.sh")
	}
	return out
}

// forEachDB runs f as a subtest per configured database.
func forEachDB(t *testing.T, f func(t *testing.T, e *env)) {
	t.Helper()
	for _, e := range envs(t) {
		t.Run(e.name, func(t *testing.T) { f(t, e) })
	}
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// uniqueName returns a table name unique to this test run.
func uniqueName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	base := nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(base) > 30 {
		base = base[len(base)-30:]
	}
	return strings.Trim(prefix+"_"+base, "_") + "_" + hex.EncodeToString(b)
}

// rebind turns ? placeholders into the database's form.
func (e *env) rebind(q string) string {
	if e.name != "postgres" {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (e *env) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := e.admin.Exec(e.rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (e *env) queryInt(t *testing.T, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.admin.QueryRow(e.rebind(q), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func (e *env) driverName() string {
	if e.name == "postgres" {
		return "pgx"
	}
	return "mysql"
}

// connector returns a driver connector for the env, optionally through addr
// (a TCP proxy) instead of the server's own address.
func (e *env) connector(t *testing.T, addr string) driver.Connector {
	t.Helper()
	switch e.name {
	case "mysql":
		cfg, err := mysql.ParseDSN(e.dsn)
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
		cfg, err := pgx.ParseConfig(e.dsn)
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

// serverAddr returns host:port of the env's server.
func (e *env) serverAddr(t *testing.T) string {
	t.Helper()
	switch e.name {
	case "mysql":
		cfg, err := mysql.ParseDSN(e.dsn)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Addr
	default:
		cfg, err := pgx.ParseConfig(e.dsn)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	}
}

// fixture is a migrated claim table and an account table on one env.
type fixture struct {
	*env
	ds      *mqdatasource.DataSource
	table   string // claim table
	account string // business table: id, balance
}

// newFixture creates a claim table (through Migrate) and an account table
// with rows 1..accounts at balance 0, and opens a DataSource on them. The
// tables are dropped when the test ends.
func newFixture(t *testing.T, e *env, accounts int, opts ...mqdatasource.Option) *fixture {
	t.Helper()
	return newFixtureVia(t, e, "", accounts, opts...)
}

func newFixtureVia(t *testing.T, e *env, addr string, accounts int, opts ...mqdatasource.Option) *fixture {
	t.Helper()
	f := &fixture{env: e, table: uniqueName(t, "tr"), account: uniqueName(t, "acct")}
	opts = append([]mqdatasource.Option{mqdatasource.WithTable(f.table), mqdatasource.WithSchemaCheck(false)}, opts...)
	ds, err := mqdatasource.OpenConnector(e.connector(t, addr), opts...)
	if err != nil {
		t.Fatalf("OpenConnector: %v", err)
	}
	f.ds = ds
	t.Cleanup(func() {
		ds.Close()
		e.exec(t, "DROP TABLE IF EXISTS "+f.table)
		e.exec(t, "DROP TABLE IF EXISTS "+f.account)
	})
	if err := ds.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	e.exec(t, "CREATE TABLE "+f.account+" (id int PRIMARY KEY, balance int NOT NULL, ref varchar(64) UNIQUE)")
	for i := 1; i <= accounts; i++ {
		e.exec(t, "INSERT INTO "+f.account+" (id, balance) VALUES (?, 0)", i)
	}
	return f
}

func (f *fixture) balance(t *testing.T, id int) int64 {
	t.Helper()
	return f.queryInt(t, "SELECT balance FROM "+f.account+" WHERE id = ?", id)
}

func (f *fixture) records(t *testing.T) int64 {
	t.Helper()
	return f.queryInt(t, "SELECT COUNT(*) FROM "+f.table)
}

func (f *fixture) hasRecord(t *testing.T, d mqdatasource.Delivery) bool {
	t.Helper()
	return f.queryInt(t, "SELECT COUNT(*) FROM "+f.table+" WHERE message_id = ?", d.MessageID()) == 1
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
	if _, err := tx.ExecContext(ctx, f.rebind("UPDATE "+f.account+" SET balance = balance + 1 WHERE id = ?"), id); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// deliver runs increment for one delivery of (group, key) the way a
// consumer would: retry retryable errors as a redelivery (a fresh delivery
// context), stop at success or ErrAlreadyConsumed. It reports whether this
// call applied the message.
func (f *fixture) deliver(t *testing.T, group, key string, id int) (applied bool, err error) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		ctx := mqdatasource.WithDelivery(context.Background(), delivery(group, key))
		err := f.increment(ctx, id)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, mqdatasource.ErrAlreadyConsumed):
			return false, nil
		case mqdatasource.IsRetryable(err) && attempt < 100:
			continue
		default:
			return false, err
		}
	}
}
