package exactlyoncev5_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/exactlyoncev5"
	"github.com/b74fc070/rocketmq-exactlyonce/exactlyoncev5/internal/proxytest"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
)

// End-to-end tests: the real v5 gRPC client (and, for the switch between
// client generations, the real rocketmq-client-go v2 over remoting)
// against a real Apache RocketMQ proxy in local mode, with the business
// tables and transaction_record on MariaDB and PostgreSQL. Each asserts the
// final balances, ledger rows and record rows.

func pushConsumer(t *testing.T, b *bank, p *proxytest.Env, group, topic string, h exactlyoncev5.Handler, opts ...exactlyoncev5.Option) *exactlyoncev5.PushConsumer {
	t.Helper()
	opts = append([]exactlyoncev5.Option{
		exactlyoncev5.WithLogger(nil),
		exactlyoncev5.WithPushOptions(
			rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL}),
			rmq.WithPushAwaitDuration(5*time.Second),
			rmq.WithPushConsumptionThreadCount(4)),
	}, opts...)
	c, err := exactlyoncev5.NewPushConsumer(b.ds, v5Config(p, group), h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	startRetrying(t, c.Start)
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	return c
}

func simpleConsumer(t *testing.T, b *bank, p *proxytest.Env, group, topic string, wrap func(exactlyoncev5.SimpleClient) exactlyoncev5.SimpleClient, h exactlyoncev5.Handler, opts ...exactlyoncev5.Option) *exactlyoncev5.SimpleConsumer {
	t.Helper()
	sc, err := rmq.NewSimpleConsumer(v5Config(p, group),
		rmq.WithSimpleAwaitDuration(5*time.Second),
		rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL}))
	if err != nil {
		t.Fatal(err)
	}
	startRetrying(t, sc.Start)
	var client exactlyoncev5.SimpleClient = sc
	if wrap != nil {
		client = wrap(sc)
	}
	c, err := exactlyoncev5.NewSimpleConsumer(b.ds, group, client, h, append([]exactlyoncev5.Option{exactlyoncev5.WithLogger(nil)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = c.Shutdown(context.Background())
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c
}

// attempts counts handler runs per message index.
type attempts struct {
	mu sync.Mutex
	n  map[int]int
}

func (a *attempts) inc(idx int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == nil {
		a.n = map[int]int{}
	}
	a.n[idx]++
	return a.n[idx]
}

func (a *attempts) get(idx int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[idx]
}

// TestE2EPushConcurrent: messages sent by a v2 producer, a third of them
// resent (same UNIQ_KEY, so the same v5 message id), every fifth failing
// its first attempt (the client gives it back, it returns after the retry
// delay): each is applied once.
func TestE2EPushConcurrent(t *testing.T) {
	t.Parallel() // own topic and group; the suite is mostly waiting on the broker
	p := apache(t)
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		b := newBank(t, e)
		topic, group := proxytest.UniqueName(t, "v5push"), proxytest.UniqueName(t, "v5pushg")
		p.CreateTopic(t, topic, 2)
		const n = 30
		pr := v2Producer(t, p)
		msgs := transfers(topic, n)
		sendV2(t, pr, msgs...)
		sendV2(t, pr, msgs[:n/3]...) // producer resends
		var tries attempts
		var stats exactlyonce.Stats
		pushConsumer(t, b, p, group, topic, func(ctx context.Context, mv *rmq.MessageView) error {
			idx, _, _ := parse(t, mv.GetBody())
			if tries.inc(idx) == 1 && idx%5 == 0 {
				return errors.New("first attempt fails")
			}
			return b.apply(ctx, t, mv.GetBody(), "", 0)
		}, exactlyoncev5.WithMetrics(&stats))
		b.waitApplied(t, n, 90*time.Second)
		b.check(t, n)
		if stats.Count(exactlyonce.OutcomeFailed) < n/5 {
			t.Errorf("outcomes %v: want at least %d failures", stats.Snapshot(), n/5)
		}
	})
}

