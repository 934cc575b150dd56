package mqdatasource

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// SchemaError says what is wrong with the claim table and which migration
// file describes the table the claim needs. It wraps ErrSchema.
type SchemaError struct {
	Table     string // the claim table's name
	Problem   string // what is wrong, e.g. "column ctime is int, want bigint"
	Migration string // the migration file, e.g. "schema/transaction_record.sql"

	// missing: the table does not exist. The migration file and Migrate
	// only create a table; an existing one must be altered by hand.
	missing bool
}

func (e *SchemaError) Error() string {
	if e.missing {
		return fmt.Sprintf("mqdatasource: claim table %s: %s (create it with %s, or open with WithMigrate())", e.Table, e.Problem, e.Migration)
	}
	return fmt.Sprintf("mqdatasource: claim table %s: %s (alter the table to match %s)", e.Table, e.Problem, e.Migration)
}

// Unwrap returns ErrSchema.
func (e *SchemaError) Unwrap() error { return ErrSchema }

// Missing reports whether the table does not exist, rather than having the
// wrong shape: Migrate creates a missing table, and alters no other.
func (e *SchemaError) Missing() bool { return e.missing }

type columnInfo struct {
	dataType  string
	length    int64
	collation string
	charset   string // character set (MySQL), database encoding (PostgreSQL), "UNICODE" or code page (SQL Server)
}

type tableInfo struct {
	columns map[string]columnInfo
	// uniques lists the key columns of each unique index, in key order.
	uniques map[string][]string
	// prefix is true for unique indexes that index a prefix of a column.
	prefix map[string]bool
}

func scanColumns(rows *sql.Rows, ti *tableInfo) error {
	defer rows.Close()
	for rows.Next() {
		var name, typ, coll, charset string
		var n int64
		if err := rows.Scan(&name, &typ, &n, &coll, &charset); err != nil {
			return err
		}
		ti.columns[strings.ToLower(name)] = columnInfo{dataType: strings.ToLower(typ), length: n, collation: strings.ToLower(coll), charset: charset}
	}
	return rows.Err()
}

func scanIndexes(rows *sql.Rows, ti *tableInfo) error {
	defer rows.Close()
	ti.uniques = map[string][]string{}
	ti.prefix = map[string]bool{}
	for rows.Next() {
		var index, col string
		var subPart int64
		if err := rows.Scan(&index, &col, &subPart); err != nil {
			return err
		}
		ti.uniques[index] = append(ti.uniques[index], strings.ToLower(col))
		if subPart > 0 {
			ti.prefix[index] = true
		}
	}
	return rows.Err()
}

// schemaFacts is what a passed schema check learned about the table.
type schemaFacts struct {
	uniqueKey string // name of the unique index on message_id
	idLen     int64  // length of message_id (characters, bytes for SQL Server)
	keyColumn *keyColumn
	// narrowCharset says, with WithCharsetWarnOnly, what checkTable would
	// otherwise have refused: message_id cannot store every key.
	narrowCharset string
}

// checkTable compares ti with what the claim needs. A message_id whose
// character set cannot store every key is refused, or with charsetWarnOnly
// reported in facts.narrowCharset.
func checkTable(d *dialect, table string, ti *tableInfo, charsetWarnOnly bool) (schemaFacts, []string, error) {
	bad := func(format string, args ...any) error {
		return &SchemaError{Table: table, Problem: fmt.Sprintf(format, args...), Migration: d.migration}
	}
	var facts schemaFacts
	if len(ti.columns) == 0 {
		return facts, nil, &SchemaError{Table: table, Problem: "table does not exist (in the connection's database, search_path or default schema)", Migration: d.migration, missing: true}
	}
	for _, col := range append([]string{"id"}, claimColumns...) {
		c, ok := ti.columns[col]
		if !ok {
			return facts, nil, bad("column %s is missing", col)
		}
		if want := d.types[col]; !slices.Contains(want, c.dataType) {
			return facts, nil, bad("column %s is %s, want %s", col, c.dataType, strings.Join(want, " or "))
		}
	}
	facts.idLen = ti.columns["message_id"].length
	if facts.idLen > 0 && facts.idLen < 64 {
		unit := "characters"
		if d.idLenInBytes {
			unit = "bytes"
		}
		return facts, nil, bad("column message_id holds only %d %s, want at least 64 %[2]s", facts.idLen, unit)
	}
	names := make([]string, 0, len(ti.uniques))
	for name := range ti.uniques {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if cols := ti.uniques[name]; len(cols) == 1 && cols[0] == "message_id" && !ti.prefix[name] {
			facts.uniqueKey = name
			break
		}
	}
	if facts.uniqueKey == "" {
		return facts, nil, bad("no unique key on message_id alone: duplicates cannot be detected")
	}
	idCol := ti.columns["message_id"]
	fits, complete := charsetFits(d.name, idCol.charset)
	facts.keyColumn = &keyColumn{charset: idCol.charset, collation: idCol.collation, fits: fits}
	if !complete {
		problem := fmt.Sprintf("column message_id has %s, which cannot store every key (%s); a key it cannot store would be replaced by '?' or refused, and two keys could become one record. Fix: %s",
			facts.keyColumn.describe(), charsetGap(fits), charsetFix(d, table, facts.idLen))
		if !charsetWarnOnly {
			return facts, nil, bad("%s (or open with WithCharsetWarnOnly() to keep it, e.g. for a table shared with the Java client: messages whose key it cannot store are then refused one by one)", problem)
		}
		facts.narrowCharset = problem
	}
	var warnings []string
	if coll := ti.columns["message_id"].collation; coll != "" && (strings.HasSuffix(coll, "_ci") || strings.Contains(coll, "_ci_") || strings.HasSuffix(coll, "(nondeterministic)")) {
		warnings = append(warnings, fmt.Sprintf("column message_id has the case-insensitive collation %s: keys that differ only in case are one value to the unique key, and the second of two such messages fails with ErrKeyCollision until the column has a binary collation, as in %s", coll, d.migration))
	}
	return facts, warnings, nil
}

