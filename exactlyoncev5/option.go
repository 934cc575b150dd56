package exactlyoncev5

import (
	"database/sql"
	"log/slog"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// Option configures a listener or a consumer of this package. Options are
// sealed, in the style of package exactlyonce; those that only make sense for
// one kind of consumer say so and are ignored by the others.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	logger       *slog.Logger
	metrics      exactlyonce.Metrics
	keyFunc      KeyFunc
	cacheSize    int
	tableCheck   bool
	txOptions    *sql.TxOptions
	requireClaim bool
	localRetries int
	dataSources  []*mqdatasource.DataSource
	backoff      time.Duration
	backoffMax   time.Duration

	// PushConsumer only.
	pushOptions []rmq.PushConsumerOption
	// SimpleConsumer only.
	invisible   time.Duration
	extend      bool
	maxMessages int
}

func newConfig(opts []Option) config {
	c := config{
		logger:       slog.Default(),
		metrics:      nopMetrics{},
		keyFunc:      DefaultKey,
		cacheSize:    10000,
		tableCheck:   true,
		localRetries: 2,
		backoff:      time.Second,
		backoffMax:   time.Minute,
		invisible:    30 * time.Second,
		extend:       true,
		maxMessages:  16,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

type nopMetrics struct{}

func (nopMetrics) MessageDone(exactlyonce.Labels, exactlyonce.Outcome)                {}
func (nopMetrics) HandlerDone(exactlyonce.Labels, exactlyonce.Outcome, time.Duration) {}

// WithLogger sets where the listener logs (levels as in package
// exactlyonce). Default: slog.Default(), read when the listener is built. A
// nil logger discards logs.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
	})
}

// WithMetrics sets the sink for the outcome counters and handler times, the
// same exactlyonce.Metrics interface the v2 adapter reports to (one
// implementation serves both; Labels.Orderly is true for FIFO messages).
// Default: none. exactlyonce.Stats counts in memory.
func WithMetrics(m exactlyonce.Metrics) Option {
	return optionFunc(func(c *config) {
		if m == nil {
			m = nopMetrics{}
		}
		c.metrics = m
	})
}

// WithKeyFunc sets how a message's dedupe key is derived. Default:
// DefaultKey.
func WithKeyFunc(f KeyFunc) Option {
	return optionFunc(func(c *config) {
		if f == nil {
			f = DefaultKey
		}
		c.keyFunc = f
	})
}

// WithKeysAsDedupeKey makes the message's keys its dedupe key: the same as
// WithKeyFunc(KeysKey), and the same key exactlyonce.WithKeysAsDedupeKey
// derives in a v2 consumer.
func WithKeysAsDedupeKey() Option { return WithKeyFunc(KeysKey) }

// WithCacheSize sets how many committed message ids the listener remembers
// to skip redeliveries without a database round trip. Default: 10000. 0
// disables the cache.
func WithCacheSize(n int) Option {
	return optionFunc(func(c *config) { c.cacheSize = max(n, 0) })
}

// WithTableCheck turns the pre-check lookup in transaction_record
// (DataSource.IsConsumed) on or off. Default: on. Off, a duplicate still
// runs the handler up to the claim, which rolls it back.
func WithTableCheck(on bool) Option {
	return optionFunc(func(c *config) { c.tableCheck = on })
}

// WithTxOptions sets the options of the delivery transaction a TxHandler
// runs in. Default: nil, the driver's defaults. Ignored for a Handler.
func WithTxOptions(o *sql.TxOptions) Option {
	return optionFunc(func(c *config) { c.txOptions = o })
}

// WithRequireClaim makes a Handler that returns nil without having used the
// DataSource with its context fail (exactlyonce.ErrUnclaimed, retried)
// instead of succeeding as exactlyonce.OutcomeUnclaimed. Default: off.
func WithRequireClaim() Option {
	return optionFunc(func(c *config) { c.requireClaim = true })
}

// WithLocalRetries sets how many times an attempt that failed with a
// transient database error (mqdatasource.IsRetryable) is run again in place
// after a short jittered pause, before the message is given back to the
// broker. Default: 2. 0 disables.
func WithLocalRetries(n int) Option {
	return optionFunc(func(c *config) { c.localRetries = max(n, 0) })
}

// WithDataSources names further DataSources the handler writes to through
// its context: the message is claimed in each before the handler runs, and
// all commit after it returns nil (see exactlyonce.WithDataSources).
func WithDataSources(more ...*mqdatasource.DataSource) Option {
	return optionFunc(func(c *config) { c.dataSources = append(c.dataSources, more...) })
}

// WithRetryBackoff sets how long a failed message waits before it is
// delivered again where this package decides it: a FIFO message of a push
// consumer (the listener waits before returning FAILURE, so the message
// group waits too, on top of the client's own retry delay), and any message
// of a SimpleConsumer (its invisible duration is changed to the wait). The
// wait is initial for the first attempt and doubles with each further
// delivery attempt, up to max. Defaults: 1s and 1m. Not used for
// concurrent push messages, which the client gives back with the group's
// retry policy. Values below 50ms are raised to 50ms; max below initial is
// raised to initial.
func WithRetryBackoff(initial, max time.Duration) Option {
	return optionFunc(func(c *config) {
		c.backoff = maxDur(initial, 50*time.Millisecond)
		c.backoffMax = maxDur(max, c.backoff)
	})
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// WithPushOptions passes options to golang.NewPushConsumer when
// NewPushConsumer builds the client (subscriptions, await duration,
// consumption threads, ...). The message listener is always the adapter's.
// Default: none. Used by NewPushConsumer only.
func WithPushOptions(opts ...rmq.PushConsumerOption) Option {
	return optionFunc(func(c *config) { c.pushOptions = append(c.pushOptions, opts...) })
}

// WithInvisibleDuration sets the invisible duration a SimpleConsumer
// receives messages with: how long a received message stays hidden from
// other consumers before the broker delivers it again. Default: 30s. The
// proxy refuses durations below its minInvisibleTimeMillsForRecv (10s by
// default). Used by SimpleConsumer only.
func WithInvisibleDuration(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.invisible = d
		}
	})
}

// WithExtendInvisible turns the extension of a running handler's invisible
// duration on or off. On, a SimpleConsumer changes the invisible duration of
// a message whose handler still runs back to the full duration every half
// duration, so a slow handler keeps its message. Off (or when an extension
// fails), the message becomes visible again while its handler runs; the
// redelivery then waits for the running delivery's claim and is
// acknowledged as a duplicate if it commits. Default: on. Used by
// SimpleConsumer only.
func WithExtendInvisible(on bool) Option {
	return optionFunc(func(c *config) { c.extend = on })
}

// WithMaxMessages sets how many messages a SimpleConsumer handles at once:
// each runs in its own goroutine, and the consumer receives only as many
// messages as it has free slots, so none waits for a slot while its
// invisible duration runs. Default: 16 (the most one receive call returns
// at the proxy's default). Used by SimpleConsumer only.
func WithMaxMessages(n int) Option {
	return optionFunc(func(c *config) { c.maxMessages = max(n, 1) })
}
