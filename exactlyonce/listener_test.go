package exactlyonce

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/memdb"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

const testGroup = "test_group"

var quiet = WithLogger(slog.New(slog.DiscardHandler))

func newMsg(topic, uniq string, offset int64) *primitive.MessageExt {
	m := &primitive.MessageExt{Message: primitive.Message{Topic: topic, Body: []byte("body-" + uniq)}, MsgId: uniq, QueueOffset: offset}
	m.WithProperty(primitive.PropertyUniqueClientMessageIdKeyIndex, uniq)
	m.Queue = &primitive.MessageQueue{Topic: topic, BrokerName: "broker-a", QueueId: 1}
	return m
}

// clientCtx builds the context the v2.1.2 client passes to a listener.
func clientCtx(group string, orderly bool) (context.Context, *primitive.ConsumeOrderlyContext) {
	mq := &primitive.MessageQueue{Topic: "t", BrokerName: "broker-a", QueueId: 1}
	ctx := primitive.WithConsumerCtx(context.Background(), &primitive.ConsumeMessageContext{
		ConsumerGroup: group, MQ: mq, Properties: map[string]string{},
	})
	ctx = primitive.WithMethod(ctx, primitive.ConsumerPush)
	if orderly {
		oc := primitive.NewConsumeOrderlyContext()
		oc.MQ = *mq
		return primitive.WithOrderlyCtx(ctx, oc), oc
	}
	cc := primitive.NewConsumeConcurrentlyContext()
	cc.MQ = *mq
	return primitive.WithConcurrentlyCtx(ctx, cc), nil
}

// deliver calls f like the client would and checks the result is one the
// client handles as intended: success only without an error; a failure is
// ConsumeRetryLater (concurrent) or SuspendCurrentQueueAMoment with a
// positive suspension (orderly).
func deliver(t *testing.T, f ListenerFunc, orderly bool, msgs ...*primitive.MessageExt) (ok bool, err error) {
	t.Helper()
	ctx, oc := clientCtx(testGroup, orderly)
	res, err := f(ctx, msgs...)
	switch {
	case res == consumer.ConsumeSuccess:
		if err != nil {
			t.Fatalf("ConsumeSuccess with error %v: the client would acknowledge", err)
		}
		return true, nil
	case orderly:
		if res != consumer.SuspendCurrentQueueAMoment {
			t.Fatalf("orderly failure returned %v, want SuspendCurrentQueueAMoment (the client acks anything else)", res)
		}
		if oc.SuspendCurrentQueueTimeMillis <= 0 {
			t.Fatalf("SuspendCurrentQueueTimeMillis = %d: hot loop", oc.SuspendCurrentQueueTimeMillis)
		}
	default:
		if res != consumer.ConsumeRetryLater {
			t.Fatalf("concurrent failure returned %v, want ConsumeRetryLater", res)
		}
	}
	if err == nil {
		t.Fatal("failure without an error")
	}
	return false, err
}

func modes(t *testing.T, f func(t *testing.T, orderly bool)) {
	for _, orderly := range []bool{false, true} {
		name := "concurrent"
		if orderly {
			name = "orderly"
		}
		t.Run(name, func(t *testing.T) { f(t, orderly) })
	}
}

func id(uniq string) string { return uniq + "#" + testGroup }

// longKey gives every message a key too long for the message_id column.
var longKey = WithKeyFunc(func(*primitive.MessageExt) (string, error) { return strings.Repeat("k", 300), nil })

// commitWith is a Handler body that claims and commits through st.
func commitWith(st *fakeStore) Handler {
	return func(ctx context.Context, msg *primitive.MessageExt) error {
		tx, err := st.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		return tx.Commit()
	}
}

var (
	errBusiness     = errors.New("business rule failed")
	errNoConnection = errors.New("no connection")
)

