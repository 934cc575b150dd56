package exactlyoncev5

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
)

const addOne = `UPDATE counter SET n = n + $1 WHERE id = $2`

func consumeFunc(t *testing.T, l rmq.MessageListener) func(*rmq.MessageView) rmq.ConsumerResult {
	t.Helper()
	f, ok := l.(*rmq.FuncMessageListener)
	if !ok {
		t.Fatalf("listener is a %T", l)
	}
	return f.Consume
}

func TestListenerOutcomes(t *testing.T) {
	ds, mem := newMemDS(t)
	var stats exactlyonce.Stats
	fail := errors.New("business rule says no")
	var failNext bool
	consume := consumeFunc(t, Listener(ds, "g", func(ctx context.Context, mv *rmq.MessageView) error {
		if _, err := ds.DB().ExecContext(ctx, addOne, 1, 1); err != nil {
			return err
		}
		if failNext {
			return fail
		}
		return nil
	}, WithMetrics(&stats), WithLogger(nil)))

	m := view(t, "ID1", "T", nil, nil, "", 1)
	if r := consume(m); r != rmq.SUCCESS {
		t.Fatalf("first delivery: %v", r)
	}
	if r := consume(m); r != rmq.SUCCESS {
		t.Fatalf("redelivery: %v", r)
	}
	failNext = true
	if r := consume(view(t, "ID2", "T", nil, nil, "", 1)); r != rmq.FAILURE {
		t.Fatalf("failing handler: %v", r)
	}
	mem.Record("ID3#g") // applied by an earlier consumer
	if r := consume(view(t, "ID3", "T", nil, nil, "", 1)); r != rmq.SUCCESS {
		t.Fatalf("recorded message: %v", r)
	}
	if n := mem.Counter(1); n != 1 {
		t.Fatalf("counter = %d, want 1 (applied once)", n)
	}
	for o, want := range map[exactlyonce.Outcome]int64{
		exactlyonce.OutcomeProcessed:    1,
		exactlyonce.OutcomeSkippedCache: 1,
		exactlyonce.OutcomeFailed:       1,
		exactlyonce.OutcomeSkippedTable: 1,
	} {
		if got := stats.Count(o); got != want {
			t.Errorf("%v: %d, want %d", o, got, want)
		}
	}
}

func TestListenerDuplicateAtClaim(t *testing.T) {
	ds, mem := newMemDS(t)
	var stats exactlyonce.Stats
	ran := 0
	consume := consumeFunc(t, Listener(ds, "g", func(ctx context.Context, mv *rmq.MessageView) error {
		ran++
		// Another consumer commits the message between the pre-check and
		// the claim.
		mem.Record("ID1#g")
		_, err := ds.DB().ExecContext(ctx, addOne, 1, 1)
		return err
	}, WithMetrics(&stats), WithLogger(nil)))
	if r := consume(view(t, "ID1", "T", nil, nil, "", 1)); r != rmq.SUCCESS {
		t.Fatalf("duplicate at the claim: %v", r)
	}
	if ran != 1 || mem.Counter(1) != 0 || stats.Count(exactlyonce.OutcomeDuplicate) != 1 {
		t.Fatalf("ran %d, counter %d, duplicates %d", ran, mem.Counter(1), stats.Count(exactlyonce.OutcomeDuplicate))
	}
}

func TestListenerPanicAndInvalid(t *testing.T) {
	ds, _ := newMemDS(t)
	var stats exactlyonce.Stats
	consume := consumeFunc(t, Listener(ds, "g", func(ctx context.Context, mv *rmq.MessageView) error {
		panic("boom")
	}, WithMetrics(&stats), WithLogger(nil)))
	if r := consume(view(t, "ID1", "T", nil, nil, "", 1)); r != rmq.FAILURE {
		t.Fatalf("panic: %v", r)
	}
	if r := consume(view(t, "", "T", nil, nil, "", 1)); r != rmq.FAILURE {
		t.Fatalf("no key: %v", r)
	}
	if stats.Count(exactlyonce.OutcomePanic) != 1 || stats.Count(exactlyonce.OutcomeInvalid) != 1 {
		t.Fatalf("outcomes: %v", stats.Snapshot())
	}
}

