package exactlyonce

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// store is what the listener needs from an *mqdatasource.DataSource.
type store interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
	ValidateDelivery(d mqdatasource.Delivery) error
	IsConsumed(ctx context.Context, d mqdatasource.Delivery) (bool, error)
	// ClaimCommitted reports whether a transaction begun with ctx's
	// delivery committed its claim; ClaimAttempted whether one tried to.
	ClaimCommitted(ctx context.Context) bool
	ClaimAttempted(ctx context.Context) bool
}

// dataSource is the store of a real DataSource.
type dataSource struct{ *mqdatasource.DataSource }

func (dataSource) ClaimCommitted(ctx context.Context) bool { return mqdatasource.ClaimCommitted(ctx) }
func (dataSource) ClaimAttempted(ctx context.Context) bool { return mqdatasource.ClaimAttempted(ctx) }

type listener struct {
	st    store
	group string
	h     Handler
	txh   TxHandler
	cfg   config
	cache *idCache
}

func newListener(st store, group string, h Handler, txh TxHandler, opts []Option) *listener {
	cfg := newConfig(opts)
	return &listener{
		st:    st,
		group: group,
		h:     h,
		txh:   txh,
		cfg:   cfg,
		cache: newIDCache(cfg.cacheSize),
	}
}

// consume is the ListenerFunc. See doc.go for the outcome table.
//
// No panic may leave it, whoever causes it (a KeyFunc, a Metrics or slog
// implementation): v2.1.2's orderly consumer does not recover panics (the
// process crashes, or with a PanicHandler the queue stalls holding its
// consume lock), and its concurrent consumer recovers them without handling
// a result, so the batch stays in the process queue and holds the queue's
// committed offset back until a restart. A panic becomes a retry.
func (l *listener) consume(ctx context.Context, msgs ...*primitive.MessageExt) (res consumer.ConsumeResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			pe := &PanicError{Value: r, Stack: debug.Stack()}
			res, err = l.retry(ctx, pe)
			l.cfg.logger.LogAttrs(ctx, slog.LevelError, "exactlyonce: listener panicked, retrying the delivery",
				slog.Any("error", pe), slog.String("stack", string(pe.Stack)))
		}
	}()
	return l.consumeMessages(ctx, msgs...)
}

// retry returns the result that makes the client deliver the messages again.
func (l *listener) retry(ctx context.Context, err error) (consumer.ConsumeResult, error) {
	if oc, ok := primitive.GetOrderlyCtx(ctx); ok && oc != nil {
		// The v2.1.2 orderly consumer never redelivers a
		// ConsumeRetryLater or Rollback and commits past it with the
		// next success (#1229); only a suspend puts the messages
		// back. Its default suspension, -1, means a hot loop.
		oc.SuspendCurrentQueueTimeMillis = int(l.cfg.suspendBackoff / time.Millisecond)
		return consumer.SuspendCurrentQueueAMoment, err
	}
	return consumer.ConsumeRetryLater, err
}

func (l *listener) consumeMessages(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	oc, orderly := primitive.GetOrderlyCtx(ctx)
	orderly = orderly && oc != nil
	retry := func(err error) (consumer.ConsumeResult, error) { return l.retry(ctx, err) }
	if len(msgs) == 0 {
		return consumer.ConsumeSuccess, nil
	}
	group, groupErr := l.resolveGroup(ctx)
	labels := func(m *primitive.MessageExt) Labels {
		lb := Labels{Group: group, Orderly: orderly}
		if m != nil {
			lb.Topic = m.Topic
		}
		return lb
	}
	notRun := func(rest []*primitive.MessageExt) {
		for _, m := range rest {
			l.cfg.metrics.MessageDone(labels(m), OutcomeNotRun)
		}
	}

	g := l.cfg.gate
	// held is the result of a call held until the client is shut down:
	// the client discards it, but an orderly one first sleeps for the
	// suspension, so it is short rather than the back-off.
	held := func(err error) (consumer.ConsumeResult, error) {
		res, err := retry(err)
		if orderly {
			oc.SuspendCurrentQueueTimeMillis = 1
		}
		return res, err
	}
	if !g.enter() {
		notRun(msgs)
		g.hold()
		return held(ErrShutdown)
	}
	inside := true
	leave := func() {
		if inside {
			inside = false
			g.exit()
		}
	}
	defer leave()

	if groupErr != nil {
		l.cfg.logger.LogAttrs(ctx, slog.LevelError, "exactlyonce: cannot process delivery, retrying", slog.Any("error", groupErr))
		for _, m := range msgs {
			l.cfg.metrics.MessageDone(labels(m), OutcomeFailed)
		}
		return retry(groupErr)
	}

	queue := queueFromContext(ctx)
	var errs []error
	shutdown := false
	for i, m := range msgs {
		if g.draining() {
			shutdown = true
			notRun(msgs[i:])
			break
		}
		o, err := OutcomeFailed, errNilMessage
		if m != nil {
			o, err = l.safeOne(ctx, group, m, queue, labels(m))
		}
		l.cfg.metrics.MessageDone(labels(m), o)
		if o.Acked() {
			continue
		}
		errs = append(errs, err)
		if orderly {
			// Keep the queue's order: nothing after a failed message.
			notRun(msgs[i+1:])
			break
		}
		// Concurrent mode: the whole batch is sent back anyway; the rest
		// commit now and are skipped on redelivery.
	}
	if len(errs) > 0 && g.draining() {
		// A message that failed while the consumer is shutting down (its
		// handler cancelled when the grace period ended, or any other
		// failure) is held like the rest: returned now, the concurrent
		// client would send it back to the retry topic, which the broker
		// may reject (#1106), instead of leaving it for redelivery from
		// the committed offset.
		shutdown = true
	}
	if shutdown {
		leave()
		g.hold()
		if !errors.Is(errors.Join(errs...), ErrShutdown) {
			// A handler cancelled by the shutdown says so already.
			errs = append(errs, ErrShutdown)
		}
		return held(errors.Join(errs...))
	}
	if len(errs) > 0 {
		return retry(errors.Join(errs...))
	}
	return consumer.ConsumeSuccess, nil
}

