package mqdatasource

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"reflect"
	"strings"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/internal/driverext"
)

// A Dialect is the SQL dialect of a database: how the claim is inserted, how
// a duplicate and a server-aborted transaction are recognised, how records
// are looked up and purged, and how the schema is checked. The set is closed:
// use MySQL(), SQLServer() or PostgreSQL().
type Dialect interface {
	// Name returns "mysql", "sqlserver" or "postgres".
	Name() string

	impl() *dialect
}

// dialect holds everything that differs between databases. Every SQL text it
// builds puts the table name in only after ValidateTableName accepted it.
type dialect struct {
	name       string
	migration  string // path of the migration file in the repository
	ddl        string // contents of the migration file
	splitDDL   bool   // run the migration file statement by statement
	quote      func(ident string) string
	param      func(i int) string // placeholder of the i-th (1-based) argument
	stringArg  func(s string) any // how a varchar argument is passed
	dupByCount bool               // the claim INSERT reports a duplicate by affecting 0 rows

	// claimSuffix ends the claim INSERT (PostgreSQL's ON CONFLICT).
	claimSuffix string
	// isDuplicate reports whether err, returned by the claim INSERT, is a
	// violation of the record's own unique key.
	isDuplicate func(err error, uniqueKey string, messageID string) bool
	// dupValue returns the value a duplicate error of the claim names (the
	// server's text, possibly truncated), or ""; nil when errors name none.
	dupValue func(err error) string
	// incomparable reports whether err says the column cannot compare a
	// value with the argument (MySQL: a character the column's character
	// set lacks); nil when no such error exists.
	incomparable func(err error) bool
	// classify returns what err means for the transaction and the caller.
	classify func(err error) errKind
	// purge returns a DELETE of at most n rows older than its one argument
	// (see purgeSQL).
	purge func(d *dialect, table string, n int) string
	// inspectTable reads the table's columns and unique indexes (see
	// inspect).
	inspectTable func(ctx context.Context, d *dialect, db *sql.DB, table string) (*tableInfo, error)
	// types maps a column name to the accepted data types (lower case).
	types map[string][]string
	// defaultUniqueKey names the unique key on message_id that the migration
	// file creates for table; CheckSchema replaces it with the real name.
	defaultUniqueKey func(table string) string
	// implicitBegin: a claimed transaction is begun by the claim INSERT in
	// an autocommit=0 session instead of START TRANSACTION (MySQL).
	implicitBegin bool
	// pipelineBegin: a claimed transaction is begun by sending BEGIN and the
	// claim INSERT in one pipeline (PostgreSQL through pgx).
	pipelineBegin bool
	// idLenInBytes is true when the message_id column length counts bytes.
	idLenInBytes bool
}

// purgeSQL returns a DELETE of at most n rows of table older than its one
// argument.
func (d *dialect) purgeSQL(table string, n int) string { return d.purge(d, table, n) }

// inspect reads the columns and unique indexes of table.
func (d *dialect) inspect(ctx context.Context, db *sql.DB, table string) (*tableInfo, error) {
	return d.inspectTable(ctx, d, db, table)
}

func (d *dialect) Name() string   { return d.name }
func (d *dialect) impl() *dialect { return d }
func (d *dialect) String() string { return d.name }

// MySQL returns the dialect of MySQL and MariaDB (go-sql-driver/mysql).
func MySQL() Dialect { return mysqlDialect }

// SQLServer returns the dialect of Microsoft SQL Server (microsoft/go-mssqldb,
// driver names "sqlserver" and "mssql").
func SQLServer() Dialect { return sqlserverDialect }

// PostgreSQL returns the dialect of PostgreSQL (jackc/pgx/v5/stdlib; lib/pq
// is detected too but is in maintenance mode: prefer pgx).
func PostgreSQL() Dialect { return postgresDialect }

// claimColumns are the columns of the claim INSERT, in argument order.
var claimColumns = []string{"consumer_group", "message_id", "topic_name", "ctime", "queue_id", "offset", "broker_name"}