// TestE2EPushKeysTx: a v5 producer resends messages as new messages (a new
// message id each) with the same keys; a TxHandler consumer keyed by the
// keys applies each once.
func TestE2EPushKeysTx(t *testing.T) {
	t.Parallel() // own topic and group; the suite is mostly waiting on the broker
	p := apache(t)
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		b := newBank(t, e)
		topic, group := proxytest.UniqueName(t, "v5keys"), proxytest.UniqueName(t, "v5keysg")
		p.CreateTopic(t, topic, 2)
		const n = 20
		pr := v5Producer(t, p, topic)
		msg := func(i int) *rmq.Message {
			m := &rmq.Message{Topic: topic, Body: body(i)}
			m.SetKeys(fmt.Sprintf("transfer-%d", i))
			return m
		}
		for i := range n {
			sendV5(t, pr, msg(i))
		}
		for i := range n / 4 {
			sendV5(t, pr, msg(i))
		}
		c, err := exactlyoncev5.NewPushTxConsumer(b.ds, v5Config(p, group), func(ctx context.Context, tx *sql.Tx, mv *rmq.MessageView) error {
			return b.applyTx(ctx, t, tx, mv.GetBody())
		}, exactlyoncev5.WithKeysAsDedupeKey(), exactlyoncev5.WithLogger(nil),
			exactlyoncev5.WithPushOptions(rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL}),
				rmq.WithPushAwaitDuration(5*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		startRetrying(t, c.Start)
		defer c.Shutdown(context.Background())
		b.waitApplied(t, n, 90*time.Second)
		b.check(t, n)
	})
}

// lostAcks is a SimpleClient whose Acks never reach the proxy: a consumer
// that committed and died before acknowledging.
type lostAcks struct{ exactlyoncev5.SimpleClient }

func (lostAcks) Ack(context.Context, *rmq.MessageView) error { return nil }

// TestE2ESimpleRedeliveryAfterExpiry: a first SimpleConsumer commits half
// the messages but its acknowledgements are lost; they come back when their
// invisible duration expires, to a second consumer of the group, which
// skips them and applies the rest once.
func TestE2ESimpleRedeliveryAfterExpiry(t *testing.T) {
	t.Parallel() // own topic and group; the suite is mostly waiting on the broker
	p := apache(t)
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		b := newBank(t, e)
		topic, group := proxytest.UniqueName(t, "v5exp"), proxytest.UniqueName(t, "v5expg")
		p.CreateTopic(t, topic, 1)
		const n = 20
		pr := v2Producer(t, p)
		sendV2(t, pr, transfers(topic, n)...)
		var applied atomic.Int32
		first := simpleConsumer(t, b, p, group, topic, func(c exactlyoncev5.SimpleClient) exactlyoncev5.SimpleClient { return lostAcks{c} },
			func(ctx context.Context, mv *rmq.MessageView) error {
				if applied.Load() >= n/2 {
					// Not this one: it stays invisible until it expires.
					return errors.New("no capacity")
				}
				if err := b.apply(ctx, t, mv.GetBody(), "", 0); err != nil {
					return err
				}
				applied.Add(1)
				return nil
			}, exactlyoncev5.WithInvisibleDuration(2*time.Second), exactlyoncev5.WithRetryBackoff(2*time.Second, 2*time.Second))
		b.waitApplied(t, n/2, 60*time.Second)
		if err := first.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		var stats exactlyonce.Stats
		simpleConsumer(t, b, p, group, topic, nil, func(ctx context.Context, mv *rmq.MessageView) error {
			return b.apply(ctx, t, mv.GetBody(), "", 0)
		}, exactlyoncev5.WithInvisibleDuration(2*time.Second), exactlyoncev5.WithMetrics(&stats))
		b.waitApplied(t, n, 90*time.Second)
		b.check(t, n)
		deadline := time.Now().Add(30 * time.Second)
		for stats.Count(exactlyonce.OutcomeSkippedTable)+stats.Count(exactlyonce.OutcomeDuplicate) < n/2 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if got := stats.Count(exactlyonce.OutcomeSkippedTable) + stats.Count(exactlyonce.OutcomeDuplicate); got < n/2 {
			t.Errorf("the second consumer skipped %d redelivered messages, want %d (outcomes %v)", got, n/2, stats.Snapshot())
		}
	})
}

