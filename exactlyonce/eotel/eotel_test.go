package eotel_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce/eotel"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/memdb"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

const group = "stock_service"

var quiet = exactlyonce.WithLogger(slog.New(slog.DiscardHandler))

// message is a message as the client hands it to a listener.
func message(topic, key string) *primitive.MessageExt {
	m := &primitive.MessageExt{Message: primitive.Message{Topic: topic, Body: []byte(key)}, MsgId: key}
	m.WithProperty(primitive.PropertyUniqueClientMessageIdKeyIndex, key)
	m.Queue = &primitive.MessageQueue{Topic: topic, BrokerName: "broker-a", QueueId: 1}
	return m
}

// clientCtx is the context rocketmq-client-go v2.1.2 passes to a
// concurrent listener.
func clientCtx() context.Context {
	mq := &primitive.MessageQueue{Topic: "orders", BrokerName: "broker-a", QueueId: 1}
	ctx := primitive.WithConsumerCtx(context.Background(), &primitive.ConsumeMessageContext{
		ConsumerGroup: group, MQ: mq, Properties: map[string]string{},
	})
	ctx = primitive.WithMethod(ctx, primitive.ConsumerPush)
	cc := primitive.NewConsumeConcurrentlyContext()
	cc.MQ = *mq
	return primitive.WithConcurrentlyCtx(ctx, cc)
}

func openMem(t *testing.T) *mqdatasource.DataSource {
	t.Helper()
	ds, err := mqdatasource.OpenConnector(memdb.New(), mqdatasource.WithDialect(mqdatasource.PostgreSQL()),
		mqdatasource.WithSchemaCheck(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	return ds
}

// spansByName indexes the ended spans; a name recorded twice fails.
func spansByName(t *testing.T, rec *tracetest.SpanRecorder) map[string]sdktrace.ReadOnlySpan {
	t.Helper()
	out := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if _, dup := out[s.Name()]; dup {
			t.Errorf("span %q recorded twice", s.Name())
		}
		out[s.Name()] = s
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// TestSpanTree delivers a message whose properties carry the producer's
// trace context through a TxListener, and checks the span tree: the
// message's span is the producer span's child, the phases are the message
// span's children, and the handler's own span is the handler phase's child.
func TestSpanTree(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ds := openMem(t)

	// The producer side: a span around the send, injected into the message.
	pctx, send := tp.Tracer("producer").Start(context.Background(), "send orders", trace.WithSpanKind(trace.SpanKindProducer))
	msg := message("orders", "k1")
	eotel.Inject(pctx, &msg.Message)
	send.End()
	if msg.GetProperty("traceparent") == "" {
		t.Fatal("Inject set no traceparent property")
	}

	l := exactlyonce.TxListener(ds, group, func(ctx context.Context, tx *sql.Tx, m *primitive.MessageExt) error {
		_, work := tp.Tracer("app").Start(ctx, "apply")
		work.End()
		return nil
	}, exactlyonce.WithTracer(eotel.NewTracer(eotel.WithTracerProvider(tp))), quiet)
	if _, err := l(clientCtx(), msg); err != nil {
		t.Fatal(err)
	}

	spans := spansByName(t, rec)
	process := spans["process orders"]
	if process == nil {
		t.Fatalf("no message span; spans: %v", spans)
	}
	if got, want := process.Parent().SpanID(), send.SpanContext().SpanID(); got != want || !process.Parent().IsRemote() {
		t.Errorf("message span's parent = %v (remote %v), want the producer's span %v from the properties", got, process.Parent().IsRemote(), want)
	}
	if process.SpanContext().TraceID() != send.SpanContext().TraceID() {
		t.Error("the message span is not in the producer's trace")
	}
	if process.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("message span kind = %v, want consumer", process.SpanKind())
	}
	for key, want := range map[string]string{
		"messaging.system": "rocketmq", "messaging.destination.name": "orders",
		"messaging.consumer.group.name": group, "messaging.message.id": "k1", "exactlyonce.outcome": "processed",
	} {
		if got := attr(process, key).AsString(); got != want {
			t.Errorf("message span %s = %q, want %q", key, got, want)
		}
	}
	for _, name := range []string{"exactlyonce.precheck", "exactlyonce.claim", "exactlyonce.handler", "exactlyonce.commit"} {
		s := spans[name]
		if s == nil {
			t.Errorf("no %s span", name)
			continue
		}
		if s.Parent().SpanID() != process.SpanContext().SpanID() {
			t.Errorf("%s's parent is not the message span", name)
		}
	}
	if h, a := spans["exactlyonce.handler"], spans["apply"]; h != nil && a != nil && a.Parent().SpanID() != h.SpanContext().SpanID() {
		t.Error("the handler's span is not a child of the handler phase")
	}
	// The phases come in order.
	if c, h := spans["exactlyonce.claim"], spans["exactlyonce.handler"]; c != nil && h != nil && c.EndTime().After(h.StartTime()) {
		t.Error("the claim phase ends after the handler starts")
	}
}

// TestSpanOutcomes checks the spans of a Listener (whose handler claims, so
// no claim phase), a skipped duplicate and a failed message, and a message
// without trace context (a root span).
func TestSpanOutcomes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ds := openMem(t)
	errBusiness := errors.New("stock too low")
	l := exactlyonce.Listener(ds, group, func(ctx context.Context, m *primitive.MessageExt) error {
		if string(m.Body) == "bad" {
			return errBusiness
		}
		// The in-memory database knows this statement.
		_, err := ds.DB().ExecContext(ctx, "UPDATE counter SET n = n + $1 WHERE id = $2", 1, 1)
		return err
	}, exactlyonce.WithTracer(eotel.NewTracer(eotel.WithTracerProvider(tp))), exactlyonce.WithLocalRetries(0), quiet)

	run := func(key string) map[string]sdktrace.ReadOnlySpan {
		t.Helper()
		rec.Reset()
		_, _ = l(clientCtx(), message("orders", key))
		return spansByName(t, rec)
	}

	spans := run("k1")
	if _, ok := spans["exactlyonce.claim"]; ok {
		t.Error("a Listener's delivery has a claim phase; its handler claims")
	}
	for _, name := range []string{"process orders", "exactlyonce.precheck", "exactlyonce.handler", "exactlyonce.commit"} {
		if spans[name] == nil {
			t.Errorf("no %s span", name)
		}
	}
	if p := spans["process orders"]; p != nil && p.Parent().IsValid() {
		t.Error("a message without trace context got a parent")
	}

	spans = run("k1")
	if len(spans) != 2 || spans["exactlyonce.precheck"] == nil {
		t.Errorf("duplicate: spans %v, want the message and its pre-check", spans)
	}
	if p := spans["process orders"]; p == nil || attr(p, "exactlyonce.outcome").AsString() != "skipped_cache" || p.Status().Code == codes.Error {
		t.Errorf("duplicate's message span: %+v", p)
	}

	spans = run("bad")
	p, h := spans["process orders"], spans["exactlyonce.handler"]
	if p == nil || p.Status().Code != codes.Error || attr(p, "exactlyonce.outcome").AsString() != "failed" {
		t.Errorf("failed message's span: %+v", p)
	}
	if h == nil || h.Status().Code != codes.Error || len(h.Events()) == 0 {
		t.Errorf("failed handler's span has no error: %+v", h)
	}
	if spans["exactlyonce.commit"] != nil {
		t.Error("a failed handler has a commit phase")
	}
}

// TestMetrics runs the listener with Metrics on a ManualReader: a message,
// its duplicate and a failing one, and a purge reported by hand.
func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	m, err := eotel.NewMetrics(eotel.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	ds := openMem(t)
	l := exactlyonce.TxListener(ds, group, func(ctx context.Context, tx *sql.Tx, msg *primitive.MessageExt) error {
		if string(msg.Body) == "bad" {
			return errors.New("handler failed")
		}
		return nil
	}, exactlyonce.WithMetrics(m), exactlyonce.WithLocalRetries(0), quiet)
	for _, key := range []string{"k1", "k1", "bad"} {
		_, _ = l(clientCtx(), message("orders", key))
	}
	m.PurgeDone(exactlyonce.Labels{Group: group}, 42, 0, nil)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	// got maps "instrument outcome" to a counter's value or a histogram's count.
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			switch data := md.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					o, _ := dp.Attributes.Value("exactlyonce.outcome")
					got[md.Name+" "+o.AsString()] += dp.Value
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					o, _ := dp.Attributes.Value("exactlyonce.outcome")
					if o.Type() == attribute.EMPTY {
						o, _ = dp.Attributes.Value("exactlyonce.result")
					}
					got[md.Name+" "+o.AsString()] += int64(dp.Count)
				}
			}
		}
	}
	for key, want := range map[string]int64{
		"exactlyonce.messages processed":         1,
		"exactlyonce.messages skipped_cache":     1,
		"exactlyonce.messages failed":            1,
		"exactlyonce.handler.duration processed": 1,
		"exactlyonce.handler.duration failed":    1,
		"exactlyonce.commit.duration processed":  1,
		"exactlyonce.purge.deleted ":             42,
		"exactlyonce.purge.duration ok":          1,
	} {
		if got[key] != want {
			t.Errorf("%s = %d, want %d (all: %v)", key, got[key], want, got)
		}
	}
	if n := got["exactlyonce.commit.duration failed"]; n != 0 {
		t.Errorf("a failed handler's commit was timed %d times", n)
	}
}

