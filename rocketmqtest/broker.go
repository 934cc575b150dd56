package rocketmqtest

import (
	"container/heap"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Broker is an in-process RocketMQ name server and broker on one TCP listener.
//
// Concurrency: one goroutine, the run loop, owns all broker state (topics,
// messages, offsets, groups, locks, held pulls, timers, faults). Connection
// reader goroutines hand it decoded requests; exported methods hand it
// closures and wait for them. Writing to clients happens on one writer
// goroutine per connection, so the run loop never blocks on the network.
type Broker struct {
	cfg config

	reqs  chan *inbound
	admin chan func(*state)
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup

	closeOnce sync.Once
	closed    chan struct{} // closed when Close has finished

	// keepControl is set by KeepControl from inside a control function,
	// which runs on the run loop.
	keepControl atomic.Bool

	// Live connection goroutines, for Close to say what it waits for.
	readers, writers atomic.Int32

	mu      sync.Mutex // guards ln, addr and closing
	ln      net.Listener
	addr    string
	closing bool
}

// inbound is a request on its way through the run loop.
type inbound struct {
	c   *conn
	cmd *Command
	eof bool // no command: the connection closed
}

// New starts a broker listening on the configured address (default a free
// loopback port). Close it when done.
func New(opts ...Option) (*Broker, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("rocketmqtest: listen: %w", err)
	}
	b := &Broker{
		cfg:    cfg,
		reqs:   make(chan *inbound, 256),
		admin:  make(chan func(*state)),
		done:   make(chan struct{}),
		closed: make(chan struct{}),
		ln:     ln,
		addr:   ln.Addr().String(),
	}
	s, err := newState(b)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("rocketmqtest: %w", err)
	}
	b.wg.Add(2)
	go b.run(s)
	go b.acceptLoop(ln)
	return b, nil
}

// Addr returns the "host:port" both the name server and the broker answer on:
// pass it to consumer.WithNameServer and producer.WithNameServer.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}

// Close stops the broker: the listener, every client connection and all of its
// goroutines, which it waits for. It is idempotent and safe to call from
// t.Cleanup.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing = true
		_ = b.ln.Close()
		b.mu.Unlock()
		close(b.done)
		waited := make(chan struct{})
		go func() {
			b.wg.Wait()
			close(waited)
		}()
		for {
			select {
			case <-waited:
				close(b.closed)
				return
			case <-time.After(5 * time.Second):
				b.cfg.logger.Warn("rocketmqtest: Close is still waiting for connection goroutines",
					"readers", b.readers.Load(), "writers", b.writers.Load())
			}
		}
	})
	<-b.closed
}

func (b *Broker) acceptLoop(ln net.Listener) {
	defer b.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				b.cfg.logger.Warn("rocketmqtest: accept", "err", err)
			}
			return
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		c := newConn(b, nc)
		// Register before reading, so Close and Restart see every connection.
		if !b.do(func(s *state) { s.conns[c] = true }) {
			_ = nc.Close()
			return
		}
		b.wg.Add(2)
		go c.readLoop()
		go c.writeLoop()
	}
}

// do runs fn on the run loop and waits for it; false if the broker is closed.
func (b *Broker) do(fn func(*state)) bool {
	ran := make(chan struct{})
	select {
	case b.admin <- func(s *state) { fn(s); close(ran) }:
	case <-b.done:
		return false
	}
	select {
	case <-ran:
		return true
	case <-b.done:
		return false
	}
}

func (b *Broker) run(s *state) {
	defer b.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer s.shutdown()
	for {
		next := s.nextTimer()
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case in := <-b.reqs:
			s.handle(in)
			// Drain what is already queued before looking at timers again.
			for n := 0; n < 64; n++ {
				select {
				case in := <-b.reqs:
					s.handle(in)
					continue
				default:
				}
				break
			}
		case fn := <-b.admin:
			fn(s)
		case <-timer.C:
			s.fireTimers(time.Now())
		case <-b.done:
			return
		}
		// Since Go 1.23 a stopped timer delivers no stale value.
		timer.Stop()
	}
}

// timerEvent is something the run loop does at a given time: a long-poll
// timeout, a delayed-message delivery, a delayed response.
type timerEvent struct {
	at  time.Time
	seq uint64
	fn  func()
}

type timerHeap []*timerEvent

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(*timerEvent)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

func (s *state) after(d time.Duration, fn func()) {
	s.timerSeq++
	heap.Push(&s.timers, &timerEvent{at: time.Now().Add(d), seq: s.timerSeq, fn: fn})
}

func (s *state) nextTimer() time.Time {
	if len(s.timers) == 0 || s.paused {
		return time.Time{}
	}
	return s.timers[0].at
}

func (s *state) fireTimers(now time.Time) {
	for !s.paused && len(s.timers) > 0 && !s.timers[0].at.After(now) {
		e := heap.Pop(&s.timers).(*timerEvent)
		e.fn()
	}
}
