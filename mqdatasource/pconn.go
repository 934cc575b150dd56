package mqdatasource

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
)

// maxCachedStmts bounds the statements a delivery connection keeps
// prepared.
const maxCachedStmts = 64

// pconn is a delivery connection: a physical connection of the pool that
// runs one delivery transaction at a time, claim first. Its dtx serialises
// every use of it.
type pconn struct {
	inner driver.Conn
	core  *core

	itx     driver.Tx // the open transaction, nil between deliveries
	aborted error     // the error that told us the server rolled itx back
	broken  bool      // the connection failed: close it

	// noExecer: the driver's ExecContext/QueryContext with arguments
	// returned ErrSkip (go-sql-driver without interpolateParams): such
	// statements run prepared, from stmts.
	noExecer bool
	stmts    map[string]driver.Stmt // prepared statements, kept across deliveries
	// autocommitOff: the session runs with autocommit=0 (MySQL's implicit
	// begin); a delivery connection never runs outside a transaction.
	autocommitOff bool
	idleSince     time.Time
	// dupErr is the error by which the last claim found a duplicate (nil
	// when it found none, or reported it by the count of rows).
	dupErr error
}

func (pc *pconn) valid() bool {
	if v, ok := pc.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (pc *pconn) close() {
	for _, s := range pc.stmts {
		_ = s.Close()
	}
	pc.stmts = nil
	_ = pc.inner.Close()
}

// begin begins the delivery transaction and claims d, whose message id is
// id, as its first statement. It reports dup when the record exists; the
// transaction is then still open.
func (pc *pconn) begin(ctx context.Context, d Delivery, id string, opts driver.TxOptions) (dup bool, err error) {
	dl := pc.core.dialect.impl()
	args := dl.claimArgs(d, id, time.Now().UnixMilli())
	if err := checkArgs(pc.inner, args); err != nil {
		return false, err
	}
	if opts == (driver.TxOptions{}) {
		switch {
		case dl.pipelineBegin && pc.core.beginWith != nil:
			if dup, handled, err := pc.beginPipelined(ctx, args); handled {
				return dup, err
			}
		case dl.implicitBegin:
			if e, ok := pc.inner.(driver.ExecerContext); ok {
				return pc.beginImplicit(ctx, e, args, id)
			}
		}
	}
	itx, err := beginInner(ctx, pc.inner, opts)
	if err != nil {
		pc.observe(ctx, err)
		return false, err
	}
	pc.itx = itx
	return pc.claim(ctx, args, id)
}

// beginPipelined begins the transaction and claims in one round trip, as
// the driver's package can (pgxdriver: BEGIN and the claim INSERT in one
// pipeline). It reports handled false when the connection is not the
// driver's, and dup when the claim inserted nothing (ON CONFLICT DO
// NOTHING: the message is recorded).
func (pc *pconn) beginPipelined(ctx context.Context, args []driver.NamedValue) (dup, handled bool, err error) {
	tx, n, handled, err := pc.core.beginWith(ctx, pc.inner, pc.core.claimSQL, args, func() { pc.broken = true })
	if !handled {
		return false, false, nil
	}
	if err != nil {
		if !errors.Is(err, driver.ErrBadConn) {
			pc.observe(ctx, err)
		}
		return false, true, err
	}
	pc.itx = tx
	return n == 0, true, nil
}

// claim runs the claim INSERT in the open transaction; on an error other
// than a duplicate the transaction is rolled back.
func (pc *pconn) claim(ctx context.Context, args []driver.NamedValue, id string) (dup bool, err error) {
	dl := pc.core.dialect.impl()
	isDup := func(err error) bool { return dl.isDuplicate(err, pc.core.uk(), id) }
	res, err := pc.execKeep(ctx, pc.core.claimSQL, args, isDup)
	pc.dupErr = nil
	if err != nil {
		if isDup(err) {
			pc.dupErr = err
			return true, nil
		}
		if rbErr := pc.rollback(); rbErr != nil {
			pc.broken = true
		}
		return false, err
	}
	if dl.dupByCount {
		n, err := res.RowsAffected()
		if err != nil {
			_ = pc.rollback()
			return false, err
		}
		return n == 0, nil
	}
	return false, nil
}

func (pc *pconn) abortedErr() error {
	if pc.aborted == nil {
		return nil
	}
	return fmt.Errorf("%w (by: %w)", ErrTxAborted, pc.aborted)
}

// commit commits the transaction. A connection lost while COMMIT was in
// flight gives ErrCommitUnknown.
func (pc *pconn) commit() error {
	itx := pc.itx
	pc.itx, pc.aborted = nil, nil
	err := itx.Commit()
	if err == nil {
		return nil
	}
	k := pc.core.dialect.impl().classify(err)
	if k&kindConnLost != 0 || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		pc.broken = true
		return fmt.Errorf("%w: %w", ErrCommitUnknown, err)
	}
	return err
}

