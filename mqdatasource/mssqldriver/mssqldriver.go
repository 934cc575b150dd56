// Package mssqldriver makes mqdatasource work with microsoft/go-mssqldb, the
// SQL Server driver. Import it for its side effect, in the program that
// opens the DataSource:
//
//	import _ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mssqldriver"
//
// It registers the "sqlserver" and "mssql" database/sql drivers (by
// importing go-mssqldb) and tells mqdatasource how to read the driver's
// errors (mssql.Error numbers: duplicates, deadlocks, snapshot conflicts;
// its connection errors), how to pass varchar arguments (mssql.VarChar) and
// whether the "mssql" driver rewrites placeholders, which mqdatasource,
// importing no driver, cannot. mqdatasource refuses to open a SQL Server
// DataSource without it.
package mssqldriver

import (
	"database/sql/driver"
	"errors"
	"reflect"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/internal/driverext"
)

func init() {
	driverext.Register(&driverext.Driver{
		Dialect: "sqlserver",
		Owns: func(drv driver.Driver) bool {
			_, ok := drv.(*mssql.Driver)
			return ok
		},
		Errors:          serverErrors,
		ConnLost:        connLost,
		StringArg:       stringArg,
		RewritesQueries: rewritesQueries,
	})
}

// serverErrors returns every SQL Server error in err's chain (mssql.Error
// is a value type; its All field lists every error of the response).
func serverErrors(err error) []driverext.ServerError {
	var e mssql.Error
	if !errors.As(err, &e) {
		return nil
	}
	all := e.All
	if len(all) == 0 {
		all = []mssql.Error{e}
	}
	out := make([]driverext.ServerError, len(all))
	for i, e := range all {
		out[i] = driverext.ServerError{Number: e.Number, Message: e.Message}
	}
	return out
}

func connLost(err error) bool {
	var (
		se mssql.ServerError
		st mssql.StreamError
		re mssql.RetryableError
	)
	return errors.As(err, &se) || errors.As(err, &st) || errors.As(err, &re)
}

// stringArg returns how s is passed: mssql.VarChar when it is ASCII, else
// a Go string (nvarchar). go-mssqldb sends a VarChar's bytes as they are,
// which the server reads in the database's default code page, not as
// UTF-8: a non-ASCII key would arrive as other characters. As nvarchar it
// arrives intact, and the server converts it to the column's code page;
// characters that code page lacks become '?' there, which is why
// mqdatasource refuses them (ErrUnstorableKey) for a varchar column.
func stringArg(s string) any {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return s
		}
	}
	return mssql.VarChar(s)
}

// rewritesQueries reports whether drv is go-mssqldb's driver of the
// "mssql" name, which rewrites query text (an unexported setting).
func rewritesQueries(drv driver.Driver) bool {
	md, ok := drv.(*mssql.Driver)
	if !ok || md == nil {
		return false
	}
	f := reflect.ValueOf(md).Elem().FieldByName("processQueryText")
	return f.IsValid() && f.Kind() == reflect.Bool && f.Bool()
}
