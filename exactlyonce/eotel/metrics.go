package eotel

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
)

// Metrics is an exactlyonce.Metrics (with its CommitMetrics and
// PurgeMetrics extensions) that records in OpenTelemetry instruments. Build
// it once and pass it to exactlyonce.WithMetrics for every consumer. It is
// safe for concurrent use.
type Metrics struct {
	messages      metric.Int64Counter
	handler       metric.Float64Histogram
	commit        metric.Float64Histogram
	purgeDeleted  metric.Int64Counter
	purgeDuration metric.Float64Histogram
}

var (
	_ exactlyonce.Metrics       = (*Metrics)(nil)
	_ exactlyonce.CommitMetrics = (*Metrics)(nil)
	_ exactlyonce.PurgeMetrics  = (*Metrics)(nil)
)

// Attribute keys of the metrics and spans: the OpenTelemetry messaging
// semantic conventions' where one fits.
const (
	keySystem      = attribute.Key("messaging.system")
	keyOperation   = attribute.Key("messaging.operation.type")
	keyDestination = attribute.Key("messaging.destination.name")
	keyGroup       = attribute.Key("messaging.consumer.group.name")
	keyMessageID   = attribute.Key("messaging.message.id")
	keyOrderly     = attribute.Key("exactlyonce.orderly")
	keyOutcome     = attribute.Key("exactlyonce.outcome")
	keyResult      = attribute.Key("exactlyonce.result")
)

// NewMetrics returns Metrics with instruments created by the MeterProvider
// of WithMeterProvider; it also takes WithBuckets. It fails if an
// instrument cannot be created.
func NewMetrics(opts ...Option) (*Metrics, error) {
	c := newConfig(opts)
	meter := c.meterProvider.Meter(ScopeName)
	var m Metrics
	var err error
	if m.messages, err = meter.Int64Counter("exactlyonce.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages handed to an exactly-once listener, by outcome.")); err != nil {
		return nil, err
	}
	if m.handler, err = meter.Float64Histogram("exactlyonce.handler.duration", metric.WithUnit("s"),
		metric.WithDescription("Time spent on a message past the pre-check: claim, handler, commit and in-place retries."),
		metric.WithExplicitBucketBoundaries(c.buckets...)); err != nil {
		return nil, err
	}
	if m.commit, err = meter.Float64Histogram("exactlyonce.commit.duration", metric.WithUnit("s"),
		metric.WithDescription("Time spent ending the delivery transaction after the handler returned nil."),
		metric.WithExplicitBucketBoundaries(c.buckets...)); err != nil {
		return nil, err
	}
	if m.purgeDeleted, err = meter.Int64Counter("exactlyonce.purge.deleted", metric.WithUnit("{record}"),
		metric.WithDescription("Consumed-message records deleted by a Consumer's purge.")); err != nil {
		return nil, err
	}
	if m.purgeDuration, err = meter.Float64Histogram("exactlyonce.purge.duration", metric.WithUnit("s"),
		metric.WithDescription("Time a purge run of a Consumer took."),
		metric.WithExplicitBucketBoundaries(c.buckets...)); err != nil {
		return nil, err
	}
	return &m, nil
}

// outcomeAttrs are the attributes of a message's metrics.
func outcomeAttrs(l exactlyonce.Labels, o exactlyonce.Outcome) metric.MeasurementOption {
	return metric.WithAttributes(keyGroup.String(l.Group), keyDestination.String(l.Topic),
		keyOrderly.Bool(l.Orderly), keyOutcome.String(o.String()))
}

// MessageDone implements exactlyonce.Metrics.
func (m *Metrics) MessageDone(l exactlyonce.Labels, o exactlyonce.Outcome) {
	m.messages.Add(context.Background(), 1, outcomeAttrs(l, o))
}

// HandlerDone implements exactlyonce.Metrics.
func (m *Metrics) HandlerDone(l exactlyonce.Labels, o exactlyonce.Outcome, d time.Duration) {
	m.handler.Record(context.Background(), d.Seconds(), outcomeAttrs(l, o))
}

// CommitDone implements exactlyonce.CommitMetrics.
func (m *Metrics) CommitDone(l exactlyonce.Labels, o exactlyonce.Outcome, d time.Duration) {
	m.commit.Record(context.Background(), d.Seconds(), outcomeAttrs(l, o))
}

// PurgeDone implements exactlyonce.PurgeMetrics.
func (m *Metrics) PurgeDone(l exactlyonce.Labels, deleted int64, d time.Duration, err error) {
	ctx := context.Background()
	group := keyGroup.String(l.Group)
	m.purgeDeleted.Add(ctx, deleted, metric.WithAttributes(group))
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.purgeDuration.Record(ctx, d.Seconds(), metric.WithAttributes(group, keyResult.String(result)))
}
