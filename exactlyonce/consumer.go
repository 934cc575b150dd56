package exactlyonce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	rmqerrors "github.com/apache/rocketmq-client-go/v2/errors"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/backoff"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// Consumer is a rocketmq-client-go PushConsumer whose subscriptions run
// through Listener or TxListener, with the shutdown the client lacks: its
// own Shutdown neither waits for running listeners nor tells them to stop,
// and an orderly consumer unlocks its queues at once, so another instance
// can start on a message that is still being applied here.
//
// Shutdown(ctx) stops taking deliveries, waits for the running handlers
// (bounded by ctx), cancels their context when ctx ends, persists the
// consumer offsets and then shuts the client down. Deliveries that arrive
// meanwhile are not run and not acknowledged (see Shutdown).
type Consumer struct {
	ds    *mqdatasource.DataSource
	group string
	opts  []Option
	cfg   config
	gate  *gate
	// newClient builds the client: once in NewConsumer, and again after a
	// failed start, since a push consumer's Start runs only once.
	newClient func() (rocketmq.PushConsumer, error)

	// startMu serialises starts; mu guards the state below and is never
	// held while a start waits, so Ready, Client and Shutdown answer at once.
	startMu    sync.Mutex
	mu         sync.Mutex
	client     rocketmq.PushConsumer
	subs       []subscription // replayed on a rebuilt client
	started    bool
	stopped    bool
	purgeStop  context.CancelFunc
	purgeDone  chan struct{}
	shutdownMu sync.Mutex
	// stopping is closed when Shutdown begins, so that a Start still
	// retrying gives up instead of making Shutdown wait for it.
	stopping chan struct{}
	stopOnce sync.Once
}

// subscription is one Subscribe or SubscribeTx call on the client.
type subscription struct {
	topic    string
	selector consumer.MessageSelector
	fn       func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error)
}

// NewConsumer builds a Consumer for group on ds. The client is built by
// consumer.NewPushConsumer with the options of WithClientOptions (name
// server, orderly mode, batch size, ...) and consumer.WithGroupName(group).
// The other options are the defaults of every Subscribe and SubscribeTx.
func NewConsumer(ds *mqdatasource.DataSource, group string, opts ...Option) (*Consumer, error) {
	if ds == nil {
		return nil, errors.New("exactlyonce: NewConsumer needs a DataSource")
	}
	if group == "" {
		return nil, fmt.Errorf("%w: NewConsumer needs a consumer group", ErrGroup)
	}
	cfg := newConfig(opts)
	if cfg.purgeKeep < 0 || cfg.purgeEvery < 0 || (cfg.purgeKeep > 0) != (cfg.purgeEvery > 0) {
		return nil, fmt.Errorf("exactlyonce: WithPurge(%v, %v): keep and interval must both be positive", cfg.purgeKeep, cfg.purgeEvery)
	}
	copts := append(append([]consumer.Option(nil), cfg.clientOptions...), consumer.WithGroupName(group))
	newClient := func() (rocketmq.PushConsumer, error) {
		pc, err := consumer.NewPushConsumer(copts...)
		if err != nil {
			return nil, fmt.Errorf("exactlyonce: new push consumer: %w", err)
		}
		return pc, nil
	}
	pc, err := newClient()
	if err != nil {
		return nil, err
	}
	return &Consumer{
		ds:        ds,
		group:     group,
		opts:      append([]Option(nil), opts...),
		cfg:       cfg,
		gate:      newGate(),
		newClient: newClient,
		client:    pc,
		stopping:  make(chan struct{}),
	}, nil
}

// Subscribe subscribes to topic with a Handler. opts override the
// Consumer's options for this subscription, except WithClientOptions and
// WithPurge, which apply to the whole Consumer: given here they are an
// error. Call it before Start.
func (c *Consumer) Subscribe(topic string, selector consumer.MessageSelector, h Handler, opts ...Option) error {
	if h == nil {
		return errors.New("exactlyonce: Subscribe needs a Handler")
	}
	lopts, err := c.listenerOptions(opts)
	if err != nil {
		return err
	}
	return c.subscribe(subscription{topic, selector, newListener(c.ds, c.group, h, nil, lopts).consume})
}

// SubscribeTx subscribes to topic with a TxHandler. opts are as for
// Subscribe. Call it before Start.
func (c *Consumer) SubscribeTx(topic string, selector consumer.MessageSelector, h TxHandler, opts ...Option) error {
	if h == nil {
		return errors.New("exactlyonce: SubscribeTx needs a TxHandler")
	}
	lopts, err := c.listenerOptions(opts)
	if err != nil {
		return err
	}
	return c.subscribe(subscription{topic, selector, newListener(c.ds, c.group, nil, h, lopts).consume})
}

