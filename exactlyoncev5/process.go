package exactlyoncev5

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// processor runs one message as one delivery (mqdatasource.Deliver), with
// the pre-check, in-place retries, metrics and logs of the v2 adapter. The
// push listener and the SimpleConsumer loop differ only in how they give
// the outcome back to the client.
type processor struct {
	ds    *mqdatasource.DataSource
	group string
	h     Handler
	txh   TxHandler
	cfg   config
	cache *exactlyonce.SeenCache
	gate  *gate // nil for a plain listener
}

func newProcessor(ds *mqdatasource.DataSource, group string, h Handler, txh TxHandler, cfg config, g *gate) *processor {
	return &processor{ds: ds, group: group, h: h, txh: txh, cfg: cfg, cache: exactlyonce.NewSeenCache(cfg.cacheSize), gate: g}
}

func (p *processor) labels(mv *rmq.MessageView) exactlyonce.Labels {
	return exactlyonce.Labels{Group: p.group, Topic: mv.GetTopic(), Orderly: mv.GetMessageGroup() != nil}
}

// process handles mv and returns its outcome, recorded in the metrics. No
// panic leaves it: one in user code the processor calls (a KeyFunc, a
// Metrics or slog implementation) becomes exactlyonce.OutcomePanic.
func (p *processor) process(ctx context.Context, mv *rmq.MessageView) (o exactlyonce.Outcome, err error) {
	lbl := p.labels(mv)
	defer func() {
		if r := recover(); r != nil {
			pe := &exactlyonce.PanicError{Value: r, Stack: debug.Stack()}
			o, err = exactlyonce.OutcomePanic, pe
			p.cfg.logger.LogAttrs(ctx, slog.LevelError, "exactlyoncev5: panic while processing a message, retrying",
				slog.String("group", p.group), slog.String("topic", mv.GetTopic()), slog.String("messageId", mv.GetMessageId()),
				slog.Any("error", pe), slog.String("stack", string(pe.Stack)))
		}
		p.cfg.metrics.MessageDone(lbl, o)
	}()
	return p.one(ctx, mv, lbl)
}

func (p *processor) one(ctx context.Context, mv *rmq.MessageView, lbl exactlyonce.Labels) (exactlyonce.Outcome, error) {
	d, err := p.delivery(mv)
	if err != nil {
		p.log(ctx, slog.LevelError, "exactlyoncev5: cannot claim the message, retrying it", mv, d, slog.Any("error", err))
		return exactlyonce.OutcomeInvalid, err
	}
	// Cancelled when the consumer's shutdown grace period ends.
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer p.gate.onCancel(cancel)()

	if o, skip := p.precheck(hctx, mv, d); skip {
		return o, nil
	}
	start := time.Now()
	o, err := p.attempts(hctx, d, mv)
	elapsed := time.Since(start)
	if !o.Acked() && hctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w (%w: the handler's context was cancelled when the grace period ended)", err, exactlyonce.ErrShutdown)
	}
	p.cfg.metrics.HandlerDone(lbl, o, elapsed)
	p.report(ctx, mv, d, o, err, elapsed)
	return o, err
}

// delivery builds and checks the delivery of mv. A MessageView tells no
// broker or queue id; the topic and queue offset are recorded.
func (p *processor) delivery(mv *rmq.MessageView) (mqdatasource.Delivery, error) {
	d := mqdatasource.Delivery{ConsumerGroup: p.group, Topic: mv.GetTopic(), QueueOffset: mv.GetOffset()}
	key, err := p.cfg.keyFunc(mv)
	if err == nil && key == "" {
		err = fmt.Errorf("%w: the key function returned \"\" (topic %q, message id %s)", exactlyonce.ErrNoKey, mv.GetTopic(), mv.GetMessageId())
	}
	if err != nil {
		return d, err
	}
	d.Key = key
	return d, p.ds.ValidateDelivery(d)
}

// precheck looks the message up in the cache, then (WithTableCheck) in
// transaction_record. A failed lookup skips nothing: the claim protects.
func (p *processor) precheck(ctx context.Context, mv *rmq.MessageView, d mqdatasource.Delivery) (exactlyonce.Outcome, bool) {
	id := d.MessageID()
	if p.cache.Contains(id) {
		p.log(ctx, slog.LevelDebug, "exactlyoncev5: already consumed (cache), skipped", mv, d)
		return exactlyonce.OutcomeSkippedCache, true
	}
	if !p.cfg.tableCheck {
		return 0, false
	}
	done, err := p.ds.IsConsumed(ctx, d)
	switch {
	case err != nil:
		p.log(ctx, slog.LevelWarn, "exactlyoncev5: pre-check lookup failed, running the handler", mv, d, slog.Any("error", err))
	case done:
		p.cache.Add(id)
		p.log(ctx, slog.LevelDebug, "exactlyoncev5: already consumed (table), skipped", mv, d)
		return exactlyonce.OutcomeSkippedTable, true
	}
	return 0, false
}

// localRetryBackoff bounds the first pause before an in-place retry; the
// pause is jittered between half of it and all of it, and the bound doubles
// with each retry (as in package exactlyonce).
const localRetryBackoff = 20 * time.Millisecond

// attempts runs the message, and again in place while it fails with a
// transient database error, unless ctx ends or the consumer drains.
func (p *processor) attempts(ctx context.Context, d mqdatasource.Delivery, mv *rmq.MessageView) (exactlyonce.Outcome, error) {
	o, err := p.attempt(ctx, d, mv)
	for try := 0; try < p.cfg.localRetries && o == exactlyonce.OutcomeFailed && mqdatasource.IsRetryable(err); try++ {
		if ctx.Err() != nil || p.gate.draining() {
			break
		}
		b := localRetryBackoff << try
		select {
		case <-time.After(b/2 + rand.N(b/2)):
		case <-ctx.Done():
		}
		o, err = p.attempt(ctx, d, mv)
	}
	return o, err
}