// outcomeCase is one delivery of message m1 to a listener on a fake store
// (concurrent and orderly), through a Handler or a TxHandler, and what must
// come of it.
type outcomeCase struct {
	name      string
	opts      []Option
	setup     func(st *fakeStore)
	handler   func(st *fakeStore) Handler // nil: txHandler
	txHandler TxHandler
	wantOK    bool
	want      Outcome
	wantErr   error // errors.Is target when failing
	ran       bool  // the handler must have run
	commit    bool  // the message must be recorded
}

func runOutcomeCases(t *testing.T, cases []outcomeCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			modes(t, func(t *testing.T, orderly bool) {
				st := newFakeStore(t)
				if c.setup != nil {
					c.setup(st)
				}
				var ran atomic.Bool
				var h Handler
				var txh TxHandler
				if c.handler != nil {
					inner := c.handler(st)
					h = func(ctx context.Context, msg *primitive.MessageExt) error {
						ran.Store(true)
						return inner(ctx, msg)
					}
				} else {
					txh = func(ctx context.Context, tx *sql.Tx, msg *primitive.MessageExt) error {
						ran.Store(true)
						return c.txHandler(ctx, tx, msg)
					}
				}
				stats := &Stats{}
				f := newListener(st.DataSource, testGroup, h, txh, append([]Option{quiet, WithMetrics(stats)}, c.opts...)).consume
				ok, err := deliver(t, f, orderly, newMsg("t", "m1", 7))
				if ok != c.wantOK {
					t.Fatalf("success = %v (err %v), want %v", ok, err, c.wantOK)
				}
				if c.wantErr != nil && !errors.Is(err, c.wantErr) {
					t.Errorf("err = %v, want %v", err, c.wantErr)
				}
				if c.want == OutcomePanic {
					var pe *PanicError
					if !errors.As(err, &pe) || pe.Value != "boom" || len(pe.Stack) == 0 {
						t.Errorf("err = %#v, want *PanicError{boom}", err)
					}
				}
				if got, all := stats.Count(c.want), stats.Messages(); got != 1 || all != 1 {
					t.Errorf("outcome %v counted %d times, %d messages in all; stats %v", c.want, got, all, stats.Snapshot())
				}
				if ran.Load() != c.ran {
					t.Errorf("handler ran = %v, want %v", ran.Load(), c.ran)
				}
				if got := st.isCommitted(id("m1")); got != c.commit {
					t.Errorf("recorded = %v, want %v", got, c.commit)
				}
				// Every transaction ends.
				if n := st.mem.Open(); n != 0 {
					t.Errorf("%d transactions left open", n)
				}
			})
		})
	}
}

