package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/jmoiron/sqlx"
	"io"
	"maps"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/benchbank"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// e2eConfig is what -mode e2e runs with.
type e2eConfig struct {
	driver, dsn string
	messages    int           // preloaded into the topic; every variant consumes all of them
	bodySize    int           // bytes per message body
	queues      int           // queues of the topic (in-process broker)
	accounts    int           // business rows per variant and round
	rounds      int           // each round runs every variant once, with fresh groups
	namesrv     string        // "" starts an in-process rocketmqtest broker
	prefix      string        // of the tables' names
	flushLog    int           // MySQL/MariaDB innodb_flush_log_at_trx_commit for the run; -1 leaves it
	stall       time.Duration // fail when consumption makes no progress for this long
	pgStatWait  time.Duration // PostgreSQL: wait before reading the statistics, for the backends to report theirs
	out         io.Writer
}

// e2eResult is what one consumption run of a variant left in the database.
type e2eResult struct {
	variant string
	group   string
	rows    int64 // ledger rows written under the group
	balance int64 // sum of the balances of the group's accounts
}

// e2e consumes one preloaded topic with the consumers users would pick, side
// by side on the same broker and database (see docs/benchmarks.md, "End to
// end"). Every variant applies the same business transaction per message:
// one UPDATE of an account balance and one INSERT of a ledger row.
type e2e struct {
	cfg       e2eConfig
	plain     *sql.DB
	ds        *mqdatasource.DataSource
	serverPID int
	broker    *rocketmqtest.Broker // nil with -namesrv
	namesrv   string
	topic     string
	run       string          // unique per run: groups and client instance names
	bank      *benchbank.Bank // the business tables; a slot of accounts per consumption run

	dedupe                     string
	selectDedupe, insertDedupe string
}

// consumed is a consumption run: its group and its accounts.
type consumed struct {
	group string
	slot  int
}

// e2eVariant is one consumer of the comparison.
type e2eVariant struct {
	name  string
	batch int // ConsumeMessageBatchMaxSize
	// listener builds the variant's listener for a consumption run under
	// group, writing to the accounts of slot; done counts the messages it
	// finished (committed, or skipped as already applied).
	listener func(group string, slot int) (l exactlyonce.ListenerFunc, done func() int64)
}