// TestE2ESimpleSlowHandler: a handler slower than the invisible duration,
// with two consumers in the group. With extension its message stays with
// it; without, it comes back to a consumer while the first still runs, and
// the claim makes that delivery a duplicate. Either way: applied once.
func TestE2ESimpleSlowHandler(t *testing.T) {
	t.Parallel() // own topic and group; the suite is mostly waiting on the broker
	p := apache(t)
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		for _, extend := range []bool{true, false} {
			t.Run(fmt.Sprintf("extend=%v", extend), func(t *testing.T) {
				b := newBank(t, e)
				topic, group := proxytest.UniqueName(t, "v5slow"), proxytest.UniqueName(t, "v5slowg")
				p.CreateTopic(t, topic, 1)
				const n = 4
				pr := v2Producer(t, p)
				sendV2(t, pr, transfers(topic, n)...)
				var tries attempts
				var stats exactlyonce.Stats
				h := func(ctx context.Context, mv *rmq.MessageView) error {
					idx, _, _ := parse(t, mv.GetBody())
					tries.inc(idx)
					// The claim is the first statement: a second delivery
					// waits on it.
					if err := b.apply(ctx, t, mv.GetBody(), "", 0); err != nil {
						return err
					}
					if idx == 0 && tries.get(0) == 1 {
						// Invisible for 2s only. Without extension, hold
						// the claim until the message comes back (the
						// broker revives expired messages through the
						// group's retry topic: seconds) and its second
						// delivery runs.
						wait := 6 * time.Second
						if !extend {
							wait = 40 * time.Second
						}
						for deadline := time.Now().Add(wait); time.Now().Before(deadline) && tries.get(0) < 2; {
							time.Sleep(100 * time.Millisecond)
						}
					}
					return nil
				}
				for range 2 {
					simpleConsumer(t, b, p, group, topic, nil, h, exactlyoncev5.WithInvisibleDuration(2*time.Second),
						exactlyoncev5.WithExtendInvisible(extend), exactlyoncev5.WithMetrics(&stats), exactlyoncev5.WithTableCheck(false))
				}
				b.waitApplied(t, n, 60*time.Second)
				time.Sleep(4 * time.Second) // a late redelivery would show
				b.check(t, n)
				runs := tries.get(0)
				if extend && runs != 1 {
					t.Errorf("with extension, the slow message ran %d times, want 1", runs)
				}
				if !extend && (runs < 2 || stats.Count(exactlyonce.OutcomeDuplicate) < 1) {
					t.Errorf("without extension, the slow message ran %d times (duplicates %d): want it redelivered and caught by the claim",
						runs, stats.Count(exactlyonce.OutcomeDuplicate))
				}
			})
		}
	})
}

// TestE2EFIFO: FIFO message groups on a FIFO topic and an orderly group, a
// message in the middle of one group failing twice: every group is applied
// in order (each message sees exactly its predecessors applied), each
// message once, and the failing group waited.
func TestE2EFIFO(t *testing.T) {
	t.Parallel() // own topic and group; the suite is mostly waiting on the broker
	p := apache(t)
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		b := newBank(t, e)
		topic, group := proxytest.UniqueName(t, "v5fifo"), proxytest.UniqueName(t, "v5fifog")
		p.CreateFIFO(t, topic, group, 2)
		const groups, per = 3, 6
		pr := v5Producer(t, p, topic)
		for s := range per {
			for g := range groups {
				m := &rmq.Message{Topic: topic, Body: body(g*per + s)}
				m.SetMessageGroup(fmt.Sprintf("mg%d", g))
				sendV5(t, pr, m)
			}
		}
		var tries attempts
		var mu sync.Mutex
		var violations []string
		pushConsumer(t, b, p, group, topic, func(ctx context.Context, mv *rmq.MessageView) error {
			idx, _, _ := parse(t, mv.GetBody())
			g, s := idx/per, idx%per
			if g == 1 && s == 2 && tries.inc(idx) <= 2 {
				return errors.New("fails twice")
			}
			var before int64
			mg := fmt.Sprintf("mg%d", g)
			if err := b.ds.DB().QueryRowContext(ctx, b.e.Rebind("SELECT COUNT(*) FROM "+b.ledger+" WHERE grp = ?"), mg).Scan(&before); err != nil {
				return err
			}
			if before != int64(s) {
				mu.Lock()
				violations = append(violations, fmt.Sprintf("%s: message %d applied after %d messages", mg, s, before))
				mu.Unlock()
			}
			return b.apply(ctx, t, mv.GetBody(), mg, s)
		}, exactlyoncev5.WithRetryBackoff(200*time.Millisecond, time.Second))
		b.waitApplied(t, groups*per, 120*time.Second)
		b.check(t, groups*per)
		mu.Lock()
		defer mu.Unlock()
		if len(violations) > 0 {
			t.Errorf("FIFO order broken: %v", violations)
		}
		if got := tries.get(1*per + 2); got < 3 {
			t.Errorf("the failing message ran %d times, want 3", got)
		}
	})
}