// TestListenerFIFOBackoff: a failed FIFO message waits the back-off before
// the client gets FAILURE (the client retries it in place, with the server's
// delay, which could be zero); a concurrent one returns at once.
func TestListenerFIFOBackoff(t *testing.T) {
	ds, _ := newMemDS(t)
	consume := consumeFunc(t, Listener(ds, "g", func(ctx context.Context, mv *rmq.MessageView) error {
		return errors.New("no")
	}, WithRetryBackoff(100*time.Millisecond, 150*time.Millisecond), WithLogger(nil)))
	for _, tt := range []struct {
		group   string
		attempt int32
		min     time.Duration
		max     time.Duration
	}{
		{"", 1, 0, 50 * time.Millisecond},
		{"g1", 1, 100 * time.Millisecond, time.Second},
		{"g1", 3, 150 * time.Millisecond, time.Second}, // doubled, capped
	} {
		start := time.Now()
		if r := consume(view(t, "ID", "T", nil, nil, tt.group, tt.attempt)); r != rmq.FAILURE {
			t.Fatalf("%+v: %v", tt, r)
		}
		if el := time.Since(start); el < tt.min || el > tt.max {
			t.Errorf("group %q attempt %d: returned after %v, want %v..%v", tt.group, tt.attempt, el, tt.min, tt.max)
		}
	}
}

func TestTxListener(t *testing.T) {
	ds, mem := newMemDS(t)
	consume := consumeFunc(t, TxListener(ds, "g", func(ctx context.Context, tx *sql.Tx, mv *rmq.MessageView) error {
		if got, ok := exactlyonce.TxFromContext(ctx); !ok || got != tx {
			t.Error("TxFromContext does not return the handler's tx")
		}
		_, err := tx.ExecContext(ctx, addOne, 1, 1)
		return err
	}, WithLogger(nil)))
	m := view(t, "ID1", "T", nil, nil, "", 1)
	for range 2 {
		if r := consume(m); r != rmq.SUCCESS {
			t.Fatalf("%v", r)
		}
	}
	if mem.Counter(1) != 1 || !mem.Recorded("ID1#g") {
		t.Fatalf("counter %d, recorded %v", mem.Counter(1), mem.Recorded("ID1#g"))
	}
}

// TestPushShutdownGate: after the gate closes, messages are not run; the
// running handler's context is cancelled when the grace period ends, and
// its transaction rolls back.
func TestPushShutdownGate(t *testing.T) {
	ds, mem := newMemDS(t)
	var stats exactlyonce.Stats
	g := newGate()
	started := make(chan struct{})
	p := newProcessor(ds, "g", func(ctx context.Context, mv *rmq.MessageView) error {
		if _, err := ds.DB().ExecContext(ctx, addOne, 1, 1); err != nil {
			return err
		}
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}, nil, newConfig([]Option{WithMetrics(&stats), WithLogger(nil)}), g)
	res := make(chan rmq.ConsumerResult)
	go func() { res <- consumePush(p, view(t, "ID1", "T", nil, nil, "", 1)) }()
	<-started
	g.close()
	if r := consumePush(p, view(t, "ID2", "T", nil, nil, "", 1)); r != rmq.FAILURE {
		t.Fatalf("message after close: %v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait: %v", err)
	}
	g.cancel()
	if r := <-res; r != rmq.FAILURE {
		t.Fatalf("cancelled handler: %v", r)
	}
	if mem.Counter(1) != 0 || mem.Recorded("ID1#g") {
		t.Fatal("the cancelled delivery committed")
	}
	if stats.Count(exactlyonce.OutcomeNotRun) != 1 || stats.Count(exactlyonce.OutcomeFailed) != 1 {
		t.Fatalf("outcomes: %v", stats.Snapshot())
	}
}