// rollback rolls the transaction back. After a failed rollback the session
// may still be in a transaction: the connection is then closed.
func (pc *pconn) rollback() error {
	itx := pc.itx
	pc.itx, pc.aborted = nil, nil
	if itx == nil {
		return nil
	}
	err := itx.Rollback()
	if err != nil {
		pc.broken = true
	}
	return err
}

// exec runs a statement, prepared from the cache when the driver cannot run
// it with arguments directly.
func (pc *pconn) exec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return pc.execKeep(ctx, query, args, nil)
}

// execKeep is exec; a cached statement that fails is dropped (it may be
// stale: table recreated) unless keep says the error shows it works.
func (pc *pconn) execKeep(ctx context.Context, query string, args []driver.NamedValue, keep func(error) bool) (driver.Result, error) {
	if e, ok := pc.inner.(driver.ExecerContext); ok && (len(args) == 0 || !pc.noExecer) {
		res, err := e.ExecContext(ctx, query, args)
		if !errors.Is(err, driver.ErrSkip) {
			pc.observe(ctx, err)
			return res, err
		}
		if len(args) > 0 {
			pc.noExecer = true
		}
	}
	s, err := pc.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	res, err := stmtExec(ctx, s, args)
	if err != nil {
		if keep == nil || !keep(err) {
			pc.evict(query)
		}
		pc.observe(ctx, err)
	}
	return res, err
}

// query runs a query, like exec.
func (pc *pconn) query(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := pc.inner.(driver.QueryerContext); ok && (len(args) == 0 || !pc.noExecer) {
		rows, err := q.QueryContext(ctx, query, args)
		if !errors.Is(err, driver.ErrSkip) {
			pc.observe(ctx, err)
			return rows, err
		}
		if len(args) > 0 {
			pc.noExecer = true
		}
	}
	s, err := pc.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := stmtQuery(ctx, s, args)
	if err != nil {
		pc.evict(query)
		pc.observe(ctx, err)
	}
	return rows, err
}

// prepared returns query prepared on the connection, from the cache.
func (pc *pconn) prepared(ctx context.Context, query string) (driver.Stmt, error) {
	if s, ok := pc.stmts[query]; ok {
		return s, nil
	}
	s, err := prepareInner(ctx, pc.inner, query)
	if err != nil {
		pc.observe(ctx, err)
		return nil, err
	}
	if len(pc.stmts) >= maxCachedStmts {
		for q, old := range pc.stmts {
			_ = old.Close()
			delete(pc.stmts, q)
		}
	}
	if pc.stmts == nil {
		pc.stmts = make(map[string]driver.Stmt)
	}
	pc.stmts[query] = s
	return s, nil
}

// evict drops a statement that failed: it may be stale (table recreated).
func (pc *pconn) evict(query string) {
	if s, ok := pc.stmts[query]; ok {
		_ = s.Close()
		delete(pc.stmts, query)
	}
}

// observe records what a failed statement means for the connection and its
// transaction.
func (pc *pconn) observe(ctx context.Context, err error) {
	if err == nil || errors.Is(err, driver.ErrSkip) {
		return
	}
	lost, aborts := pc.core.effect(ctx, pc.inner, err)
	if lost {
		pc.broken = true
	}
	if aborts && pc.itx != nil && pc.aborted == nil {
		pc.aborted = err
	}
}
