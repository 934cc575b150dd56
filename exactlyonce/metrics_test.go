package exactlyonce

import (
	"testing"
	"time"
)

func TestMultiMetrics(t *testing.T) {
	a, b, c := &Stats{}, &Stats{}, &Stats{}
	if _, ok := MultiMetrics().(nopMetrics); !ok {
		t.Error("MultiMetrics() is not a no-op")
	}
	if _, ok := MultiMetrics(nil, nopMetrics{}).(nopMetrics); !ok {
		t.Error("MultiMetrics(nil, no-op) is not a no-op")
	}
	if m := MultiMetrics(nil, a); m != Metrics(a) {
		t.Errorf("MultiMetrics(nil, a) = %T, want a itself", m)
	}
	m := MultiMetrics(MultiMetrics(a, b), c)
	if n := len(m.(multiMetrics)); n != 3 {
		t.Errorf("nested MultiMetrics holds %d sinks, want 3 (flattened)", n)
	}
	m.MessageDone(Labels{Group: "g", Topic: "t"}, OutcomeDuplicate)
	m.HandlerDone(Labels{Group: "g", Topic: "t"}, OutcomeFailed, time.Millisecond)
	for i, s := range []*Stats{a, b, c} {
		if s.Count(OutcomeDuplicate) != 1 || s.Snapshot()["handler_runs"] != 1 {
			t.Errorf("sink %d: %v", i, s.Snapshot())
		}
	}
	// WithMetrics with several sinks fans out the same way.
	cfg := newConfig([]Option{WithMetrics(a, nil, b)})
	cfg.metrics.MessageDone(Labels{}, OutcomeProcessed)
	if a.Count(OutcomeProcessed) != 1 || b.Count(OutcomeProcessed) != 1 {
		t.Errorf("WithMetrics(a, nil, b): counts %d, %d", a.Count(OutcomeProcessed), b.Count(OutcomeProcessed))
	}
}
