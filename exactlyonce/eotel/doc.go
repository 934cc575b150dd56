// Package eotel exports the exactlyonce listener's metrics and traces to
// OpenTelemetry.
//
// It is a module of its own, so that programs that do not use OpenTelemetry
// do not link it: the exactlyonce package only defines the Metrics and
// Tracer interfaces, which Metrics and Tracer here implement.
//
//	m, err := eotel.NewMetrics() // the global MeterProvider
//	...
//	c, err := exactlyonce.NewConsumer(ds, group,
//		exactlyonce.WithMetrics(m), exactlyonce.WithTracer(eotel.NewTracer()))
//
// # Metrics
//
// Labelled by messaging.consumer.group.name, messaging.destination.name
// (the topic), exactlyonce.orderly and exactlyonce.outcome
// (exactlyonce.Outcome.String):
//
//	exactlyonce.messages          counter, one per message handed to a listener
//	exactlyonce.handler.duration  histogram (s) of the handler time of messages past the pre-check
//	exactlyonce.commit.duration   histogram (s) of ending the delivery transaction after the handler
//	exactlyonce.purge.deleted     counter of records a Consumer's purge deleted (group only)
//	exactlyonce.purge.duration    histogram (s) of purge runs, by exactlyonce.result ("ok", "error")
//
// Duplicates are the messages with the outcomes skipped_cache and
// skipped_table (found by the pre-check) and duplicate (found by the claim).
//
// # Traces
//
// Tracer starts one span per message, of kind consumer, named "process
// TOPIC", with children for the phases the listener goes through:
// exactlyonce.precheck, exactlyonce.claim (when the listener claims before
// the handler), exactlyonce.handler (its context is the one the handler
// gets, so spans of the handler's own work nest under it) and
// exactlyonce.commit. A message whose properties carry a W3C trace context
// (the traceparent property, set by Inject on the producer side) gets the
// producer's span as its parent. A BatchListener's messages get their spans
// without phase children: their transaction is the batch's.
package eotel