func TestHandlerOutcomes(t *testing.T) {
	cases := []outcomeCase{
		{name: "commit", handler: commitWith, wantOK: true, want: OutcomeProcessed, ran: true, commit: true},
		{name: "nil without transaction", handler: func(*fakeStore) Handler {
			return func(context.Context, *primitive.MessageExt) error { return nil }
		}, wantOK: true, want: OutcomeUnclaimed, ran: true},
		{name: "nil without transaction, RequireClaim", opts: []Option{WithRequireClaim()}, handler: func(*fakeStore) Handler {
			return func(context.Context, *primitive.MessageExt) error { return nil }
		}, want: OutcomeFailed, wantErr: ErrUnclaimed, ran: true},
		{name: "duplicate at claim", opts: []Option{WithTableCheck(false)}, setup: func(st *fakeStore) { st.markCommitted(id("m1")) },
			handler: commitWith, wantOK: true, want: OutcomeDuplicate, ran: true, commit: true},
		{name: "error", handler: func(st *fakeStore) Handler {
			return func(ctx context.Context, msg *primitive.MessageExt) error {
				tx, err := st.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				return fmt.Errorf("apply: %w", errBusiness)
			}
		}, want: OutcomeFailed, wantErr: errBusiness, ran: true},
		{name: "panic", handler: func(st *fakeStore) Handler {
			return func(ctx context.Context, msg *primitive.MessageExt) error {
				if _, err := st.BeginTx(ctx, nil); err != nil {
					return err
				}
				panic("boom")
			}
		}, want: OutcomePanic, ran: true},
		{name: "two transactions", handler: func(st *fakeStore) Handler {
			return func(ctx context.Context, msg *primitive.MessageExt) error {
				for range 2 {
					tx, err := st.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					if err := tx.Commit(); err != nil {
						return err
					}
				}
				return nil
			}
		}, wantOK: true, want: OutcomeProcessed, ran: true, commit: true},
		{name: "statement outside a transaction", handler: func(st *fakeStore) Handler {
			return func(ctx context.Context, msg *primitive.MessageExt) error {
				_, err := st.DB().ExecContext(ctx, "UPDATE counter SET n = n + $1 WHERE id = $2", 1, 1)
				return err
			}
		}, wantOK: true, want: OutcomeProcessed, ran: true, commit: true},
		{name: "duplicate swallowed", opts: []Option{WithTableCheck(false)}, setup: func(st *fakeStore) { st.markCommitted(id("m1")) },
			handler: func(st *fakeStore) Handler {
				return func(ctx context.Context, msg *primitive.MessageExt) error {
					tx, err := st.BeginTx(ctx, nil)
					if errors.Is(err, mqdatasource.ErrAlreadyConsumed) {
						return nil // as a handler that treats a duplicate as done
					}
					if err != nil {
						return err
					}
					return tx.Commit()
				}
			}, wantOK: true, want: OutcomeDuplicate, ran: true, commit: true},
		{name: "inner rollback, nil", handler: func(st *fakeStore) Handler {
			return func(ctx context.Context, msg *primitive.MessageExt) error {
				tx, err := st.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				return tx.Rollback()
			}
		}, want: OutcomeRolledBack, wantErr: mqdatasource.ErrRollbackOnly, ran: true},
		{name: "panic after commit", handler: func(st *fakeStore) Handler {
			return func(ctx context.Context, msg *primitive.MessageExt) error {
				if err := commitWith(st)(ctx, msg); err != nil {
					return err
				}
				panic("boom")
			}
		}, want: OutcomePanic, ran: true},
		{name: "skipped by table", setup: func(st *fakeStore) { st.markCommitted(id("m1")) },
			handler: commitWith, wantOK: true, want: OutcomeSkippedTable, commit: true},
		{name: "lookup fails, handler runs", setup: func(st *fakeStore) { st.mem.Fail(memdb.Lookup, errors.New("db down")) },
			handler: commitWith, wantOK: true, want: OutcomeProcessed, ran: true, commit: true},
		// The claim would fail (an id too long for the column): not run.
		{name: "id too long", opts: []Option{longKey}, handler: commitWith, want: OutcomeInvalid, wantErr: mqdatasource.ErrInvalidDelivery},
		{name: "id too long, no table check", opts: []Option{longKey, WithTableCheck(false)}, handler: commitWith,
			want: OutcomeInvalid, wantErr: mqdatasource.ErrInvalidDelivery},
		{name: "no key", opts: []Option{WithKeysAsDedupeKey()}, handler: commitWith, want: OutcomeInvalid, wantErr: ErrNoKey},
		{name: "empty key from func", opts: []Option{WithKeyFunc(func(*primitive.MessageExt) (string, error) { return "", nil })},
			handler: commitWith, want: OutcomeInvalid, wantErr: ErrNoKey},
	}
	runOutcomeCases(t, cases)
}

// eventually polls cond until it holds, failing the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A transaction the handler leaves open is the delivery's: Deliver commits
// it when the handler returns nil, and database/sql's later rollback of the
// abandoned *sql.Tx ends nothing.
func TestForgottenCommit(t *testing.T) {
	st := newFakeStore(t)
	f := newListener(st.DataSource, testGroup, func(ctx context.Context, msg *primitive.MessageExt) error {
		tx, err := st.BeginTx(ctx, nil) // never committed
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE counter SET n = n + $1 WHERE id = $2", 1, 1)
		return err
	}, nil, []Option{quiet}).consume
	if ok, err := deliver(t, f, false, newMsg("t", "m1", 1)); !ok {
		t.Fatalf("delivery failed: %v", err)
	}
	if !st.isCommitted(id("m1")) || st.mem.Counter(1) != 1 || st.mem.Open() != 0 {
		t.Fatalf("recorded %v, counter %d, %d transactions open; want the work committed once", st.isCommitted(id("m1")), st.mem.Counter(1), st.mem.Open())
	}
}

