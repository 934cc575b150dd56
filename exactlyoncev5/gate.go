package exactlyoncev5

import (
	"context"
	"sync"
	"time"
)

// gate tracks a consumer's running messages so that Shutdown can stop new
// work, wait for the running handlers and cancel them when the grace period
// ends. Unlike the v2 adapter's, it holds no call back: a v5 client gives a
// refused message back without a send-back (FAILURE or no Ack just makes it
// visible again later), so a refusal can return at once. A nil *gate admits
// everything and never cancels.
//
// It is not shared with the v2 adapter through an internal package of the
// root module: this module would then compile against whatever version of
// that unexported API the user's build selects, so the two would have to be
// released in lock-step.
type gate struct {
	mu        sync.Mutex
	closed    bool
	running   int
	idle      chan struct{} // closed when closed && running == 0
	closing   chan struct{} // closed by close
	cancelled bool
	cancels   map[uint64]context.CancelFunc
	nextID    uint64
}

func newGate() *gate {
	return &gate{idle: make(chan struct{}), closing: make(chan struct{}), cancels: map[uint64]context.CancelFunc{}}
}

// enter registers a running message, or returns false once the gate is
// closed.
func (g *gate) enter() bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.running++
	return true
}

// exit ends a message registered by enter.
func (g *gate) exit() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running--
	if g.closed && g.running == 0 {
		close(g.idle)
	}
}

// draining reports whether the gate is closed.
func (g *gate) draining() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// close stops admitting messages. Idempotent.
func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed = true
	close(g.closing)
	if g.running == 0 {
		close(g.idle)
	}
}

// pause waits d, or less when the gate closes. A nil gate just sleeps.
func (g *gate) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	var closing chan struct{}
	if g != nil {
		closing = g.closing
	}
	select {
	case <-t.C:
	case <-closing:
	}
}

// wait blocks until no message is running or ctx is done.
func (g *gate) wait(ctx context.Context) error {
	select {
	case <-g.idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runningCount reports how many messages are running.
func (g *gate) runningCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}

// onCancel arranges for cancel, a handler context's, to be called when the
// grace period ends (at once if it has). It is called synchronously by
// cancel, not later from a goroutine of its own as with context.AfterFunc,
// so that no handler can still commit after Shutdown moved on. stop undoes
// it.
func (g *gate) onCancel(cancel context.CancelFunc) (stop func()) {
	if g == nil {
		return func() {}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cancelled {
		cancel()
		return func() {}
	}
	id := g.nextID
	g.nextID++
	g.cancels[id] = cancel
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		delete(g.cancels, id)
	}
}

// cancel ends the grace period: every running handler's context is
// cancelled. Idempotent.
func (g *gate) cancel() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cancelled = true
	for id, cancel := range g.cancels {
		cancel()
		delete(g.cancels, id)
	}
}
