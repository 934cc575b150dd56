package mqdatasource

import (
	"context"
	"database/sql/driver"
	"errors"
)

// effect says what a failed statement on the driver connection ic means:
// lost, the connection is unusable; aborts, the server has rolled back the
// transaction the statement ran in (if any), so nothing more may run in it.
func (c *core) effect(ctx context.Context, ic driver.Conn, err error) (lost, aborts bool) {
	k := c.dialect.impl().classify(err)
	lost = k&kindConnLost != 0
	switch {
	case k&kindAborts != 0:
		aborts = true
	case k&kindLockTimeout != 0:
		aborts = c.rollbackOnTimeout(ctx, ic)
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// The driver may have cut the statement off mid-way (go-sql-driver
		// closes the connection): nothing more is safe on the transaction.
		aborts = true
	}
	return lost, aborts
}

// rollbackOnTimeout reports whether MySQL rolls the whole transaction back
// on a lock wait timeout (innodb_rollback_on_timeout, a startup option, so
// it is read once). When it cannot be read the answer is yes: refusing a
// live transaction costs a retry, running statements of a dead one in
// autocommit costs correctness.
func (c *core) rollbackOnTimeout(ctx context.Context, ic driver.Conn) bool {
	switch c.rollbackOnTimeoutVar.Load() {
	case 1:
		return false
	case 2:
		return true
	}
	q, ok := ic.(driver.QueryerContext)
	if !ok {
		return true
	}
	rows, err := q.QueryContext(ctx, "SELECT @@innodb_rollback_on_timeout", nil)
	if err != nil {
		return true
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		return true
	}
	on := true
	switch v := dest[0].(type) {
	case int64:
		on = v != 0
	case []byte:
		on = string(v) != "0" && string(v) != "OFF"
	case string:
		on = v != "0" && v != "OFF"
	}
	if on {
		c.rollbackOnTimeoutVar.Store(2)
	} else {
		c.rollbackOnTimeoutVar.Store(1)
	}
	return on
}
