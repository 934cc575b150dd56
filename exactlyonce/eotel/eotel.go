package eotel

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/b74fc070/rocketmq-exactlyonce/exactlyonce/eotel"

// An Option configures NewMetrics or NewTracer; each says which it takes,
// and ignores the others.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	meterProvider  metric.MeterProvider
	tracerProvider trace.TracerProvider
	propagator     propagation.TextMapPropagator
	buckets        []float64
}

func newConfig(opts []Option) config {
	c := config{
		meterProvider:  otel.GetMeterProvider(),
		tracerProvider: otel.GetTracerProvider(),
		// Not otel.GetTextMapPropagator: the global one propagates nothing
		// until the program sets it, and a message's trace context is
		// worth carrying whether it did or not.
		propagator: propagation.TraceContext{},
		buckets:    DefaultBuckets,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// WithMeterProvider sets where NewMetrics creates its instruments. Default:
// otel.GetMeterProvider(), read when NewMetrics is called.
func WithMeterProvider(p metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if p != nil {
			c.meterProvider = p
		}
	})
}

// WithTracerProvider sets where NewTracer creates its tracer. Default:
// otel.GetTracerProvider(), read when NewTracer is called.
func WithTracerProvider(p trace.TracerProvider) Option {
	return optionFunc(func(c *config) {
		if p != nil {
			c.tracerProvider = p
		}
	})
}

// WithPropagator sets how NewTracer reads the trace context in a message's
// properties (use the same propagator with Carrier on the producer side).
// Default: propagation.TraceContext{}, the W3C traceparent and tracestate
// properties that Inject writes.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) {
		if p != nil {
			c.propagator = p
		}
	})
}

// DefaultBuckets are the duration histograms' upper bounds in seconds when
// WithBuckets is not given: 1 ms to 10 s, since a handler is one or a few
// database transactions (eoprom's defaults).
var DefaultBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// WithBuckets sets NewMetrics' duration histograms' upper bounds, in
// seconds. Default: DefaultBuckets.
func WithBuckets(b ...float64) Option { return optionFunc(func(c *config) { c.buckets = b }) }
