package eotel_test

import (
	"context"
	"fmt"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce/eotel"
)

// The producer injects its span's context into the message; the consumer's
// listener, given the Tracer, continues the trace:
//
//	m, err := eotel.NewMetrics()
//	c, err := exactlyonce.NewConsumer(ds, "stock-service",
//		exactlyonce.WithMetrics(m), exactlyonce.WithTracer(eotel.NewTracer()))
//
// Here the listener's calls to the Tracer are made by hand, and the spans
// are recorded in memory.
func Example() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))

	// Producer side.
	ctx, send := tp.Tracer("producer").Start(context.Background(), "send orders")
	msg := primitive.NewMessage("orders", []byte(`{"sku":"A-1","qty":1}`))
	eotel.Inject(ctx, msg)
	send.End()
	// (producer.SendSync(ctx, msg); the broker hands the properties on.)
	received := &primitive.MessageExt{MsgId: "7F00000100002A9F0000000000000001"}
	received.Topic = "orders"
	received.WithProperties(msg.GetProperties())

	// Consumer side: what the listener does for each message.
	tracer := eotel.NewTracer(eotel.WithTracerProvider(tp))
	mctx, end := tracer.StartMessage(context.Background(), exactlyonce.Labels{Group: "stock-service", Topic: "orders"}, received)
	_, endPhase := tracer.StartPhase(mctx, exactlyonce.PhaseHandler)
	endPhase(nil)
	end(exactlyonce.OutcomeProcessed, nil)

	names := map[[8]byte]string{}
	for _, s := range rec.Ended() {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	for _, s := range rec.Ended() {
		parent := names[s.Parent().SpanID()]
		if parent == "" {
			parent = "(root)"
		}
		fmt.Printf("%s, child of %s\n", s.Name(), parent)
	}
	// Output:
	// send orders, child of (root)
	// exactlyonce.handler, child of process orders
	// process orders, child of send orders
}