func TestTxHandlerOutcomes(t *testing.T) {
	ok := func(ctx context.Context, tx *sql.Tx, msg *primitive.MessageExt) error {
		if got, _ := TxFromContext(ctx); got != tx {
			return errors.New("TxFromContext differs")
		}
		if d, _ := mqdatasource.DeliveryFromContext(ctx); d.Key != msg.MsgId || d.ConsumerGroup != testGroup || d.QueueOffset != msg.QueueOffset {
			return fmt.Errorf("delivery in ctx = %+v", d)
		}
		return nil
	}
	cases := []outcomeCase{
		{name: "commit", txHandler: ok, wantOK: true, want: OutcomeProcessed, ran: true, commit: true},
		{name: "error", txHandler: func(context.Context, *sql.Tx, *primitive.MessageExt) error { return errBusiness },
			want: OutcomeFailed, wantErr: errBusiness, ran: true},
		{name: "panic", txHandler: func(context.Context, *sql.Tx, *primitive.MessageExt) error { panic("boom") },
			want: OutcomePanic, ran: true},
		{name: "handler claims already consumed", txHandler: func(context.Context, *sql.Tx, *primitive.MessageExt) error {
			return mqdatasource.ErrAlreadyConsumed // this tx holds the claim: not true, retry
		}, want: OutcomeFailed, wantErr: mqdatasource.ErrAlreadyConsumed, ran: true},
		{name: "skipped by table", setup: func(st *fakeStore) { st.markCommitted(id("m1")) }, txHandler: ok,
			wantOK: true, want: OutcomeSkippedTable, commit: true},
		{name: "duplicate at claim", opts: []Option{WithTableCheck(false)}, setup: func(st *fakeStore) { st.markCommitted(id("m1")) },
			txHandler: ok, wantOK: true, want: OutcomeDuplicate, commit: true},
		{name: "begin fails", setup: func(st *fakeStore) { st.mem.Fail(memdb.Begin, errNoConnection) }, txHandler: ok,
			want: OutcomeFailed, wantErr: errNoConnection},
		{name: "id too long", opts: []Option{longKey}, txHandler: ok, want: OutcomeInvalid, wantErr: mqdatasource.ErrInvalidDelivery},
		{name: "commit fails", opts: []Option{WithLocalRetries(0)}, setup: func(st *fakeStore) { st.mem.Fail(memdb.Commit, mqdatasource.ErrCommitUnknown) },
			txHandler: ok, want: OutcomeFailed, wantErr: mqdatasource.ErrCommitUnknown, ran: true},
		// The tx's Commit ends nothing: the delivery commits after the handler.
		{name: "handler commits itself", txHandler: func(_ context.Context, tx *sql.Tx, _ *primitive.MessageExt) error { return tx.Commit() },
			wantOK: true, want: OutcomeProcessed, ran: true, commit: true},
	}
	runOutcomeCases(t, cases)
}

func TestPreCheckCache(t *testing.T) {
	st := newFakeStore(t)
	stats := &Stats{}
	var runs atomic.Int64
	h := commitWith(st)
	f := newListener(st.DataSource, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
		runs.Add(1)
		return h(ctx, m)
	}, nil, []Option{quiet, WithMetrics(stats), WithCacheSize(2)}).consume
	for _, u := range []string{"a", "b", "a", "b"} {
		if ok, err := deliver(t, f, false, newMsg("t", u, 1)); !ok {
			t.Fatal(err)
		}
	}
	if runs.Load() != 2 || stats.Count(OutcomeSkippedCache) != 2 {
		t.Fatalf("runs %d, stats %v", runs.Load(), stats.Snapshot())
	}
	lookups := st.mem.Count(memdb.Lookup)
	// "c" evicts "a" (least recently used); "a" is then found in the table.
	for _, u := range []string{"c", "a"} {
		if ok, err := deliver(t, f, false, newMsg("t", u, 1)); !ok {
			t.Fatal(err)
		}
	}
	if stats.Count(OutcomeSkippedTable) != 1 || st.mem.Count(memdb.Lookup) <= lookups {
		t.Fatalf("stats %v", stats.Snapshot())
	}
}

