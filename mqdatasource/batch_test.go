package mqdatasource_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

func batchOf(group string, keys ...string) []mqdatasource.Delivery {
	out := make([]mqdatasource.Delivery, len(keys))
	for i, k := range keys {
		out[i] = delivery(group, k)
	}
	return out
}

// applyFresh adds one to account 1 for every fresh delivery, in the batch's
// transaction.
func (f *fixture) applyFresh(ctx context.Context, fresh []int) error {
	for range fresh {
		if err := f.increment(ctx, 1); err != nil {
			return err
		}
	}
	return nil
}

func TestIntegrationDeliverBatch(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		for _, k := range []string{"b2", "b4"} {
			if err := claimOnly(f.ds, delivery("g", k)); err != nil {
				t.Fatal(err)
			}
		}
		batch := batchOf("g", "b1", "b2", "b3", "b4", "b5")
		consumed, err := f.ds.ConsumedOf(context.Background(), batch)
		if err != nil || !slices.Equal(consumed, []bool{false, true, false, true, false}) {
			t.Fatalf("ConsumedOf = %v, %v", consumed, err)
		}
		fresh, err := f.ds.DeliverBatch(context.Background(), batch, f.applyFresh)
		if err != nil || !slices.Equal(fresh, []int{0, 2, 4}) {
			t.Fatalf("DeliverBatch = %v, %v; want fresh [0 2 4]", fresh, err)
		}
		if f.balance(t, 1) != 3 || f.records(t) != 5 {
			t.Fatalf("balance %d, %d records; want 3 and 5", f.balance(t, 1), f.records(t))
		}
		// All recorded: fn is not called.
		fresh, err = f.ds.DeliverBatch(context.Background(), batch, func(context.Context, []int) error {
			return errors.New("called for a batch of duplicates")
		})
		if err != nil || len(fresh) != 0 {
			t.Fatalf("duplicate batch: %v, %v", fresh, err)
		}
		// A failure commits nothing, claims included.
		boom := errors.New("boom")
		_, err = f.ds.DeliverBatch(context.Background(), batchOf("g", "b6", "b7"), func(ctx context.Context, fresh []int) error {
			if err := f.applyFresh(ctx, fresh); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) || f.balance(t, 1) != 3 || f.records(t) != 5 {
			t.Fatalf("failed batch: %v, balance %d, %d records", err, f.balance(t, 1), f.records(t))
		}
	})
}

// Batches that overlap, delivered concurrently: every message applies once.
func TestIntegrationDeliverBatchConcurrent(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		const n, workers = 24, 4
		var keys []string
		for i := range n {
			keys = append(keys, fmt.Sprintf("c%02d", i))
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			applied int
		)
		for w := range workers {
			wg.Go(func() {
				// Each worker sends the keys in batches of 8, starting at a
				// different offset, so batches overlap partly.
				for b := range n / 8 {
					start := (w*4 + b*8) % n
					var ks []string
					for i := range 8 {
						ks = append(ks, keys[(start+i)%n])
					}
					for attempt := 0; ; attempt++ {
						fresh, err := f.ds.DeliverBatch(context.Background(), batchOf("g", ks...), f.applyFresh)
						if err == nil {
							mu.Lock()
							applied += len(fresh)
							mu.Unlock()
							break
						}
						if !mqdatasource.IsRetryable(err) || attempt == 50 {
							t.Errorf("batch: %v", err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		distinct := f.QueryInt(t, "SELECT COUNT(*) FROM "+f.table)
		if int64(applied) != f.balance(t, 1) || f.balance(t, 1) != distinct {
			t.Fatalf("%d fresh in all, balance %d, %d records; want them equal (each applied once)", applied, f.balance(t, 1), distinct)
		}
	})
}

// A message twice in one batch is applied once.
func TestIntegrationDeliverBatchRepeats(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		fresh, err := f.ds.DeliverBatch(context.Background(), batchOf("g", "r1", "r2", "r1"), f.applyFresh)
		if err != nil || !slices.Equal(fresh, []int{0, 1}) {
			t.Fatalf("DeliverBatch = %v, %v; want fresh [0 1]", fresh, err)
		}
		if f.balance(t, 1) != 2 || f.records(t) != 2 {
			t.Fatalf("balance %d, %d records; want 2 and 2", f.balance(t, 1), f.records(t))
		}
	})
}