// TestBatchSpans: a BatchListener gives every message its span, parented
// from its properties, with its own outcome, and no phase spans.
func TestBatchSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ds := openMem(t)
	pctx, send := tp.Tracer("producer").Start(context.Background(), "send orders")
	first := message("orders", "k1")
	eotel.Inject(pctx, &first.Message)
	send.End()
	l := exactlyonce.BatchListener(ds, group, func(ctx context.Context, msgs []*primitive.MessageExt) error {
		_, err := ds.DB().ExecContext(ctx, "UPDATE counter SET n = n + $1 WHERE id = $2", len(msgs), 1)
		return err
	}, exactlyonce.WithTracer(eotel.NewTracer(eotel.WithTracerProvider(tp))), quiet)
	if _, err := l(clientCtx(), first, message("orders", "k2")); err != nil {
		t.Fatal(err)
	}
	var processed []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "send orders" {
			continue
		}
		if s.Name() != "process orders" {
			t.Errorf("unexpected span %q", s.Name())
			continue
		}
		processed = append(processed, s)
		if got := attr(s, "exactlyonce.outcome").AsString(); got != "processed" {
			t.Errorf("span of %s: outcome %q", attr(s, "messaging.message.id").AsString(), got)
		}
	}
	if len(processed) != 2 {
		t.Fatalf("%d message spans, want 2", len(processed))
	}
	for _, s := range processed {
		fromProducer := s.Parent().SpanID() == send.SpanContext().SpanID()
		if want := attr(s, "messaging.message.id").AsString() == "k1"; fromProducer != want {
			t.Errorf("span of %s: parent is the producer's %v, want %v", attr(s, "messaging.message.id").AsString(), fromProducer, want)
		}
	}
}
