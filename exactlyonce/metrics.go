package exactlyonce

import (
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is how the listener finished with one message of a delivery. Every
// message handed to a listener ends with exactly one outcome.
type Outcome int

const (
	// OutcomeProcessed: the handler ran and its transaction, holding the
	// claim, committed. Acknowledged.
	OutcomeProcessed Outcome = iota
	// OutcomeUnclaimed: a Handler returned nil without using the
	// DataSource with its context (it ignored the message, or wrote
	// elsewhere), so nothing was claimed. Acknowledged, logged at Warn; see
	// WithRequireClaim.
	OutcomeUnclaimed
	// OutcomeSkippedCache: the pre-check found the message id in the
	// in-memory cache of ids this listener committed. The handler did not
	// run. Acknowledged.
	OutcomeSkippedCache
	// OutcomeSkippedTable: the pre-check found the message's row in
	// transaction_record. The handler did not run. Acknowledged.
	OutcomeSkippedTable
	// OutcomeDuplicate: the claim insert found the row (another consumer
	// committed the message between the pre-check and the claim, or the
	// pre-check was skipped or failed); the delivery's transaction rolled
	// back, whether the handler returned mqdatasource.ErrAlreadyConsumed or
	// swallowed it. Acknowledged.
	OutcomeDuplicate
	// OutcomeFailed: the handler, the claim or the commit returned an
	// error. Not acknowledged: retried. Nothing was committed, except by a
	// commit whose outcome was unknown or a partial commit across
	// databases; the redelivery then finds the record where it committed.
	OutcomeFailed
	// OutcomePanic: the handler (or other user code the listener calls,
	// such as a KeyFunc) panicked; a transaction it left open rolled back.
	// Retried, like OutcomeFailed.
	OutcomePanic
	// OutcomeNotRun: the message was not attempted because an earlier
	// message of the same orderly batch failed, or because the consumer is
	// shutting down. Retried.
	OutcomeNotRun
	// OutcomeRolledBack: the handler returned nil after rolling back a
	// transaction of its delivery (mqdatasource.ErrRollbackOnly): its work
	// is incomplete, so all of it was rolled back. Retried; a handler bug
	// or a swallowed error, to alert on.
	OutcomeRolledBack
	// OutcomeInvalid: the message cannot be claimed: no dedupe key (the
	// key function failed) or an invalid delivery
	// (mqdatasource.ErrInvalidDelivery, e.g. an id too long for the
	// message_id column, or with a character the column's character set
	// cannot store, mqdatasource.ErrUnstorableKey). The handler did not
	// run. Retried, and in the end dead-lettered: to alert on.
	OutcomeInvalid
	// OutcomeKeyCollision: the claim met the record of another message
	// whose id the message_id column takes for this one's (a
	// case-insensitive collation; mqdatasource.ErrKeyCollision). The
	// message was not applied and is not a duplicate: acknowledging it
	// would lose it. Retried, and in the end dead-lettered, where it can
	// be replayed once the column is fixed: to alert on.
	OutcomeKeyCollision
	// OutcomeUnstamped: WithRequireProducerKey is set and the message has
	// no producer-stamped key (no EXTEND_UNIQ_INFO property): its key
	// would be a client-generated UNIQ_KEY, which two producers can share.
	// The handler did not run. Retried, and in the end dead-lettered: to
	// alert on (a producer that does not stamp its messages).
	OutcomeUnstamped

	numOutcomes = iota
)

var outcomeNames = [numOutcomes]string{"processed", "unclaimed", "skipped_cache", "skipped_table", "duplicate", "failed", "panic", "not_run", "rolled_back", "invalid", "key_collision", "unstamped"}

// String returns the outcome's metric-friendly name, e.g. "skipped_cache".
func (o Outcome) String() string {
	if o < 0 || int(o) >= numOutcomes {
		return "unknown"
	}
	return outcomeNames[o]
}

// Acked reports whether the outcome acknowledges the message (the listener
// returns success for the delivery only if every message's outcome is
// acknowledged).
func (o Outcome) Acked() bool { return o <= OutcomeDuplicate }

// Labels identify where a metric comes from.
type Labels struct {
	Group   string // consumer group
	Topic   string // the message's topic (the original topic for retries)
	Orderly bool   // the listener was called by an orderly consumer
}

// Metrics receives the listener's counters and timings. Implementations must
// be safe for concurrent use and fast (they run on the consume path). Plug in
// Prometheus or OpenTelemetry by implementing it; Stats is an in-memory one.
type Metrics interface {
	// MessageDone is called once for every message handed to the listener,
	// with its outcome. Processed = OutcomeProcessed; duplicates skipped by
	// cache, by table and by unique key at the claim are the three Skipped*/
	// Duplicate outcomes; retries are OutcomeFailed, OutcomePanic and
	// OutcomeNotRun.
	MessageDone(l Labels, o Outcome)
	// HandlerDone is called for every message that got past the
	// pre-check, with its outcome and how long handling it took: the
	// handler runs, and for a TxHandler beginning (claiming) and committing
	// the transaction, including in-place retries of transient failures
	// and the waits between them (WithLocalRetries). Not called for
	// messages skipped by the pre-check or not run.
	HandlerDone(l Labels, o Outcome, d time.Duration)
}

// CommitMetrics is an optional extension of Metrics: a Metrics that also
// implements it is told how long ending each delivery transaction took.
type CommitMetrics interface {
	// CommitDone is called for every attempt whose handler returned nil,
	// with the attempt's outcome and how long ending its delivery
	// transactions took after the handler returned: the commit (of every
	// DataSource, WithDataSources), or the rollback of a duplicate or of a
	// rollback-only delivery. A BatchListener calls it once per batch
	// transaction, with the labels of the batch's first message.
	CommitDone(l Labels, o Outcome, d time.Duration)
}

// PurgeMetrics is an optional extension of Metrics: a Metrics that also
// implements it is told of every purge a Consumer runs (WithPurge).
type PurgeMetrics interface {
	// PurgeDone is called after each purge run, with the consumer's group
	// (Labels.Topic is empty), the number of records deleted, how long it
	// took and its error (nil if it succeeded; a run cut short by Shutdown
	// is not reported).
	PurgeDone(l Labels, deleted int64, d time.Duration, err error)
}

// MultiMetrics returns a Metrics that passes every call to each of ms, in
// order, like io.MultiWriter. It implements CommitMetrics and PurgeMetrics
// too, passing those calls to the sinks that implement them. Nil entries are left out; with none left it is
// a no-op, and with one it is that one.
func MultiMetrics(ms ...Metrics) Metrics {
	var all multiMetrics
	for _, m := range ms {
		switch m := m.(type) {
		case nil, nopMetrics:
		case multiMetrics: // flattened, so nesting costs no extra calls
			all = append(all, m...)
		default:
			all = append(all, m)
		}
	}
	switch len(all) {
	case 0:
		return nopMetrics{}
	case 1:
		return all[0]
	}
	return all
}

type multiMetrics []Metrics

func (ms multiMetrics) MessageDone(l Labels, o Outcome) {
	for _, m := range ms {
		m.MessageDone(l, o)
	}
}

func (ms multiMetrics) HandlerDone(l Labels, o Outcome, d time.Duration) {
	for _, m := range ms {
		m.HandlerDone(l, o, d)
	}
}

var (
	_ CommitMetrics = multiMetrics(nil)
	_ PurgeMetrics  = multiMetrics(nil)
)

func (ms multiMetrics) CommitDone(l Labels, o Outcome, d time.Duration) {
	for _, m := range ms {
		if m, ok := m.(CommitMetrics); ok {
			m.CommitDone(l, o, d)
		}
	}
}

func (ms multiMetrics) PurgeDone(l Labels, deleted int64, d time.Duration, err error) {
	for _, m := range ms {
		if m, ok := m.(PurgeMetrics); ok {
			m.PurgeDone(l, deleted, d, err)
		}
	}
}

type nopMetrics struct{}

func (nopMetrics) MessageDone(Labels, Outcome)                {}
func (nopMetrics) HandlerDone(Labels, Outcome, time.Duration) {}

// Stats is a Metrics that counts in memory, across all labels. Useful in
// tests, demos and health endpoints. The zero value is ready to use.
type Stats struct {
	outcomes    [numOutcomes]atomic.Int64
	handlerRuns atomic.Int64
	handlerNano atomic.Int64

	mu         sync.Mutex
	handlerMax time.Duration
}

var _ Metrics = (*Stats)(nil)

// MessageDone implements Metrics.
func (s *Stats) MessageDone(_ Labels, o Outcome) {
	if o >= 0 && int(o) < numOutcomes {
		s.outcomes[o].Add(1)
	}
}

// HandlerDone implements Metrics.
func (s *Stats) HandlerDone(_ Labels, _ Outcome, d time.Duration) {
	s.handlerRuns.Add(1)
	s.handlerNano.Add(int64(d))
	s.mu.Lock()
	s.handlerMax = max(s.handlerMax, d)
	s.mu.Unlock()
}

// Count returns how many messages ended with outcome o.
func (s *Stats) Count(o Outcome) int64 {
	if o < 0 || int(o) >= numOutcomes {
		return 0
	}
	return s.outcomes[o].Load()
}

// Messages returns how many messages ended, whatever their outcome.
func (s *Stats) Messages() int64 {
	var total int64
	for o := range s.outcomes {
		total += s.outcomes[o].Load()
	}
	return total
}

// Snapshot returns the counters by outcome name (see Outcome.String), plus
// "messages" (their sum, as Messages), "handler_runs", and "handler_ms_total" and
// "handler_ms_max" (handler time in milliseconds).
func (s *Stats) Snapshot() map[string]int64 {
	m := make(map[string]int64, numOutcomes+4)
	var total int64
	for o := range Outcome(numOutcomes) {
		n := s.outcomes[o].Load()
		m[o.String()] = n
		total += n
	}
	m["messages"] = total
	m["handler_runs"] = s.handlerRuns.Load()
	m["handler_ms_total"] = time.Duration(s.handlerNano.Load()).Milliseconds()
	s.mu.Lock()
	m["handler_ms_max"] = s.handlerMax.Milliseconds()
	s.mu.Unlock()
	return m
}
