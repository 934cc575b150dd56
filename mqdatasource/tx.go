package mqdatasource

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
)

var (
	_ driver.Tx = (*tx)(nil)
	_ driver.Tx = (*vtx)(nil)
)

// tx wraps a transaction of the connection's own (begun without a
// delivery), and remembers when the server aborted it.
type tx struct {
	c     *conn
	inner driver.Tx

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

func (t *tx) end() {
	if t.c.tx == t {
		t.c.tx = nil
	}
}

// Commit commits, or returns an error wrapping ErrTxAborted (after rolling
// back on the driver) when the server already aborted the transaction, or
// an error wrapping ErrCommitUnknown and the driver's error when the
// connection failed while COMMIT was in flight.
func (t *tx) Commit() error {
	defer t.end()
	if err := t.abortedErr(); err != nil {
		if rbErr := t.inner.Rollback(); rbErr != nil {
			t.c.broken = true
		}
		return err
	}
	err := t.inner.Commit()
	if err == nil {
		return nil
	}
	k := t.c.core.dialect.impl().classify(err)
	if k&kindConnLost != 0 || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.c.broken = true
		return fmt.Errorf("%w: %w", ErrCommitUnknown, err)
	}
	return err
}

// Rollback rolls back. The driver's error is returned unchanged; after a
// failed rollback the session may still be in a transaction, so the
// connection is discarded rather than handed to the next user.
func (t *tx) Rollback() error {
	defer t.end()
	err := t.inner.Rollback()
	if err != nil {
		t.c.broken = true
	}
	return err
}

// vtx is a transaction begun with a delivery's context: its statements run
// in the delivery's transaction, which Deliver ends. Commit ends nothing;
// Rollback marks the delivery rollback-only.
type vtx struct {
	c *conn
	t *dtx
}

func (v *vtx) done() {
	if v.c.vtx == v {
		v.c.vtx = nil
	}
}

// Commit reports what the delivery's transaction already knows would make
// it fail (aborted by the server, rolled back by an inner Rollback); the
// commit itself is Deliver's.
func (v *vtx) Commit() error {
	v.done()
	t := v.t
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.rollbackOnly != nil:
		return t.rollbackOnly
	case t.pc != nil:
		return t.pc.abortedErr()
	case t.dup:
		return t.dupErr()
	}
	return fmt.Errorf("%w (message id %q)", ErrDeliveryDone, t.s.id)
}

// Rollback marks the delivery rollback-only: its transaction cannot undo
// part of the work, and committing the rest would apply the message
// incompletely.
func (v *vtx) Rollback() error {
	v.done()
	v.t.markRollbackOnly()
	return nil
}
