// Package eoprom exports the exactlyonce listener's metrics to Prometheus.
//
// It is a module of its own, so that programs that do not use Prometheus do
// not link its client: the exactlyonce package only defines the Metrics
// interface, which Metrics here implements.
//
//	m := eoprom.New()
//	prometheus.MustRegister(m)
//	c, err := exactlyonce.NewConsumer(ds, group, exactlyonce.WithMetrics(m))
//
// It exposes, labelled by consumer group, topic, orderly ("true"/"false")
// and outcome (exactlyonce.Outcome.String: processed, skipped_cache,
// skipped_table, duplicate, unclaimed, failed, panic, not_run, rolled_back,
// invalid):
//
//	exactlyonce_messages_total                 counter, one per message handed to a listener
//	exactlyonce_handler_duration_seconds       histogram of the handler time of messages past the pre-check
//
// docs/operations.md in the repository says which outcomes to alert on.
package eoprom

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
)

// Metrics is an exactlyonce.Metrics that counts in Prometheus metrics, and
// a prometheus.Collector of them: register it once, pass it to
// exactlyonce.WithMetrics for every consumer. It is safe for concurrent use.
type Metrics struct {
	messages *prometheus.CounterVec
	handler  *prometheus.HistogramVec
}

var (
	_ exactlyonce.Metrics  = (*Metrics)(nil)
	_ prometheus.Collector = (*Metrics)(nil)
)

// An Option configures New.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	namespace   string
	buckets     []float64
	constLabels prometheus.Labels
}

// DefaultBuckets are the handler-time histogram's upper bounds in seconds
// when WithBuckets is not given: 1 ms to 10 s, since a handler is one or a
// few database transactions.
var DefaultBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// WithNamespace sets the metric name prefix. Default "exactlyonce".
func WithNamespace(ns string) Option { return optionFunc(func(c *config) { c.namespace = ns }) }

// WithBuckets sets the handler-time histogram's upper bounds, in seconds.
// Default DefaultBuckets.
func WithBuckets(b ...float64) Option { return optionFunc(func(c *config) { c.buckets = b }) }

// WithConstLabels adds labels with fixed values to every metric, e.g. the
// service's name when several share a registry. Default none.
func WithConstLabels(l prometheus.Labels) Option {
	return optionFunc(func(c *config) { c.constLabels = l })
}

// labelNames are the variable labels of both metrics.
var labelNames = []string{"group", "topic", "orderly", "outcome"}

// New returns Metrics configured by opts. Register it with a
// prometheus.Registerer before use; it records nothing otherwise visible.
func New(opts ...Option) *Metrics {
	cfg := config{namespace: "exactlyonce", buckets: DefaultBuckets}
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	return &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace:   cfg.namespace,
			Name:        "messages_total",
			Help:        "Messages handed to an exactlyonce listener, by outcome.",
			ConstLabels: cfg.constLabels,
		}, labelNames),
		handler: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace:   cfg.namespace,
			Name:        "handler_duration_seconds",
			Help:        "Time spent handling a message past the pre-check (a TxHandler's includes begin and commit), by outcome.",
			ConstLabels: cfg.constLabels,
			Buckets:     cfg.buckets,
		}, labelNames),
	}
}

// MessageDone implements exactlyonce.Metrics.
func (m *Metrics) MessageDone(l exactlyonce.Labels, o exactlyonce.Outcome) {
	m.messages.WithLabelValues(l.Group, l.Topic, strconv.FormatBool(l.Orderly), o.String()).Inc()
}

// HandlerDone implements exactlyonce.Metrics.
func (m *Metrics) HandlerDone(l exactlyonce.Labels, o exactlyonce.Outcome, d time.Duration) {
	m.handler.WithLabelValues(l.Group, l.Topic, strconv.FormatBool(l.Orderly), o.String()).Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.messages.Describe(ch)
	m.handler.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.messages.Collect(ch)
	m.handler.Collect(ch)
}