// An unclaimed message committed nothing: it is not cached, so its
// redelivery runs the handler again.
func TestUnclaimedNotCached(t *testing.T) {
	st := newFakeStore(t)
	stats := &Stats{}
	var runs atomic.Int64
	f := newListener(st.DataSource, testGroup, func(context.Context, *primitive.MessageExt) error {
		runs.Add(1)
		return nil
	}, nil, []Option{quiet, WithMetrics(stats), WithTableCheck(false)}).consume
	for range 2 {
		if ok, err := deliver(t, f, false, newMsg("t", "u1", 1)); !ok {
			t.Fatal(err)
		}
	}
	if runs.Load() != 2 || stats.Count(OutcomeUnclaimed) != 2 || stats.Count(OutcomeSkippedCache) != 0 {
		t.Fatalf("handler ran %d times, stats %v; want two unclaimed runs", runs.Load(), stats.Snapshot())
	}
}

func TestBatch(t *testing.T) {
	modes(t, func(t *testing.T, orderly bool) {
		st := newFakeStore(t)
		stats := &Stats{}
		var failB atomic.Bool
		failB.Store(true)
		runs := map[string]int{}
		h := commitWith(st)
		f := newListener(st.DataSource, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
			runs[m.MsgId]++ // the listener runs a batch's messages sequentially
			if m.MsgId == "b" && failB.Load() {
				return errBusiness
			}
			return h(ctx, m)
		}, nil, []Option{quiet, WithMetrics(stats)}).consume
		batch := []*primitive.MessageExt{newMsg("t", "a", 1), newMsg("t", "b", 2), newMsg("t", "c", 3)}
		if ok, err := deliver(t, f, orderly, batch...); ok || !errors.Is(err, errBusiness) {
			t.Fatalf("ok %v err %v", ok, err)
		}
		wantC := !orderly // orderly stops at the failure to keep the order
		if st.isCommitted(id("a")) != true || st.isCommitted(id("b")) || st.isCommitted(id("c")) != wantC {
			t.Fatalf("committed a=%v b=%v c=%v", st.isCommitted(id("a")), st.isCommitted(id("b")), st.isCommitted(id("c")))
		}
		if orderly && stats.Count(OutcomeNotRun) != 1 {
			t.Fatalf("stats %v", stats.Snapshot())
		}
		// Redelivery of the whole batch: only the failed (and unrun) ones run.
		failB.Store(false)
		if ok, err := deliver(t, f, orderly, batch...); !ok {
			t.Fatal(err)
		}
		if runs["a"] != 1 || runs["b"] != 2 || runs["c"] != 1 {
			t.Fatalf("runs %v", runs)
		}
		if got := stats.Snapshot()["messages"]; got != 6 {
			t.Fatalf("%d outcomes for 6 messages: %v", got, stats.Snapshot())
		}
	})
}