// runE2E runs -mode e2e and returns what every consumption run left in the
// database; it fails unless each left exactly cfg.messages rows and balance.
func runE2E(ctx context.Context, cfg e2eConfig) ([]e2eResult, error) {
	rlog.SetLogLevel("error") // the client logs every rebalance at info
	e := &e2e{cfg: cfg, run: randomHex(4)}
	e.dedupe = cfg.prefix + "_dedupe"
	e.topic = cfg.prefix + "_" + e.run
	if err := e.open(ctx); err != nil {
		return nil, err
	}
	defer e.close()
	if cfg.flushLog >= 0 {
		restore, err := setFlushLog(e.plain, cfg.driver, cfg.flushLog, cfg.out)
		if err != nil {
			return nil, fmt.Errorf("-flush-log-at-trx-commit: %w", err)
		}
		defer restore()
	}
	if cfg.namesrv == "" {
		// Retries, if any, come back after milliseconds instead of the
		// 10 s of the first delay level, so a failure shows as a slow run
		// rather than a stall.
		b, err := rocketmqtest.New(rocketmqtest.WithDelayScale(time.Millisecond))
		if err != nil {
			return nil, err
		}
		defer b.Close()
		b.CreateTopic(e.topic, cfg.queues)
		e.broker, e.namesrv = b, b.Addr()
	} else {
		e.namesrv = cfg.namesrv
	}

	out := cfg.out
	where := "in-process rocketmqtest broker"
	if e.broker == nil {
		where = "broker at " + e.namesrv
	}
	fmt.Fprintf(out, "eobench e2e: driver %s, %s, topic %s, %d messages of %d bytes, %d round(s), %d business rows per variant\n",
		cfg.driver, where, e.topic, cfg.messages, cfg.bodySize, cfg.rounds, cfg.accounts)
	if e.serverPID == 0 {
		fmt.Fprintln(out, "(server CPU unknown: not a local server, or PostgreSQL's data_directory not readable; its column shows 0)")
	}
	if e.broker != nil {
		fmt.Fprintln(out, "(client CPU and RSS are this process's: they include the in-process broker's)")
	}
	start := time.Now()
	if err := e.preload(ctx); err != nil {
		return nil, fmt.Errorf("preload: %w", err)
	}
	fmt.Fprintf(out, "preloaded %d messages in %.1f s\n\n", cfg.messages, time.Since(start).Seconds())

	vs := e.variants()
	fmt.Fprintf(out, "%-5s %-16s %9s %8s %12s %12s %9s %9s %9s\n", "round", "variant", "msgs/s", "seconds", "client µs/m", "server µs/m", "trips/m", "RSS MiB", "peak MiB")
	if cfg.driver == "mysql" {
		fmt.Fprintln(out, "(trips/m: database round trips per message, from the server's Questions + Com_stmt_prepare: on a shared server, with the other clients')")
	}
	var results []e2eResult
	walls := map[string][]time.Duration{}
	cpus := map[string][]time.Duration{} // client + server
	last := map[string]consumed{}        // by variant: its last run
	for r := range cfg.rounds {
		for _, v := range vs {
			group := fmt.Sprintf("%s_%s_%s_r%d", cfg.prefix, e.run, v.name, r+1)
			slot, err := e.bank.NewSlot(ctx)
			if err != nil {
				return results, err
			}
			l, done := v.listener(group, slot)
			trips := "-" // PostgreSQL: not counted, as reading its counters takes seconds
			var c0 map[string]float64
			if cfg.driver == "mysql" {
				if c0, err = e.dbCounters(ctx); err != nil {
					return results, err
				}
			}
			m, err := e.consume(ctx, v.name, group, v.batch, l, done)
			if err != nil {
				return results, fmt.Errorf("%s: %w", v.name, err)
			}
			if c0 != nil {
				c1, err := e.dbCounters(ctx)
				if err != nil {
					return results, err
				}
				trips = fmt.Sprintf("%.2f", (c1[roundTrips]-c0[roundTrips])/float64(cfg.messages))
			}
			res, err := e.check(ctx, v.name, group, slot)
			results = append(results, res)
			if err != nil {
				return results, err
			}
			walls[v.name] = append(walls[v.name], m.wall)
			cpus[v.name] = append(cpus[v.name], m.client+m.server)
			last[v.name] = consumed{group, slot}
			fmt.Fprintf(out, "%-5d %-16s %9.0f %8.2f %12.1f %12.1f %9s %9.1f %9.1f\n", r+1, v.name,
				float64(cfg.messages)/m.wall.Seconds(), m.wall.Seconds(), perMsg(m.client, cfg.messages), perMsg(m.server, cfg.messages), trips, mib(m.rss), mib(m.peakRSS))
		}
	}
	fmt.Fprintln(out)
	for _, v := range vs[1:] {
		fmt.Fprintf(out, "ratio %s/at-least-once %.2f\n", v.name, benchbank.MedianRatio(walls[vs[0].name], walls[v.name]))
	}
	fmt.Fprintf(out, "ratio eo-batch32/eo %.2f\n", benchbank.MedianRatio(walls["eo"], walls["eo-batch32"]))
	if e.serverPID != 0 {
		// On a shared machine the CPU time per message moves less than
		// the wall time.
		for _, v := range vs[1:] {
			fmt.Fprintf(out, "cpu-ratio %s/at-least-once %.2f\n", v.name, benchbank.MedianRatio(cpus[vs[0].name], cpus[v.name]))
		}
		fmt.Fprintf(out, "cpu-ratio eo-batch32/eo %.2f\n", benchbank.MedianRatio(cpus["eo"], cpus["eo-batch32"]))
	}
	fmt.Fprintln(out, "(ratio: the variant's messages/s over at-least-once's; cpu-ratio: at-least-once's client+server CPU per message over the variant's; higher is better; with -rounds, the median of the rounds' ratios)")

	if err := e.ceiling(ctx); err != nil {
		return results, err
	}
	storm, err := e.storms(ctx, last)
	return append(results, storm...), err
}

