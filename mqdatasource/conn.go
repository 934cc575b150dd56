package mqdatasource

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
)

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
)

// conn wraps one driver connection. database/sql never uses a connection
// from two goroutines at once, and hands it over with a lock, so its fields
// need no locking of their own.
type conn struct {
	inner driver.Conn
	core  *core

	tx        *tx         // the open transaction, nil if none
	claimStmt driver.Stmt // the claim INSERT, prepared once per connection
	noExecer  bool        // inner ExecContext with arguments returned ErrSkip
	broken    bool        // the connection failed: discard it

	// autocommitOff: the session runs with autocommit=0 (MySQL), set by
	// beginImplicit. Every statement outside a transaction turns autocommit
	// back on first (guard), so it never lands in an implicit transaction.
	autocommitOff bool
	// lastClaimed: the last thing this connection ran was a claimed
	// transaction. Only then is the next claimed transaction begun by
	// beginImplicit: a connection that alternates claims with statements
	// outside transactions (the listener's pre-check lookup) would pay a
	// round trip to turn autocommit back on for each of those.
	lastClaimed bool
}

func newConn(inner driver.Conn, c *core) *conn { return &conn{inner: inner, core: c} }

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if err := c.guard(ctx, opPrepare); err != nil {
		return nil, err
	}
	s, err := c.prepareInner(ctx, query)
	if err != nil {
		c.observe(ctx, err)
		return nil, err
	}
	return &stmt{inner: s, c: c}, nil
}

// prepareInner prepares query on the driver's connection, with its context
// variant if it has one.
func (c *conn) prepareInner(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return c.inner.Prepare(query)
}

func (c *conn) Close() error {
	c.closeClaimStmt()
	return c.inner.Close()
}

func (c *conn) closeClaimStmt() {
	if c.claimStmt != nil {
		_ = c.claimStmt.Close()
		c.claimStmt = nil
	}
}

// Begin is the pre-context form; database/sql calls BeginTx.
func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx begins a transaction on the inner connection and, with a delivery
// in ctx, claims it: see DataSource.BeginTx.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.broken {
		return nil, driver.ErrBadConn
	}
	cl := claimFromContext(ctx)
	if cl != nil {
		if err := c.core.validate(cl.d, cl.id); err != nil {
			return nil, err
		}
		if err := cl.acquire(); err != nil {
			return nil, err
		}
	}
	if cl != nil && opts == (driver.TxOptions{}) && c.core.dialect.impl().pipelineBegin {
		if pc, ok := c.inner.(pgxConner); ok {
			itx, dup, err := c.beginPipelined(ctx, pc.Conn(), cl)
			var t *tx
			if itx != nil {
				t = &tx{c: c, inner: itx, claim: cl}
			}
			return c.claimed(cl, t, dup, err)
		}
	}
	var (
		itx driver.Tx
		err error
	)
	if cl != nil && opts == (driver.TxOptions{}) && c.core.dialect.impl().implicitBegin && (c.autocommitOff || c.lastClaimed) {
		itx, err = c.beginImplicit(ctx)
	} else {
		itx, err = c.beginInner(ctx, opts)
	}
	if err != nil {
		cl.release(false)
		c.observe(ctx, err)
		return nil, err
	}
	t := &tx{c: c, inner: itx, claim: cl}
	c.tx = t
	if cl == nil {
		return t, nil
	}
	// c.tx is already t while the claim runs, so that observe marks it
	// aborted (claimed then rolls it back either way).
	dup, err := c.insertClaim(ctx, cl)
	return c.claimed(cl, t, dup, err)
}

// claimed finishes BeginTx once the claim INSERT ran in t: it installs and
// returns t, or rolls back and returns ErrAlreadyConsumed (dup) or the
// claim's error. On error t may be nil (nothing to roll back).
func (c *conn) claimed(cl *claim, t *tx, dup bool, err error) (driver.Tx, error) {
	if err == nil && !dup {
		c.tx = t
		return t, nil
	}
	if t != nil && c.tx == t {
		c.tx = nil
	}
	// Roll back: nothing but the claim ran in this transaction. If the
	// rollback fails the session may still be in a transaction: discard it.
	if t != nil {
		if rbErr := t.inner.Rollback(); rbErr != nil {
			c.broken = true
		}
	}
	cl.release(false)
	if dup {
		if err != nil {
			return nil, fmt.Errorf("%w: message id %q: %w", ErrAlreadyConsumed, cl.id, err)
		}
		return nil, fmt.Errorf("%w: message id %q", ErrAlreadyConsumed, cl.id)
	}
	return nil, err
}