func TestGroupResolution(t *testing.T) {
	st := newFakeStore(t)
	var got string
	h := func(ctx context.Context, m *primitive.MessageExt) error {
		d, _ := mqdatasource.DeliveryFromContext(ctx)
		got = d.ConsumerGroup
		return nil
	}
	call := func(listenerGroup, clientGroup string) (string, error) {
		got = ""
		f := newListener(st.DataSource, listenerGroup, h, nil, []Option{quiet}).consume
		ctx, _ := clientCtx(clientGroup, false)
		res, err := f(ctx, newMsg("t", "m", 1))
		if (res == consumer.ConsumeSuccess) != (err == nil) {
			t.Fatalf("res %v err %v", res, err)
		}
		return got, err
	}
	for _, c := range []struct {
		listener, client, want string
		err                    bool
	}{
		{"g", "g", "g", false},
		{"", "g", "g", false},
		{"g", "", "g", false},
		{"g", "ns%g", "g", false},
		{"", "ns%g", "ns%g", false},
		{"g", "other", "", true},
		{"", "", "", true},
	} {
		g, err := call(c.listener, c.client)
		if g != c.want || (err != nil) != c.err || (err != nil && !errors.Is(err, ErrGroup)) {
			t.Errorf("listener %q client %q: group %q err %v", c.listener, c.client, g, err)
		}
	}
}

func TestSuspendBackoff(t *testing.T) {
	st := newFakeStore(t)
	f := newListener(st.DataSource, testGroup, func(context.Context, *primitive.MessageExt) error { return errBusiness },
		nil, []Option{quiet, WithSuspendBackoff(250 * time.Millisecond)}).consume
	ctx, oc := clientCtx(testGroup, true)
	if res, _ := f(ctx, newMsg("t", "m", 1)); res != consumer.SuspendCurrentQueueAMoment || oc.SuspendCurrentQueueTimeMillis != 250 {
		t.Fatalf("res %v suspend %d", res, oc.SuspendCurrentQueueTimeMillis)
	}
}

func TestDeliveryFields(t *testing.T) {
	st := newFakeStore(t)
	var d mqdatasource.Delivery
	f := newListener(st.DataSource, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
		d, _ = mqdatasource.DeliveryFromContext(ctx)
		return nil
	}, nil, []Option{quiet}).consume
	// A retry: the client resets Topic to the original; Queue is the retry queue.
	m := newMsg("orders", "u1", 42)
	m.Queue = &primitive.MessageQueue{Topic: "%RETRY%" + testGroup, BrokerName: "broker-b", QueueId: 0}
	if ok, err := deliver(t, f, false, m); !ok {
		t.Fatal(err)
	}
	want := mqdatasource.Delivery{ConsumerGroup: testGroup, Key: "u1", Topic: "%RETRY%" + testGroup, BrokerName: "broker-b", QueueID: 0, QueueOffset: 42}
	if d != want {
		t.Fatalf("delivery %+v, want %+v", d, want)
	}
}

func TestDrain(t *testing.T) {
	modes(t, func(t *testing.T, orderly bool) {
		st := newFakeStore(t)
		g := newGate()
		started := make(chan struct{}, 4)
		unblock := make(chan struct{})
		h := commitWith(st)
		stats := &Stats{}
		f := newListener(st.DataSource, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
			started <- struct{}{}
			<-unblock
			return h(ctx, m)
		}, nil, []Option{quiet, withGate(g), WithMetrics(stats)}).consume

		// A running batch of two: the first message is in the handler.
		type result struct {
			ok  bool
			err error
		}
		first := make(chan result, 1)
		go func() {
			ctx, _ := clientCtx(testGroup, orderly)
			res, err := f(ctx, newMsg("t", "a", 1), newMsg("t", "b", 2))
			first <- result{res == consumer.ConsumeSuccess, err}
		}()
		<-started
		g.close()
		// A new call is held without running its handler.
		second := make(chan result, 1)
		go func() {
			ctx, _ := clientCtx(testGroup, orderly)
			res, err := f(ctx, newMsg("t", "c", 3))
			second <- result{res == consumer.ConsumeSuccess, err}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		if err := g.wait(ctx); err == nil {
			t.Fatal("wait returned with a handler running")
		}
		cancel()
		close(unblock)
		if err := g.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-first:
			t.Fatalf("first call returned before release: %+v", r)
		case r := <-second:
			t.Fatalf("second call returned before release: %+v", r)
		default:
		}
		g.release()
		r1, r2 := <-first, <-second
		if r1.ok || !errors.Is(r1.err, ErrShutdown) || r2.ok || !errors.Is(r2.err, ErrShutdown) {
			t.Fatalf("results %+v %+v", r1, r2)
		}
		// a committed (its handler was running); b and c never ran.
		if !st.isCommitted(id("a")) || st.isCommitted(id("b")) || st.isCommitted(id("c")) {
			t.Fatal("wrong commits")
		}
		if stats.Count(OutcomeNotRun) != 2 || stats.Count(OutcomeProcessed) != 1 {
			t.Fatal(stats.Snapshot())
		}
	})
}

