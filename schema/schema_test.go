package schema_test

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/b74fc070/rocketmq-exactlyonce/schema"
)

func TestEmbedded(t *testing.T) {
	for _, tc := range []struct {
		file, text string
		quote      func(string) string
		want       []string
	}{
		{"transaction_record.sql", schema.MySQL, func(s string) string { return "`" + s + "`" }, []string{"CREATE TABLE IF NOT EXISTS `transaction_record`", "utf8mb4_bin", "UNIQUE KEY `uk_message_id` (`message_id`)", "KEY `ctime_key` (`ctime`)", "KEY `load_key` (`queue_id`, `broker_name`, `topic_name`, `ctime`)"}},
		{"transaction_record.sqlserver.sql", schema.SQLServer, func(s string) string { return "[" + s + "]" }, []string{"CREATE TABLE [transaction_record]", "[offset]", "_BIN2", "UNIQUE ([message_id])"}},
		{"transaction_record.postgres.sql", schema.PostgreSQL, func(s string) string { return `"` + s + `"` }, []string{`CREATE TABLE IF NOT EXISTS "transaction_record"`, `COLLATE "C"`, `UNIQUE ("message_id")`}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			if _, err := fs.Stat(schema.FS, tc.file); err != nil {
				t.Fatal(err)
			}
			// Each column of the claim table (id and mqdatasource's
			// claimColumns) starts a line of the DDL, quoted, outside
			// comments.
			var defs []string
			for line := range strings.Lines(tc.text) {
				line, _, _ = strings.Cut(line, "--")
				if line = strings.TrimSpace(line); line != "" {
					defs = append(defs, line)
				}
			}
			for _, col := range []string{"id", "consumer_group", "message_id", "topic_name", "ctime", "queue_id", "offset", "broker_name"} {
				found := false
				for _, line := range defs {
					if strings.HasPrefix(line, tc.quote(col)+" ") {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("no definition of column %s", tc.quote(col))
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(tc.text, w) {
					t.Errorf("missing %q", w)
				}
			}
		})
	}
}

// ddl returns the statements of a DDL text without comments, blank lines
// and goose annotations, for comparing copies of one DDL.
func ddl(text string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// TestMigrationFiles checks that every migration creates the table exactly
// as the dialect's transaction_record file (what DataSource.Migrate runs)
// does, and that the down migrations drop it.
func TestMigrationFiles(t *testing.T) {
	for _, tc := range []struct{ dialect, ddl, drop string }{
		{"mysql", schema.MySQL, "DROP TABLE IF EXISTS `transaction_record`;\n"},
		{"postgres", schema.PostgreSQL, `DROP TABLE IF EXISTS "transaction_record";` + "\n"},
		{"sqlserver", schema.SQLServer, "DROP TABLE IF EXISTS [transaction_record];\n"},
	} {
		t.Run(tc.dialect, func(t *testing.T) {
			want := ddl(tc.ddl)
			read := func(fsys fs.FS, name string) string {
				t.Helper()
				b, err := fs.ReadFile(fsys, name)
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}
			dir := "migrate/" + tc.dialect + "/"
			if got := ddl(read(schema.MigrateFS, dir+"000001_transaction_record.up.sql")); got != want {
				t.Errorf("%s up:\n%s\nwant:\n%s", dir, got, want)
			}
			if got := ddl(read(schema.MigrateFS, dir+"000001_transaction_record.down.sql")); got != tc.drop {
				t.Errorf("%s down: %q, want %q", dir, got, tc.drop)
			}
			if files, _ := fs.Glob(schema.MigrateFS, dir+"*"); len(files) != 2 {
				t.Errorf("%s holds %q, want the up and down files alone", dir, files)
			}

			dir = "goose/" + tc.dialect + "/"
			text := read(schema.GooseFS, dir+"000001_transaction_record.sql")
			up, down, ok := strings.Cut(text, "-- +goose Down\n")
			if !ok || !strings.Contains(up, "-- +goose Up\n") {
				t.Fatalf("%s: no -- +goose Up followed by -- +goose Down", dir)
			}
			_, up, _ = strings.Cut(up, "-- +goose Up\n")
			if got := ddl(up); got != want {
				t.Errorf("%s up:\n%s\nwant:\n%s", dir, got, want)
			}
			if got := ddl(down); got != tc.drop {
				t.Errorf("%s down: %q, want %q", dir, got, tc.drop)
			}
			// A T-SQL batch must reach the server whole.
			if tc.dialect == "sqlserver" && !strings.Contains(up, "-- +goose StatementBegin") {
				t.Errorf("%s: the batch is not one goose statement", dir)
			}
		})
	}
}
