// Package backoff retries a start-up step with capped exponential back-off
// until it succeeds, fails permanently, or the caller's context ends.
// mqdatasource's OpenContext and exactlyonce's Consumer.StartContext share
// it, so both wait and give up the same way.
package backoff

import (
	"context"
	"fmt"
	"time"
)

// The waits between attempts: Min after the first failure, doubling up to
// Max. Capped, so that a server that comes back is noticed within Max.
const (
	Min = 100 * time.Millisecond
	Max = 5 * time.Second
)

// Retry calls op until it returns nil or an error for which transient
// reports false, waiting Min, 2*Min, ... up to Max between attempts. When
// ctx ends first, it returns an error wrapping both the context's cause and
// op's last error, naming what failed (what), the number of attempts and
// the time spent. onRetry, if not nil, is called before each wait.
func Retry(ctx context.Context, what string, transient func(error) bool, op func(context.Context) error,
	onRetry func(attempt int, wait time.Duration, err error)) error {
	start := time.Now()
	wait := Min
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if ended(ctx) {
			// op failed because ctx ended, or ctx ended while it failed
			// for another reason: either way there is no further attempt.
			return giveUp(ctx, what, attempt, start, err)
		}
		if !transient(err) {
			return err
		}
		if onRetry != nil {
			onRetry(attempt, wait, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return giveUp(ctx, what, attempt, start, err)
		case <-t.C:
		}
		wait = min(2*wait, Max)
	}
}

// ended reports whether ctx is done or its deadline has passed: an
// operation cut by the deadline (a dial, say) can return a moment before
// ctx itself reports it.
func ended(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ctx.Err() != nil || (ok && !time.Now().Before(d))
}

func giveUp(ctx context.Context, what string, attempts int, start time.Time, last error) error {
	cause := context.Cause(ctx)
	if cause == nil { // the deadline passed, ctx has not said so yet
		cause = context.DeadlineExceeded
	}
	return fmt.Errorf("%s: gave up after %d attempts in %v (%w); last error: %w",
		what, attempts, time.Since(start).Round(time.Millisecond), cause, last)
}
