package mqdatasource_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// countRetries returns a logger that counts OpenContext's retry records.
func countRetries(n *atomic.Int32) *slog.Logger {
	return slog.New(countHandler{n})
}

type countHandler struct{ n *atomic.Int32 }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "retrying") {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// TestOpenContextWaitsForServer: OpenConnectorContext on an address where
// nothing listens retries until a server appears there (a proxy to the real
// one, started 700 ms later), then opens and checks the table.
func TestOpenContextWaitsForServer(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 0)
		addr := dbtest.FreeAddr(t)
		listening := make(chan error, 1)
		timer := time.AfterFunc(700*time.Millisecond, func() {
			ln, err := net.Listen("tcp", addr)
			if err == nil {
				p := &proxy{ln: ln, target: serverAddr(t, e), cut: make(chan struct{})}
				go p.serve()
				t.Cleanup(p.close)
			}
			listening <- err
		})
		defer timer.Stop()

		var retries atomic.Int32
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		ds, err := mqdatasource.OpenConnectorContext(ctx, connector(t, e, addr),
			mqdatasource.WithTable(f.table), mqdatasource.WithLogger(countRetries(&retries)))
		if lerr := <-listening; lerr != nil {
			t.Fatalf("listen on %s: %v", addr, lerr)
		}
		if err != nil {
			t.Fatalf("OpenConnectorContext: %v", err)
		}
		defer ds.Close()
		t.Logf("opened after %v and %d retries", time.Since(start).Round(time.Millisecond), retries.Load())
		if retries.Load() == 0 {
			t.Error("no retry logged before the server appeared")
		}
		if err := claimOnly(ds, delivery("g", "k")); err != nil {
			t.Fatalf("claim through the reopened DataSource: %v", err)
		}
	})
}

// TestOpenContextGivesUp: with nothing listening, OpenContext retries until
// its context ends and then fails, naming the deadline and the last
// (connection) error.
func TestOpenContextGivesUp(t *testing.T) {
	for _, tc := range []struct{ driver, dsn string }{
		{"mysql", "u@tcp(" + dbtest.FreeAddr(t) + ")/db"},
		{"pgx", "postgres://u@" + dbtest.FreeAddr(t) + "/db"},
	} {
		t.Run(tc.driver, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
			defer cancel()
			var retries atomic.Int32
			_, err := mqdatasource.OpenContext(ctx, tc.driver, tc.dsn, mqdatasource.WithLogger(countRetries(&retries)))
			var ne net.Error
			if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) {
				t.Fatalf("%v: want it to wrap the deadline and a net.Error", err)
			}
			// The last attempt is refused, or cut by the deadline on a
			// loaded machine.
			if msg := err.Error(); !strings.Contains(msg, "gave up after") ||
				!(strings.Contains(msg, "connection refused") || strings.Contains(msg, "i/o timeout")) {
				t.Errorf("%q does not say it gave up on a refused connection", err)
			}
			if retries.Load() < 2 {
				t.Errorf("%d retries in 800 ms, want at least 2 (0.1 s, 0.2 s, 0.4 s)", retries.Load())
			}
		})
	}
}

// TestOpenContextPermanentErrors: errors that waiting does not cure fail at
// once, without a retry: a malformed DSN, an unknown user, an unknown
// database, a missing table.
func TestOpenContextPermanentErrors(t *testing.T) {
	t.Run("malformed DSN", func(t *testing.T) {
		for _, tc := range []struct{ driver, dsn string }{
			{"mysql", "u@tcp(127.0.0.1:3306/db"},
			{"pgx", "postgres://u@127.0.0.1:5432/db?sslmode=bogus"},
		} {
			start := time.Now()
			_, err := mqdatasource.OpenContext(context.Background(), tc.driver, tc.dsn)
			if err == nil || time.Since(start) > time.Second {
				t.Errorf("%s %q: %v after %v, want an error at once", tc.driver, tc.dsn, err, time.Since(start))
			}
		}
	})
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 0)
		for _, tc := range []struct {
			name  string
			dsn   func() string
			table string
		}{
			{"authentication failure", func() string { return withBadLogin(t, e) }, f.table},
			{"unknown database", func() string { return withDatabase(t, e, "eo_no_such_db") }, f.table},
			{"missing table", func() string { return e.DSN }, dbtest.UniqueName(t, "missing")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var retries atomic.Int32
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				start := time.Now()
				_, err := mqdatasource.OpenContext(ctx, e.Driver, tc.dsn(), mqdatasource.WithTable(tc.table),
					mqdatasource.WithLogger(countRetries(&retries)))
				if err == nil && tc.name == "authentication failure" && e.Name == "mysql" {
					// TestIsTransient covers MySQL's 1045 instead.
					t.Skip("the server let a wrong password in: it does not check grants")
				}
				if err == nil {
					t.Fatal("opened")
				}
				t.Logf("%v after %v", err, time.Since(start).Round(time.Millisecond))
				if retries.Load() != 0 || strings.Contains(err.Error(), "gave up") || mqdatasource.IsTransient(err) {
					t.Errorf("%v: retried %d times, want a permanent error at once", err, retries.Load())
				}
				if tc.name == "missing table" && !errors.Is(err, mqdatasource.ErrSchema) {
					t.Errorf("%v: want ErrSchema", err)
				}
			})
		}
	})
}

// withBadLogin returns e's DSN with a login the server refuses: a wrong
// password for MariaDB (the throwaway server accepts any user name without
// one), a role that does not exist for PostgreSQL (whose throwaway server
// trusts every password).
func withBadLogin(t *testing.T, e *dbtest.Env) string {
	t.Helper()
	if e.Name == "mysql" {
		cfg, err := mysql.ParseDSN(e.DSN)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Passwd = "eo-wrong-password"
		return cfg.FormatDSN()
	}
	cfg, err := pgx.ParseConfig(e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User = "eo_no_such_user"
	return stdlib.RegisterConnConfig(cfg)
}

// withDatabase returns e's DSN with another database.
func withDatabase(t *testing.T, e *dbtest.Env, db string) string {
	t.Helper()
	if e.Name == "mysql" {
		cfg, err := mysql.ParseDSN(e.DSN)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DBName = db
		return cfg.FormatDSN()
	}
	cfg, err := pgx.ParseConfig(e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = db
	return stdlib.RegisterConnConfig(cfg)
}

// TestIsTransient classifies errors that the servers above cannot produce
// on demand.
func TestIsTransient(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{"DNS", &net.DNSError{Err: "no such host", Name: "db", IsNotFound: true}, true},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, true},
		{"PostgreSQL starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"PostgreSQL auth", &pgconn.PgError{Code: "28P01"}, false},
		{"MySQL access denied", &mysql.MySQLError{Number: 1045}, false},
		{"MySQL unknown database", &mysql.MySQLError{Number: 1049}, false},
		{"schema", &mqdatasource.SchemaError{Table: "t", Problem: "table does not exist"}, false},
		{"deadline", context.DeadlineExceeded, false},
		{"nil", nil, false},
	} {
		if got := mqdatasource.IsTransient(tc.err); got != tc.want {
			t.Errorf("%s: IsTransient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
