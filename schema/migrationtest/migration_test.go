package migrationtest

import (
	"context"
	"database/sql"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratedb "github.com/golang-migrate/migrate/v4/database"
	migratemysql "github.com/golang-migrate/migrate/v4/database/mysql"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/pressly/goose/v3"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
	"github.com/b74fc070/rocketmq-exactlyonce/schema"
)

const (
	table = "transaction_record" // the name the migration files use
	// versionTable keeps the tools' records of the claim table's migrations
	// apart from those of a service's own, as docs/operations.md suggests.
	versionTable = "exactlyonce_schema_migrations"
)

// tools are the two migration tools, each able to migrate a database up
// and back down with the files of package schema.
var tools = []struct {
	name     string
	up, down func(t *testing.T, e *dbtest.Env, db *sql.DB)
}{
	{"golang-migrate", migrateUp, migrateDown},
	{"goose", gooseUp, gooseDown},
}

// TestMigrationTools migrates a fresh database up with each tool and checks
// the table against the one DataSource.Migrate creates in another fresh
// database (columns, types, collations, indexes and unique keys), that
// mqdatasource accepts it (Open runs CheckSchema) and claims in it, and
// that migrating down drops it.
func TestMigrationTools(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		want := describe(t, e, openMigrated(t, e))
		if len(want) == 0 {
			t.Fatal("DataSource.Migrate created no table")
		}
		for _, tool := range tools {
			t.Run(tool.name, func(t *testing.T) {
				dsn := e.NewDatabase(t, "migration")
				db, err := sql.Open(e.Driver, dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })

				tool.up(t, e, db)
				if got := describe(t, e, db); !slices.Equal(got, want) {
					t.Errorf("table after %s up:\n%s\nDataSource.Migrate creates:\n%s",
						tool.name, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				checkClaims(t, e, dsn)

				tool.down(t, e, db)
				if got := describe(t, e, db); len(got) != 0 {
					t.Errorf("after %s down the table is still there:\n%s", tool.name, strings.Join(got, "\n"))
				}
			})
		}
	})
}

// openMigrated returns a fresh database in which DataSource.Migrate created
// the claim table.
func openMigrated(t *testing.T, e *dbtest.Env) *sql.DB {
	t.Helper()
	ds, err := mqdatasource.Open(e.Driver, e.NewDatabase(t, "migration_ref"), mqdatasource.WithMigrate())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	return ds.DB()
}

// checkClaims opens the migrated database through mqdatasource, whose Open
// checks the table's shape, and delivers one message twice: committed, then
// a duplicate.
func checkClaims(t *testing.T, e *dbtest.Env, dsn string) {
	t.Helper()
	ds, err := mqdatasource.Open(e.Driver, dsn)
	if err != nil {
		t.Fatalf("mqdatasource.Open on the migrated table: %v", err)
	}
	defer ds.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := mqdatasource.Delivery{ConsumerGroup: "migration", Key: "k1", Topic: "t", BrokerName: "b"}
	for _, want := range []mqdatasource.Result{mqdatasource.Committed, mqdatasource.Duplicate} {
		res, err := ds.Deliver(ctx, d, func(context.Context) error { return nil })
		if err != nil || res != want {
			t.Fatalf("delivery: %v, %v; want %v", res, err, want)
		}
	}
}

// migrateUp and migrateDown run golang-migrate on db with schema.MigrateFS,
// through the database driver of its own for the dialect.
func migrateUp(t *testing.T, e *dbtest.Env, db *sql.DB) {
	t.Helper()
	if err := newMigrate(t, e, db).Up(); err != nil {
		t.Fatalf("golang-migrate up: %v", err)
	}
}

func migrateDown(t *testing.T, e *dbtest.Env, db *sql.DB) {
	t.Helper()
	if err := newMigrate(t, e, db).Down(); err != nil {
		t.Fatalf("golang-migrate down: %v", err)
	}
}

func newMigrate(t *testing.T, e *dbtest.Env, db *sql.DB) *migrate.Migrate {
	t.Helper()
	src, err := iofs.New(schema.MigrateFS, "migrate/"+e.Name)
	if err != nil {
		t.Fatal(err)
	}
	var drv migratedb.Driver
	switch e.Name {
	case "mysql":
		drv, err = migratemysql.WithInstance(db, &migratemysql.Config{MigrationsTable: versionTable})
	case "postgres":
		drv, err = migratepgx.WithInstance(db, &migratepgx.Config{MigrationsTable: versionTable})
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := migrate.NewWithInstance("iofs", src, e.Name, drv)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// gooseUp and gooseDown run goose on db with schema.GooseFS.
func gooseUp(t *testing.T, e *dbtest.Env, db *sql.DB) {
	t.Helper()
	if _, err := newGoose(t, e, db).Up(context.Background()); err != nil {
		t.Fatalf("goose up: %v", err)
	}
}

func gooseDown(t *testing.T, e *dbtest.Env, db *sql.DB) {
	t.Helper()
	if _, err := newGoose(t, e, db).DownTo(context.Background(), 0); err != nil {
		t.Fatalf("goose down: %v", err)
	}
}

func newGoose(t *testing.T, e *dbtest.Env, db *sql.DB) *goose.Provider {
	t.Helper()
	dir, err := fs.Sub(schema.GooseFS, "goose/"+e.Name)
	if err != nil {
		t.Fatal(err)
	}
	dialect := map[string]goose.Dialect{"mysql": goose.DialectMySQL, "postgres": goose.DialectPostgres}[e.Name]
	p, err := goose.NewProvider(dialect, db, dir, goose.WithTableName(versionTable))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// describe returns the claim table as the catalog shows it, one line per
// column and per index, or nothing when the table does not exist.
func describe(t *testing.T, e *dbtest.Env, db *sql.DB) []string {
	t.Helper()
	queries := map[string][]string{
		"mysql": {
			`SELECT column_name, column_type, is_nullable, COALESCE(character_set_name, ''),
				COALESCE(collation_name, ''), COALESCE(column_default, ''), extra, column_comment
			FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?
			ORDER BY ordinal_position`,
			`SELECT index_name, non_unique, GROUP_CONCAT(column_name ORDER BY seq_in_index)
			FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ?
			GROUP BY index_name, non_unique ORDER BY index_name`,
			`SELECT engine, table_collation FROM information_schema.tables
			WHERE table_schema = DATABASE() AND table_name = ?`,
		},
		"postgres": {
			`SELECT column_name, data_type, COALESCE(character_maximum_length, 0), is_nullable,
				COALESCE(collation_name, ''), is_identity, COALESCE(column_default, '')
			FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1
			ORDER BY ordinal_position`,
			`SELECT indexname, indexdef FROM pg_indexes
			WHERE schemaname = current_schema() AND tablename = $1 ORDER BY indexname`,
			`SELECT conname, contype, pg_get_constraintdef(c.oid) FROM pg_constraint c
			WHERE conrelid = to_regclass($1) ORDER BY conname`,
		},
	}[e.Name]
	var out []string
	for _, q := range queries {
		rows, err := db.Query(q, table)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			line := make([]string, len(vals))
			for i, v := range vals {
				line[i] = v.String
			}
			out = append(out, strings.Join(line, " | "))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}
