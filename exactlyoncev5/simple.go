package exactlyoncev5

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// SimpleClient is the part of golang.SimpleConsumer a SimpleConsumer uses;
// a started golang.SimpleConsumer implements it.
type SimpleClient interface {
	Receive(ctx context.Context, maxMessageNum int32, invisibleDuration time.Duration) ([]*rmq.MessageView, error)
	Ack(ctx context.Context, mv *rmq.MessageView) error
	ChangeInvisibleDuration(mv *rmq.MessageView, invisibleDuration time.Duration) error
	GracefulStop() error
}

var _ SimpleClient = rmq.SimpleConsumer(nil)

// SimpleConsumer runs the receive loop of a golang.SimpleConsumer: it
// receives messages (WithInvisibleDuration), runs each as one delivery in a
// goroutine of its own (at most WithMaxMessages at once), and then
//
//   - Acks a message the outcome table acknowledges (committed, duplicate,
//     skipped, unclaimed). A failed Ack leaves the message to come back
//     after its invisible duration, and the pre-check or the claim then
//     acknowledges it as a duplicate;
//   - changes the invisible duration of a failed message to the back-off
//     of WithRetryBackoff, so it comes back after it (if that call fails,
//     after the rest of its invisible duration). A FIFO message group waits
//     meanwhile: the broker hands out no later message of the group.
//
// While a handler runs, its message's invisible duration is extended every
// half duration (WithExtendInvisible). If it expires all the same (the
// extension failed, or is off), the broker delivers the message again; that
// delivery's claim waits for the running one's transaction and is
// acknowledged as a duplicate if it commits.
type SimpleConsumer struct {
	p      *processor
	client SimpleClient
	gate   *gate
	slots  chan struct{}

	mu      sync.Mutex
	running bool
	stopped bool
	stop    chan struct{} // closed by Shutdown
	done    chan struct{} // closed when Run returns
}

// NewSimpleConsumer returns a SimpleConsumer of group that runs h once per
// message received through client. client must be a started
// golang.SimpleConsumer of group (golang.Config.ConsumerGroup) with its
// subscriptions; Shutdown stops it.
func NewSimpleConsumer(ds *mqdatasource.DataSource, group string, client SimpleClient, h Handler, opts ...Option) (*SimpleConsumer, error) {
	if h == nil {
		return nil, errors.New("exactlyoncev5: NewSimpleConsumer needs a Handler")
	}
	return newSimpleConsumer(ds, group, client, h, nil, opts)
}

// NewSimpleTxConsumer is NewSimpleConsumer for a TxHandler.
func NewSimpleTxConsumer(ds *mqdatasource.DataSource, group string, client SimpleClient, h TxHandler, opts ...Option) (*SimpleConsumer, error) {
	if h == nil {
		return nil, errors.New("exactlyoncev5: NewSimpleTxConsumer needs a TxHandler")
	}
	return newSimpleConsumer(ds, group, client, nil, h, opts)
}

func newSimpleConsumer(ds *mqdatasource.DataSource, group string, client SimpleClient, h Handler, txh TxHandler, opts []Option) (*SimpleConsumer, error) {
	if ds == nil || client == nil {
		return nil, errors.New("exactlyoncev5: a simple consumer needs a DataSource and a client")
	}
	if group == "" {
		return nil, fmt.Errorf("%w: a simple consumer needs a consumer group", exactlyonce.ErrGroup)
	}
	cfg := newConfig(opts)
	g := newGate()
	return &SimpleConsumer{
		p:      newProcessor(ds, group, h, txh, cfg, g),
		client: client,
		gate:   g,
		slots:  make(chan struct{}, cfg.maxMessages),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}, nil
}

// Run receives and handles messages until Shutdown is called or ctx ends. After Shutdown it
// returns nil. When ctx ends first, the running handlers' contexts, derived
// from ctx, are cancelled (their transactions roll back and their messages
// come back), Run waits for them and returns ctx's error. It may be called
// once.
func (c *SimpleConsumer) Run(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.stopped:
		c.mu.Unlock()
		return exactlyonce.ErrShutdown
	case c.running:
		c.mu.Unlock()
		return errors.New("exactlyoncev5: SimpleConsumer.Run called twice")
	}
	c.running = true
	c.mu.Unlock()
	defer close(c.done)

	var wg sync.WaitGroup
	defer wg.Wait()
	// rctx ends a pending Receive when Shutdown is called.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-rctx.Done():
		}
	}()
	for {
		n, ok := c.acquire(rctx)
		if !ok {
			break
		}
		mvs, err := c.client.Receive(rctx, int32(n), c.p.cfg.invisible)
		if len(mvs) < n {
			c.release(n - len(mvs))
		}
		if err != nil {
			if rctx.Err() != nil {
				break
			}
			c.receiveFailed(rctx, err)
			continue
		}
		for i, mv := range mvs {
			if i >= n {
				// More than asked for: it still needs a slot, freed by
				// a handler started before it.
				c.slots <- struct{}{}
			}
			if mv == nil {
				c.release(1)
				continue
			}
			if !c.gate.enter() {
				// Shutting down: give it back soon rather than after
				// its whole invisible duration.
				c.p.cfg.metrics.MessageDone(c.p.labels(mv), exactlyonce.OutcomeNotRun)
				c.giveBack(rctx, mv, c.p.cfg.backoff)
				c.release(1)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.release(1)
				defer c.gate.exit()
				c.handle(ctx, mv)
			}()
		}
	}
	if c.isStopped() {
		return nil
	}
	return ctx.Err()
}

