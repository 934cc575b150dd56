package mqdatasource

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/internal/driverext"
)

// errKind is what an error returned by the database means.
type errKind uint8

const (
	// kindRetryable: running the whole transaction again may succeed.
	kindRetryable errKind = 1 << iota
	// kindAborts: the server has rolled back the whole transaction.
	kindAborts
	// kindConnLost: the connection is gone or unusable; whatever was in
	// flight may or may not have been executed.
	kindConnLost
	// kindLockTimeout: MySQL 1205. The statement failed; the transaction is
	// rolled back too only when innodb_rollback_on_timeout is ON.
	kindLockTimeout
)

// IsRetryable reports whether err is worth retrying by running the whole
// transaction (and so the message) again: a deadlock, a serialization or
// snapshot conflict, a lock timeout, a lost connection, ErrTxAborted or
// ErrCommitUnknown. It knows the error numbers of MySQL/MariaDB (1213, 1205,
// 1020, 1206, 3572, killed or timed-out connections), PostgreSQL (40001,
// 40P01, 55P03, class 08, 57P01-57P03) and SQL Server (1205, 3960, 1222, the
// driver's aborted transaction). Context cancellation is not retryable: it
// is the caller's decision. ErrAlreadyConsumed is not an error to retry
// either: acknowledge the message.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrTxAborted) || errors.Is(err, ErrCommitUnknown) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	// Each classifier falls back to isConnLost (retryable) when the error is
	// not one of its database's; ask it once, for all three.
	k1, _ := mysqlKind(err)
	k2, _ := postgresKind(err)
	k := k1 | k2 | sqlserverKind(err)
	return k&kindRetryable != 0 || isConnLost(err)
}

// isConnLost reports whether err says the connection failed: nothing more
// can be sent on it, and what was in flight has an unknown outcome. The
// drivers' own errors for it are known to their packages (driverext).
func isConnLost(err error) bool {
	if errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return driverext.ConnLost(err)
}

func classifyMySQL(err error) errKind {
	if k, ok := mysqlKind(err); ok {
		return k
	}
	if isConnLost(err) {
		return kindRetryable | kindAborts | kindConnLost
	}
	return 0
}

// mysqlKind classifies a MySQL server error by its number; ok is false when
// err is not one.
func mysqlKind(err error) (k errKind, ok bool) {
	if me, ok := mysqlError(err); ok {
		switch me.Number {
		case 1213: // ER_LOCK_DEADLOCK: the transaction was rolled back
			return kindRetryable | kindAborts, true
		case 1020: // ER_CHECKREAD (MariaDB innodb_snapshot_isolation)
			return kindRetryable | kindAborts, true
		case 1206: // ER_LOCK_TABLE_FULL: InnoDB rolls back the whole transaction
			return kindRetryable | kindAborts, true
		case 1205: // ER_LOCK_WAIT_TIMEOUT
			return kindRetryable | kindLockTimeout, true
		case 3572: // ER_LOCK_NOWAIT (MySQL 8 NOWAIT)
			return kindRetryable, true
		case 1053, // ER_SERVER_SHUTDOWN
			1927, // MariaDB ER_CONNECTION_KILLED
			3169, // MySQL ER_SESSION_WAS_KILLED
			4031: // MySQL ER_CLIENT_INTERACTION_TIMEOUT
			return kindRetryable | kindAborts | kindConnLost, true
		}
		return 0, true
	}
	return 0, false
}

// sqlState is implemented by pgconn.PgError and lib/pq's Error.
type sqlState interface{ SQLState() string }

func classifyPostgres(err error) errKind {
	if k, ok := postgresKind(err); ok {
		return k
	}
	if isConnLost(err) {
		return kindRetryable | kindAborts | kindConnLost
	}
	return 0
}

// mysqlError returns the MySQL server error in err's chain
// (*mysql.MySQLError, read by mysqldriver).
func mysqlError(err error) (driverext.ServerError, bool) {
	es := driverext.Errors("mysql", err)
	if len(es) == 0 {
		return driverext.ServerError{}, false
	}
	return es[0], true
}

// mssqlErrors returns every SQL Server error in err's chain (mssql.Error's
// All, read by mssqldriver).
func mssqlErrors(err error) []driverext.ServerError { return driverext.Errors("sqlserver", err) }

// mssqlAbortedMsg is how go-mssqldb (since v1.10) reports a transaction the
// server ended on its own (error number 0).
const mssqlAbortedMsg = "transaction was aborted by the server"

// postgresKind classifies a PostgreSQL error by its SQLSTATE; ok is false
// when err has none.
func postgresKind(err error) (k errKind, ok bool) {
	var se sqlState
	if !errors.As(err, &se) {
		return 0, false
	}
	code := se.SQLState()
	switch {
	case code == "40001", code == "40P01": // serialization_failure, deadlock_detected
		return kindRetryable | kindAborts, true
	case code == "55P03": // lock_not_available (lock_timeout, NOWAIT)
		return kindRetryable | kindAborts, true
	case code == "57P01", code == "57P02", code == "57P03", // admin_shutdown, crash_shutdown, cannot_connect_now
		len(code) == 5 && code[:2] == "08": // connection_exception
		return kindRetryable | kindAborts | kindConnLost, true
	}
	return 0, true
}

func classifySQLServer(err error) errKind {
	if k := sqlserverKind(err); k != 0 {
		return k
	}
	if isConnLost(err) {
		return kindRetryable | kindAborts | kindConnLost
	}
	return 0
}

// sqlserverKind classifies the SQL Server errors in err by their numbers.
func sqlserverKind(err error) errKind {
	var k errKind
	for _, e := range mssqlErrors(err) {
		switch e.Number {
		case 1205, 3960: // deadlock victim; snapshot update conflict
			k |= kindRetryable | kindAborts
		case 1222: // lock request time out: the statement only
			k |= kindRetryable
		case 0:
			if containsFold(e.Message, mssqlAbortedMsg) {
				k |= kindRetryable | kindAborts
			}
		}
	}
	return k
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), sub)
}
