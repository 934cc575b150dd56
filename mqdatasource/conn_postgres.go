package mqdatasource

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"

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

// beginPipelined begins a claimed PostgreSQL transaction in one round trip:
// BEGIN and the claim INSERT are sent together as a pgx batch (a pipeline of
// the extended protocol; if BEGIN failed the server would skip the INSERT).
// The transaction is the same as the one pgx's BeginTx would open; COMMIT
// and ROLLBACK are sent by pgTx. It reports dup when the claim inserted
// nothing (ON CONFLICT DO NOTHING: the message is recorded).
func (c *conn) beginPipelined(ctx context.Context, pc *pgx.Conn, cl *claim) (itx driver.Tx, dup bool, err error) {
	if pc.IsClosed() {
		c.broken = true
		return nil, false, driver.ErrBadConn // database/sql retries on another connection
	}
	args := c.core.dialect.impl().claimArgs(cl.d, cl.id, time.Now().UnixMilli())
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a.Value
	}
	b := &pgx.Batch{}
	b.Queue("begin")
	b.Queue(c.core.claimSQL, vals...)
	br := pc.SendBatch(ctx, b)
	_, err = br.Exec()
	tag, insErr := br.Exec()
	if err == nil {
		err = insErr
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	t := &pgTx{c: c, pc: pc, ctx: ctx}
	if err != nil {
		if pc.PgConn().TxStatus() != 'I' {
			_ = t.Rollback()
		}
		c.observe(ctx, err)
		if pgconn.SafeToRetry(err) {
			// Nothing reached the server (like pgx's stdlib does).
			c.broken = true
			return nil, false, driver.ErrBadConn
		}
		return nil, false, err
	}
	if pc.PgConn().TxStatus() != 'T' {
		// Not in a transaction after BEGIN: nothing is safe on this session.
		c.broken = true
		return nil, false, fmt.Errorf("mqdatasource: session not in a transaction after BEGIN (status %q)", pc.PgConn().TxStatus())
	}
	return t, tag.RowsAffected() == 0, nil
}

// pgTx ends a transaction begun by beginPipelined, the way pgx's own
// transaction does: COMMIT that the server answers with ROLLBACK (the
// transaction had failed) is pgx.ErrTxCommitRollback; a failed COMMIT or
// ROLLBACK leaves the session in an unknown state, so the connection is
// discarded.
type pgTx struct {
	c   *conn
	pc  *pgx.Conn
	ctx context.Context
}

func (t *pgTx) Commit() error {
	tag, err := t.pc.Exec(t.ctx, "commit")
	if err != nil {
		t.c.broken = true
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

func (t *pgTx) Rollback() error {
	ctx := t.ctx
	if ctx.Err() != nil {
		// Still end the server's transaction; a dead connection fails fast.
		ctx = context.WithoutCancel(ctx)
	}
	if _, err := t.pc.Exec(ctx, "rollback"); err != nil {
		t.c.broken = true
		return err
	}
	return nil
}
