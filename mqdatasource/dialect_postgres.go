package mqdatasource

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/b74fc070/rocketmq-exactlyonce/schema"
)

// In PostgreSQL a unique violation (23505) aborts the whole transaction, so
// the claim uses INSERT ... ON CONFLICT (message_id) DO NOTHING: it waits for
// a concurrent claim of the same id like MySQL does, and then inserts
// nothing (0 rows affected) if that claim committed.
var postgresDialect = &dialect{
	name:             "postgres",
	migration:        "schema/transaction_record.postgres.sql",
	ddl:              schema.PostgreSQL,
	splitDDL:         true,
	quote:            func(s string) string { return `"` + s + `"` },
	param:            func(i int) string { return fmt.Sprintf("$%d", i) },
	stringArg:        func(s string) any { return s },
	dupByCount:       true,
	claimSuffix:      ` ON CONFLICT ("message_id") DO NOTHING`,
	isDuplicate:      func(error, string, string) bool { return false },
	classify:         classifyPostgres,
	defaultUniqueKey: func(t string) string { return t + "_uk_message_id" },
	purge: func(_ *dialect, t string, n int) string {
		return fmt.Sprintf(`DELETE FROM "%[1]s" WHERE "id" IN (SELECT "id" FROM "%[1]s" WHERE "ctime" < $1 ORDER BY "ctime" LIMIT %[2]d FOR UPDATE SKIP LOCKED)`, t, n)
	},
	inspectTable:  inspectPostgres,
	pipelineBegin: true,
	types: map[string][]string{
		"id":             {"bigint", "integer"},
		"consumer_group": {"character varying", "character", "text"},
		"message_id":     {"character varying", "character", "text"},
		"topic_name":     {"character varying", "character", "text"},
		"ctime":          {"bigint"},
		"queue_id":       {"integer", "bigint"},
		"offset":         {"bigint"},
		"broker_name":    {"character varying", "character", "text"},
	},
}

// inspectPostgres describes the table that the claim's unqualified name
// resolves to: the first along search_path (to_regclass), which need not be
// in current_schema().
func inspectPostgres(ctx context.Context, _ *dialect, db *sql.DB, table string) (*tableInfo, error) {
	ti := &tableInfo{columns: map[string]columnInfo{}}
	// A nondeterministic collation (an ICU one that ignores case or
	// accents) is reported with the suffix " (nondeterministic)", which
	// the schema check warns about like a MySQL _ci collation.
	rows, err := db.QueryContext(ctx, `SELECT c.column_name, c.data_type, COALESCE(c.character_maximum_length, 0),
  COALESCE(co.collname || CASE WHEN co.collisdeterministic THEN '' ELSE ' (nondeterministic)' END, ''),
  (SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database())
FROM pg_class t
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN information_schema.columns c ON c.table_schema = n.nspname AND c.table_name = t.relname AND c.column_name = a.attname
LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
WHERE t.oid = to_regclass(quote_ident($1))`, table)
	if err != nil {
		return nil, err
	}
	if err := scanColumns(rows, ti); err != nil {
		return nil, err
	}
	// Unique, non-partial, non-expression indexes (constraints included) and
	// their key columns, in key order.
	rows, err = db.QueryContext(ctx, `SELECT i.relname, a.attname, 0
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n) ON true
JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
WHERE x.indrelid = to_regclass(quote_ident($1))
  AND x.indisunique AND x.indpred IS NULL AND x.indexprs IS NULL
ORDER BY i.relname, k.n`, table)
	if err != nil {
		return nil, err
	}
	if err := scanIndexes(rows, ti); err != nil {
		return nil, err
	}
	return ti, nil
}
