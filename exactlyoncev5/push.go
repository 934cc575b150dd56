package exactlyoncev5

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// Listener returns the MessageListener to give golang.NewPushConsumer
// (golang.WithPushMessageListener): it runs h once per message as one
// delivery of group, and returns SUCCESS only when the message is
// acknowledged by the outcome table (committed, duplicate, skipped,
// unclaimed).
//
// A failed concurrent message gets FAILURE: the client gives it back and
// it returns after the group's retry delay. A failed FIFO message (one with
// a message group) is retried in the listener itself, after the back-off of
// WithRetryBackoff, until it is acknowledged: the v5.1.4 client, given
// FAILURE, schedules its own retry of the message and meanwhile hands the
// group's next message to the listener, which would apply the group out of
// order. Holding the message keeps the group waiting, as FIFO means; the
// client renews its invisible duration meanwhile. Only a consumer shutting
// down returns FAILURE for it (the later messages of its group are then not
// run either, and the broker redelivers the group from the failed message).
//
// group must be the push consumer's group (golang.Config.ConsumerGroup); the
// client does not tell the listener. It panics if ds or h is nil or group is
// empty. Build one listener per consumer: it keeps its own pre-check cache.
// NewPushConsumer adds a graceful shutdown.
func Listener(ds *mqdatasource.DataSource, group string, h Handler, opts ...Option) rmq.MessageListener {
	if ds == nil || h == nil || group == "" {
		panic("exactlyoncev5: Listener needs a DataSource, a group and a Handler")
	}
	return newPushListener(newProcessor(ds, group, h, nil, newConfig(opts), nil))
}

// TxListener is Listener for a TxHandler.
func TxListener(ds *mqdatasource.DataSource, group string, h TxHandler, opts ...Option) rmq.MessageListener {
	if ds == nil || h == nil || group == "" {
		panic("exactlyoncev5: TxListener needs a DataSource, a group and a TxHandler")
	}
	return newPushListener(newProcessor(ds, group, nil, h, newConfig(opts), nil))
}

func newPushListener(p *processor) *rmq.FuncMessageListener {
	return &rmq.FuncMessageListener{Consume: func(mv *rmq.MessageView) rmq.ConsumerResult { return consumePush(p, mv) }}
}

// consumePush is the push listener. The client passes no context: handlers
// start from context.Background() and are cancelled by a PushConsumer's
// Shutdown.
func consumePush(p *processor, mv *rmq.MessageView) rmq.ConsumerResult {
	if mv == nil {
		return rmq.FAILURE
	}
	if !p.gate.enter() {
		// Shutting down: not run. The message comes back after the retry
		// delay (concurrent) or its invisible duration (FIFO).
		p.cfg.metrics.MessageDone(p.labels(mv), exactlyonce.OutcomeNotRun)
		return rmq.FAILURE
	}
	defer p.gate.exit()
	ctx := context.Background()
	fifo := mv.GetMessageGroup() != nil
	for attempt := mv.GetDeliveryAttempt(); ; attempt++ {
		if o, _ := p.process(ctx, mv); o.Acked() {
			return rmq.SUCCESS
		}
		if !fifo || p.gate.draining() {
			return rmq.FAILURE
		}
		p.gate.pause(p.backoff(attempt))
		if p.gate.draining() {
			return rmq.FAILURE
		}
	}
}

// PushConsumer is a golang.PushConsumer whose listener is the adapter's,
// with a graceful Shutdown: the client's GracefulStop waits for running
// listeners without bound and never tells them to stop.
type PushConsumer struct {
	cfg    config
	gate   *gate
	client rmq.PushConsumer

	mu      sync.Mutex
	started bool
	stopped bool
}

// NewPushConsumer builds a push consumer of cfg's group (cfg.ConsumerGroup,
// required) that runs h once per message as Listener does, with the
// options of WithPushOptions (subscriptions, await duration, consumption
// threads, ...).
func NewPushConsumer(ds *mqdatasource.DataSource, cfg *rmq.Config, h Handler, opts ...Option) (*PushConsumer, error) {
	if h == nil {
		return nil, errors.New("exactlyoncev5: NewPushConsumer needs a Handler")
	}
	return newPushConsumer(ds, cfg, h, nil, opts)
}

// NewPushTxConsumer is NewPushConsumer for a TxHandler.
func NewPushTxConsumer(ds *mqdatasource.DataSource, cfg *rmq.Config, h TxHandler, opts ...Option) (*PushConsumer, error) {
	if h == nil {
		return nil, errors.New("exactlyoncev5: NewPushTxConsumer needs a TxHandler")
	}
	return newPushConsumer(ds, cfg, nil, h, opts)
}

func newPushConsumer(ds *mqdatasource.DataSource, cfg *rmq.Config, h Handler, txh TxHandler, opts []Option) (*PushConsumer, error) {
	if ds == nil || cfg == nil {
		return nil, errors.New("exactlyoncev5: a push consumer needs a DataSource and a golang.Config")
	}
	if cfg.ConsumerGroup == "" {
		return nil, fmt.Errorf("%w: golang.Config.ConsumerGroup is empty", exactlyonce.ErrGroup)
	}
	c := newConfig(opts)
	g := newGate()
	p := newProcessor(ds, cfg.ConsumerGroup, h, txh, c, g)
	popts := append(append([]rmq.PushConsumerOption(nil), c.pushOptions...), rmq.WithPushMessageListener(newPushListener(p)))
	client, err := rmq.NewPushConsumer(cfg, popts...)
	if err != nil {
		return nil, fmt.Errorf("exactlyoncev5: new push consumer: %w", err)
	}
	return &PushConsumer{cfg: c, gate: g, client: client}, nil
}

// Start starts the client. (The record table was checked when the
// DataSource was opened, unless it was opened WithSchemaCheck(false).)
func (c *PushConsumer) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return exactlyonce.ErrShutdown
	}
	if c.started {
		return nil
	}
	if err := c.client.Start(); err != nil {
		return fmt.Errorf("exactlyoncev5: start push consumer: %w", err)
	}
	c.started = true
	return nil
}

// Shutdown stops the consumer gracefully: it stops running new messages
// (the listener returns FAILURE for them without running the handler, so
// they come back), waits for the running handlers until ctx ends, then
// cancels their context (their transactions roll back; one that still
// commits is acknowledged by nobody and skipped as a duplicate when it comes
// back), and stops the client (GracefulStop). It returns ctx's error,
// wrapped, if the handlers did not finish in time. Calling it again does
// nothing; called before Start it only marks the consumer stopped.
func (c *PushConsumer) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	started := c.started
	c.mu.Unlock()

	c.gate.close()
	var err error
	if werr := c.gate.wait(ctx); werr != nil {
		n := c.gate.runningCount()
		c.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "exactlyoncev5: shutdown grace period over, cancelling running handlers", slog.Int("running", n))
		err = fmt.Errorf("exactlyoncev5: shutdown: %d messages still running: %w", n, werr)
	}
	c.gate.cancel()
	if started {
		if serr := c.client.GracefulStop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("exactlyoncev5: stop push consumer: %w", serr))
		}
	}
	return err
}

// Client returns the underlying push consumer. Do not call its
// GracefulStop: call Shutdown.
func (c *PushConsumer) Client() rmq.PushConsumer { return c.client }
