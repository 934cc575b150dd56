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

type listener struct {
	ds    *mqdatasource.DataSource
	group string
	h     Handler
	txh   TxHandler
	bh    BatchHandler // set by newBatchListener
	cfg   config
	cache *idCache
}

func newListener(ds *mqdatasource.DataSource, group string, h Handler, txh TxHandler, opts []Option) *listener {
	cfg := newConfig(opts)
	return &listener{
		ds:    ds,
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
			if res == consumer.SuspendCurrentQueueAMoment && l.cfg.sendBack != nil {
				l.cfg.sendBack.orderlyCounts(msgs, nil)
			}
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

func (l *listener) consumeMessages(ctx context.Context, msgs ...*primitive.MessageExt) (res consumer.ConsumeResult, err error) {
	oc, orderly := primitive.GetOrderlyCtx(ctx)
	orderly = orderly && oc != nil
	retry := func(err error) (consumer.ConsumeResult, error) { return l.retry(ctx, err) }
	// failed is the message of an orderly delivery whose failure counts
	// against the maximum reconsume times (see deadLetter).
	var failed *primitive.MessageExt
	if all := msgs; orderly && l.cfg.sendBack != nil {
		defer func() {
			if res == consumer.SuspendCurrentQueueAMoment {
				l.cfg.sendBack.orderlyCounts(all, failed)
			}
		}()
		// Those this listener dead-lettered came back with a later
		// failure of their batch: not run again.
		msgs = notDeadLettered(msgs)
	}
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
		l.notRun(msgs, labels)
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

	process := l.each
	if l.bh != nil {
		process = l.batch
	}
	fails, shutdown := process(ctx, group, msgs, labels, orderly)
	if len(fails) > 0 && !shutdown && l.cfg.sendBack != nil && !g.draining() {
		if orderly {
			fails, shutdown, failed = l.deadLetter(ctx, group, msgs, fails, labels, process)
		} else {
			fails, shutdown = l.resolve(ctx, group, fails, labels, process)
		}
	}
	var errs []error
	for _, f := range fails {
		errs = append(errs, f.err)
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

// processFunc processes the messages of a delivery (each or batch).
type processFunc func(ctx context.Context, group string, msgs []*primitive.MessageExt, labels func(*primitive.MessageExt) Labels, orderly bool) (fails []failure, shutdown bool)

// each processes the messages of a delivery one by one, each its own
// delivery transaction, and returns those not acknowledged and whether it
// stopped for a shutdown. It records every message's outcome.
func (l *listener) each(ctx context.Context, group string, msgs []*primitive.MessageExt, labels func(*primitive.MessageExt) Labels, orderly bool) (fails []failure, shutdown bool) {
	queue := queueFromContext(ctx)
	for i, m := range msgs {
		if l.cfg.gate.draining() {
			l.notRun(msgs[i:], labels)
			return fails, true
		}
		o, err := OutcomeFailed, errNilMessage
		if m != nil {
			mctx, end := l.cfg.tracer.StartMessage(ctx, labels(m), m)
			o, err = l.safeOne(mctx, group, m, queue, labels(m))
			end(o, err)
		}
		l.cfg.metrics.MessageDone(labels(m), o)
		if o.Acked() {
			continue
		}
		fails = append(fails, failure{m, err})
		if orderly {
			// Keep the queue's order: nothing after a failed message.
			l.notRun(msgs[i+1:], labels)
			break
		}
		// Concurrent mode: the failed ones are sent back; the rest commit
		// now (and are skipped if the client sends the whole batch back).
	}
	return fails, false
}

func (l *listener) notRun(rest []*primitive.MessageExt, labels func(*primitive.MessageExt) Labels) {
	for _, m := range rest {
		l.cfg.metrics.MessageDone(labels(m), OutcomeNotRun)
	}
}

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

// one processes one message: prepare its delivery, pre-check it, attempt
// it (with in-place retries of transient failures), and report the
// outcome.
func (l *listener) one(ctx context.Context, group string, m *primitive.MessageExt, queue *primitive.MessageQueue, lbl Labels) (Outcome, error) {
	d, err := l.delivery(group, m, queue)
	if err != nil {
		o := refusedOutcome(err)
		l.log(ctx, slog.LevelError, "exactlyonce: cannot claim the message, retrying it", m, d, slog.Any("error", err))
		return o, err
	}
	// The message's context: cancelled when the consumer's shutdown grace
	// period ends (the client's own context never is).
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer l.cfg.gate.onCancel(cancel)()

	pctx, endPrecheck := l.cfg.tracer.StartPhase(hctx, PhasePrecheck)
	o, skip, err := l.precheck(pctx, m, d)
	endPrecheck(err)
	if skip {
		return o, err
	}
	start := time.Now()
	o, err = l.attempts(hctx, d, m, lbl)
	elapsed := time.Since(start)
	if !o.Acked() && hctx.Err() != nil {
		// Only a Consumer's shutdown cancels hctx while the handler runs.
		err = fmt.Errorf("%w (%w: the handler's context was cancelled when the grace period ended)", err, ErrShutdown)
	}
	l.cfg.metrics.HandlerDone(lbl, o, elapsed)
	l.report(ctx, m, d, o, err, elapsed)
	return o, err
}

// ErrUnstamped means WithRequireProducerKey is set and a message carries no
// producer-stamped key (the EXTEND_UNIQ_INFO property): it is refused
// (OutcomeUnstamped) rather than deduplicated by a client-generated
// UNIQ_KEY, which two producer processes can share.
var ErrUnstamped = errors.New("exactlyonce: message has no producer-stamped key (EXTEND_UNIQ_INFO)")

// refusedOutcome is the outcome of a message whose delivery could not be
// built or checked with err.
func refusedOutcome(err error) Outcome {
	if errors.Is(err, ErrUnstamped) {
		return OutcomeUnstamped
	}
	return OutcomeInvalid
}

// delivery builds and checks the delivery of m: a key (producer-stamped
// under WithRequireProducerKey), and an id the message_id column can hold
// and store (checked against the actual column, so the handler is not run
// for a claim that could only fail).
func (l *listener) delivery(group string, m *primitive.MessageExt, queue *primitive.MessageQueue) (mqdatasource.Delivery, error) {
	if l.cfg.requireProducerKey && m.GetProperty(PropertyExtendUniqInfo) == "" {
		return mqdatasource.Delivery{ConsumerGroup: group, Topic: m.Topic},
			fmt.Errorf("%w (topic %q, msgId %s): stamp it with exactlyonce.WrapProducer, StampKey or SetBusinessKey", ErrUnstamped, m.Topic, m.MsgId)
	}
	key, err := l.cfg.keyFunc(m)
	if err == nil && key == "" {
		err = fmt.Errorf("%w: the key function returned \"\" (topic %q, msgId %s)", ErrNoKey, m.Topic, m.MsgId)
	}
	if err != nil {
		return mqdatasource.Delivery{ConsumerGroup: group, Topic: m.Topic}, err
	}
	d := deliveryOf(group, key, m, queue)
	return d, l.ds.ValidateDelivery(d)
}

// precheck looks the message up in the cache, then (WithTableCheck) in
// transaction_record, and reports whether to skip it: as consumed, or as a
// key collision (the record found is another message's; err says which).
// A failed lookup skips nothing: the claim still protects. The cache holds
// exact ids, and IsConsumed compares the record it finds byte for byte,
// so neither takes another message for this one.
func (l *listener) precheck(ctx context.Context, m *primitive.MessageExt, d mqdatasource.Delivery) (Outcome, bool, error) {
	id := d.MessageID()
	if l.cache.contains(id) {
		l.log(ctx, slog.LevelDebug, "exactlyonce: already consumed (cache), skipped", m, d)
		return OutcomeSkippedCache, true, nil
	}
	if !l.cfg.tableCheck {
		return 0, false, nil
	}
	done, err := l.ds.IsConsumed(ctx, d)
	switch {
	case errors.Is(err, mqdatasource.ErrKeyCollision):
		l.report(ctx, m, d, OutcomeKeyCollision, err, 0)
		return OutcomeKeyCollision, true, err
	case err != nil:
		l.log(ctx, slog.LevelWarn, "exactlyonce: pre-check lookup failed, running the handler", m, d, slog.Any("error", err))
	case done:
		l.cache.add(id)
		l.log(ctx, slog.LevelDebug, "exactlyonce: already consumed (table), skipped", m, d)
		return OutcomeSkippedTable, true, nil
	}
	return 0, false, nil
}

// attempts runs the message, then again in place while it fails with a
// transient database error (see inPlace).
func (l *listener) attempts(ctx context.Context, d mqdatasource.Delivery, m *primitive.MessageExt, lbl Labels) (Outcome, error) {
	return inPlace(ctx, l, func() (Outcome, error) { return l.attempt(ctx, d, m, lbl) },
		func(o Outcome, err error) bool { return o == OutcomeFailed && mqdatasource.IsRetryable(err) })
}

// inPlace calls run, and again, up to WithLocalRetries times, while
// transient says its failure was a transient database error (deadlock
// victim, serialization conflict, lost connection, unknown commit outcome):
// retrying here is cheaper than a send-back or a suspension. It stops when
// ctx ends or the consumer is draining.
func inPlace[T any](ctx context.Context, l *listener, run func() (T, error), transient func(T, error) bool) (T, error) {
	v, err := run()
	for try := 0; try < l.cfg.localRetries && transient(v, err); try++ {
		if ctx.Err() != nil || l.cfg.gate.draining() {
			break
		}
		l.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "exactlyonce: transient failure, retrying in place", slog.Int("try", try+1), slog.Any("error", err))
		backoff := localRetryBackoff << try
		select {
		case <-time.After(backoff/2 + rand.N(backoff/2)):
		case <-ctx.Done():
		}
		v, err = run()
	}
	return v, err
}

// localRetryBackoff bounds the first wait before an in-place retry: the wait
// is between half of it and all of it (jitter, so that deadlocked peers do
// not meet again), and the bound doubles with each retry.
const localRetryBackoff = 20 * time.Millisecond

// attempt runs the handler once as one delivery (mqdatasource.Deliver owns
// its transactions), with a context cancelled when the attempt ends, so a
// transaction or rows the handler leaves behind are released. It reports
// the claim, handler and commit phases to the Tracer, and the commit's
// time to a CommitMetrics.
func (l *listener) attempt(ctx context.Context, d mqdatasource.Delivery, m *primitive.MessageExt, lbl Labels) (Outcome, error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	tr := l.cfg.tracer
	var opts []mqdatasource.DeliverOption
	// endClaim ends the claim phase: when fn starts, or when Deliver
	// returns without calling fn (a duplicate, a failed claim).
	var endClaim func(error)
	if l.txh != nil || len(l.cfg.dataSources) > 0 {
		_, endClaim = tr.StartPhase(actx, PhaseClaim)
		// Claim before the handler runs: a TxHandler's tx holds the claim;
		// several databases must learn which of them applied the message.
		opts = append(opts, mqdatasource.ClaimIn(l.ds, l.cfg.txOptions))
		for _, ds := range l.cfg.dataSources {
			opts = append(opts, mqdatasource.ClaimIn(ds, l.cfg.txOptions))
		}
	}
	var (
		committing time.Time // when fn returned nil; zero otherwise
		endCommit  func(error)
	)
	res, err := mqdatasource.Deliver(actx, d, func(ctx context.Context) error {
		if endClaim != nil {
			endClaim(nil)
			endClaim = nil
		}
		hctx, endHandler := tr.StartPhase(ctx, PhaseHandler)
		err := protect(func() error { return l.call(hctx, m) })
		endHandler(err)
		if err == nil {
			_, endCommit = tr.StartPhase(actx, PhaseCommit)
			committing = time.Now()
		}
		return err
	}, opts...)
	if endClaim != nil {
		endClaim(err)
	}
	o, err := attemptOutcome(res, err, l.cfg.requireClaim)
	if !committing.IsZero() {
		elapsed := time.Since(committing)
		endCommit(err)
		if cm, ok := l.cfg.metrics.(CommitMetrics); ok {
			cm.CommitDone(lbl, o, elapsed)
		}
	}
	return o, err
}

// attemptOutcome is the outcome of an attempt that Deliver ended with res
// and err.
func attemptOutcome(res mqdatasource.Result, err error, requireClaim bool) (Outcome, error) {
	switch res {
	case mqdatasource.Committed:
		return OutcomeProcessed, nil
	case mqdatasource.Duplicate:
		return OutcomeDuplicate, nil
	case mqdatasource.Unclaimed:
		if requireClaim {
			return OutcomeFailed, ErrUnclaimed
		}
		return OutcomeUnclaimed, nil
	}
	if _, ok := err.(*PanicError); ok {
		return OutcomePanic, err
	}
	switch {
	case errors.Is(err, mqdatasource.ErrRollbackOnly):
		return OutcomeRolledBack, err
	case errors.Is(err, mqdatasource.ErrInvalidDelivery):
		return OutcomeInvalid, err
	case errors.Is(err, mqdatasource.ErrKeyCollision):
		return OutcomeKeyCollision, err
	}
	return OutcomeFailed, err
}

// call runs the handler in the delivery: a TxHandler gets the delivery's
// transaction as a *sql.Tx, ended here so that database/sql releases its
// connection (the commit itself is Deliver's).
func (l *listener) call(ctx context.Context, m *primitive.MessageExt) error {
	if l.txh == nil {
		return l.h(ctx, m)
	}
	tx, err := l.ds.BeginTx(ctx, l.cfg.txOptions)
	if err != nil {
		return fmt.Errorf("exactlyonce: begin: %w", err)
	}
	if err := l.txh(context.WithValue(ctx, txKey{}, tx), tx, m); err != nil {
		_ = tx.Rollback()
		return err
	}
	err = tx.Commit()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrTxDone) && ctx.Err() != nil:
		// database/sql ended tx because ctx ended, and its rollback may
		// reach the delivery only after Deliver commits: fail now instead.
		return fmt.Errorf("exactlyonce: handler context ended before commit: %w", context.Cause(ctx))
	case errors.Is(err, sql.ErrTxDone):
		return nil // the handler ended tx itself
	}
	return fmt.Errorf("exactlyonce: commit: %w", err)
}

// report logs the outcome of an attempted message and caches a committed id.
func (l *listener) report(ctx context.Context, m *primitive.MessageExt, d mqdatasource.Delivery, o Outcome, err error, elapsed time.Duration) {
	el := slog.Duration("elapsed", elapsed)
	switch o {
	case OutcomeProcessed:
		l.cache.add(d.MessageID())
		l.log(ctx, slog.LevelDebug, "exactlyonce: processed", m, d, el)
	case OutcomeDuplicate:
		l.cache.add(d.MessageID())
		l.log(ctx, slog.LevelInfo, "exactlyonce: already consumed (claim), rolled back", m, d, el)
	case OutcomeUnclaimed:
		// Not cached: nothing was committed, the cache holds committed ids.
		l.log(ctx, slog.LevelWarn, "exactlyonce: handler returned nil without using the DataSource with its context; the message is acknowledged but was not recorded", m, d, el)
	case OutcomePanic:
		var stack []byte
		if pe := (*PanicError)(nil); errors.As(err, &pe) {
			stack = pe.Stack
		}
		l.log(ctx, slog.LevelError, "exactlyonce: handler panicked, rolled back, retrying", m, d, el, slog.Any("error", err), slog.String("stack", string(stack)))
	case OutcomeRolledBack:
		l.log(ctx, slog.LevelError, "exactlyonce: the handler rolled back a transaction of the delivery and returned nil; all of its work is rolled back, retrying", m, d, el, slog.Any("error", err))
	case OutcomeInvalid:
		l.log(ctx, slog.LevelError, "exactlyonce: cannot claim the message, retrying it", m, d, el, slog.Any("error", err))
	case OutcomeKeyCollision:
		l.log(ctx, slog.LevelError, "exactlyonce: the message's key collides with another message's record; not applied, not acknowledged, retrying it (fix the message_id column)", m, d, el, slog.Any("error", err))
	default:
		level := slog.LevelWarn
		if errors.Is(err, ErrUnclaimed) || errors.Is(err, mqdatasource.ErrPartialCommit) {
			level = slog.LevelError
		}
		l.log(ctx, level, "exactlyonce: handler failed, rolled back, retrying", m, d, el, slog.Any("error", err))
	}
}

// log logs msg with the message's attributes, built only when the level is
// enabled.
func (l *listener) log(ctx context.Context, level slog.Level, msg string, m *primitive.MessageExt, d mqdatasource.Delivery, extra ...slog.Attr) {
	if !l.cfg.logger.Enabled(ctx, level) {
		return
	}
	attrs := append([]slog.Attr{
		slog.String("group", d.ConsumerGroup), slog.String("topic", m.Topic), slog.String("key", d.Key),
		slog.String("msgId", m.MsgId), slog.Int("queue", d.QueueID), slog.Int64("offset", d.QueueOffset),
		slog.Int("reconsumeTimes", int(m.ReconsumeTimes)),
	}, extra...)
	l.cfg.logger.LogAttrs(ctx, level, msg, attrs...)
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
