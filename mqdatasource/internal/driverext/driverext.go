// Package driverext is the registry through which the per-driver packages
// (mqdatasource/mysqldriver, pgxdriver, mssqldriver) give mqdatasource what
// it needs to know about a SQL driver's types, so that mqdatasource imports
// no driver and a program links only the drivers it imports.
package driverext

import (
	"context"
	"database/sql/driver"
	"sync"
)

// ServerError is an error a database server returned, as a driver reports
// it.
type ServerError struct {
	Number  int32  // the error number (MySQL, SQL Server)
	Message string // the server's text
}

// Driver is what one driver package registers.
type Driver struct {
	// Dialect is the name of the driver's SQL dialect: "mysql",
	// "postgres" or "sqlserver".
	Dialect string
	// Owns reports whether drv is the package's driver.
	Owns func(drv driver.Driver) bool
	// Errors returns the server errors in err's chain: the first, or for
	// SQL Server every error of the response; nil if none. Nil when the
	// driver's server errors are recognised otherwise (PostgreSQL's
	// SQLState method).
	Errors func(err error) []ServerError
	// ConnLost reports whether err is one of the driver's own errors for a
	// connection that failed (what was in flight has an unknown outcome).
	ConnLost func(err error) bool
	// StringArg returns how a varchar argument is passed; nil: as a string.
	StringArg func(s string) any
	// RewritesQueries reports whether drv rewrites ? placeholders itself
	// (go-mssqldb's "mssql" driver name); nil: never.
	RewritesQueries func(drv driver.Driver) bool
	// BeginWith, when not nil, begins a transaction on conn and runs the
	// claim statement q with args in it, in one round trip. It returns
	// handled false when conn is not the driver's (nothing was sent). On
	// success tx ends the transaction and affected is the claim's row
	// count. driver.ErrBadConn means nothing reached the server: retry on
	// another connection. It calls broken, also from tx's methods, when
	// the connection's state is unknown and it must be closed.
	BeginWith func(ctx context.Context, conn driver.Conn, q string, args []driver.NamedValue, broken func()) (tx driver.Tx, affected int64, handled bool, err error)
}

var (
	mu      sync.RWMutex
	drivers []*Driver
)

// Register adds d. The driver packages call it from init.
func Register(d *Driver) {
	mu.Lock()
	defer mu.Unlock()
	drivers = append(drivers, d)
}

// Lookup returns the registered Driver that owns drv, or nil.
func Lookup(drv driver.Driver) *Driver {
	mu.RLock()
	defer mu.RUnlock()
	for _, d := range drivers {
		if d.Owns(drv) {
			return d
		}
	}
	return nil
}

// Dialect returns the first registered Driver of the dialect, or nil.
func Dialect(dialect string) *Driver {
	mu.RLock()
	defer mu.RUnlock()
	for _, d := range drivers {
		if d.Dialect == dialect {
			return d
		}
	}
	return nil
}

// Errors returns the server errors in err's chain as the registered drivers
// of the dialect read them.
func Errors(dialect string, err error) []ServerError {
	mu.RLock()
	defer mu.RUnlock()
	for _, d := range drivers {
		if d.Dialect != dialect || d.Errors == nil {
			continue
		}
		if es := d.Errors(err); len(es) > 0 {
			return es
		}
	}
	return nil
}

// ConnLost reports whether a registered driver takes err for a failed
// connection.
func ConnLost(err error) bool {
	mu.RLock()
	defer mu.RUnlock()
	for _, d := range drivers {
		if d.ConnLost != nil && d.ConnLost(err) {
			return true
		}
	}
	return false
}
