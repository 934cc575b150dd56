package exactlyonce

import (
	"database/sql"
	"log/slog"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// Option configures a listener (Listener, TxListener) or a Consumer. Options
// are sealed: only this package implements them. Options that only make sense
// for a whole Consumer (WithClientOptions, WithPurge) are ignored by the
// listener constructors, each says so, and refused by Consumer.Subscribe and
// SubscribeTx.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	logger         *slog.Logger
	metrics        Metrics
	tracer         Tracer
	keyFunc        KeyFunc
	cacheSize      int
	tableCheck     bool
	suspendBackoff time.Duration
	txOptions      *sql.TxOptions
	requireClaim   bool
	// requireProducerKey: refuse messages without EXTEND_UNIQ_INFO.
	requireProducerKey bool
	localRetries       int
	dataSources        []*mqdatasource.DataSource

	// Consumer only.
	clientOptions []consumer.Option
	purgeEvery    time.Duration
	purgeKeep     time.Duration

	// Set by Consumer for the listeners it builds; nil for plain listeners.
	gate     *gate
	sendBack *sendBack // nil: failures go back to the client (ConsumeRetryLater)
}

func defaultConfig() config {
	return config{
		logger:         slog.Default(),
		metrics:        nopMetrics{},
		tracer:         nopTracer{},
		keyFunc:        DefaultKey,
		cacheSize:      10000,
		tableCheck:     true,
		suspendBackoff: time.Second,
		localRetries:   2,
	}
}

func newConfig(opts []Option) config {
	c := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// WithLogger sets where the listener logs: failures and duplicates at Warn
// and Info, panics and misuse at Error, skips at Debug. Default:
// slog.Default(), read when the listener is built. A nil logger discards logs.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
	})
}

// WithMetrics sets the sinks for counters and the handler-time histogram:
// every call goes to each of ms, in order (see MultiMetrics), so Stats and a
// Prometheus or OpenTelemetry adapter can be given together. Nil sinks are
// ignored. Default: none (a no-op). Stats is a ready in-memory
// implementation.
func WithMetrics(ms ...Metrics) Option {
	m := MultiMetrics(ms...)
	return optionFunc(func(c *config) { c.metrics = m })
}

// WithKeyFunc sets how a message's dedupe key is derived. Default:
// DefaultKey (EXTEND_UNIQ_INFO, else UNIQ_KEY, else ORIGIN_MESSAGE_ID, else
// the message id). The key must be the same on every delivery of the same
// message and differ between different messages consumed by the group;
// "" or an error makes the delivery fail (retry, eventually the DLQ), it is
// never acknowledged unprocessed.
func WithKeyFunc(f KeyFunc) Option {
	return optionFunc(func(c *config) {
		if f == nil {
			f = DefaultKey
		}
		c.keyFunc = f
	})
}

// WithKeysAsDedupeKey makes the message's Keys property (set by the producer
// with Message.WithKeys) its dedupe key: a business key stable even when the
// producer application sends the same fact twice as two different messages.
// The Keys must identify the fact, not the entity it is about: with Keys
// "order-42" on both "order 42 created" and "order 42 paid", the second
// message is acknowledged as a duplicate without running; use keys such as
// "order-42:paid". Several keys count as one string, joined by spaces in the
// producer's order. Default: off (DefaultKey). Same as WithKeyFunc(KeysKey).
func WithKeysAsDedupeKey() Option { return WithKeyFunc(KeysKey) }

// WithCacheSize sets how many message ids committed (or found committed) by
// this listener are remembered in memory, so that a redelivery is skipped
// without a database round trip. Default: 10000. 0 disables the cache.
func WithCacheSize(n int) Option {
	return optionFunc(func(c *config) {
		if n < 0 {
			n = 0
		}
		c.cacheSize = n
	})
}

// WithTableCheck turns the pre-check lookup in transaction_record
// (DataSource.IsConsumed, one indexed SELECT per delivery not in the cache)
// on or off. Default: on. With it off a duplicate still runs the handler up
// to the claim, which then fails with ErrAlreadyConsumed and rolls back.
func WithTableCheck(on bool) Option {
	return optionFunc(func(c *config) { c.tableCheck = on })
}

// WithSuspendBackoff sets how long an orderly consumer waits before
// redelivering a message queue whose delivery failed (the listener sets
// ConsumeOrderlyContext.SuspendCurrentQueueTimeMillis). Default: 1s. The
// client's own default, -1, redelivers at once in a hot loop. Values below
// 1ms are raised to 1ms. Not used in concurrent mode, where the broker's
// retry schedule applies.
func WithSuspendBackoff(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d < time.Millisecond {
			d = time.Millisecond
		}
		c.suspendBackoff = d
	})
}

// WithTxOptions sets the options of the transaction a TxHandler runs in
// (isolation level, read-only). Default: nil, the driver's defaults. Ignored
// for a Handler, which begins its own transactions.
func WithTxOptions(o *sql.TxOptions) Option {
	return optionFunc(func(c *config) { c.txOptions = o })
}

