package exactlyonce

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// BatchHandler applies several messages of one delivery in one database
// transaction: the listener claims all of them in one statement
// (mqdatasource.DeliverBatch), skips those already consumed, and calls the
// handler with the rest, in delivery order; everything it does through the
// DataSource with ctx runs in that transaction, committed once when it
// returns nil. One commit (one fsync on a durable server) for the whole
// batch is where its speed comes from.
//
//   - It returns nil: the batch commits; its messages are acknowledged
//     (OutcomeProcessed; those found recorded OutcomeDuplicate).
//   - It returns an error or panics: the batch rolls back and the listener
//     isolates the failure: it runs every message alone, in order (each
//     its own transaction, as handler(ctx, []*MessageExt{m})), so one bad
//     message never fails or dead-letters its neighbours. A message that
//     fails alone is retried like any other (orderly: the queue waits, and
//     the messages after it are not run).
//
// Its batches are the client's: ConsumeMessageBatchMaxSize for a
// concurrent consumer (consumer.WithConsumeMessageBatchMaxSize), the
// orderly consumer's batch of one queue, which keeps per-queue order.
type BatchHandler func(ctx context.Context, msgs []*primitive.MessageExt) error

// BatchListener is Listener for a BatchHandler (see BatchHandler). Options
// are Listener's; WithDataSources is not supported (a batch transaction is
// in ds only) and makes it panic.
func BatchListener(ds *mqdatasource.DataSource, group string, h BatchHandler, opts ...Option) ListenerFunc {
	if ds == nil || h == nil {
		panic("exactlyonce: BatchListener needs a DataSource and a BatchHandler")
	}
	l := newListener(ds, group, nil, nil, opts)
	if len(l.cfg.dataSources) > 0 {
		panic("exactlyonce: BatchListener does not take WithDataSources: a batch transaction is in one DataSource")
	}
	l.bh = h
	return l.consume
}

// pending is a message of a batch still to be applied.
type pending struct {
	i int // index in the delivery
	m *primitive.MessageExt
	d mqdatasource.Delivery
}

// batch processes a delivery's messages with the BatchHandler: deliveries
// built and checked, then the pre-check (cache, then one query for the
// misses), then one transaction for the rest, and, if it fails, each of
// them alone. It records every message's outcome, like each.
func (l *listener) batch(ctx context.Context, group string, msgs []*primitive.MessageExt, labels func(*primitive.MessageExt) Labels, orderly bool) (fails []failure, shutdown bool) {
	if l.cfg.gate.draining() {
		l.notRun(msgs, labels)
		return nil, true
	}
	queue := queueFromContext(ctx)
	done := make([]bool, len(msgs))
	// Every message gets its span now: its phases are the batch's, shared
	// with the others, so none are reported.
	endSpan := make([]func(Outcome, error), len(msgs))
	for i, m := range msgs {
		if m != nil {
			_, endSpan[i] = l.cfg.tracer.StartMessage(ctx, labels(m), m)
		}
	}
	finish := func(i int, o Outcome, err error) {
		done[i] = true
		if endSpan[i] != nil {
			endSpan[i](o, err)
		}
		l.cfg.metrics.MessageDone(labels(msgs[i]), o)
		if !o.Acked() {
			fails = append(fails, failure{msgs[i], err})
		}
	}
	// stop ends an orderly delivery at a message that failed: the ones
	// after it are not run, whatever else happened to them.
	stop := func(at int) {
		for i := at + 1; i < len(msgs); i++ {
			if !done[i] {
				finish(i, OutcomeNotRun, nil)
			}
		}
	}

	var todo []pending
	for i, m := range msgs {
		if m == nil {
			finish(i, OutcomeInvalid, errNilMessage)
			if orderly {
				stop(i)
				break
			}
			continue
		}
		d, err := l.delivery(group, m, queue)
		if err != nil {
			l.log(ctx, slog.LevelError, "exactlyonce: cannot claim the message, retrying it", m, d, slog.Any("error", err))
			finish(i, refusedOutcome(err), err)
			if orderly {
				stop(i)
				break
			}
			continue
		}
		todo = append(todo, pending{i: i, m: m, d: d})
	}
	todo = l.precheckBatch(ctx, todo, finish)
	if len(todo) == 0 {
		return fails, false
	}

	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer l.cfg.gate.onCancel(cancel)()
	start := time.Now()
	fresh, err := l.attemptBatch(hctx, todo, labels)
	if err == nil {
		l.reportBatch(ctx, todo, fresh, time.Since(start), labels, finish)
		return fails, false
	}
	if len(todo) > 1 {
		l.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "exactlyonce: batch failed, applying its messages one by one",
			slog.String("group", group), slog.Int("messages", len(todo)), slog.Any("error", err))
	}
	// Isolate the failure: every message alone, in order.
	for n, p := range todo {
		if hctx.Err() != nil || l.cfg.gate.draining() {
			for _, rest := range todo[n:] {
				finish(rest.i, OutcomeNotRun, nil)
			}
			return fails, true
		}
		start := time.Now()
		fresh, err := l.attemptBatch(hctx, todo[n:n+1], labels)
		if err == nil {
			l.reportBatch(ctx, todo[n:n+1], fresh, time.Since(start), labels, finish)
			continue
		}
		o := batchOutcome(err)
		if hctx.Err() != nil {
			err = errors.Join(err, ErrShutdown)
		}
		l.cfg.metrics.HandlerDone(labels(p.m), o, time.Since(start))
		l.report(ctx, p.m, p.d, o, err, time.Since(start))
		finish(p.i, o, err)
		if orderly {
			stop(p.i)
			break
		}
	}
	return fails, false
}