// switchAdapter starts one client generation's adapter as a group's
// consumer; apply gets each message's body.
type switchAdapter struct {
	name  string
	start func(t *testing.T, b *bank, p *proxytest.Env, group, topic string, apply func(ctx context.Context, body []byte) error, stats *exactlyonce.Stats) shutdowner
}

// shutdowner is either generation's consumer.
type shutdowner interface{ Shutdown(context.Context) error }

// TestE2ESwitch: a group consumes half a topic with one adapter (the other
// half fails and goes to the group's retry topic), the producer resends
// everything (same UNIQ_KEYs), and the group moves to the other adapter on
// the same table: it applies the rest and skips what the first applied.
// Both directions, v2 to v5 and v5 to v2.
func TestE2ESwitch(t *testing.T) {
	t.Parallel() // own topics and groups; the suite is mostly waiting on the broker
	p := apache(t)
	v2 := switchAdapter{"V2", func(t *testing.T, b *bank, p *proxytest.Env, group, topic string, apply func(context.Context, []byte) error, stats *exactlyonce.Stats) shutdowner {
		return v2Consumer(t, b, p, group, topic, func(ctx context.Context, m *primitive.MessageExt) error {
			return apply(ctx, m.Body)
		}, exactlyonce.WithMetrics(stats))
	}}
	v5 := switchAdapter{"V5", func(t *testing.T, b *bank, p *proxytest.Env, group, topic string, apply func(context.Context, []byte) error, stats *exactlyonce.Stats) shutdowner {
		return pushConsumer(t, b, p, group, topic, func(ctx context.Context, mv *rmq.MessageView) error {
			return apply(ctx, mv.GetBody())
		}, exactlyoncev5.WithMetrics(stats))
	}}
	for _, tc := range []struct{ first, then switchAdapter }{{v2, v5}, {v5, v2}} {
		t.Run(tc.first.name+"To"+tc.then.name, func(t *testing.T) {
			t.Parallel()
			dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
				b := newBank(t, e)
				topic, group := proxytest.UniqueName(t, "switch"), proxytest.UniqueName(t, "switchg")
				p.CreateTopic(t, topic, 2)
				const n = 20
				pr := v2Producer(t, p)
				msgs := transfers(topic, n)
				sendV2(t, pr, msgs...)

				first := tc.first.start(t, b, p, group, topic, func(ctx context.Context, body []byte) error {
					if idx, _, _ := parse(t, body); idx >= n/2 {
						return errors.New("not in the first adapter's half")
					}
					return b.apply(ctx, t, body, "", 0)
				}, new(exactlyonce.Stats))
				b.waitApplied(t, n/2, 60*time.Second)
				if err := first.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
				sendV2(t, pr, msgs...) // redelivery of everything, same UNIQ_KEYs

				var stats exactlyonce.Stats
				tc.then.start(t, b, p, group, topic, func(ctx context.Context, body []byte) error {
					return b.apply(ctx, t, body, "", 0)
				}, &stats)
				b.waitApplied(t, n, 90*time.Second)
				b.check(t, n)
				if skipped := stats.Count(exactlyonce.OutcomeSkippedTable) + stats.Count(exactlyonce.OutcomeDuplicate); skipped < n/2 {
					t.Errorf("%s skipped %d messages %s applied, want at least %d (outcomes %v)", tc.then.name, skipped, tc.first.name, n/2, stats.Snapshot())
				}
			})
		})
	}
}

func v2Consumer(t *testing.T, b *bank, p *proxytest.Env, group, topic string, h exactlyonce.Handler, opts ...exactlyonce.Option) *exactlyonce.Consumer {
	t.Helper()
	opts = append([]exactlyonce.Option{
		exactlyonce.WithLogger(nil),
		exactlyonce.WithClientOptions(
			consumer.WithNameServer([]string{p.NameServer()}),
			consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
			consumer.WithInstance(fmt.Sprintf("v2-%d", time.Now().UnixNano()))),
	}, opts...)
	c, err := exactlyonce.NewConsumer(b.ds, group, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(topic, consumer.MessageSelector{}, h); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	return c
}