func (c *SimpleConsumer) isStopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}

// acquire waits for a free slot and takes every other free one, returning
// how many it took; false when ctx ends.
func (c *SimpleConsumer) acquire(ctx context.Context) (int, bool) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, false
	}
	n := 1
	for n < cap(c.slots) {
		select {
		case c.slots <- struct{}{}:
			n++
			continue
		default:
		}
		break
	}
	return n, true
}

func (c *SimpleConsumer) release(n int) {
	for range n {
		<-c.slots
	}
}

// receiveFailed logs a failed Receive and pauses a little, so that a proxy
// that is down is not asked in a hot loop. An empty long poll is an error
// of the client too (MESSAGE_NOT_FOUND): not worth a log line above Debug.
func (c *SimpleConsumer) receiveFailed(ctx context.Context, err error) {
	level := slog.LevelWarn
	var st *rmq.ErrRpcStatus
	if errors.As(err, &st) && st.GetCode() == int32(codeMessageNotFound) {
		level = slog.LevelDebug
	}
	c.p.cfg.logger.LogAttrs(ctx, level, "exactlyoncev5: receive failed", slog.String("group", c.p.group), slog.Any("error", err))
	if level == slog.LevelDebug {
		return
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// codeMessageNotFound is apache.rocketmq.v2.Code MESSAGE_NOT_FOUND: a long
// poll that found nothing.
const codeMessageNotFound = 40401

// handle runs one received message and settles it with the broker.
func (c *SimpleConsumer) handle(ctx context.Context, mv *rmq.MessageView) {
	// The extender changes mv's receipt handle (each change returns a new
	// one): it must have stopped before the Ack or the give-back reads it.
	stopExtend := c.extend(ctx, mv)
	o, _ := c.p.process(ctx, mv)
	stopExtend()
	if o.Acked() {
		// The Ack must not be lost to a cancelled ctx: the work committed.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := c.client.Ack(actx, mv); err != nil {
			c.p.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "exactlyoncev5: ack failed; the message comes back after its invisible duration and is skipped as a duplicate",
				slog.String("group", c.p.group), slog.String("messageId", mv.GetMessageId()), slog.Any("error", err))
		}
		return
	}
	c.giveBack(ctx, mv, c.p.backoff(mv.GetDeliveryAttempt()))
}

// giveBack makes mv visible again after d. If that fails it comes back
// after the rest of its invisible duration.
func (c *SimpleConsumer) giveBack(ctx context.Context, mv *rmq.MessageView, d time.Duration) {
	if err := c.client.ChangeInvisibleDuration(mv, d); err != nil {
		c.p.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "exactlyoncev5: could not give the message back early; it comes back after its invisible duration",
			slog.String("group", c.p.group), slog.String("messageId", mv.GetMessageId()), slog.Any("error", err))
	}
}

// extend keeps mv invisible while its handler runs, renewing the full
// invisible duration every half of it, until stop is called (stop waits for
// a renewal in flight).
func (c *SimpleConsumer) extend(ctx context.Context, mv *rmq.MessageView) (stop func()) {
	if !c.p.cfg.extend {
		return func() {}
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(c.p.cfg.invisible / 2)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			if err := c.client.ChangeInvisibleDuration(mv, c.p.cfg.invisible); err != nil {
				c.p.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "exactlyoncev5: extending the invisible duration failed; if the message comes back while its handler runs, the claim makes it a duplicate",
					slog.String("group", c.p.group), slog.String("messageId", mv.GetMessageId()), slog.Any("error", err))
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// Shutdown stops the consumer gracefully: it stops receiving (a Receive in
// progress is cancelled; what it still returns is given back), waits for
// the running handlers until ctx ends, then cancels their context (their
// transactions roll back; a handler that still commits is acknowledged by
// nobody and skipped as a duplicate when its message comes back), waits for
// Run to return and stops the client (GracefulStop). It returns ctx's
// error, wrapped, if the handlers did not finish in time. Calling it again
// does nothing.
func (c *SimpleConsumer) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	running := c.running
	close(c.stop)
	c.mu.Unlock()

	c.gate.close()
	var err error
	if werr := c.gate.wait(ctx); werr != nil {
		n := c.gate.runningCount()
		c.p.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "exactlyoncev5: shutdown grace period over, cancelling running handlers", slog.Int("running", n))
		err = fmt.Errorf("exactlyoncev5: shutdown: %d messages still running: %w", n, werr)
	}
	c.gate.cancel()
	if running {
		<-c.done
	}
	if serr := c.client.GracefulStop(); serr != nil {
		err = errors.Join(err, fmt.Errorf("exactlyoncev5: stop simple consumer: %w", serr))
	}
	return err
}
