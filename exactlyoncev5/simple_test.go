package exactlyoncev5

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
)

func runSimple(t *testing.T, c *SimpleConsumer) chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		err := c.Run(context.Background())
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- err
	}()
	t.Cleanup(func() {
		_ = c.Shutdown(context.Background())
		<-done
	})
	return done
}

func TestSimpleAckAndGiveBack(t *testing.T) {
	ds, mem := newMemDS(t)
	client := newFakeSimple(
		view(t, "A", "T", nil, nil, "", 1),
		view(t, "B", "T", nil, nil, "", 2), // fails on its second attempt
		view(t, "A", "T", nil, nil, "", 2), // a redelivery of A
	)
	var stats exactlyonce.Stats
	c, err := NewSimpleConsumer(ds, "g", client, func(ctx context.Context, mv *rmq.MessageView) error {
		if mv.GetMessageId() == "B" {
			return errors.New("no")
		}
		_, err := ds.DB().ExecContext(ctx, addOne, 1, 1)
		return err
	}, WithMetrics(&stats), WithLogger(nil), WithRetryBackoff(time.Second, time.Minute), WithMaxMessages(1))
	if err != nil {
		t.Fatal(err)
	}
	done := runSimple(t, c)
	eventually(t, "three messages settled", func() bool {
		acked, changes := client.snapshot()
		return len(acked) == 2 && len(changes) == 1
	})
	acked, changes := client.snapshot()
	if !slices.Equal(acked, []string{"A", "A"}) {
		t.Errorf("acked %v", acked)
	}
	if changes[0] != (change{"B", 2 * time.Second}) {
		t.Errorf("B given back with %+v, want 2s (second attempt)", changes[0])
	}
	if mem.Counter(1) != 1 {
		t.Errorf("counter %d, want 1", mem.Counter(1))
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run after Shutdown: %v", err)
	}
	done <- nil // for the cleanup
	if !client.stopped {
		t.Error("client not stopped")
	}
}

// TestSimpleExtendsSlowHandler: a handler slower than the invisible
// duration keeps its message invisible by renewals every half duration.
func TestSimpleExtendsSlowHandler(t *testing.T) {
	ds, _ := newMemDS(t)
	client := newFakeSimple(view(t, "A", "T", nil, nil, "", 1))
	c, err := NewSimpleConsumer(ds, "g", client, func(ctx context.Context, mv *rmq.MessageView) error {
		time.Sleep(120 * time.Millisecond)
		_, err := ds.DB().ExecContext(ctx, addOne, 1, 1)
		return err
	}, WithInvisibleDuration(40*time.Millisecond), WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	runSimple(t, c)
	eventually(t, "ack", func() bool { a, _ := client.snapshot(); return len(a) == 1 })
	_, changes := client.snapshot()
	if len(changes) < 3 {
		t.Fatalf("%d renewals in 120ms at 20ms intervals: %+v", len(changes), changes)
	}
	for _, ch := range changes {
		if ch != (change{"A", 40 * time.Millisecond}) {
			t.Fatalf("renewal %+v", ch)
		}
	}
}

// TestSimpleExpiredWhileRunning: without extension the message comes back
// while its first delivery runs; the second delivery waits on the claim and
// is acknowledged as a duplicate.
func TestSimpleExpiredWhileRunning(t *testing.T) {
	ds, mem := newMemDS(t)
	client := newFakeSimple(view(t, "A", "T", nil, nil, "", 1))
	var runs atomic.Int32
	second := make(chan struct{})
	var stats exactlyonce.Stats
	c, err := NewSimpleConsumer(ds, "g", client, func(ctx context.Context, mv *rmq.MessageView) error {
		if _, err := ds.DB().ExecContext(ctx, addOne, 1, 1); err != nil {
			return err
		}
		if runs.Add(1) == 1 {
			client.push(view(t, "A", "T", nil, nil, "", 2)) // "expired"
			<-second
		}
		return nil
	}, WithExtendInvisible(false), WithTableCheck(false), WithMetrics(&stats), WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	runSimple(t, c)
	// The redelivery's claim blocks on the first delivery's row.
	eventually(t, "the redelivery to wait on the claim", func() bool { return mem.Open() >= 2 })
	close(second)
	eventually(t, "two acks", func() bool { a, _ := client.snapshot(); return len(a) == 2 })
	if mem.Counter(1) != 1 || stats.Count(exactlyonce.OutcomeDuplicate) != 1 {
		t.Fatalf("counter %d, outcomes %v", mem.Counter(1), stats.Snapshot())
	}
}

// TestSimpleShutdown: Shutdown stops receiving, waits for the running
// handler until its ctx ends, cancels it (nothing commits, no Ack) and stops
// the client.
func TestSimpleShutdown(t *testing.T) {
	ds, mem := newMemDS(t)
	client := newFakeSimple(view(t, "A", "T", nil, nil, "", 1))
	started := make(chan struct{})
	c, err := NewSimpleConsumer(ds, "g", client, func(ctx context.Context, mv *rmq.MessageView) error {
		if _, err := ds.DB().ExecContext(ctx, addOne, 1, 1); err != nil {
			return err
		}
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}, WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	done := runSimple(t, c)
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := c.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the grace period's error", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	done <- nil
	acked, changes := client.snapshot()
	if len(acked) != 0 || mem.Counter(1) != 0 || !client.stopped {
		t.Fatalf("acked %v, counter %d, stopped %v", acked, mem.Counter(1), client.stopped)
	}
	if len(changes) != 1 || changes[0].d != time.Second {
		t.Fatalf("the cancelled message was not given back with the back-off: %+v", changes)
	}
	if err := c.Run(context.Background()); !errors.Is(err, exactlyonce.ErrShutdown) {
		t.Fatalf("Run after Shutdown: %v", err)
	}
}

// TestSimpleAckFails: a lost Ack leaves the message to come back; the cache
// skips it.
func TestSimpleAckFails(t *testing.T) {
	ds, mem := newMemDS(t)
	client := newFakeSimple(view(t, "A", "T", nil, nil, "", 1))
	client.ackErr = errors.New("receipt handle expired")
	var stats exactlyonce.Stats
	c, err := NewSimpleConsumer(ds, "g", client, func(ctx context.Context, mv *rmq.MessageView) error {
		_, err := ds.DB().ExecContext(ctx, addOne, 1, 1)
		return err
	}, WithMetrics(&stats), WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	runSimple(t, c)
	eventually(t, "the first delivery", func() bool { return stats.Count(exactlyonce.OutcomeProcessed) == 1 })
	client.mu.Lock()
	client.ackErr = nil
	client.mu.Unlock()
	client.push(view(t, "A", "T", nil, nil, "", 2))
	eventually(t, "the redelivery acked", func() bool { a, _ := client.snapshot(); return len(a) == 1 })
	if mem.Counter(1) != 1 || stats.Count(exactlyonce.OutcomeSkippedCache) != 1 {
		t.Fatalf("counter %d, outcomes %v", mem.Counter(1), stats.Snapshot())
	}
}