func (c *conn) beginInner(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.inner.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	// The checks database/sql makes for a driver without ConnBeginTx.
	if opts.Isolation != driver.IsolationLevel(0) {
		return nil, errors.New("mqdatasource: driver does not support non-default isolation level")
	}
	if opts.ReadOnly {
		return nil, errors.New("mqdatasource: driver does not support read-only transactions")
	}
	if ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	//lint:ignore SA1019 the fallback for drivers without the context variant
	return c.inner.Begin()
}

// beginImplicit starts a MySQL transaction without a round trip of its own:
// with autocommit=0 (set once per connection) the claim INSERT itself opens
// the transaction, which COMMIT or ROLLBACK ends. The transaction is the
// same as START TRANSACTION's (the snapshot is taken at the first read in
// both); it saves one round trip per claimed transaction.
func (c *conn) beginImplicit(ctx context.Context) (driver.Tx, error) {
	e, ok := c.inner.(driver.ExecerContext)
	if !ok {
		return c.beginInner(ctx, driver.TxOptions{})
	}
	if !c.autocommitOff {
		if _, err := e.ExecContext(ctx, "SET autocommit=0", nil); err != nil {
			return nil, err
		}
		c.autocommitOff = true
	}
	return &implicitTx{c: c, e: e}, nil
}

// implicitTx ends a transaction begun by beginImplicit. COMMIT and ROLLBACK
// do not use the transaction's context (like the driver's own Tx): a
// cancelled context must not leave the server's transaction open. If
// either fails the connection's state is unknown, and it is discarded.
type implicitTx struct {
	c *conn
	e driver.ExecerContext
}

func (t *implicitTx) Commit() error   { return t.end("COMMIT") }
func (t *implicitTx) Rollback() error { return t.end("ROLLBACK") }

func (t *implicitTx) end(q string) error {
	_, err := t.e.ExecContext(context.Background(), q, nil)
	if err != nil {
		t.c.broken = true
	}
	return err
}

// insertClaim runs the claim INSERT in the open transaction. It reports
// dup when the record's unique key already holds the message id; err is
// then the driver's duplicate error, if any.
func (c *conn) insertClaim(ctx context.Context, cl *claim) (dup bool, err error) {
	dl := c.core.dialect.impl()
	args := dl.claimArgs(cl.d, cl.id, time.Now().UnixMilli())
	if err := c.checkArgs(args); err != nil {
		return false, err
	}
	var res driver.Result
	if e, ok := c.inner.(driver.ExecerContext); ok && !c.noExecer {
		res, err = e.ExecContext(ctx, c.core.claimSQL, args)
		if errors.Is(err, driver.ErrSkip) {
			c.noExecer = true
		}
	}
	viaStmt := res == nil && (err == nil || errors.Is(err, driver.ErrSkip))
	if viaStmt {
		res, err = c.execClaimStmt(ctx, args)
	}
	if err != nil {
		if dl.isDuplicate(err, c.core.uk(), cl.id) {
			return true, err
		}
		if viaStmt {
			// The statement may be stale (table recreated): prepare anew
			// next time. A duplicate shows it works.
			c.closeClaimStmt()
		}
		c.observe(ctx, err)
		return false, err
	}
	if dl.dupByCount {
		n, err := res.RowsAffected()
		if err != nil {
			return false, err
		}
		return n == 0, nil
	}
	return false, nil
}

// execClaimStmt runs the claim through a statement prepared once per
// connection (drivers that prepare for every ExecContext with arguments,
// like go-sql-driver/mysql without interpolateParams, would otherwise cost
// a round trip more per claim).
func (c *conn) execClaimStmt(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if c.claimStmt == nil {
		s, err := c.prepareInner(ctx, c.core.claimSQL)
		if err != nil {
			return nil, err
		}
		c.claimStmt = s
	}
	return stmtExec(ctx, c.claimStmt, args)
}

