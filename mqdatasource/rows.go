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
	_ driver.RowsColumnTypeScanType         = (*rows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*rows)(nil)
	_ driver.RowsColumnTypeLength           = (*rows)(nil)
	_ driver.RowsColumnTypeNullable         = (*rows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*rows)(nil)
)

// rows wraps the rows of a query run in a transaction, so that an error
// while reading them (a deadlock reported mid-result, a lost connection)
// marks the transaction aborted. That includes the error of Close: rows
// closed early are drained by the driver, and a deadlock met while the
// server produced the rest is reported there, often to code that ignores
// it (defer rows.Close()). Outside a transaction the driver's rows are
// returned as they are.
type rows struct {
	inner driver.Rows
	c     *conn
	ctx   context.Context
}

func (c *conn) wrapRows(ctx context.Context, r driver.Rows) driver.Rows {
	if c.tx == nil {
		return r
	}
	return &rows{inner: r, c: c, ctx: ctx}
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

func (r *rows) HasNextResultSet() bool {
	if n, ok := r.inner.(driver.RowsNextResultSet); ok {
		return n.HasNextResultSet()
	}
	return false
}

func (r *rows) NextResultSet() error {
	if n, ok := r.inner.(driver.RowsNextResultSet); ok {
		err := n.NextResultSet()
		if err != nil && err != io.EOF {
			r.c.observe(r.ctx, err)
		}
		return err
	}
	return io.EOF
}

// The column type methods fall back to what database/sql reports for a
// driver without them.

func (r *rows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.inner.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

func (r *rows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.inner.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *rows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.inner.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *rows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, ok := r.inner.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *rows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if t, ok := r.inner.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}
