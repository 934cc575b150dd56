// Package schema holds the DDL of the transaction_record claim table for each
// supported database, as files in the repository (to apply by hand or with a
// migration tool) and embedded here (for mqdatasource.DataSource.Migrate).
//
//	transaction_record.sql            MySQL 5.7+ / MariaDB 10.2+
//	transaction_record.sqlserver.sql  SQL Server 2016+
//	transaction_record.postgres.sql   PostgreSQL 11+
//
// The MySQL table is column-compatible with the Java ExactlyOnceConsumer's
// table, so a consumer group can move between the two on one table.
//
// The same DDL is also laid out as migrations, for the two tools' file
// layouts, one directory per dialect (mysql, postgres, sqlserver):
//
//	migrate/<dialect>/000001_transaction_record.up.sql    golang-migrate (MigrateFS)
//	migrate/<dialect>/000001_transaction_record.down.sql
//	goose/<dialect>/000001_transaction_record.sql         goose (GooseFS)
//
// They are two trees because one set of files cannot serve both tools:
// golang-migrate reads only NNN_name.up.sql and NNN_name.down.sql, but goose
// reads every .sql file of its directory and takes the number before the
// first "_" as the version, so an .up.sql and a .down.sql file are two
// migrations of one version to it. A test keeps every copy of the DDL equal
// to the transaction_record files, and another (in the nested module
// schema/migrationtest) runs both tools on MariaDB and PostgreSQL.
package schema

import (
	"embed"
)

// MySQL is the DDL of the claim table for MySQL and MariaDB
// (transaction_record.sql): one CREATE TABLE IF NOT EXISTS statement.
//
//go:embed transaction_record.sql
var MySQL string

// SQLServer is the DDL of the claim table for SQL Server
// (transaction_record.sqlserver.sql): one batch.
//
//go:embed transaction_record.sqlserver.sql
var SQLServer string

// PostgreSQL is the DDL of the claim table for PostgreSQL
// (transaction_record.postgres.sql): statements separated by semicolons.
//
//go:embed transaction_record.postgres.sql
var PostgreSQL string

// FS holds the three files, for migration tools that read an fs.FS.
//
//go:embed *.sql
var FS embed.FS

// MigrateFS holds the claim table as golang-migrate migrations, in
// migrate/mysql, migrate/postgres and migrate/sqlserver. Pass it to
// golang-migrate's source/iofs with the dialect's directory:
//
//	src, err := iofs.New(schema.MigrateFS, "migrate/postgres")
//
//go:embed migrate
var MigrateFS embed.FS

// GooseFS holds the claim table as goose migrations (annotated with
// "-- +goose Up" and "-- +goose Down"), in goose/mysql, goose/postgres and
// goose/sqlserver. Hand goose the dialect's directory:
//
//	dir, err := fs.Sub(schema.GooseFS, "goose/postgres")
//	p, err := goose.NewProvider(goose.DialectPostgres, db, dir)
//
//go:embed goose
var GooseFS embed.FS
