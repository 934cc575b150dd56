package mqdatasource

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
)

var _ driver.Tx = (*tx)(nil)

// tx wraps the driver's transaction. It keeps the delivery's claim, and
// remembers when the server aborted the transaction.
type tx struct {
	c     *conn
	inner driver.Tx
	claim *claim // nil without a delivery

	aborted error // the error that told us the server rolled back
}

func (t *tx) abort(err error) {
	if t.aborted == nil {
		t.aborted = err
	}
}

// abortedErr returns the error every statement on an aborted transaction
// gets, without reaching the server: after a deadlock MySQL has rolled the
// transaction back and would run later statements in autocommit.
func (t *tx) abortedErr() error {
	if t.aborted == nil {
		return nil
	}
	return fmt.Errorf("%w (by: %w)", ErrTxAborted, t.aborted)
}

func (t *tx) end(committed bool) {
	if t.c.tx == t {
		t.c.tx = nil
	}
	t.c.lastClaimed = t.claim != nil
	t.claim.release(committed)
}

// Commit commits, or returns an error wrapping ErrTxAborted (after rolling
// back on the driver) when the server already aborted the transaction, or
// an error wrapping ErrCommitUnknown and the driver's error when the
// connection failed while COMMIT was in flight. If the rollback of an
// aborted transaction fails, the connection is discarded, as in Rollback.
func (t *tx) Commit() error {
	if err := t.abortedErr(); err != nil {
		if rbErr := t.inner.Rollback(); rbErr != nil {
			t.c.broken = true
		}
		t.end(false)
		return err
	}
	err := t.inner.Commit()
	if err == nil {
		t.end(true)
		return nil
	}
	t.end(false)
	k := t.c.core.dialect.impl().classify(err)
	if k&kindConnLost != 0 || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.c.broken = true
		return fmt.Errorf("%w: %w", ErrCommitUnknown, err)
	}
	return err
}

// Rollback rolls back and frees the claim, so the delivery can be tried
// again with the same context. The driver's error is returned unchanged;
// after a failed rollback the session may still be in a transaction, so
// the connection is discarded rather than handed to the next user.
func (t *tx) Rollback() error {
	err := t.inner.Rollback()
	if err != nil {
		t.c.broken = true
	}
	t.end(false)
	return err
}
