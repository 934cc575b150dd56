package exactlyonce

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// dbEnv is one real database (MYSQL_DSN, POSTGRES_DSN; scripts/testdb.sh
// sets both).
type dbEnv struct {
	name, driver, dsn string
	admin             *sql.DB
}

func dbEnvs(t *testing.T) []*dbEnv {
	t.Helper()
	var out []*dbEnv
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
		out = append(out, &dbEnv{name: e.name, driver: e.driver, dsn: dsn, admin: admin})
	}
	if len(out) == 0 {
		t.Skip("no database configured: set MYSQL_DSN and/or POSTGRES_DSN, or run under scripts/testdb.sh")
	}
	return out
}

func forEachDB(t *testing.T, f func(t *testing.T, e *dbEnv)) {
	t.Helper()
	for _, e := range dbEnvs(t) {
		t.Run(e.name, func(t *testing.T) { f(t, e) })
	}
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

func uniqueName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	base := nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(base) > 24 {
		base = base[len(base)-24:]
	}
	return strings.Trim(prefix+"_"+base, "_") + "_" + hex.EncodeToString(b)
}

func (e *dbEnv) rebind(q string) string {
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

func (e *dbEnv) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := e.admin.Exec(e.rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (e *dbEnv) queryInt(t *testing.T, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.admin.QueryRow(e.rebind(q), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// fixture is a migrated record table, an "applied" business table with one
// row per application of a message (no unique key: applying twice shows),
// and a DataSource on them, all removed when the test ends.
type fixture struct {
	*dbEnv
	ds      *mqdatasource.DataSource
	records string
	applied string
}

func newFixture(t *testing.T, e *dbEnv) *fixture {
	t.Helper()
	f := &fixture{dbEnv: e, records: uniqueName(t, "tr"), applied: uniqueName(t, "applied")}
	ds, err := mqdatasource.Open(e.driver, e.dsn, mqdatasource.WithTable(f.records), mqdatasource.WithSchemaCheck(false))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ds.Close()
		e.exec(t, "DROP TABLE IF EXISTS "+f.records)
		e.exec(t, "DROP TABLE IF EXISTS "+f.applied)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ds.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	e.exec(t, "CREATE TABLE "+f.applied+" (grp VARCHAR(64) NOT NULL, k VARCHAR(200) NOT NULL, seq INT NOT NULL)")
	f.ds = ds
	return f
}

// apply records one application of msg key k for group g on tx.
func (f *fixture) apply(ctx context.Context, tx *sql.Tx, g, k string, seq int) error {
	_, err := tx.ExecContext(ctx, f.rebind("INSERT INTO "+f.applied+" (grp, k, seq) VALUES (?, ?, ?)"), g, k, seq)
	return err
}

// appliedCount returns how many application rows exist, and how many
// distinct (group, key) pairs they cover.
func (f *fixture) appliedCount(t *testing.T) (rows, distinct int64) {
	t.Helper()
	rows = f.queryInt(t, "SELECT COUNT(*) FROM "+f.applied)
	distinct = f.queryInt(t, "SELECT COUNT(*) FROM (SELECT DISTINCT grp, k FROM "+f.applied+") d")
	return rows, distinct
}

func (f *fixture) recordCount(t *testing.T) int64 {
	t.Helper()
	return f.queryInt(t, "SELECT COUNT(*) FROM "+f.records)
}
