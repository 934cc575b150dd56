package mssqlbeside

import (
	"database/sql"
	"slices"
	"testing"

	_ "github.com/denisenkom/go-mssqldb"

	_ "github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mysqldriver"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/pgxdriver"
)

// TestDriversBeside: a program with the library and its MySQL and PostgreSQL
// driver packages links denisenkom/go-mssqldb without a second registration
// of "mssql" or "sqlserver" (which panics in sql.Register before any test
// runs), and those names belong to the old driver.
func TestDriversBeside(t *testing.T) {
	got := sql.Drivers()
	for _, name := range []string{"mssql", "sqlserver", "mysql", "pgx"} {
		if !slices.Contains(got, name) {
			t.Errorf("driver %q not registered; drivers: %v", name, got)
		}
	}
}
