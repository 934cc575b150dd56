package mqdatasource

import (
	"context"
	"database/sql/driver"
	"io"
	"reflect"
)

var (
	_ driver.Rows                           = (*rows)(nil)
	_ driver.RowsNextResultSet              = (*rows)(nil)
	_ driver.Rows                           = (*drows)(nil)
	_ driver.RowsNextResultSet              = (*drows)(nil)
	_ driver.RowsColumnTypeScanType         = (*drows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*drows)(nil)
	_ driver.RowsColumnTypeLength           = (*drows)(nil)
	_ driver.RowsColumnTypeNullable         = (*drows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*drows)(nil)
)

// rows wraps the rows of a query run in a transaction of the connection's
// own, so that an error while reading them (a deadlock reported mid-result,
// a lost connection) marks the transaction aborted. That includes the error
// of Close: rows closed early are drained by the driver, and a deadlock met
// while the server produced the rest is reported there, often to code that
// ignores it (defer rows.Close()). Outside a transaction the driver's rows
// are returned as they are.
type rows struct {
	columnTypes
	c   *conn
	ctx context.Context
}

func (c *conn) wrapRows(ctx context.Context, r driver.Rows) driver.Rows {
	if c.tx == nil {
		return r
	}
	return &rows{columnTypes: columnTypes{r}, c: c, ctx: ctx}
}

func (r *rows) Columns() []string { return r.inner.Columns() }

func (r *rows) Close() error {
	err := r.inner.Close()
	if err != nil && err != io.EOF {
		r.c.observe(r.ctx, err)
	}
	return err
}

func (r *rows) Next(dest []driver.Value) error {
	err := r.inner.Next(dest)
	if err != nil && err != io.EOF {
		r.c.observe(r.ctx, err)
	}
	return err
}

func (r *rows) HasNextResultSet() bool { return r.hasNextResultSet() }

func (r *rows) NextResultSet() error {
	err := r.nextResultSet()
	if err != nil && err != io.EOF {
		r.c.observe(r.ctx, err)
	}
	return err
}

// drows wraps the rows of a query run in a delivery's transaction: while
// they are open the delivery's connection is busy (other statements of the
// delivery fail with ErrDeliveryBusy), and reading them is serialised with
// the delivery's other users.
type drows struct {
	columnTypes
	t      *dtx
	ctx    context.Context
	closed bool // by database/sql or by the end of the delivery
}

func (r *drows) Columns() []string { return r.inner.Columns() }

func (r *drows) Close() error {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.t.rows == r {
		r.t.rows = nil
	}
	err := r.inner.Close()
	r.observe(err)
	return err
}

func (r *drows) Next(dest []driver.Value) error {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	if r.closed {
		return io.EOF
	}
	err := r.inner.Next(dest)
	r.observe(err)
	return err
}

func (r *drows) HasNextResultSet() bool {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	return !r.closed && r.hasNextResultSet()
}

func (r *drows) NextResultSet() error {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	if r.closed {
		return io.EOF
	}
	err := r.nextResultSet()
	r.observe(err)
	return err
}

// observe is pconn.observe for an error met reading the rows; r.t.mu is
// held.
func (r *drows) observe(err error) {
	if err != nil && err != io.EOF && r.t.pc != nil {
		r.t.pc.observe(r.ctx, err)
	}
}

// columnTypes forwards the optional column type methods of driver rows,
// falling back to what database/sql reports for a driver without them.
type columnTypes struct{ inner driver.Rows }

func (r columnTypes) hasNextResultSet() bool {
	if n, ok := r.inner.(driver.RowsNextResultSet); ok {
		return n.HasNextResultSet()
	}
	return false
}

func (r columnTypes) nextResultSet() error {
	if n, ok := r.inner.(driver.RowsNextResultSet); ok {
		return n.NextResultSet()
	}
	return io.EOF
}

func (r columnTypes) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.inner.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

func (r columnTypes) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.inner.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r columnTypes) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.inner.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r columnTypes) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, ok := r.inner.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r columnTypes) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if t, ok := r.inner.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}