func TestDrainCancelsHandlers(t *testing.T) {
	st := newFakeStore(t)
	g := newGate()
	f := newListener(st.DataSource, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
		<-ctx.Done()
		return ctx.Err()
	}, nil, []Option{quiet, withGate(g)}).consume
	done := make(chan error, 1)
	go func() {
		ctx, _ := clientCtx(testGroup, false)
		_, err := f(ctx, newMsg("t", "a", 1))
		done <- err
	}()
	eventually(t, 10*time.Second, "one running call", func() bool { return g.runningCalls() == 1 })
	g.close()
	g.cancel()
	// The cancelled call leaves the gate (Shutdown goes on) but its retry
	// is held until the client is shut down, like a call refused by the
	// gate: returned earlier, the concurrent client would send the message
	// back to the retry topic (lost if the broker rejects it, #1106).
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("the cancelled call returned before release: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.release()
	if err := <-done; !errors.Is(err, context.Canceled) || !errors.Is(err, ErrShutdown) {
		t.Fatalf("err %v", err)
	}
}

// The handlers' contexts are cancelled before gate.cancel returns, so that no
// handler can commit after Shutdown has moved on.
func TestGateCancelIsSynchronous(t *testing.T) {
	g := newGate()
	running, cancelRunning := context.WithCancel(context.Background())
	defer g.onCancel(cancelRunning)()
	finished, cancelFinished := context.WithCancel(context.Background())
	defer cancelFinished()
	g.onCancel(cancelFinished)() // the handler returned: no longer cancelled by the gate
	g.cancel()
	if running.Err() == nil {
		t.Fatal("a running handler's context is not cancelled when cancel returns")
	}
	if finished.Err() != nil {
		t.Fatal("a finished handler's context was cancelled")
	}
	late, cancelLate := context.WithCancel(context.Background())
	defer g.onCancel(cancelLate)()
	if late.Err() == nil {
		t.Fatal("a handler starting after the grace period is not cancelled at once")
	}
}

func TestNilMessage(t *testing.T) {
	modes(t, func(t *testing.T, orderly bool) {
		st := newFakeStore(t)
		stats := &Stats{}
		f := newListener(st.DataSource, testGroup, commitWith(st), nil, []Option{quiet, WithMetrics(stats)}).consume
		if ok, _ := deliver(t, f, orderly, nil, newMsg("t", "a", 1)); ok {
			t.Fatal("success with a nil message")
		}
		// Concurrent: the nil message fails and the next one still
		// commits; orderly: nothing runs after a failure.
		want := map[string]int64{"messages": 2, "failed": 1, "processed": 1}
		if orderly {
			want = map[string]int64{"messages": 2, "failed": 1, "not_run": 1}
		}
		got := stats.Snapshot()
		for k, n := range want {
			if got[k] != n {
				t.Fatalf("stats %v, want %v", got, want)
			}
		}
		if st.isCommitted(id("a")) != !orderly {
			t.Fatalf("message a committed: %v, want %v", st.isCommitted(id("a")), !orderly)
		}
	})
}

