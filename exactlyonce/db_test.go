package exactlyonce

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// fixture is a migrated record table, an "applied" business table with one
// row per application of a message (no unique key: applying twice shows),
// and a DataSource on them, all removed when the test ends.
type fixture struct {
	*dbtest.Env
	ds      *mqdatasource.DataSource
	records string
	applied string
}

func newFixture(t *testing.T, e *dbtest.Env) *fixture {
	t.Helper()
	f := &fixture{Env: e, records: dbtest.UniqueName(t, "tr"), applied: dbtest.UniqueName(t, "applied")}
	ds, err := mqdatasource.Open(e.Driver, e.DSN, mqdatasource.WithTable(f.records), mqdatasource.WithSchemaCheck(false))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ds.Close()
		e.Exec(t, "DROP TABLE IF EXISTS "+f.records)
		e.Exec(t, "DROP TABLE IF EXISTS "+f.applied)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ds.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	e.Exec(t, "CREATE TABLE "+f.applied+" (grp VARCHAR(64) NOT NULL, k VARCHAR(200) NOT NULL, seq INT NOT NULL)")
	f.ds = ds
	return f
}

// apply records one application of msg key k for group g on tx.
func (f *fixture) apply(ctx context.Context, tx *sql.Tx, g, k string, seq int) error {
	_, err := tx.ExecContext(ctx, f.Rebind("INSERT INTO "+f.applied+" (grp, k, seq) VALUES (?, ?, ?)"), g, k, seq)
	return err
}

// appliedCount returns how many application rows exist, and how many
// distinct (group, key) pairs they cover.
func (f *fixture) appliedCount(t *testing.T) (rows, distinct int64) {
	t.Helper()
	rows = f.QueryInt(t, "SELECT COUNT(*) FROM "+f.applied)
	distinct = f.QueryInt(t, "SELECT COUNT(*) FROM (SELECT DISTINCT grp, k FROM "+f.applied+") d")
	return rows, distinct
}

func (f *fixture) recordCount(t *testing.T) int64 {
	t.Helper()
	return f.QueryInt(t, "SELECT COUNT(*) FROM "+f.records)
}
