package backoff

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	errTransient = errors.New("transient")
	errPermanent = errors.New("permanent")
)

func isTransient(err error) bool { return errors.Is(err, errTransient) }

func TestRetry(t *testing.T) {
	t.Run("succeeds after transient failures", func(t *testing.T) {
		n := 0
		var waits []time.Duration
		err := Retry(context.Background(), "op", isTransient, func(context.Context) error {
			if n++; n < 4 {
				return errTransient
			}
			return nil
		}, func(_ int, wait time.Duration, _ error) { waits = append(waits, wait) })
		if err != nil || n != 4 {
			t.Fatalf("err %v after %d attempts, want nil after 4", err, n)
		}
		if want := []time.Duration{Min, 2 * Min, 4 * Min}; !slices.Equal(waits, want) {
			t.Errorf("waits %v, want %v", waits, want)
		}
	})
	t.Run("permanent error at once", func(t *testing.T) {
		n := 0
		err := Retry(context.Background(), "op", isTransient, func(context.Context) error { n++; return errPermanent }, nil)
		if err != errPermanent || n != 1 {
			t.Fatalf("err %v after %d attempts, want errPermanent unwrapped after 1", err, n)
		}
	})
	t.Run("deadline passed before ctx says so", func(t *testing.T) {
		// The op returns at the deadline with an error that is not
		// transient (a dial cut by it): Retry gives up, naming the
		// deadline, rather than returning the error as permanent.
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(50*time.Millisecond))
		defer cancel()
		d, _ := ctx.Deadline()
		err := Retry(ctx, "op", isTransient, func(context.Context) error {
			time.Sleep(time.Until(d))
			return errPermanent
		}, nil)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errPermanent) {
			t.Fatalf("%v: want the deadline and the op's error", err)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
		defer cancel()
		err := Retry(ctx, "open thing", isTransient, func(context.Context) error { return errTransient }, nil)
		if !errors.Is(err, errTransient) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%v: want it to wrap the last error and the deadline", err)
		}
		if !strings.HasPrefix(err.Error(), "open thing: gave up after 3 attempts") {
			t.Errorf("%q does not name what and the attempts (3: at 0, 100 and 300 ms)", err)
		}
	})
}