// checkArgs runs the driver's own argument check, as database/sql would.
func (c *conn) checkArgs(args []driver.NamedValue) error {
	nvc, ok := c.inner.(driver.NamedValueChecker)
	if !ok {
		return nil
	}
	for i := range args {
		if err := nvc.CheckNamedValue(&args[i]); err != nil && !errors.Is(err, driver.ErrSkip) {
			return err
		}
	}
	return nil
}

type op int

const (
	opPrepare op = iota
	opRead
	opWrite
)

// guard refuses statements that must not reach the server: any statement on
// a transaction the server already aborted, and a write outside a
// transaction with a delivery in ctx. Before a statement outside a
// transaction it turns autocommit back on if beginImplicit turned it off.
func (c *conn) guard(ctx context.Context, o op) error {
	if c.tx != nil {
		return c.tx.abortedErr()
	}
	if o == opWrite {
		if cl := claimFromContext(ctx); cl != nil {
			return fmt.Errorf("%w (message id %q); run it in a transaction, or use WithoutDelivery(ctx) to run it unprotected", ErrNoTransaction, cl.id)
		}
	}
	if o != opPrepare {
		c.lastClaimed = false
	}
	if c.autocommitOff && o != opPrepare {
		if c.broken {
			return driver.ErrBadConn
		}
		e := c.inner.(driver.ExecerContext) // set only where it is one
		if _, err := e.ExecContext(ctx, "SET autocommit=1", nil); err != nil {
			c.observe(ctx, err)
			return err
		}
		c.autocommitOff = false
	}
	return nil
}

// observe records what a failed statement means: a lost connection is
// discarded, and a transaction the server rolled back is marked aborted.
func (c *conn) observe(ctx context.Context, err error) {
	if err == nil || errors.Is(err, driver.ErrSkip) {
		return
	}
	k := c.core.dialect.impl().classify(err)
	if k&kindConnLost != 0 {
		c.broken = true
	}
	if c.tx == nil {
		return
	}
	switch {
	case k&kindAborts != 0:
		c.tx.abort(err)
	case k&kindLockTimeout != 0 && c.rollbackOnTimeout(ctx):
		c.tx.abort(err)
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// The driver may have cut the statement off mid-way (go-sql-driver
		// closes the connection): nothing more is safe on this transaction.
		c.tx.abort(err)
	}
}

// rollbackOnTimeout reports whether MySQL rolls the whole transaction back
// on a lock wait timeout (innodb_rollback_on_timeout, a startup option, so
// it is read once). When it cannot be read the answer is yes: refusing a
// live transaction costs a retry, running statements of a dead one in
// autocommit costs correctness.
func (c *conn) rollbackOnTimeout(ctx context.Context) bool {
	switch c.core.rollbackOnTimeout.Load() {
	case 1:
		return false
	case 2:
		return true
	}
	q, ok := c.inner.(driver.QueryerContext)
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
		c.core.rollbackOnTimeout.Store(2)
	} else {
		c.core.rollbackOnTimeout.Store(1)
	}
	return on
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.guard(ctx, opWrite); err != nil {
		return nil, err
	}
	e, ok := c.inner.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := e.ExecContext(ctx, query, args)
	c.observe(ctx, err)
	return res, err
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.guard(ctx, opRead); err != nil {
		return nil, err
	}
	q, ok := c.inner.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if err != nil {
		c.observe(ctx, err)
		return nil, err
	}
	return c.wrapRows(ctx, rows), nil
}

func (c *conn) Ping(ctx context.Context) error {
	if c.broken {
		return driver.ErrBadConn
	}
	if p, ok := c.inner.(driver.Pinger); ok {
		err := p.Ping(ctx)
		c.observe(ctx, err)
		return err
	}
	return nil
}

func (c *conn) ResetSession(ctx context.Context) error {
	if c.broken {
		return driver.ErrBadConn
	}
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *conn) IsValid() bool {
	if c.broken {
		return false
	}
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if nvc, ok := c.inner.(driver.NamedValueChecker); ok {
		return nvc.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}
