// Package mysqldriver makes mqdatasource work with go-sql-driver/mysql, the
// MySQL and MariaDB driver. Import it for its side effect, in the program
// that opens the DataSource:
//
//	import _ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mysqldriver"
//
// It registers the "mysql" database/sql driver (by importing
// go-sql-driver/mysql) and tells mqdatasource how to read the driver's
// errors (*mysql.MySQLError numbers: duplicates, deadlocks, lock timeouts;
// mysql.ErrInvalidConn), which mqdatasource, importing no driver, cannot.
// mqdatasource refuses to open a MySQL DataSource without it.
package mysqldriver

import (
	"database/sql/driver"
	"errors"

	"github.com/go-sql-driver/mysql"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/internal/driverext"
)

func init() {
	driverext.Register(&driverext.Driver{
		Dialect: "mysql",
		Owns: func(drv driver.Driver) bool {
			switch drv.(type) {
			case *mysql.MySQLDriver, mysql.MySQLDriver:
				return true
			}
			return false
		},
		Errors: func(err error) []driverext.ServerError {
			var me *mysql.MySQLError
			if !errors.As(err, &me) {
				return nil
			}
			return []driverext.ServerError{{Number: int32(me.Number), Message: me.Message}}
		},
		ConnLost: func(err error) bool { return errors.Is(err, mysql.ErrInvalidConn) },
	})
}
