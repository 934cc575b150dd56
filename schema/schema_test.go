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
		want       []string
	}{
		{"transaction_record.sql", schema.MySQL, []string{"CREATE TABLE IF NOT EXISTS `transaction_record`", "utf8mb4_bin", "UNIQUE KEY `uk_message_id` (`message_id`)", "KEY `ctime_key` (`ctime`)", "KEY `load_key` (`queue_id`, `broker_name`, `topic_name`, `ctime`)"}},
		{"transaction_record.sqlserver.sql", schema.SQLServer, []string{"CREATE TABLE [transaction_record]", "[offset]", "_BIN2", "UNIQUE ([message_id])"}},
		{"transaction_record.postgres.sql", schema.PostgreSQL, []string{`CREATE TABLE IF NOT EXISTS "transaction_record"`, `COLLATE "C"`, `UNIQUE ("message_id")`}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := fs.ReadFile(schema.FS, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != tc.text {
				t.Error("FS and string variable differ")
			}
			for _, col := range []string{"id", "consumer_group", "message_id", "topic_name", "ctime", "queue_id", "offset", "broker_name"} {
				if !strings.Contains(tc.text, col) {
					t.Errorf("column %s missing", col)
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
