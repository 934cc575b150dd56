package eotel

import (
	"context"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
)

// Tracer is an exactlyonce.Tracer that records OpenTelemetry spans: one per
// message, parented by the trace context in the message's properties, and
// one child per phase. Pass it to exactlyonce.WithTracer. It is safe for
// concurrent use.
type Tracer struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
}

var _ exactlyonce.Tracer = (*Tracer)(nil)

// NewTracer returns a Tracer using the TracerProvider of WithTracerProvider
// and the propagator of WithPropagator.
func NewTracer(opts ...Option) *Tracer {
	c := newConfig(opts)
	return &Tracer{tracer: c.tracerProvider.Tracer(ScopeName), propagator: c.propagator}
}

// StartMessage implements exactlyonce.Tracer: it starts the message's span,
// a child of the span whose context the message's properties carry, if
// any, else of ctx's.
func (t *Tracer) StartMessage(ctx context.Context, l exactlyonce.Labels, m *primitive.MessageExt) (context.Context, func(exactlyonce.Outcome, error)) {
	ctx = t.propagator.Extract(ctx, Carrier(&m.Message))
	ctx, span := t.tracer.Start(ctx, "process "+l.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(keySystem.String("rocketmq"), keyOperation.String("process"),
			keyDestination.String(l.Topic), keyGroup.String(l.Group), keyMessageID.String(m.MsgId),
			keyOrderly.Bool(l.Orderly)))
	return ctx, func(o exactlyonce.Outcome, err error) {
		span.SetAttributes(keyOutcome.String(o.String()))
		if !o.Acked() {
			// Not acknowledged: the message is retried, which is what
			// an error status should show.
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			} else {
				span.SetStatus(codes.Error, o.String())
			}
		}
		span.End()
	}
}

// StartPhase implements exactlyonce.Tracer: it starts a child span named
// "exactlyonce." and the phase's name.
func (t *Tracer) StartPhase(ctx context.Context, p exactlyonce.Phase) (context.Context, func(error)) {
	ctx, span := t.tracer.Start(ctx, "exactlyonce."+p.String())
	return ctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// Inject writes the W3C trace context of ctx (the traceparent and
// tracestate properties) into the properties of msgs, so that the
// consumer's Tracer makes the producer's span the parent of each message's
// span. Call it before sending. It writes nothing when ctx carries no span.
// For another propagator, call its Inject with Carrier(m).
func Inject(ctx context.Context, msgs ...*primitive.Message) {
	var p propagation.TraceContext
	for _, m := range msgs {
		if m != nil {
			p.Inject(ctx, Carrier(m))
		}
	}
}

// Carrier returns m's properties as a propagation.TextMapCarrier, for
// propagators used directly.
func Carrier(m *primitive.Message) propagation.TextMapCarrier { return carrier{m} }

type carrier struct{ m *primitive.Message }

func (c carrier) Get(key string) string { return c.m.GetProperty(key) }

func (c carrier) Set(key, value string) { c.m.WithProperty(key, value) }

func (c carrier) Keys() []string {
	props := c.m.GetProperties()
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	return keys
}