// precheckBatch finishes the messages found in the cache, then those found
// in transaction_record by one query, and returns the rest.
func (l *listener) precheckBatch(ctx context.Context, todo []pending, finish func(int, Outcome, error)) []pending {
	rest := todo[:0:0]
	for _, p := range todo {
		if l.cache.contains(p.d.MessageID()) {
			finish(p.i, OutcomeSkippedCache, nil)
			continue
		}
		rest = append(rest, p)
	}
	if !l.cfg.tableCheck || len(rest) == 0 {
		return rest
	}
	ds := make([]mqdatasource.Delivery, len(rest))
	for n, p := range rest {
		ds[n] = p.d
	}
	// ConsumedOf matches ids byte for byte: a record the column only takes
	// for one of them is not taken for it; the claim then reports it.
	consumed, err := l.ds.ConsumedOf(ctx, ds)
	if err != nil {
		l.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "exactlyonce: pre-check lookup failed, running the handler", slog.Any("error", err))
		return rest
	}
	out := rest[:0:0]
	for n, p := range rest {
		if consumed[n] {
			l.cache.add(p.d.MessageID())
			finish(p.i, OutcomeSkippedTable, nil)
			continue
		}
		out = append(out, p)
	}
	return out
}

// attemptBatch runs todo as one DeliverBatch, then again in place while it
// fails with a transient database error, and returns the indexes into todo
// that were fresh. It reports the time each commit took to a CommitMetrics.
func (l *listener) attemptBatch(ctx context.Context, todo []pending, labels func(*primitive.MessageExt) Labels) ([]int, error) {
	ds := make([]mqdatasource.Delivery, len(todo))
	for n, p := range todo {
		ds[n] = p.d
	}
	run := func() ([]int, error) {
		actx, cancel := context.WithCancel(ctx)
		defer cancel()
		var committing time.Time // when the handler returned nil
		fresh, err := l.ds.DeliverBatch(actx, ds, func(ctx context.Context, fresh []int) error {
			ms := make([]*primitive.MessageExt, len(fresh))
			for n, i := range fresh {
				ms[n] = todo[i].m
			}
			err := protect(func() error { return l.bh(ctx, ms) })
			if err == nil {
				committing = time.Now()
			}
			return err
		})
		if cm, ok := l.cfg.metrics.(CommitMetrics); ok && !committing.IsZero() {
			o := OutcomeProcessed
			if err != nil {
				o = batchOutcome(err)
			}
			cm.CommitDone(labels(todo[0].m), o, time.Since(committing))
		}
		return fresh, err
	}
	return inPlace(ctx, l, run, func(_ []int, err error) bool { return mqdatasource.IsRetryable(err) })
}

// reportBatch finishes the messages of a committed batch: the fresh ones
// processed, the others duplicates.
func (l *listener) reportBatch(ctx context.Context, todo []pending, fresh []int, elapsed time.Duration, labels func(*primitive.MessageExt) Labels, finish func(int, Outcome, error)) {
	isFresh := make([]bool, len(todo))
	for _, i := range fresh {
		isFresh[i] = true
	}
	for n, p := range todo {
		o := OutcomeDuplicate
		if isFresh[n] {
			o = OutcomeProcessed
		}
		l.cfg.metrics.HandlerDone(labels(p.m), o, elapsed)
		l.report(ctx, p.m, p.d, o, nil, elapsed)
		finish(p.i, o, nil)
	}
}

// batchOutcome is the outcome of a message whose delivery failed with err.
func batchOutcome(err error) Outcome {
	if _, ok := err.(*PanicError); ok {
		return OutcomePanic
	}
	switch {
	case errors.Is(err, mqdatasource.ErrRollbackOnly):
		return OutcomeRolledBack
	case errors.Is(err, mqdatasource.ErrKeyCollision):
		return OutcomeKeyCollision
	case errors.Is(err, mqdatasource.ErrInvalidDelivery):
		return OutcomeInvalid
	}
	return OutcomeFailed
}
