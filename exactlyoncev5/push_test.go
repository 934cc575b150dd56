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

// TestListenerFIFORetriesInPlace: a failed FIFO message is retried in the
// listener with back-off until it succeeds (the client would hand out the
// group's next message meanwhile); a concurrent one returns FAILURE at once.
func TestListenerFIFORetriesInPlace(t *testing.T) {
	ds, mem := newMemDS(t)
	var runs int
	var stats exactlyonce.Stats
	consume := consumeFunc(t, Listener(ds, "g", func(ctx context.Context, mv *rmq.MessageView) error {
		runs++
		if runs <= 2 {
			return errors.New("no")
		}
		_, err := ds.DB().ExecContext(ctx, addOne, 1, 1)
		return err
	}, WithRetryBackoff(50*time.Millisecond, 80*time.Millisecond), WithLogger(nil), WithMetrics(&stats)))

	start := time.Now()
	if r := consume(view(t, "C", "T", nil, nil, "", 1)); r != rmq.FAILURE {
		t.Fatalf("concurrent: %v", r)
	}
	if el := time.Since(start); el > 40*time.Millisecond {
		t.Errorf("concurrent failure returned after %v", el)
	}
	start = time.Now()
	if r := consume(view(t, "F", "T", nil, nil, "mg", 1)); r != rmq.SUCCESS {
		t.Fatalf("FIFO: %v", r)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Errorf("FIFO retried after %v, want the back-off (50ms)", el)
	}
	if runs != 3 || mem.Counter(1) != 1 || stats.Count(exactlyonce.OutcomeFailed) != 2 {
		t.Fatalf("runs %d, counter %d, outcomes %v", runs, mem.Counter(1), stats.Snapshot())
	}
}

// TestListenerFIFOShutdown: a FIFO message failing while the consumer
// drains is given back (FAILURE) instead of retried.
func TestListenerFIFOShutdown(t *testing.T) {
	ds, _ := newMemDS(t)
	g := newGate()
	failed := make(chan struct{}, 1)
	p := newProcessor(ds, "g", func(ctx context.Context, mv *rmq.MessageView) error {
		select {
		case failed <- struct{}{}:
		default:
		}
		return errors.New("no")
	}, nil, newConfig([]Option{WithRetryBackoff(time.Hour, time.Hour), WithLogger(nil)}), g)
	res := make(chan rmq.ConsumerResult)
	go func() { res <- consumePush(p, view(t, "F", "T", nil, nil, "mg", 1)) }()
	<-failed
	g.close()
	select {
	case r := <-res:
		if r != rmq.FAILURE {
			t.Fatalf("%v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the back-off did not end at shutdown")
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
