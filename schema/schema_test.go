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
