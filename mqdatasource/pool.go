package mqdatasource

import (
	"context"
	"database/sql/driver"
	"sync"
	"time"
)

// Defaults of the delivery connection pool (see WithMaxIdleDeliveryConns).
const (
	// DefaultMaxIdleDeliveryConns is rocketmq-client-go's default number
	// of consuming goroutines, so a consumer at full speed keeps its
	// connections.
	DefaultMaxIdleDeliveryConns = 20
	// deliveryConnMaxIdleTime closes connections idle longer, before a
	// server's own idle timeout (MySQL wait_timeout) cuts them.
	deliveryConnMaxIdleTime = 5 * time.Minute
)

// pool keeps a DataSource's delivery connections: physical connections,
// outside database/sql's pool, that run only delivery transactions. A
// delivery holds one for its whole life, whichever pooled connection
// database/sql picks for each of its calls, and no connection of
// database/sql's pool ever carries a delivery's transaction to another
// caller.
type pool struct {
	core    *core
	connect func(context.Context) (driver.Conn, error)
	maxIdle int

	mu     sync.Mutex
	idle   []*pconn // least recently used first
	closed bool
}

// get returns an idle connection, or a new one when there is none or fresh
// is set.
func (p *pool) get(ctx context.Context, fresh bool) (*pconn, error) {
	p.mu.Lock()
	var stale []*pconn
	now := time.Now()
	for len(p.idle) > 0 && now.Sub(p.idle[0].idleSince) > deliveryConnMaxIdleTime {
		stale = append(stale, p.idle[0])
		p.idle = p.idle[1:]
	}
	var pc *pconn
	if n := len(p.idle); n > 0 && !fresh {
		pc = p.idle[n-1]
		p.idle = p.idle[:n-1]
	}
	p.mu.Unlock()
	for _, s := range stale {
		s.close()
	}
	if pc != nil && pc.valid() {
		return pc, nil
	}
	if pc != nil {
		pc.close()
	}
	ic, err := p.connect(ctx)
	if err != nil {
		return nil, err
	}
	return &pconn{inner: ic, core: p.core}, nil
}

// put takes a connection back after its delivery ended; a broken one, or
// one over the idle limit, is closed.
func (p *pool) put(pc *pconn) {
	p.mu.Lock()
	if pc.broken || pc.itx != nil || p.closed || len(p.idle) >= p.maxIdle {
		p.mu.Unlock()
		pc.close()
		return
	}
	pc.idleSince = time.Now()
	p.idle = append(p.idle, pc)
	p.mu.Unlock()
}

// close closes the idle connections; those in use are closed when their
// deliveries end.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
}
