package mqdatasource

import (
	"context"
	"database/sql/driver"
	"errors"
)

var (
	_ driver.Stmt              = (*stmt)(nil)
	_ driver.StmtExecContext   = (*stmt)(nil)
	_ driver.StmtQueryContext  = (*stmt)(nil)
	_ driver.NamedValueChecker = (*stmt)(nil)
)

// stmt wraps a prepared statement. Each execution is routed like the
// connection's calls: with a delivery, to the delivery's transaction (where
// the statement is prepared on the delivery's connection, by its text);
// otherwise to the statement prepared on the connection, which is prepared
// on first use when the statement was made for a delivery. Nothing runs on
// an aborted transaction.
type stmt struct {
	c     *conn
	query string
	inner driver.Stmt // prepared on c, nil until needed
}

func (s *stmt) Close() error {
	if s.inner == nil {
		return nil
	}
	return s.inner.Close()
}

// NumInput is unknown (-1) until the statement is prepared on the
// connection: the database checks the arguments.
func (s *stmt) NumInput() int {
	if s.inner == nil {
		return -1
	}
	return s.inner.NumInput()
}

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), valuesToNamed(args))
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), valuesToNamed(args))
}

// local returns the statement prepared on the connection, preparing it now
// if need be.
func (s *stmt) local(ctx context.Context) (driver.Stmt, error) {
	if err := s.c.guard(ctx); err != nil {
		return nil, err
	}
	if s.inner == nil {
		is, err := prepareInner(ctx, s.c.inner, s.query)
		if err != nil {
			s.c.observe(ctx, err)
			return nil, err
		}
		s.inner = is
	}
	return s.inner, nil
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	t, err := s.c.route(ctx)
	if err != nil {
		return nil, err
	}
	if t != nil {
		return t.exec(ctx, s.query, args)
	}
	is, err := s.local(ctx)
	if err != nil {
		return nil, err
	}
	res, err := stmtExec(ctx, is, args)
	s.c.observe(ctx, err)
	return res, err
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	t, err := s.c.route(ctx)
	if err != nil {
		return nil, err
	}
	if t != nil {
		return t.query(ctx, s.query, args)
	}
	is, err := s.local(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := stmtQuery(ctx, is, args)
	if err != nil {
		s.c.observe(ctx, err)
		return nil, err
	}
	return s.c.wrapRows(ctx, rows), nil
}

// CheckNamedValue forwards to the driver's statement, else to its
// connection (database/sql consults the connection only when the statement
// lacks the method, and ours never does), else defers to database/sql.
func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if nvc, ok := s.inner.(driver.NamedValueChecker); ok {
		return nvc.CheckNamedValue(nv)
	}
	return s.c.CheckNamedValue(nv)
}

func stmtExec(ctx context.Context, s driver.Stmt, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := s.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	vals, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	//lint:ignore SA1019 the fallback for drivers without the context variant
	return s.Exec(vals)
}

func stmtQuery(ctx context.Context, s driver.Stmt, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := s.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	vals, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	//lint:ignore SA1019 the fallback for drivers without the context variant
	return s.Query(vals)
}

func valuesToNamed(vals []driver.Value) []driver.NamedValue {
	args := make([]driver.NamedValue, len(vals))
	for i, v := range vals {
		args[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return args
}

func namedToValues(args []driver.NamedValue) ([]driver.Value, error) {
	vals := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errors.New("mqdatasource: driver does not support the use of Named Parameters")
		}
		vals[i] = a.Value
	}
	return vals, nil
}
