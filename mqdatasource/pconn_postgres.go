package mqdatasource

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgxConner is implemented by the connections of jackc/pgx/v5/stdlib.
type pgxConner interface{ Conn() *pgx.Conn }

var (
	_ pgxConner = (*stdlib.Conn)(nil)
	_ driver.Tx = (*pgTx)(nil)
)

// beginPipelined begins a PostgreSQL delivery transaction in one round
// trip: BEGIN and the claim INSERT are sent together as a pgx batch (a
// pipeline of the extended protocol; if BEGIN failed the server would skip
// the INSERT). The transaction is the same as the one pgx's BeginTx would
// open; COMMIT and ROLLBACK are sent by pgTx. It reports dup when the claim
// inserted nothing (ON CONFLICT DO NOTHING: the message is recorded).
func (pc *pconn) beginPipelined(ctx context.Context, c *pgx.Conn, args []driver.NamedValue) (dup bool, err error) {
	if c.IsClosed() {
		pc.broken = true
		return false, driver.ErrBadConn // the delivery retries on a new connection
	}
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a.Value
	}
	b := &pgx.Batch{}
	b.Queue("begin")
	b.Queue(pc.core.claimSQL, vals...)
	br := c.SendBatch(ctx, b)
	_, err = br.Exec()
	tag, insErr := br.Exec()
	if err == nil {
		err = insErr
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	t := &pgTx{pc: pc, c: c, ctx: ctx}
	if err != nil {
		if c.PgConn().TxStatus() != 'I' {
			_ = t.Rollback()
		}
		pc.observe(ctx, err)
		if pgconn.SafeToRetry(err) {
			// Nothing reached the server (like pgx's stdlib does).
			pc.broken = true
			return false, driver.ErrBadConn
		}
		return false, err
	}
	if c.PgConn().TxStatus() != 'T' {
		// Not in a transaction after BEGIN: nothing is safe on this session.
		pc.broken = true
		return false, fmt.Errorf("mqdatasource: session not in a transaction after BEGIN (status %q)", c.PgConn().TxStatus())
	}
	pc.itx = t
	return tag.RowsAffected() == 0, nil
}

// pgTx ends a transaction begun by beginPipelined, the way pgx's own
// transaction does: COMMIT that the server answers with ROLLBACK (the
// transaction had failed) is pgx.ErrTxCommitRollback; a failed COMMIT or
// ROLLBACK leaves the session in an unknown state, so the connection is
// closed.
type pgTx struct {
	pc  *pconn
	c   *pgx.Conn
	ctx context.Context
}

func (t *pgTx) Commit() error {
	tag, err := t.c.Exec(t.ctx, "commit")
	if err != nil {
		t.pc.broken = true
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
		t.pc.broken = true
		return err
	}
	return nil
}