func (c *Consumer) subscribe(s subscription) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.client.Subscribe(s.topic, s.selector, s.fn); err != nil {
		return err
	}
	c.subs = append(c.subs, s)
	return nil
}

// listenerOptions returns the options of a subscription's listener: the
// Consumer's, then the subscription's, which must not configure the client
// or the purge (they would be silently ignored).
func (c *Consumer) listenerOptions(opts []Option) ([]Option, error) {
	if cfg := newConfig(opts); len(cfg.clientOptions) > 0 || cfg.purgeKeep != 0 || cfg.purgeEvery != 0 {
		return nil, errors.New("exactlyonce: WithClientOptions and WithPurge configure the whole Consumer: pass them to NewConsumer, not to Subscribe")
	}
	all := append(append([]Option(nil), c.opts...), opts...)
	// A rebuilt client (startClient) has the same options, so the
	// send-back read from this one holds for it too; its route lookups ask
	// the current client.
	return append(all, withGate(c.gate), withSendBack(newSendBack(func() any { return c.Client() }))), nil
}

// startTimeout bounds Start.
const startTimeout = 30 * time.Second

// Start is StartContext with a context that ends after 30 seconds.
func (c *Consumer) Start() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return c.StartContext(ctx)
}

// StartContext checks the record table (DataSource.CheckSchema), then
// starts the client and, with WithPurge, the background purge.
//
// Transient failures are retried with capped exponential back-off (0.1 s
// doubling to 5 s) until ctx ends or Shutdown is called, each retry logged
// at Warn: a database that refuses connections or is starting up
// (mqdatasource.IsTransient), and a client that cannot start because the
// name server is unreachable or does not know a subscribed topic yet (the
// client reports both the same way), in which case the client is rebuilt
// with the same options and subscriptions, since a push consumer starts
// only once. StartContext then fails with an error wrapping ctx's cause and
// the last failure. Permanent failures fail at once: a malformed or missing
// record table, an authentication failure, invalid client options, a group
// already started in this process.
func (c *Consumer) StartContext(ctx context.Context) error {
	c.startMu.Lock()
	defer c.startMu.Unlock()
	c.mu.Lock()
	stopped, started := c.stopped, c.started
	c.mu.Unlock()
	if stopped {
		return ErrShutdown
	}
	if started {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-c.stopping:
			cancel(ErrShutdown)
		case <-ctx.Done():
		}
	}()
	logRetry := func(what string) func(int, time.Duration, error) {
		return func(attempt int, wait time.Duration, err error) {
			c.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "exactlyonce: "+what+" not ready, retrying",
				slog.String("group", c.group), slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.Any("error", err))
		}
	}
	err := backoff.Retry(ctx, "checking the record table", mqdatasource.IsTransient, c.ds.CheckSchema, logRetry("database"))
	if err != nil {
		return fmt.Errorf("exactlyonce: %w", err)
	}
	if err := backoff.Retry(ctx, "starting the client", isTransientStart, c.startClient, logRetry("broker")); err != nil {
		return fmt.Errorf("exactlyonce: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		// Shutdown ran while the client was starting and, finding the
		// Consumer not started, left the client alone: stop it here.
		_ = c.client.Shutdown()
		return ErrShutdown
	}
	c.started = true
	if c.cfg.purgeEvery > 0 && c.cfg.purgeKeep > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		c.purgeStop, c.purgeDone = cancel, make(chan struct{})
		go c.purgeLoop(ctx)
	}
	return nil
}

// errNoRetry marks a start failure that a retry cannot cure.
var errNoRetry = errors.New("not retried")

// startClient starts the client. When the start fails for a reason worth
// retrying, the client has shut itself down (rocketmq-client-go v2.1.2
// does so when a topic has no route) and cannot be started again, so a new
// one with the same subscriptions takes its place for the next attempt.
func (c *Consumer) startClient(context.Context) error {
	// Only a start replaces the client, and starts are serialised
	// (startMu): reading it unlocked here is safe.
	err := c.client.Start()
	if err == nil || !isTransientStart(err) {
		return err
	}
	c.mu.Lock()
	subs := slices.Clone(c.subs)
	c.mu.Unlock()
	nc, nerr := c.newClient()
	for _, s := range subs {
		if nerr != nil {
			break
		}
		nerr = nc.Subscribe(s.topic, s.selector, s.fn)
	}
	if nerr != nil {
		return fmt.Errorf("%w (rebuilding the client for the next attempt: %w: %w)", err, errNoRetry, nerr)
	}
	c.mu.Lock()
	c.client = nc
	c.mu.Unlock()
	return err
}