// attempt runs the handler once as one delivery.
func (p *processor) attempt(ctx context.Context, d mqdatasource.Delivery, mv *rmq.MessageView) (exactlyonce.Outcome, error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var opts []mqdatasource.DeliverOption
	if p.txh != nil || len(p.cfg.dataSources) > 0 {
		opts = append(opts, mqdatasource.ClaimIn(p.ds, p.cfg.txOptions))
		for _, ds := range p.cfg.dataSources {
			opts = append(opts, mqdatasource.ClaimIn(ds, p.cfg.txOptions))
		}
	}
	res, err := mqdatasource.Deliver(actx, d, func(ctx context.Context) error {
		return protect(func() error { return p.call(ctx, mv) })
	}, opts...)
	switch res {
	case mqdatasource.Committed:
		return exactlyonce.OutcomeProcessed, nil
	case mqdatasource.Duplicate:
		return exactlyonce.OutcomeDuplicate, nil
	case mqdatasource.Unclaimed:
		if p.cfg.requireClaim {
			return exactlyonce.OutcomeFailed, exactlyonce.ErrUnclaimed
		}
		return exactlyonce.OutcomeUnclaimed, nil
	}
	if _, ok := err.(*exactlyonce.PanicError); ok {
		return exactlyonce.OutcomePanic, err
	}
	switch {
	case errors.Is(err, mqdatasource.ErrRollbackOnly):
		return exactlyonce.OutcomeRolledBack, err
	case errors.Is(err, mqdatasource.ErrInvalidDelivery):
		return exactlyonce.OutcomeInvalid, err
	}
	return exactlyonce.OutcomeFailed, err
}

// call runs the handler in the delivery; a TxHandler gets the delivery's
// transaction as a *sql.Tx, ended here so that database/sql releases it
// (the commit itself is Deliver's).
func (p *processor) call(ctx context.Context, mv *rmq.MessageView) error {
	if p.txh == nil {
		return p.h(ctx, mv)
	}
	tx, err := p.ds.BeginTx(ctx, p.cfg.txOptions)
	if err != nil {
		return fmt.Errorf("exactlyoncev5: begin: %w", err)
	}
	if err := p.txh(exactlyonce.ContextWithTx(ctx, tx), tx, mv); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("exactlyoncev5: commit: %w", err)
	}
	return nil
}

// report logs the outcome of an attempted message and caches a committed id.
func (p *processor) report(ctx context.Context, mv *rmq.MessageView, d mqdatasource.Delivery, o exactlyonce.Outcome, err error, elapsed time.Duration) {
	el := slog.Duration("elapsed", elapsed)
	switch o {
	case exactlyonce.OutcomeProcessed:
		p.cache.Add(d.MessageID())
		p.log(ctx, slog.LevelDebug, "exactlyoncev5: processed", mv, d, el)
	case exactlyonce.OutcomeDuplicate:
		p.cache.Add(d.MessageID())
		p.log(ctx, slog.LevelInfo, "exactlyoncev5: already consumed (claim), rolled back", mv, d, el)
	case exactlyonce.OutcomeUnclaimed:
		p.log(ctx, slog.LevelWarn, "exactlyoncev5: handler returned nil without using the DataSource with its context; the message is acknowledged but was not recorded", mv, d, el)
	case exactlyonce.OutcomePanic:
		var stack []byte
		if pe := (*exactlyonce.PanicError)(nil); errors.As(err, &pe) {
			stack = pe.Stack
		}
		p.log(ctx, slog.LevelError, "exactlyoncev5: handler panicked, rolled back, retrying", mv, d, el, slog.Any("error", err), slog.String("stack", string(stack)))
	case exactlyonce.OutcomeRolledBack, exactlyonce.OutcomeInvalid:
		p.log(ctx, slog.LevelError, "exactlyoncev5: "+o.String()+", retrying", mv, d, el, slog.Any("error", err))
	default:
		level := slog.LevelWarn
		if errors.Is(err, exactlyonce.ErrUnclaimed) || errors.Is(err, mqdatasource.ErrPartialCommit) {
			level = slog.LevelError
		}
		p.log(ctx, level, "exactlyoncev5: handler failed, rolled back, retrying", mv, d, el, slog.Any("error", err))
	}
}

// log logs msg with the message's attributes, built only when enabled.
func (p *processor) log(ctx context.Context, level slog.Level, msg string, mv *rmq.MessageView, d mqdatasource.Delivery, extra ...slog.Attr) {
	if !p.cfg.logger.Enabled(ctx, level) {
		return
	}
	attrs := append([]slog.Attr{
		slog.String("group", p.group), slog.String("topic", mv.GetTopic()), slog.String("key", d.Key),
		slog.String("messageId", mv.GetMessageId()), slog.Int64("offset", mv.GetOffset()),
		slog.Int("deliveryAttempt", int(mv.GetDeliveryAttempt())),
	}, extra...)
	if g := mv.GetMessageGroup(); g != nil {
		attrs = append(attrs, slog.String("messageGroup", *g))
	}
	p.cfg.logger.LogAttrs(ctx, level, msg, attrs...)
}

// backoff returns how long a message that failed on delivery attempt
// attempt (1 for the first) waits before it is delivered again.
func (p *processor) backoff(attempt int32) time.Duration {
	b := p.cfg.backoff
	for i := int32(1); i < attempt && b < p.cfg.backoffMax; i++ {
		b *= 2
	}
	return min(b, p.cfg.backoffMax)
}

// protect calls f, turning a panic into a *exactlyonce.PanicError.
func protect(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &exactlyonce.PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return f()
}
