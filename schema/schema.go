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