// WithRequireClaim makes a Handler that returns nil without having used the
// DataSource with its context fail (ErrUnclaimed: the message is retried)
// instead of succeeding with the outcome OutcomeUnclaimed. Default: off, so
// handlers may legitimately ignore a message. Costs nothing (no query).
// Ignored for a TxHandler, whose transaction always holds the claim.
func WithRequireClaim() Option {
	return optionFunc(func(c *config) { c.requireClaim = true })
}

// WithLocalRetries sets how many times a message whose attempt failed with
// a transient database error (mqdatasource.IsRetryable: a deadlock victim,
// a serialization or snapshot conflict, a lock timeout, a lost connection,
// an unknown commit outcome) is run again in place, after a short jittered
// pause (10-20 ms before the first retry, 20-40 ms before the second, the
// range doubling each time), before the listener gives it back to the client
// for redelivery. Deadlocks are expected when several deliveries of one
// message claim it at once (MySQL). Default: 2. 0 disables. Handler errors
// must wrap the database error (%w) for it to be recognised. Not done while
// the consumer is shutting down.
func WithLocalRetries(n int) Option {
	return optionFunc(func(c *config) { c.localRetries = max(n, 0) })
}

// WithClientOptions passes options to consumer.NewPushConsumer when
// NewConsumer builds the client (name server, orderly mode, batch size,
// instance name, ...). The group name is always NewConsumer's group. Default:
// none. Ignored by the listener constructors. May be given more than once.
func WithClientOptions(opts ...consumer.Option) Option {
	return optionFunc(func(c *config) { c.clientOptions = append(c.clientOptions, opts...) })
}

// WithPurge makes a Consumer delete transaction_record rows older than keep
// every interval, through DataSource.Purge, from Start until Shutdown.
// Default: no purge. keep must exceed the longest time a message can still be
// redelivered (the broker's retry schedule, about 5 hours with 16 retries,
// and the message retention if offsets can be rewound); rows purged too early
// let a redelivery apply twice. Both durations must be positive:
// NewConsumer fails if either is negative or only one is positive
// (WithPurge(0, 0) means no purge). Ignored by the listener constructors.
func WithPurge(keep, interval time.Duration) Option {
	return optionFunc(func(c *config) {
		c.purgeKeep = keep
		c.purgeEvery = interval
	})
}

func withGate(g *gate) Option { return optionFunc(func(c *config) { c.gate = g }) }

func withSendBack(s *sendBack) Option { return optionFunc(func(c *config) { c.sendBack = s }) }

// WithSendBack gives a listener subscribed on a client of your own, pc,
// what a Consumer's listeners have: a failed message is sent back to the
// retry topic (past the maximum reconsume times, to the dead-letter queue)
// by the listener, which checks the broker's answer, instead of by pc.
// rocketmq-client-go v2.1.2 ignores that answer (upstream #1106), so a
// message whose send-back the broker refuses is acknowledged and lost.
// With this option it is run again (for an orderly listener, its queue is
// suspended) until it is applied or stored: a refusal that lasts keeps it,
// and the goroutine pc runs it on, even after pc shut down.
//
// pc's options are read with reflection. For a client they cannot be read
// from, a broadcasting one, or one with ACL credentials or TLS, the option
// does nothing and pc sends back as before. A Consumer's listeners need no
// option: they always do this.
func WithSendBack(pc rocketmq.PushConsumer) Option {
	return withSendBack(newSendBack(func() any { return pc }))
}

// WithDataSources names further DataSources (other databases) the handler
// writes to through its context. The listener then claims the message in
// its own DataSource and in each of these before the handler runs (see
// mqdatasource.ClaimIn), and commits them all after it returns nil. If an
// earlier delivery committed in some of them only (a partial commit,
// retried as OutcomeFailed), the handler's work is kept only where the
// message is new, so each database applies it once. A message recorded in
// all of them is a duplicate, and the handler does not run.
func WithDataSources(more ...*mqdatasource.DataSource) Option {
	return optionFunc(func(c *config) { c.dataSources = append(c.dataSources, more...) })
}

// WithRequireProducerKey makes the listener refuse a message that carries
// no producer-stamped key, the EXTEND_UNIQ_INFO property (set by
// WrapProducer, StampKey, SetBusinessKey, or the Java producer with
// exactly-once delivery): it fails with ErrUnstamped before its handler
// runs (OutcomeUnstamped), is retried and in the end dead-lettered. Without
// the property the dedupe key would be the client-generated UNIQ_KEY, which
// two producer processes with the same IP and the same process id modulo
// 65,536 (containers that are both pid 1 with host networking) issue
// identically, so the second message would be dropped as a duplicate of
// the first. The default is off: such messages are accepted (see
// docs/guarantees.md, "Keys"). It checks the property whatever the
// WithKeyFunc.
func WithRequireProducerKey() Option {
	return optionFunc(func(c *config) { c.requireProducerKey = true })
}