// claimSQL returns the INSERT of the claim row into table.
func (d *dialect) claimSQL(table string) string {
	var cols, vals strings.Builder
	for i, c := range claimColumns {
		if i > 0 {
			cols.WriteString(", ")
			vals.WriteString(", ")
		}
		cols.WriteString(d.quote(c))
		vals.WriteString(d.param(i + 1))
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)%s", d.quote(table), cols.String(), vals.String(), d.claimSuffix)
}

// claimArgs returns the claim INSERT's arguments for dv, whose message id is
// id, at ctime (epoch ms).
func (d *dialect) claimArgs(dv Delivery, id string, ctime int64) []driver.NamedValue {
	vals := []any{
		d.stringArg(dv.ConsumerGroup),
		d.stringArg(id),
		d.stringArg(dv.Topic),
		ctime,
		int64(dv.QueueID),
		dv.QueueOffset,
		d.stringArg(dv.BrokerName),
	}
	args := make([]driver.NamedValue, len(vals))
	for i, v := range vals {
		args[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return args
}

// lookupSQL returns the pre-check's read: the message_id values the column
// takes for its one argument, compared with it byte for byte by the caller.
func (d *dialect) lookupSQL(table string) string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s = %s", d.quote("message_id"), d.quote(table), d.quote("message_id"), d.param(1))
}

// dialects by name, as driverext.Driver.Dialect names them.
var dialects = map[string]Dialect{"mysql": mysqlDialect, "postgres": postgresDialect, "sqlserver": sqlserverDialect}

// driverPackages are the packages that tell mqdatasource about a driver,
// by the import path of the driver's package.
var driverPackages = []struct{ driverPkg, pkg string }{
	{"github.com/go-sql-driver/mysql", "mysqldriver"},
	{"github.com/jackc/pgx", "pgxdriver"},
	{"go-mssqldb", "mssqldriver"},
}

// driverPackage returns the package of this module that drv needs, when
// drv is one of the drivers that have one ("" otherwise): the driver is
// recognised by its type's package path, which needs no import of it.
func driverPackage(drv driver.Driver) string {
	t := reflect.TypeOf(drv)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return ""
	}
	for _, p := range driverPackages {
		if strings.Contains(t.PkgPath(), p.driverPkg) {
			return p.pkg
		}
	}
	return ""
}

// checkDriverPackage fails with ErrDriverPackage when d's errors cannot be
// read without the driver's package of this module: MySQL and SQL Server
// always (a duplicate is known by its error number), PostgreSQL on pgx
// (its lost-connection errors); ext is the registered package, or nil.
func checkDriverPackage(d Dialect, drv driver.Driver, ext *driverext.Driver) error {
	if ext != nil {
		return nil
	}
	pkg := driverPackage(drv)
	switch d.Name() {
	case "mysql":
		pkg = "mysqldriver"
	case "sqlserver":
		pkg = "mssqldriver"
	}
	if pkg == "" {
		return nil
	}
	return fmt.Errorf("%w: the %s dialect on driver %T needs import _ \"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/%s\"", ErrDriverPackage, d.Name(), drv, pkg)
}

// detectDialect returns the dialect of the driver behind a connector.
func detectDialect(drv driver.Driver) (Dialect, error) {
	if ext := driverext.Lookup(drv); ext != nil {
		return dialects[ext.Dialect], nil
	}
	t := reflect.TypeOf(drv)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil {
		switch p := t.PkgPath(); {
		case strings.HasSuffix(p, "lib/pq"), strings.Contains(p, "jackc/pgx"):
			return PostgreSQL(), nil
		case strings.Contains(p, "go-sql-driver/mysql"):
			return MySQL(), nil
		case strings.Contains(p, "go-mssqldb"):
			return SQLServer(), nil
		}
	}
	return nil, fmt.Errorf("mqdatasource: cannot detect the SQL dialect of driver %T; pass WithDialect(MySQL()), WithDialect(SQLServer()) or WithDialect(PostgreSQL())", drv)
}
