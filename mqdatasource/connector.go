package mqdatasource

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
)

var (
	_ driver.Connector = (*connector)(nil)
	_ io.Closer        = (*connector)(nil)
	_ driver.Connector = dsnConnector{}
)

// connector wraps the driver's connector: every connection it opens is a
// *conn that claims the delivery of a transaction's context.
type connector struct {
	inner driver.Connector
	core  *core
	drv   driver.Driver
}

func newConnector(c driver.Connector, cfg *config) (*connector, error) {
	if c == nil {
		return nil, errors.New("mqdatasource: nil driver.Connector")
	}
	if _, ok := c.(*connector); ok {
		return nil, errors.New("mqdatasource: connector is already wrapped by mqdatasource (each transaction would claim twice)")
	}
	co, err := newCore(cfg, c.Driver())
	if err != nil {
		return nil, err
	}
	co.pool = &pool{core: co, connect: c.Connect, maxIdle: cfg.maxIdleDeliveryConns}
	wc := &connector{inner: c, core: co}
	wc.drv = wrapDriver(c.Driver(), cfg, co)
	return wc, nil
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	ic, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return newConn(ic, c.core), nil
}

func (c *connector) Driver() driver.Driver { return c.drv }

// Close closes the delivery connections, and the inner connector if it is
// an io.Closer (sql.DB.Close calls it).
func (c *connector) Close() error {
	c.core.pool.close()
	if cl, ok := c.inner.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// dsnConnector is the connector of a driver that does not implement
// driver.DriverContext, like database/sql's own.
type dsnConnector struct {
	dsn string
	drv driver.Driver
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.drv }

// wrappedDriver is what connector.Driver returns: opening a connection
// through it wraps the connection too.
type wrappedDriver struct {
	inner driver.Driver
	cfg   *config
	core  *core
}

// wrappedDriverContext adds driver.DriverContext when the inner driver has it.
type wrappedDriverContext struct{ *wrappedDriver }

var (
	_ driver.Driver        = (*wrappedDriver)(nil)
	_ driver.DriverContext = wrappedDriverContext{}
)

func wrapDriver(d driver.Driver, cfg *config, c *core) driver.Driver {
	w := &wrappedDriver{inner: d, cfg: cfg, core: c}
	if _, ok := d.(driver.DriverContext); ok {
		return wrappedDriverContext{w}
	}
	return w
}

func (d *wrappedDriver) Open(name string) (driver.Conn, error) {
	ic, err := d.inner.Open(name)
	if err != nil {
		return nil, err
	}
	return newConn(ic, d.core), nil
}

func (d wrappedDriverContext) OpenConnector(name string) (driver.Connector, error) {
	ic, err := d.inner.(driver.DriverContext).OpenConnector(name)
	if err != nil {
		return nil, err
	}
	// A connector of its own: its delivery connections go to name.
	return newConnector(ic, d.cfg)
}
