package mqdatasource

import (
	"context"
	"database/sql/driver"
)

// beginImplicit begins a MySQL delivery transaction without a round trip of
// its own: with autocommit=0 (set once per connection, which runs nothing
// but delivery transactions) the claim INSERT itself opens the transaction,
// which COMMIT or ROLLBACK ends. The transaction is the same as START
// TRANSACTION's (the snapshot is taken at the first read in both).
func (pc *pconn) beginImplicit(ctx context.Context, e driver.ExecerContext, args []driver.NamedValue, id string) (dup bool, err error) {
	if !pc.autocommitOff {
		if _, err := e.ExecContext(ctx, "SET autocommit=0", nil); err != nil {
			pc.observe(ctx, err)
			return false, err
		}
		pc.autocommitOff = true
	}
	pc.itx = &implicitTx{pc: pc, e: e}
	return pc.claim(ctx, args, id)
}

// implicitTx ends a transaction begun by beginImplicit. COMMIT and ROLLBACK
// do not use a statement's context (like the driver's own Tx): a cancelled
// context must not leave the server's transaction open. If either fails the
// connection's state is unknown, and it is closed.
type implicitTx struct {
	pc *pconn
	e  driver.ExecerContext
}

func (t *implicitTx) Commit() error   { return t.end("COMMIT") }
func (t *implicitTx) Rollback() error { return t.end("ROLLBACK") }

func (t *implicitTx) end(q string) error {
	_, err := t.e.ExecContext(context.Background(), q, nil)
	if err != nil {
		t.pc.broken = true
	}
	return err
}
