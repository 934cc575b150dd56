package exactlyonce

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
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

// extSink records the optional extensions' calls.
type extSink struct {
	Stats
	commits, purged int64
}

func (s *extSink) CommitDone(Labels, Outcome, time.Duration) { s.commits++ }

func (s *extSink) PurgeDone(_ Labels, deleted int64, _ time.Duration, _ error) { s.purged += deleted }

// TestMultiMetricsExtensions: the optional extensions reach the sinks that
// implement them, through MultiMetrics, and the listener times commits.
func TestMultiMetricsExtensions(t *testing.T) {
	ext := &extSink{}
	m := MultiMetrics(&Stats{}, ext)
	m.(PurgeMetrics).PurgeDone(Labels{Group: "g"}, 3, time.Millisecond, nil)
	if ext.purged != 3 {
		t.Errorf("PurgeDone reached the sink with %d records, want 3", ext.purged)
	}
	st := newFakeStore(t)
	f := newListener(st.DataSource, testGroup, nil, func(context.Context, *sql.Tx, *primitive.MessageExt) error { return nil },
		[]Option{quiet, WithMetrics(&Stats{}, ext)}).consume
	if ok, err := deliver(t, f, false, newMsg("t", "m1", 7)); !ok {
		t.Fatal(err)
	}
	if ext.commits != 1 {
		t.Errorf("CommitDone called %d times, want 1", ext.commits)
	}
}
