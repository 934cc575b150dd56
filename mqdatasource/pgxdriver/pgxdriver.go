// Package pgxdriver makes mqdatasource work with jackc/pgx/v5/stdlib, the
// PostgreSQL driver. Import it for its side effect, in the program that
// opens the DataSource:
//
//	import _ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/pgxdriver"
//
// It registers the "pgx" database/sql driver (by importing pgx's stdlib),
// tells mqdatasource which of pgx's errors mean a lost connection, and
// lets it begin a delivery transaction and claim in one round trip (BEGIN
// and the claim INSERT in one pipeline), which mqdatasource, importing no
// driver, cannot. mqdatasource refuses to open a DataSource on pgx's driver
// without it.
package pgxdriver

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/internal/driverext"
)

// pgxConner is implemented by the connections of jackc/pgx/v5/stdlib.
type pgxConner interface{ Conn() *pgx.Conn }

var (
	_ pgxConner = (*stdlib.Conn)(nil)
	_ driver.Tx = (*pgTx)(nil)
)

func init() {
	driverext.Register(&driverext.Driver{
		Dialect: "postgres",
		Owns: func(drv driver.Driver) bool {
			_, ok := drv.(*stdlib.Driver)
			return ok
		},
		ConnLost:  connLost,
		BeginWith: beginPipelined,
	})
}

// connLost reports whether err is one of pgx's errors for a failed
// connection.
func connLost(err error) bool {
	if errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return false
	}
	// pgconn wraps network failures in unexported types that answer
	// SafeToRetry or Timeout; a ConnectError means no connection at all.
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.Timeout(err)
}

// beginPipelined begins a PostgreSQL delivery transaction in one round
// trip: BEGIN and the claim INSERT q are sent together as a pgx batch (a
// pipeline of the extended protocol; if BEGIN failed the server would skip
// the INSERT). The transaction is the same as the one pgx's BeginTx would
// open; COMMIT and ROLLBACK are sent by pgTx.
func beginPipelined(ctx context.Context, conn driver.Conn, q string, args []driver.NamedValue, broken func()) (driver.Tx, int64, bool, error) {
	pc, ok := conn.(pgxConner)
	if !ok {
		return nil, 0, false, nil
	}
	c := pc.Conn()
	if c.IsClosed() {
		broken()
		return nil, 0, true, driver.ErrBadConn // the delivery retries on a new connection
	}
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a.Value
	}
	b := &pgx.Batch{}
	b.Queue("begin")
	b.Queue(q, vals...)
	br := c.SendBatch(ctx, b)
	_, err := br.Exec()
	tag, insErr := br.Exec()
	if err == nil {
		err = insErr
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	t := &pgTx{c: c, ctx: ctx, broken: broken}
	if err != nil {
		if c.PgConn().TxStatus() != 'I' {
			_ = t.Rollback()
		}
		if pgconn.SafeToRetry(err) {
			// Nothing reached the server (like pgx's stdlib does).
			broken()
			return nil, 0, true, driver.ErrBadConn
		}
		return nil, 0, true, err
	}
	if c.PgConn().TxStatus() != 'T' {
		// Not in a transaction after BEGIN: nothing is safe on this session.
		broken()
		return nil, 0, true, fmt.Errorf("mqdatasource: session not in a transaction after BEGIN (status %q)", c.PgConn().TxStatus())
	}
	return t, tag.RowsAffected(), true, nil
}

// pgTx ends a transaction begun by beginPipelined, the way pgx's own
// transaction does: COMMIT that the server answers with ROLLBACK (the
// transaction had failed) is pgx.ErrTxCommitRollback; a failed COMMIT or
// ROLLBACK leaves the session in an unknown state, so the connection is
// closed.
type pgTx struct {
	c      *pgx.Conn
	ctx    context.Context
	broken func()
}

func (t *pgTx) Commit() error {
	tag, err := t.c.Exec(t.ctx, "commit")
	if err != nil {
		t.broken()
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

func (t *pgTx) Rollback() error {
	// Still end the server's transaction when the delivery's context is
	// done; a dead connection fails fast.
	if _, err := t.c.Exec(context.WithoutCancel(t.ctx), "rollback"); err != nil {
		t.broken()
		return err
	}
	return nil
}