var errNilMessage = errors.New("exactlyonce: nil message")

// resolveGroup returns the group to record deliveries under: the one given to
// the constructor, checked against the client's, or else the client's.
func (l *listener) resolveGroup(ctx context.Context) (string, error) {
	var fromClient string
	if mc, ok := primitive.GetConsumerCtx(ctx); ok && mc != nil {
		fromClient = mc.ConsumerGroup
	}
	switch {
	case l.group == "" && fromClient == "":
		return "", fmt.Errorf("%w: no group given and the context carries none", ErrGroup)
	case l.group == "":
		return fromClient, nil
	case fromClient == "" || fromClient == l.group || strings.HasSuffix(fromClient, "%"+l.group):
		// "namespace%group" is the client's name for group in a namespace.
		return l.group, nil
	default:
		return "", fmt.Errorf("%w: listener built for group %q is called by group %q", ErrGroup, l.group, fromClient)
	}
}

func queueFromContext(ctx context.Context) *primitive.MessageQueue {
	if mc, ok := primitive.GetConsumerCtx(ctx); ok && mc != nil && mc.MQ != nil {
		return mc.MQ
	}
	if oc, ok := primitive.GetOrderlyCtx(ctx); ok && oc != nil {
		return &oc.MQ
	}
	if cc, ok := primitive.GetConcurrentlyCtx(ctx); ok && cc != nil {
		return &cc.MQ
	}
	return nil
}

// deliveryOf builds the delivery of m. Topic, queue and offset are those of
// the queue the message was pulled from (for a retry, the group's retry
// topic, while m.Topic is already the original topic again), so that they
// always belong together.
func deliveryOf(group, key string, m *primitive.MessageExt, fallback *primitive.MessageQueue) mqdatasource.Delivery {
	d := mqdatasource.Delivery{ConsumerGroup: group, Key: key, Topic: m.Topic, QueueOffset: m.QueueOffset}
	q := m.Queue
	if q == nil {
		q = fallback
	}
	if q == nil {
		return d
	}
	d.QueueID = q.QueueId
	if q.Topic != "" {
		d.Topic = q.Topic
	}
	d.BrokerName = q.BrokerName
	if d.BrokerName == "" && fallback != nil {
		d.BrokerName = fallback.BrokerName
	}
	return d
}

// safeOne is one, with a panic outside the handler (which one recovers
// itself), e.g. in a KeyFunc, turned into OutcomePanic.
func (l *listener) safeOne(ctx context.Context, group string, m *primitive.MessageExt, queue *primitive.MessageQueue, lbl Labels) (o Outcome, err error) {
	defer func() {
		if r := recover(); r != nil {
			pe := &PanicError{Value: r, Stack: debug.Stack()}
			o, err = OutcomePanic, pe
			l.cfg.logger.LogAttrs(ctx, slog.LevelError, "exactlyonce: panic while processing a message, retrying",
				slog.String("group", group), slog.String("topic", m.Topic), slog.String("msgId", m.MsgId),
				slog.Any("error", pe), slog.String("stack", string(pe.Stack)))
		}
	}()
	return l.one(ctx, group, m, queue, lbl)
}

