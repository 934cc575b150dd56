// Package ormtest runs message handlers written as users of GORM, sqlx,
// bun and ent would write them, unchanged, on a DataSource's *sql.DB
// against real MariaDB and PostgreSQL servers, with duplicate deliveries
// running concurrently, and checks that each message takes effect exactly
// once.
//
// It is a module of its own so that the library's go.mod requires none of
// GORM, bun and ent (sqlx it requires anyway, for sqlx.Rebind). Run it under
// scripts/testdb.sh (scripts/test.sh does):
//
//	cd mqdatasource/ormtest && ../../scripts/testdb.sh go test ./...
package ormtest
