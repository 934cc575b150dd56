package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"   // also registers the "mysql" driver
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/jmoiron/sqlx"

	// What mqdatasource needs to know about these drivers, for every test
	// that opens a DataSource on them.
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mysqldriver"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/pgxdriver"
)

// Env is one real database the tests run against.
type Env struct {
	Name   string  // "mysql" or "postgres", as mqdatasource.Dialect.Name says
	Driver string  // the database/sql driver name: "mysql" or "pgx"
	DSN    string  // the data source name, in the driver's form
	Admin  *sql.DB // a plain pool, not wrapped: for set-up, checks and kills
}

// Envs returns the databases configured in the environment (MYSQL_DSN,
// POSTGRES_DSN; scripts/testdb.sh sets both), logging those that are not,
// and skips the test when there is none. Their Admin pools are closed when
// the test ends.
func Envs(t testing.TB) []*Env {
	t.Helper()
	var out []*Env
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
		out = append(out, &Env{Name: e.name, Driver: e.driver, DSN: dsn, Admin: admin})
	}
	if len(out) == 0 {
		t.Skip("no database configured: set MYSQL_DSN and/or POSTGRES_DSN, or run under scripts/testdb.sh")
	}
	return out
}

// ForEach runs f as a subtest, named after the database, per configured
// database (see Envs).
func ForEach(t *testing.T, f func(t *testing.T, e *Env)) {
	t.Helper()
	for _, e := range Envs(t) {
		t.Run(e.Name, func(t *testing.T) { f(t, e) })
	}
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// UniqueName returns a table name unique to this run of the test: prefix,
// the end of the test's name and a random suffix, short enough for the
// names the schema derives from it.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	base := nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(base) > 24 {
		base = base[len(base)-24:]
	}
	return strings.Trim(prefix+"_"+base, "_") + "_" + hex.EncodeToString(b)
}

// Rebind turns the ? placeholders of q into the database's form.
func (e *Env) Rebind(q string) string { return sqlx.Rebind(sqlx.BindType(e.Name), q) }

// Exec runs q (with ? placeholders) on Admin and fails the test on an error.
func (e *Env) Exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if _, err := e.Admin.Exec(e.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// QueryInt runs q (with ? placeholders) on Admin and returns the integer it
// selects, failing the test on an error.
func (e *Env) QueryInt(t testing.TB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.Admin.QueryRow(e.Rebind(q), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// CreateClaimTable creates a claim table named table by hand, with the
// columns of the migration but message_id declared as messageID (e.g.
// "varchar(100) NOT NULL UNIQUE"), and drops it when the test ends: for
// tests of tables that differ from the migration's. On MySQL the table's
// default character set is utf8mb4, as in the migration (the test
// server's default may be latin1, which the schema check refuses for
// message_id); a CHARACTER SET in messageID overrides it.
func (e *Env) CreateClaimTable(t testing.TB, table, messageID string) {
	t.Helper()
	offset := map[string]string{"mysql": "`offset`", "postgres": `"offset"`}[e.Name]
	id := map[string]string{"mysql": "id bigint AUTO_INCREMENT PRIMARY KEY", "postgres": "id bigserial PRIMARY KEY"}[e.Name]
	options := map[string]string{"mysql": " DEFAULT CHARSET = utf8mb4"}[e.Name]
	e.Exec(t, "CREATE TABLE "+table+" ("+id+", consumer_group varchar(255) NOT NULL, message_id "+messageID+
		", topic_name varchar(255) NOT NULL, ctime bigint NOT NULL, queue_id int NOT NULL, "+offset+" bigint NOT NULL, broker_name varchar(255) NOT NULL)"+options)
	t.Cleanup(func() { e.Exec(t, "DROP TABLE IF EXISTS "+table) })
}

// NewDatabase creates a database of its own for the test on e's server,
// named after prefix with a random suffix, drops it when the test ends, and
// returns a DSN for it in e.Driver's form: for programs that create their
// own tables under fixed names.
func (e *Env) NewDatabase(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := prefix + "_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.Admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := "DROP DATABASE " + name
		if e.Name == "postgres" {
			q += " WITH (FORCE)" // the program's pool may still hold connections
		}
		if _, err := e.Admin.ExecContext(ctx, q); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	if e.Name == "postgres" {
		u, err := url.Parse(e.DSN)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + name
		return u.String()
	}
	cfg, err := mysql.ParseDSN(e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = name
	return cfg.FormatDSN()
}

// FreeAddr returns a loopback address where nothing listens (yet), for
// tests of a server that is absent or starts late.
func FreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
