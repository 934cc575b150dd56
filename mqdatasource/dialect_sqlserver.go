package mqdatasource

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/internal/driverext"
	"github.com/b74fc070/rocketmq-exactlyonce/schema"
)

// sqlserverDialect: @pN placeholders, [offset] quoted (a reserved word), ASCII
// keys passed as mssql.VarChar so they compare with the varchar columns
// without an implicit conversion (a Go string is sent as nvarchar); see
// sqlserverString for the others.
var sqlserverDialect = &dialect{
	name:      "sqlserver",
	migration: "schema/transaction_record.sqlserver.sql",
	ddl:       schema.SQLServer,
	quote:     func(s string) string { return "[" + s + "]" },
	param:     func(i int) string { return fmt.Sprintf("@p%d", i) },
	stringArg: sqlserverString,
	isDuplicate: func(err error, uk, messageID string) bool {
		for _, e := range mssqlErrors(err) {
			// 2627: "Violation of UNIQUE KEY constraint 'NAME'. Cannot insert
			// duplicate key in object 'dbo.t'. The duplicate key value is (V)."
			// 2601: "Cannot insert duplicate key row in object 'dbo.t' with
			// unique index 'NAME'. The duplicate key value is (V)."
			if (e.Number == 2627 || e.Number == 2601) &&
				(containsFold(e.Message, "'"+strings.ToLower(uk)+"'") || containsFold(e.Message, "("+strings.ToLower(messageID)+")")) {
				return true
			}
		}
		return false
	},
	dupValue: func(err error) string {
		for _, e := range mssqlErrors(err) {
			if e.Number != 2627 && e.Number != 2601 {
				continue
			}
			const pre = "The duplicate key value is ("
			if i := strings.LastIndex(e.Message, pre); i >= 0 {
				v, _, _ := strings.Cut(e.Message[i+len(pre):], ").")
				return v
			}
		}
		return ""
	},
	classify:         classifySQLServer,
	defaultUniqueKey: func(t string) string { return "uk_" + t + "_message_id" },
	purge: func(d *dialect, t string, n int) string {
		return fmt.Sprintf("DELETE TOP (%d) FROM [%s] WITH (READPAST, ROWLOCK) WHERE [ctime] < %s", n, t, d.param(1))
	},
	inspectTable: inspectSQLServer,
	idLenInBytes: true,
	types: map[string][]string{
		"id":             {"bigint", "int"},
		"consumer_group": {"varchar", "char", "nvarchar", "nchar"},
		"message_id":     {"varchar", "char", "nvarchar", "nchar"},
		"topic_name":     {"varchar", "char", "nvarchar", "nchar"},
		"ctime":          {"bigint"},
		"queue_id":       {"int", "bigint"},
		"offset":         {"bigint"},
		"broker_name":    {"varchar", "char", "nvarchar", "nchar"},
	},
}

// sqlserverString returns how s is passed: as mssqldriver says
// (mssql.VarChar for an ASCII string, so that it compares with a varchar
// column without an implicit conversion), else as a Go string.
func sqlserverString(s string) any {
	if d := driverext.Dialect("sqlserver"); d != nil && d.StringArg != nil {
		return d.StringArg(s)
	}
	return s
}

// inspectSQLServer reads the catalog about the table the claim's unqualified
// name resolves to: OBJECT_ID resolves a one-part name as the INSERT does, in
// the user's default schema, else in dbo.
func inspectSQLServer(ctx context.Context, d *dialect, db *sql.DB, table string) (*tableInfo, error) {
	ti := &tableInfo{columns: map[string]columnInfo{}}
	name := sqlserverString(table)
	rows, err := db.QueryContext(ctx, sqlserverColumnsSQL(d), name, name)
	if err != nil {
		return nil, err
	}
	if err := scanColumns(rows, ti); err != nil {
		return nil, err
	}
	rows, err = db.QueryContext(ctx, sqlserverIndexesSQL(d), name)
	if err != nil {
		return nil, err
	}
	if err := scanIndexes(rows, ti); err != nil {
		return nil, err
	}
	return ti, nil
}

// sqlserverColumnsSQL selects the table's columns, with the character set
// of text columns as "UNICODE" (nvarchar, nchar) or the code page of their
// collation ("code page 1252"; 65001 is UTF-8); it takes the table name
// twice, in d's placeholders ("@pN", or "?" for the "mssql" driver name).
func sqlserverColumnsSQL(d *dialect) string {
	return `SELECT COLUMN_NAME, DATA_TYPE, COALESCE(CHARACTER_MAXIMUM_LENGTH, 0), COALESCE(COLLATION_NAME, ''),
  CASE WHEN DATA_TYPE IN ('nvarchar', 'nchar') THEN 'UNICODE'
    ELSE COALESCE('code page ' + CAST(COLLATIONPROPERTY(COLLATION_NAME, 'CodePage') AS varchar(10)), '') END
FROM INFORMATION_SCHEMA.COLUMNS
WHERE TABLE_SCHEMA = OBJECT_SCHEMA_NAME(OBJECT_ID(QUOTENAME(` + d.param(1) + `))) AND TABLE_NAME = ` + d.param(2)
}

// sqlserverIndexesSQL selects the columns of the table's unfiltered unique
// indexes; it takes the table name once.
func sqlserverIndexesSQL(d *dialect) string {
	return `SELECT i.name, c.name, 0
FROM sys.indexes i
JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id AND ic.is_included_column = 0
JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
WHERE i.object_id = OBJECT_ID(QUOTENAME(` + d.param(1) + `)) AND i.is_unique = 1 AND i.has_filter = 0
ORDER BY i.name, ic.key_ordinal`
}

// sqlserverQDialect is SQLServer() for the deprecated "mssql" driver name,
// whose driver rewrites ? placeholders into @pN itself (and counts them):
// given @pN text it would report zero parameters to database/sql.
var sqlserverQDialect = func() *dialect {
	d := *sqlserverDialect
	d.param = func(int) string { return "?" }
	return &d
}()

// mssqlRewritesQueries reports whether drv is go-mssqldb's driver of the
// "mssql" name, which rewrites query text (asked of mssqldriver).
func mssqlRewritesQueries(drv driver.Driver) bool {
	d := driverext.Lookup(drv)
	return d != nil && d.RewritesQueries != nil && d.RewritesQueries(drv)
}