// open connects to the database, creates the tables (dropping leftovers of
// an interrupted run) and prepares the statements' text.
func (e *e2e) open(ctx context.Context) (err error) {
	cfg := e.cfg
	if e.bank, err = benchbank.Open(ctx, cfg.driver, cfg.dsn, cfg.prefix, cfg.accounts); err != nil {
		return err
	}
	e.plain, e.ds = e.bank.Plain, e.bank.DS
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if cfg.driver == "mysql" {
		e.serverPID = findServerPID(e.plain)
	} else {
		e.serverPID = findPostgresPID(e.plain)
	}
	drop := "DROP TABLE IF EXISTS " + e.dedupe
	create := "CREATE TABLE " + e.dedupe + " (consumer_group varchar(128) NOT NULL, message_id varchar(128) NOT NULL, PRIMARY KEY (consumer_group, message_id))"
	for _, s := range []string{drop, create} {
		if _, err := e.plain.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	q := func(s string) string { return sqlx.Rebind(sqlx.BindType(e.ds.Dialect().Name()), s) }
	e.selectDedupe = q("SELECT 1 FROM " + e.dedupe + " WHERE consumer_group = ? AND message_id = ?")
	e.insertDedupe = q("INSERT INTO " + e.dedupe + " (consumer_group, message_id) VALUES (?, ?)")
	return nil
}

// close drops the tables and closes the database.
func (e *e2e) close() {
	_, _ = e.plain.Exec("DROP TABLE IF EXISTS " + e.dedupe)
	e.bank.Close()
}

// preload sends the messages in batches, so that preloading takes a small
// part of the run.
func (e *e2e) preload(ctx context.Context) error {
	p, err := rocketmq.NewProducer(
		producer.WithNameServer(primitive.NamesrvAddr{e.namesrv}),
		producer.WithGroupName(e.cfg.prefix+"_"+e.run+"_producer"),
		producer.WithInstanceName(e.cfg.prefix+"_"+e.run+"_producer"),
		producer.WithRetry(2),
	)
	if err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	defer func() { _ = p.Shutdown() }()
	body := bytes.Repeat([]byte("x"), e.cfg.bodySize)
	const perSend = 32
	for i := 0; i < e.cfg.messages; i += perSend {
		var msgs []*primitive.Message
		for j := i; j < min(i+perSend, e.cfg.messages); j++ {
			msgs = append(msgs, primitive.NewMessage(e.topic, body))
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := p.SendSync(sctx, msgs...)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// apply is the business transaction's work for one message.
func (e *e2e) apply(ctx context.Context, x benchbank.Execer, group string, slot int, m *primitive.MessageExt) error {
	return e.bank.Apply(ctx, x, group, slot, m.MsgId)
}

// variants are the consumers of -mode e2e, in the order they run; the
// first is the base of the ratios.
func (e *e2e) variants() []e2eVariant {
	// plain wraps a listener for the variants without the library: per
	// message, fn in order; a failure retries the delivery.
	plain := func(fn func(ctx context.Context, group string, slot int, m *primitive.MessageExt) error) func(string, int) (exactlyonce.ListenerFunc, func() int64) {
		return func(group string, slot int) (exactlyonce.ListenerFunc, func() int64) {
			var n atomic.Int64
			return func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
				for _, m := range msgs {
					if err := fn(ctx, group, slot, m); err != nil {
						return consumer.ConsumeRetryLater, err
					}
					n.Add(1)
				}
				return consumer.ConsumeSuccess, nil
			}, n.Load
		}
	}
	perMessage := func(opts ...exactlyonce.Option) func(string, int) (exactlyonce.ListenerFunc, func() int64) {
		return func(group string, slot int) (exactlyonce.ListenerFunc, func() int64) {
			stats := new(exactlyonce.Stats)
			opts := append([]exactlyonce.Option{exactlyonce.WithMetrics(stats), exactlyonce.WithLogger(nil)}, opts...)
			return exactlyonce.TxListener(e.ds, group, func(ctx context.Context, tx *sql.Tx, m *primitive.MessageExt) error {
				return e.apply(ctx, tx, group, slot, m)
			}, opts...), func() int64 { return benchbank.Acked(stats) }
		}
	}
	batch := func(group string, slot int) (exactlyonce.ListenerFunc, func() int64) {
		stats := new(exactlyonce.Stats)
		return exactlyonce.BatchListener(e.ds, group, func(ctx context.Context, msgs []*primitive.MessageExt) error {
			// Update the accounts in one order in every batch: batches
			// locking rows in different orders deadlock, which PostgreSQL
			// detects only after deadlock_timeout (1 s), and the listener
			// then applies the batch message by message.
			msgs = slices.Clone(msgs)
			slices.SortFunc(msgs, func(a, b *primitive.MessageExt) int {
				return cmp.Compare(e.bank.AccountOf(slot, a.MsgId), e.bank.AccountOf(slot, b.MsgId))
			})
			for _, m := range msgs {
				if err := e.apply(ctx, e.ds.DB(), group, slot, m); err != nil {
					return err
				}
			}
			return nil
		}, exactlyonce.WithMetrics(stats), exactlyonce.WithLogger(nil)), func() int64 { return benchbank.Acked(stats) }
	}
	return []e2eVariant{
		{name: "at-least-once", batch: 1, listener: plain(func(ctx context.Context, group string, slot int, m *primitive.MessageExt) error {
			return e.bank.InTx(ctx, func(tx *sql.Tx) error { return e.apply(ctx, tx, group, slot, m) })
		})},
		{name: "select-insert", batch: 1, listener: plain(func(ctx context.Context, group string, slot int, m *primitive.MessageExt) error {
			var one int
			switch err := e.plain.QueryRowContext(ctx, e.selectDedupe, group, m.MsgId).Scan(&one); {
			case err == nil:
				return nil // already applied
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			return e.bank.InTx(ctx, func(tx *sql.Tx) error {
				if err := e.apply(ctx, tx, group, slot, m); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, e.insertDedupe, group, m.MsgId)
				return err
			})
		})},
		{name: "eo", batch: 1, listener: perMessage()},
		{name: "eo-nocheck", batch: 1, listener: perMessage(exactlyonce.WithTableCheck(false))},
		{name: "eo-batch8", batch: 8, listener: batch},
		{name: "eo-batch32", batch: 32, listener: batch},
	}
}

// e2eSample is what one consumption run measured.
type e2eSample struct {
	wall, client, server time.Duration
	rss, peakRSS         int64 // bytes, at the end
}

// consume starts a push consumer of group on the topic from its first
// offset, with l, the listener of the variant name, and measures from its
// first delivery until done reaches the number of messages (CPU time from
// its start). It fails when done stops moving for cfg.stall.
func (e *e2e) consume(ctx context.Context, name, group string, batch int, l exactlyonce.ListenerFunc, done func() int64) (e2eSample, error) {
	pc, err := rocketmq.NewPushConsumer(
		consumer.WithNameServer(primitive.NamesrvAddr{e.namesrv}),
		consumer.WithGroupName(group),
		consumer.WithInstance(group), // one client per consumer, none shared
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithConsumeMessageBatchMaxSize(batch),
	)
	if err != nil {
		return e2eSample{}, err
	}
	// The clock starts at the first delivery: the client's start-up and
	// first rebalance are not consumption.
	var first atomic.Pointer[time.Time]
	timed := func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		if first.Load() == nil {
			now := time.Now()
			first.CompareAndSwap(nil, &now)
		}
		// Labelled, so that a -cpuprofile splits by variant:
		// go tool pprof -tagfocus variant=eo ...
		var res consumer.ConsumeResult
		var err error
		pprof.Do(ctx, pprof.Labels("variant", name), func(ctx context.Context) { res, err = l(ctx, msgs...) })
		return res, err
	}
	if err := pc.Subscribe(e.topic, consumer.MessageSelector{}, timed); err != nil {
		return e2eSample{}, err
	}
	cpu0, _ := readCPU(e.serverPID, e.cfg.driver == "pgx")
	if err := pc.Start(); err != nil {
		return e2eSample{}, err
	}
	// Shut down after the measurement: it persists the offsets, which a
	// storm rewinds afterwards.
	defer func() { _ = pc.Shutdown() }()
	if err := benchbank.WaitDone(ctx, done, int64(e.cfg.messages), e.cfg.stall); err != nil {
		return e2eSample{}, err
	}
	s := e2eSample{wall: time.Since(*first.Load())}
	if cpu1, ok := readCPU(e.serverPID, e.cfg.driver == "pgx"); ok {
		total, client := cpu1.since(cpu0)
		s.client, s.server = client, total-client
	}
	s.rss, s.peakRSS = rss()
	return s, nil
}

// check reads what a consumption run left in the database and fails unless
// every message was applied exactly once.
func (e *e2e) check(ctx context.Context, variant, group string, slot int) (e2eResult, error) {
	r := e2eResult{variant: variant, group: group}
	var err error
	if r.rows, r.balance, err = e.bank.Check(ctx, group, slot, int64(e.cfg.messages)); err != nil {
		err = fmt.Errorf("%s: %w", variant, err)
	}
	return r, err
}

// ceiling consumes the topic with listeners that do nothing, one message
// and 32 messages per call: the most the client and the broker deliver,
// which bounds every variant and the storms.
func (e *e2e) ceiling(ctx context.Context) error {
	fmt.Fprintf(e.cfg.out, "\nceiling: a listener that does nothing\n%-16s %9s %8s %12s\n", "variant", "msgs/s", "seconds", "client µs/m")
	for _, batch := range []int{1, 32} {
		name := "noop"
		if batch > 1 {
			name += "-batch" + strconv.Itoa(batch)
		}
		var n atomic.Int64
		l := func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			n.Add(int64(len(msgs)))
			return consumer.ConsumeSuccess, nil
		}
		m, err := e.consume(ctx, name, fmt.Sprintf("%s_%s_%s", e.cfg.prefix, e.run, name), batch, l, n.Load)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(e.cfg.out, "%-16s %9.0f %8.2f %12.1f\n", name, float64(e.cfg.messages)/m.wall.Seconds(), m.wall.Seconds(), perMsg(m.client, e.cfg.messages))
	}
	return nil
}

// storms redelivers every message, already applied, to the exactly-once
// consumers: for each of eo and eo-batch32, the group of its last run is
// rewound to offset 0 and consumed by a new listener (empty cache: every
// message is found in the claim table), then rewound again and consumed by
// the same listener (every message found in its cache).
func (e *e2e) storms(ctx context.Context, runs map[string]consumed) ([]e2eResult, error) {
	out := e.cfg.out
	if e.broker == nil {
		fmt.Fprintln(out, "\nstorm: skipped (rewinding offsets needs the in-process broker)")
		return nil, nil
	}
	fmt.Fprintf(out, "\nredelivery storm: all %d messages already applied, offsets rewound, same group\n", e.cfg.messages)
	counters := "DB round trips/dup (Questions+Com_stmt_prepare), Com_select/dup"
	if e.cfg.driver == "pgx" {
		counters = "DB transactions/dup (pg_stat_database xact_commit+xact_rollback)"
	}
	fmt.Fprintf(out, "%-21s %9s %8s %12s %12s  %-36s %s\n", "storm", "dups/s", "seconds", "client µs/m", "server µs/m", "outcomes", counters)
	var results []e2eResult
	c0, err := e.dbCounters(ctx)
	if err != nil {
		return nil, err
	}
	for _, base := range []struct {
		variant string
		batch   int
	}{{"eo", 1}, {"eo-batch32", 32}} {
		group, slot := runs[base.variant].group, runs[base.variant].slot
		stats := new(exactlyonce.Stats)
		// A cache that holds every message, so the second pass hits it
		// for all of them; every message that reaches the handler is a
		// failure of the benchmark, since all were applied.
		opts := []exactlyonce.Option{exactlyonce.WithMetrics(stats), exactlyonce.WithLogger(nil), exactlyonce.WithCacheSize(max(e.cfg.messages, 10000))}
		var ran atomic.Int64
		var l exactlyonce.ListenerFunc
		if base.batch == 1 {
			l = exactlyonce.TxListener(e.ds, group, func(context.Context, *sql.Tx, *primitive.MessageExt) error {
				ran.Add(1)
				return errors.New("handler ran for an applied message")
			}, opts...)
		} else {
			l = exactlyonce.BatchListener(e.ds, group, func(_ context.Context, msgs []*primitive.MessageExt) error {
				ran.Add(int64(len(msgs)))
				return errors.New("handler ran for applied messages")
			}, opts...)
		}
		for _, pass := range []string{"table", "cache"} {
			name := "storm-" + base.variant + "-" + pass
			if err := e.rewind(ctx, group); err != nil {
				return results, fmt.Errorf("%s: %w", name, err)
			}
			counts := func() [3]int64 {
				return [3]int64{stats.Count(exactlyonce.OutcomeSkippedCache), stats.Count(exactlyonce.OutcomeSkippedTable), stats.Count(exactlyonce.OutcomeDuplicate)}
			}
			before := counts()
			skipped := benchbank.Acked(stats)
			m, err := e.consume(ctx, name, group, base.batch, l, func() int64 { return benchbank.Acked(stats) - skipped })
			// A handler that ran failed its messages, which then stall
			// the pass: report the cause rather than the stall.
			if n := ran.Load(); n > 0 {
				return results, fmt.Errorf("%s: the handler ran for %d applied messages", name, n)
			}
			if err != nil {
				return results, fmt.Errorf("%s: %w", name, err)
			}
			c1, err := e.dbCounters(ctx)
			if err != nil {
				return results, err
			}
			dups := float64(e.cfg.messages)
			after := counts()
			outcomes := fmt.Sprintf("cache %d table %d duplicate %d", after[0]-before[0], after[1]-before[1], after[2]-before[2])
			var cs []string
			for _, k := range slices.Sorted(maps.Keys(c1)) {
				cs = append(cs, fmt.Sprintf("%s %.3f", k, (c1[k]-c0[k])/dups))
			}
			c0 = c1
			fmt.Fprintf(out, "%-21s %9.0f %8.2f %12.1f %12.1f  %-36s %s\n", name, dups/m.wall.Seconds(), m.wall.Seconds(),
				perMsg(m.client, e.cfg.messages), perMsg(m.server, e.cfg.messages), outcomes, strings.Join(cs, ", "))
			// The storm must have changed nothing.
			r, err := e.check(ctx, name, group, slot)
			results = append(results, r)
			if err != nil {
				return results, err
			}
		}
	}
	return results, nil
}

// rewind sets group's offsets of the topic back to 0 on the in-process
// broker, once the group's last consumer is gone: the client persists its
// offsets at shutdown in one-way requests, which would otherwise overwrite
// the rewind when they arrive after it. The broker handles a connection's
// requests in order, so once its connection is closed they all landed.
func (e *e2e) rewind(ctx context.Context, group string) error {
	deadline := time.Now().Add(e.cfg.stall)
	for slices.ContainsFunc(e.broker.Clients(), func(c rocketmqtest.ClientInfo) bool { return slices.Contains(c.ConsumerGroups, group) }) {
		if time.Now().After(deadline) {
			return fmt.Errorf("a consumer of %s still connected after %v", group, e.cfg.stall)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	e.broker.RewindOffsets(group, e.topic)
	return nil
}

// dbCounters reads the server's counters of statements (MySQL/MariaDB:
// round trips, as Questions does not count prepares) or transactions
// (PostgreSQL, where every statement outside a transaction is one). On a
// shared server they include the other clients' work.
func (e *e2e) dbCounters(ctx context.Context) (map[string]float64, error) {
	if e.cfg.driver == "pgx" {
		// A PostgreSQL 15 backend reports its counters at most once a
		// second at the end of a transaction, and what is left when it
		// goes idle 10 s later (PGSTAT_IDLE_INTERVAL).
		select {
		case <-time.After(e.cfg.pgStatWait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var commits, rollbacks float64
		err := e.plain.QueryRowContext(ctx, "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()").Scan(&commits, &rollbacks)
		return map[string]float64{"xact": commits + rollbacks}, err
	}
	st, err := serverStatus(e.plain)
	if err != nil {
		return nil, err
	}
	return map[string]float64{roundTrips: st["Questions"] + st["Com_stmt_prepare"], "Com_select": st["Com_select"]}, nil
}

// roundTrips is dbCounters' count of MySQL/MariaDB round trips.
const roundTrips = "round trips"

func perMsg(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// rss returns this process's resident set size now and at its peak.
func rss() (now, peak int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		peak = ru.Maxrss << 10 // KiB on Linux
	}
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kib, _ := strconv.ParseInt(f[1], 10, 64)
				now = kib << 10
			}
		}
	}
	return now, peak
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