// isTransientStart reports whether the client's start failure may go away:
// all but invalid options, a group registered twice in this process (the
// client's ErrCreated) and a failed rebuild. rocketmq-client-go's errors
// carry no types for the rest (a name server that does not answer and a
// topic it does not know both read "route info not found"), so anything
// else is worth another attempt while the caller's context lasts.
func isTransientStart(err error) bool {
	return !errors.Is(err, errNoRetry) && !errors.Is(err, rmqerrors.ErrCreated) &&
		!strings.Contains(err.Error(), "validate fail")
}

func (c *Consumer) purgeLoop(ctx context.Context) {
	defer close(c.purgeDone)
	t := time.NewTicker(c.cfg.purgeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		n, err := c.ds.Purge(ctx, start.Add(-c.cfg.purgeKeep))
		if pm, ok := c.cfg.metrics.(PurgeMetrics); ok && ctx.Err() == nil {
			pm.PurgeDone(Labels{Group: c.group}, n, time.Since(start), err)
		}
		switch {
		case err != nil && ctx.Err() == nil:
			c.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "exactlyonce: purge failed", slog.Int64("deleted", n), slog.Any("error", err))
		case n > 0:
			c.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "exactlyonce: purged consumed-message records", slog.Int64("deleted", n), slog.Duration("olderThan", c.cfg.purgeKeep))
		}
	}
}

// Shutdown stops the consumer gracefully:
//
//  1. It stops taking deliveries. A listener call that arrives from now on
//     runs no handler and is held until the client has shut down, then
//     returns a retry result that the client discards because its queues
//     are dropped by then: the messages stay unacknowledged and are
//     redelivered from the last committed offset, with no send-back (which
//     the broker could reject, upstream #1106). A batch being processed
//     stops before its next message, in the same way, and a delivery whose
//     handler fails from now on (including one cancelled in step 2) is held
//     too.
//  2. It waits for the running handlers, until ctx ends. When ctx ends
//     first, it cancels the handlers' context (so their transactions roll
//     back) and goes on; a handler that still commits later is
//     acknowledged by nobody and skipped as a duplicate when redelivered.
//  3. It stops the background purge, persists the consumer offsets and
//     shuts the client down (which unlocks orderly queues, then persists
//     the offsets again).
//
// It returns ctx's error, wrapped, if the handlers did not all finish in
// time. Calling it again does nothing and returns nil. Called before Start,
// it only marks the Consumer stopped (Start then fails with ErrShutdown): the
// client, never started, is not shut down.
func (c *Consumer) Shutdown(ctx context.Context) error {
	c.stopOnce.Do(func() {
		if c.stopping != nil { // nil in a Consumer not built by NewConsumer (tests)
			close(c.stopping)
		}
	})
	c.shutdownMu.Lock()
	defer c.shutdownMu.Unlock()
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	started := c.started
	c.mu.Unlock()

	c.gate.close()
	// Held listener calls return only after the client is shut down (they
	// are then discarded); release them whatever happens below.
	defer c.gate.release()
	var err error
	if werr := c.gate.wait(ctx); werr != nil {
		n := c.gate.runningCalls()
		c.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "exactlyonce: shutdown grace period over, cancelling running handlers", slog.Int("running", n))
		err = fmt.Errorf("exactlyonce: shutdown: %d deliveries still running: %w", n, werr)
	}
	c.gate.cancel()

	if c.purgeStop != nil {
		c.purgeStop()
		<-c.purgeDone
	}
	if started {
		if p, ok := c.client.(interface{ PersistConsumerOffset() error }); ok {
			if perr := p.PersistConsumerOffset(); perr != nil {
				c.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "exactlyonce: persisting offsets failed", slog.Any("error", perr))
			}
		}
		if serr := c.client.Shutdown(); serr != nil {
			err = errors.Join(err, fmt.Errorf("exactlyonce: shutdown client: %w", serr))
		}
	}
	return err
}

// Client returns the underlying push consumer, e.g. for Suspend and Resume.
// Do not call its Shutdown: call the Consumer's.
func (c *Consumer) Client() rocketmq.PushConsumer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client
}