// CheckSchema checks that the claim table exists with the columns, types and
// unique key on message_id that the claim needs, a message_id of at
// least 64 characters (bytes on SQL Server), and a message_id that can
// store every key: MySQL character set utf8mb4 (not utf8/utf8mb3, which
// lacks 4-byte characters such as emoji, nor latin1), a PostgreSQL database
// of encoding UTF8, SQL Server nvarchar or a UTF-8 collation (a varchar of
// another code page replaces what it lacks by '?'). The error for a
// narrower column gives the statement that fixes it; WithCharsetWarnOnly
// makes it an Error log instead, and keys the column cannot store are then
// refused one by one (ErrUnstorableKey). A problem is returned as a
// *SchemaError (errors.Is(err, ErrSchema)) naming it and the migration file
// (which creates a missing table; an existing table of the wrong shape must
// be altered to match it); a failure to query the catalog is returned as is. On
// success it also learns the name of the unique key and the length and
// character set of message_id, used to recognise duplicates and to
// validate message ids.
func (ds *DataSource) CheckSchema(ctx context.Context) error {
	return ds.core.checkSchema(WithoutDelivery(ctx), ds.db)
}

func (c *core) checkSchema(ctx context.Context, db *sql.DB) error {
	ti, err := c.dialect.impl().inspect(ctx, db, c.table)
	if err != nil {
		return fmt.Errorf("mqdatasource: checking claim table %s: %w", c.table, err)
	}
	return c.applyCheck(ctx, ti)
}

// applyCheck is checkSchema on the table as ti describes it: it checks the
// table, logs the warnings and learns the facts.
func (c *core) applyCheck(ctx context.Context, ti *tableInfo) error {
	facts, warnings, err := checkTable(c.dialect.impl(), c.table, ti, c.charsetWarnOnly)
	if err != nil {
		return err
	}
	if facts.narrowCharset != "" {
		c.logger.ErrorContext(ctx, "mqdatasource: claim table "+c.table+": "+facts.narrowCharset, "table", c.table)
	}
	for _, w := range warnings {
		c.logger.WarnContext(ctx, "mqdatasource: "+w, "table", c.table)
	}
	c.uniqueKey.Store(&facts.uniqueKey)
	c.idLen.Store(facts.idLen)
	c.keyColumn.Store(facts.keyColumn)
	return nil
}

// Migrate creates the claim table if it does not exist, from the embedded
// migration file of the dialect (package schema) with the configured table
// name substituted, and then runs CheckSchema. It never alters an existing
// table (it adds no index to it either): a table of the wrong shape is
// reported by CheckSchema. The table exists if the claim's unqualified name
// finds it, so on PostgreSQL a table in a later schema of search_path is used,
// not shadowed by a new one in the first. It is safe to call from many
// processes at once.
func (ds *DataSource) Migrate(ctx context.Context) error {
	ctx = WithoutDelivery(ctx)
	d := ds.core.dialect.impl()
	ti, err := d.inspect(ctx, ds.db, ds.core.table)
	if err != nil {
		return fmt.Errorf("mqdatasource: migrating claim table %s: %w", ds.core.table, err)
	}
	if len(ti.columns) > 0 {
		// The table exists: check it as read, without reading it again.
		return ds.core.applyCheck(ctx, ti)
	}
	var errs []error
	for _, stmt := range migrationStatements(d, ds.core.table) {
		if _, err := ds.db.ExecContext(ctx, stmt); err != nil {
			// A concurrent Migrate can make CREATE ... IF NOT EXISTS fail
			// (PostgreSQL catalog races); the check below decides.
			errs = append(errs, err)
		}
	}
	if err := ds.CheckSchema(ctx); err != nil {
		if len(errs) > 0 {
			return fmt.Errorf("mqdatasource: migrating claim table %s: %w", ds.core.table, errors.Join(append(errs, err)...))
		}
		return err
	}
	return nil
}

// migrationStatements returns the dialect's migration file, comments
// removed, the table name substituted, split into the statements to run.
func migrationStatements(d *dialect, table string) []string {
	var b strings.Builder
	for line := range strings.Lines(d.ddl) {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		b.WriteString(line)
	}
	text := strings.ReplaceAll(b.String(), DefaultTable, table)
	if !d.splitDDL {
		return []string{strings.TrimSuffix(strings.TrimSpace(text), ";")}
	}
	var stmts []string
	for s := range strings.SplitSeq(text, ";") {
		if s = strings.TrimSpace(s); s != "" {
			stmts = append(stmts, s)
		}
	}
	return stmts
}
