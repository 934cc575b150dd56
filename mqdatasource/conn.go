package mqdatasource

import (
	"context"
	"database/sql/driver"
	"errors"
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

// conn wraps one connection of database/sql's pool. Work made with a
// delivery's context is routed to the delivery's transaction (see
// Deliver); everything else runs on the connection itself. database/sql
// never uses a connection from two goroutines at once, so its fields need
// no locking of their own.
type conn struct {
	inner driver.Conn
	core  *core

	tx     *tx  // the open transaction of the connection's own, nil if none
	vtx    *vtx // the open transaction routed to a delivery, nil if none
	broken bool // the connection failed: discard it

	// resetDue is set when database/sql handed the connection out for a
	// delivery's work without the inner driver's session reset; guard runs
	// it before the connection's next work of its own.
	resetDue bool
}

func newConn(inner driver.Conn, c *core) *conn { return &conn{inner: inner, core: c} }

// route returns the delivery transaction a call made with ctx runs in, or
// nil when it runs on the connection: inside a routed transaction, the
// delivery's; inside a transaction of the connection's own, none; else the
// delivery in ctx, if any, joined (and claimed) now.
func (c *conn) route(ctx context.Context) (*dtx, error) {
	switch {
	case c.vtx != nil:
		return c.vtx.t, nil
	case c.tx != nil:
		return nil, nil
	}
	s := scopeFromContext(ctx)
	if s == nil {
		return nil, nil
	}
	return s.join(c.core, driver.TxOptions{}, false)
}

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	t, err := c.route(ctx)
	if err != nil {
		return nil, err
	}
	if t != nil {
		// Prepared on the delivery's connection when it runs.
		return &stmt{c: c, query: query}, nil
	}
	if err := c.guard(ctx); err != nil {
		return nil, err
	}
	s, err := prepareInner(ctx, c.inner, query)
	if err != nil {
		c.observe(ctx, err)
		return nil, err
	}
	return &stmt{c: c, query: query, inner: s}, nil
}

func (c *conn) Close() error { return c.inner.Close() }

// Begin is the pre-context form; database/sql calls BeginTx.
func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx begins a transaction: with a delivery in ctx, one routed to the
// delivery's transaction (claimed now if this is the delivery's first use
// of the DataSource), whose Commit ends nothing; else one of the
// connection's own.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.broken {
		return nil, driver.ErrBadConn
	}
	if s := scopeFromContext(ctx); s != nil {
		t, err := s.join(c.core, opts, false)
		if err != nil {
			return nil, err
		}
		c.vtx = &vtx{c: c, t: t}
		return c.vtx, nil
	}
	if err := c.guard(ctx); err != nil {
		return nil, err
	}
	itx, err := beginInner(ctx, c.inner, opts)
	if err != nil {
		c.observe(ctx, err)
		return nil, err
	}
	c.tx = &tx{c: c, inner: itx}
	return c.tx, nil
}

// guard runs before the connection's own work (not a delivery's): it runs
// a session reset ResetSession deferred, and refuses any statement on a
// transaction the server already aborted: MySQL would run it in autocommit.
func (c *conn) guard(ctx context.Context) error {
	if c.resetDue {
		if err := c.resetInner(ctx); err != nil {
			return err
		}
	}
	if c.tx != nil {
		return c.tx.abortedErr()
	}
	return nil
}

// observe records what a failed statement means: a lost connection is
// discarded, and a transaction the server rolled back is marked aborted.
func (c *conn) observe(ctx context.Context, err error) {
	if err == nil || errors.Is(err, driver.ErrSkip) {
		return
	}
	lost, aborts := c.core.effect(ctx, c.inner, err)
	if lost {
		c.broken = true
	}
	if aborts && c.tx != nil {
		c.tx.abort(err)
	}
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	t, err := c.route(ctx)
	if err != nil {
		return nil, err
	}
	if t != nil {
		return t.exec(ctx, query, args)
	}
	if err := c.guard(ctx); err != nil {
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
	t, err := c.route(ctx)
	if err != nil {
		return nil, err
	}
	if t != nil {
		return t.query(ctx, query, args)
	}
	if err := c.guard(ctx); err != nil {
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
	if c.resetDue {
		if err := c.resetInner(ctx); err != nil {
			return err
		}
	}
	if p, ok := c.inner.(driver.Pinger); ok {
		err := p.Ping(ctx)
		c.observe(ctx, err)
		return err
	}
	return nil
}

// ResetSession runs before database/sql hands the connection out again.
// Handed out for a delivery's work (ctx carries one), the connection only
// routes statements to the delivery's own connection and never uses its
// inner one, so the inner driver's reset is deferred to the connection's
// next work of its own (see guard): go-sql-driver/mysql's liveness check
// is a system call, and GORM's default per-write transactions hand a
// connection out for every write. The one visible difference: a *sql.Conn
// taken with a delivery's context and then used without it gets
// driver.ErrBadConn from a dead connection, where a reset at hand-out would
// have made database/sql take another.
func (c *conn) ResetSession(ctx context.Context) error {
	if c.broken {
		return driver.ErrBadConn
	}
	if scopeFromContext(ctx) != nil {
		c.resetDue = true
		return nil
	}
	return c.resetInner(ctx)
}

// resetInner runs the inner driver's session reset. As database/sql does
// with it, only ErrBadConn counts: the connection is discarded (and the
// call retried on another by database/sql).
func (c *conn) resetInner(ctx context.Context) error {
	c.resetDue = false
	r, ok := c.inner.(driver.SessionResetter)
	if !ok {
		return nil
	}
	if err := r.ResetSession(ctx); errors.Is(err, driver.ErrBadConn) {
		c.broken = true
		return driver.ErrBadConn
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

// beginInner begins a transaction on a driver connection, with the checks
// database/sql makes for a driver without ConnBeginTx.
func beginInner(ctx context.Context, ic driver.Conn, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := ic.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
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
	return ic.Begin()
}

// prepareInner prepares query on a driver connection, with its context
// variant if it has one.
func prepareInner(ctx context.Context, ic driver.Conn, query string) (driver.Stmt, error) {
	if p, ok := ic.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return ic.Prepare(query)
}

// checkArgs runs the driver's own argument check, as database/sql would.
func checkArgs(ic driver.Conn, args []driver.NamedValue) error {
	nvc, ok := ic.(driver.NamedValueChecker)
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
