package exactlyonce

import (
	"context"
	"sync"
	"sync/atomic"
)

// gate tracks the listener calls of a Consumer so that Shutdown can stop new
// work, wait for running handlers and cancel them when the grace period ends.
//
// Calls that arrive after close do not run the handler, and calls with a
// message that failed after close (e.g. cancelled at the end of the grace
// period) return no result yet: they wait until the
// client has been shut down (release) and then return a retry result, which
// the client ignores because by then every process queue is dropped. Nothing
// is acknowledged and nothing is sent back to the broker: the broker
// redelivers from the last committed offset. Returning a retry at once would
// make the concurrent client send every such message back to the retry topic
// (delaying it, and losing it if the broker rejects the send-back, upstream
// #1106).
type gate struct {
	mu       sync.Mutex
	closed   atomic.Bool // set under mu; draining reads it without
	running  int
	idle     chan struct{} // closed when closed && running == 0
	released chan struct{} // closed by release
	relOnce  sync.Once

	// The handlers' cancel functions, called when the grace period ends.
	cancelled bool
	cancels   map[uint64]context.CancelFunc
	nextID    uint64
}

func newGate() *gate {
	return &gate{idle: make(chan struct{}), released: make(chan struct{}), cancels: map[uint64]context.CancelFunc{}}
}

// onCancel arranges for cancel, a handler context's, to be called when the
// grace period ends: by cancel() before it returns, or at once if it has
// ended. context.AfterFunc would call it later, from a goroutine of its own,
// and the handler could still commit meanwhile. stop undoes it. A nil gate
// never calls it.
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
// cancelled when it returns. Idempotent.
func (g *gate) cancel() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cancelled = true
	for id, cancel := range g.cancels {
		cancel()
		delete(g.cancels, id)
	}
}

// enter registers a running call. It returns false, registering nothing, once
// the gate is closed. A nil gate always admits.
func (g *gate) enter() bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed.Load() {
		return false
	}
	g.running++
	return true
}

// exit ends a call registered by enter.
func (g *gate) exit() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running--
	if g.closed.Load() && g.running == 0 {
		close(g.idle)
	}
}

// draining reports whether the gate is closed: a running call should not
// start another message.
func (g *gate) draining() bool {
	if g == nil {
		return false
	}
	return g.closed.Load()
}

// close stops admitting calls. Idempotent.
func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed.Load() {
		return
	}
	g.closed.Store(true)
	if g.running == 0 {
		close(g.idle)
	}
}

// wait blocks until no call is running or ctx is done.
func (g *gate) wait(ctx context.Context) error {
	select {
	case <-g.idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hold blocks a refused call until release. A nil gate returns at once.
func (g *gate) hold() {
	if g == nil {
		return
	}
	<-g.released
}

// release lets held calls return. Idempotent.
func (g *gate) release() { g.relOnce.Do(func() { close(g.released) }) }

// running reports how many calls are running.
func (g *gate) runningCalls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}