func TestLocalRetries(t *testing.T) {
	transient := fmt.Errorf("apply: %w", mqdatasource.ErrTxAborted) // e.g. a deadlock victim
	for _, c := range []struct {
		name      string
		opts      []Option
		failures  int
		err       error
		wantOK    bool
		wantRuns  int64
		wantCount Outcome
	}{
		{"transient, retried in place", nil, 2, transient, true, 3, OutcomeProcessed},
		{"transient, retries exhausted", nil, 5, transient, false, 3, OutcomeFailed},
		{"transient, disabled", []Option{WithLocalRetries(0)}, 1, transient, false, 1, OutcomeFailed},
		{"permanent", nil, 1, errBusiness, false, 1, OutcomeFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			modes(t, func(t *testing.T, orderly bool) {
				st := newFakeStore(t)
				stats := &Stats{}
				var runs atomic.Int64
				h := commitWith(st)
				f := newListener(st.DataSource, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
					if runs.Add(1) <= int64(c.failures) {
						tx, err := st.BeginTx(ctx, nil) // claim held while failing
						if err != nil {
							return err
						}
						_ = tx.Rollback()
						return c.err
					}
					return h(ctx, m)
				}, nil, append([]Option{quiet, WithMetrics(stats)}, c.opts...)).consume
				ok, err := deliver(t, f, orderly, newMsg("t", "m", 1))
				if ok != c.wantOK || runs.Load() != c.wantRuns || stats.Count(c.wantCount) != 1 {
					t.Fatalf("ok %v err %v runs %d stats %v", ok, err, runs.Load(), stats.Snapshot())
				}
			})
		})
	}
}

// A panic in user code other than the handler (here the KeyFunc) must not
// escape the listener: v2.1.2's orderly consumer does not recover panics
// (the process crashes, or the queue stalls holding its consume lock), and
// the concurrent one recovers them without processing a result, so the
// batch stays in the process queue and holds the queue's offset back.
func TestKeyFuncPanic(t *testing.T) {
	modes(t, func(t *testing.T, orderly bool) {
		st := newFakeStore(t)
		stats := &Stats{}
		var ran atomic.Int64
		h := commitWith(st)
		f := newListener(st.DataSource, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
			ran.Add(1)
			return h(ctx, m)
		}, nil, []Option{quiet, WithMetrics(stats), WithKeyFunc(func(m *primitive.MessageExt) (string, error) {
			if m.MsgId == "b" {
				panic("boom")
			}
			return DefaultKey(m)
		})}).consume
		var (
			ok       bool
			err      error
			panicked any
		)
		func() {
			defer func() { panicked = recover() }()
			ok, err = deliver(t, f, orderly, newMsg("t", "a", 1), newMsg("t", "b", 2))
		}()
		if panicked != nil {
			t.Fatalf("the key function's panic escaped the listener: %v", panicked)
		}
		var pe *PanicError
		if ok || !errors.As(err, &pe) || pe.Value != "boom" {
			t.Fatalf("ok %v err %v, want a retry with the *PanicError", ok, err)
		}
		if ran.Load() != 1 || !st.isCommitted(id("a")) || stats.Count(OutcomePanic) != 1 || stats.Count(OutcomeProcessed) != 1 {
			t.Fatalf("handler runs %d, stats %v", ran.Load(), stats.Snapshot())
		}
	})
}

// A delivery held during a shutdown returns after the client is shut down;
// the orderly client then sleeps for the suspension before its consume
// goroutine ends, so the suspension must be short, not the back-off (which
// may be minutes): nothing is redelivered by this client any more.
func TestDrainOrderlyNoSuspension(t *testing.T) {
	st := newFakeStore(t)
	g := newGate()
	f := newListener(st.DataSource, testGroup, commitWith(st), nil, []Option{quiet, withGate(g), WithSuspendBackoff(time.Minute)}).consume
	g.close()
	g.release()
	ctx, oc := clientCtx(testGroup, true)
	res, err := f(ctx, newMsg("t", "a", 1))
	if res != consumer.SuspendCurrentQueueAMoment || !errors.Is(err, ErrShutdown) {
		t.Fatalf("res %v err %v", res, err)
	}
	if oc.SuspendCurrentQueueTimeMillis <= 0 || oc.SuspendCurrentQueueTimeMillis > 100 {
		t.Fatalf("suspension %d ms after the shutdown: the client's goroutine outlives Shutdown that long", oc.SuspendCurrentQueueTimeMillis)
	}
}