func (l *listener) one(ctx context.Context, group string, m *primitive.MessageExt, queue *primitive.MessageQueue, lbl Labels) (Outcome, error) {
	key, err := l.cfg.keyFunc(m)
	if err == nil && key == "" {
		err = fmt.Errorf("%w: the key function returned \"\" (topic %q, msgId %s)", ErrNoKey, m.Topic, m.MsgId)
	}
	if err != nil {
		l.cfg.logger.LogAttrs(ctx, slog.LevelError, "exactlyonce: no dedupe key, retrying the message",
			slog.String("group", group), slog.String("topic", m.Topic), slog.String("msgId", m.MsgId), slog.Any("error", err))
		return OutcomeFailed, err
	}
	d := deliveryOf(group, key, m, queue)
	// logAttrs logs with the message's attributes, built only when the
	// level is enabled.
	logAttrs := func(level slog.Level, msg string, extra ...slog.Attr) {
		if !l.cfg.logger.Enabled(ctx, level) {
			return
		}
		attrs := append([]slog.Attr{
			slog.String("group", group), slog.String("topic", m.Topic), slog.String("key", key),
			slog.String("msgId", m.MsgId), slog.Int("queue", d.QueueID), slog.Int64("offset", d.QueueOffset),
			slog.Int("reconsumeTimes", int(m.ReconsumeTimes)),
		}, extra...)
		l.cfg.logger.LogAttrs(ctx, level, msg, attrs...)
	}
	// Checked against the actual column too (e.g. an id too long for it):
	// the claim would fail, so the handler is not run.
	if err := l.st.ValidateDelivery(d); err != nil {
		logAttrs(slog.LevelError, "exactlyonce: invalid delivery, retrying the message", slog.Any("error", err))
		return OutcomeFailed, err
	}
	id := d.MessageID()
	if l.cache.contains(id) {
		logAttrs(slog.LevelDebug, "exactlyonce: already consumed (cache), skipped")
		return OutcomeSkippedCache, nil
	}

	// The message's context: cancelled when the consumer's shutdown grace
	// period ends (the client's own context never is). Each attempt
	// derives its own from it (see attempt).
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer l.cfg.gate.onCancel(cancel)()

	if l.cfg.tableCheck {
		done, err := l.st.IsConsumed(hctx, d)
		switch {
		case errors.Is(err, mqdatasource.ErrInvalidDelivery):
			// Invalid for a column a schema check found shorter since
			// ValidateDelivery: the claim would fail the same way.
			logAttrs(slog.LevelError, "exactlyonce: invalid delivery, retrying the message", slog.Any("error", err))
			return OutcomeFailed, err
		case err != nil:
			// Fall through: the claim still protects against a duplicate.
			logAttrs(slog.LevelWarn, "exactlyonce: pre-check lookup failed, running the handler", slog.Any("error", err))
		case done:
			l.cache.add(id)
			logAttrs(slog.LevelDebug, "exactlyonce: already consumed (table), skipped")
			return OutcomeSkippedTable, nil
		}
	}

	start := time.Now()
	o, err := l.attempt(hctx, d, m)
	for try := 0; o == OutcomeFailed && try < l.cfg.localRetries && mqdatasource.IsRetryable(err); try++ {
		// A transient database failure (deadlock victim, serialization
		// conflict, lost connection, unknown commit outcome): run the
		// message again here rather than through a send-back or a
		// suspension, unless the consumer is stopping.
		if hctx.Err() != nil || l.cfg.gate.draining() {
			break
		}
		logAttrs(slog.LevelDebug, "exactlyonce: transient failure, retrying in place", slog.Int("try", try+1), slog.Any("error", err))
		backoff := localRetryBackoff << try
		select {
		case <-time.After(backoff/2 + rand.N(backoff/2)):
		case <-hctx.Done():
		}
		o, err = l.attempt(hctx, d, m)
	}
	elapsed := time.Since(start)
	if !o.Acked() && hctx.Err() != nil {
		// Only a Consumer's shutdown cancels hctx while the handler runs.
		err = fmt.Errorf("%w (%w: the handler's context was cancelled when the grace period ended)", err, ErrShutdown)
	}
	l.cfg.metrics.HandlerDone(lbl, o, elapsed)
	el := slog.Duration("elapsed", elapsed)

	switch o {
	case OutcomeProcessed:
		l.cache.add(id)
		logAttrs(slog.LevelDebug, "exactlyonce: processed", el)
	case OutcomeDuplicate:
		l.cache.add(id)
		logAttrs(slog.LevelInfo, "exactlyonce: already consumed (claim), rolled back", el)
	case OutcomeUnclaimed:
		// Not cached: nothing was committed, the cache holds committed ids.
		logAttrs(slog.LevelWarn, "exactlyonce: handler returned nil without committing a transaction through the DataSource with its context; the message is acknowledged but was not recorded", el)
	case OutcomePanic:
		var stack []byte
		if pe := (*PanicError)(nil); errors.As(err, &pe) {
			stack = pe.Stack
		}
		logAttrs(slog.LevelError, "exactlyonce: handler panicked, rolled back, retrying", el, slog.Any("error", err), slog.String("stack", string(stack)))
	default:
		level := slog.LevelWarn
		msg := "exactlyonce: handler failed, rolled back, retrying"
		switch {
		case errors.Is(err, mqdatasource.ErrDeliveryReused):
			level, msg = slog.LevelError, "exactlyonce: the handler began a second transaction for one delivery (a bug: one delivery, one transaction), retrying"
		case errors.Is(err, ErrUnclaimed):
			level = slog.LevelError
			msg = "exactlyonce: handler returned nil without committing a transaction through the DataSource with its context, retrying"
		}
		logAttrs(level, msg, el, slog.Any("error", err))
	}
	return o, err
}

