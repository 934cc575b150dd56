// Package migrationtest runs the migrations of package schema with the
// migration tools' own Go APIs (golang-migrate and goose) against real
// MariaDB and PostgreSQL servers, and checks that each creates the claim
// table DataSource.Migrate creates.
//
// It is a module of its own so that the library's go.mod does not require
// either tool. Run it under scripts/testdb.sh (scripts/test.sh does):
//
//	cd schema/migrationtest && ../../scripts/testdb.sh go test ./...
package migrationtest