// localRetryBackoff bounds the first wait before an in-place retry: the wait
// is between half of it and all of it (jitter, so that deadlocked peers do
// not meet again), and the bound doubles with each retry.
const localRetryBackoff = 20 * time.Millisecond

// attempt runs the handler once, with a context cancelled when the attempt
// ends: database/sql then rolls back a transaction the handler left open, so
// its claim's row lock does not block the next attempt or redelivery.
func (l *listener) attempt(ctx context.Context, d mqdatasource.Delivery, m *primitive.MessageExt) (Outcome, error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	if l.txh != nil {
		return l.runTx(actx, d, m)
	}
	return l.run(actx, d, m)
}

// run calls a Handler.
func (l *listener) run(ctx context.Context, d mqdatasource.Delivery, m *primitive.MessageExt) (Outcome, error) {
	dctx := mqdatasource.WithDelivery(ctx, d)
	err := protect(func() error { return l.h(dctx, m) })
	if _, ok := err.(*PanicError); ok {
		return OutcomePanic, err
	}
	switch {
	case errors.Is(err, mqdatasource.ErrDeliveryReused):
		return OutcomeFailed, err
	case errors.Is(err, mqdatasource.ErrAlreadyConsumed):
		// The record exists: the message was applied. Whatever else the
		// handler did, its claim rolled back.
		return OutcomeDuplicate, nil
	case err != nil:
		return OutcomeFailed, err
	}
	// nil: did a transaction holding the claim commit?
	switch {
	case l.st.ClaimCommitted(dctx):
		return OutcomeProcessed, nil
	case l.st.ClaimAttempted(dctx):
		// The handler began a claiming transaction but none committed
		// (rolled back, a swallowed error, a forgotten Commit): its work
		// is not applied, so acknowledging would lose the message.
		return OutcomeFailed, fmt.Errorf("%w: a transaction claimed the message but none committed", ErrUnclaimed)
	case l.cfg.requireClaim:
		return OutcomeFailed, ErrUnclaimed
	default:
		return OutcomeUnclaimed, nil
	}
}

// runTx begins the claiming transaction, calls a TxHandler and commits.
func (l *listener) runTx(ctx context.Context, d mqdatasource.Delivery, m *primitive.MessageExt) (Outcome, error) {
	dctx := mqdatasource.WithDelivery(ctx, d)
	tx, err := l.st.BeginTx(dctx, l.cfg.txOptions)
	switch {
	case errors.Is(err, mqdatasource.ErrAlreadyConsumed):
		return OutcomeDuplicate, nil
	case err != nil:
		return OutcomeFailed, fmt.Errorf("exactlyonce: begin: %w", err)
	}
	tctx := context.WithValue(dctx, txKey{}, tx)
	err = protect(func() error { return l.txh(tctx, tx, m) })
	if err != nil {
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			l.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "exactlyonce: rollback failed", slog.Any("error", rerr))
		}
		if _, ok := err.(*PanicError); ok {
			return OutcomePanic, err
		}
		// Even ErrAlreadyConsumed: this transaction holds the claim, so
		// the message was not consumed; retry.
		return OutcomeFailed, err
	}
	if err := tx.Commit(); err != nil {
		// Includes mqdatasource.ErrCommitUnknown, and sql.ErrTxDone if
		// the handler ended tx itself: retry, the redelivery finds the
		// record if the commit landed.
		return OutcomeFailed, fmt.Errorf("exactlyonce: commit: %w", err)
	}
	return OutcomeProcessed, nil
}

// protect calls f, turning a panic into a *PanicError.
func protect(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return f()
}
