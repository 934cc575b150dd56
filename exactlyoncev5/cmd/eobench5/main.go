// Command eobench5 is the end-to-end benchmark of exactlyoncev5, beside
// cmd/eobench -mode e2e for rocketmq-client-go: what a user of the
// RocketMQ 5 gRPC client sees from the proxy to committed rows, with and
// without the claim. It preloads -messages messages into a topic through
// the proxy and consumes all of them once per variant, in one run, on the
// same proxy and database, each variant with its own consumer group
// through the client's PushConsumer (its defaults: 20 consumption
// goroutines):
//
//   - at-least-once: a plain listener, per message a transaction (BEGIN, the
//     business statements, COMMIT) on a plain *sql.DB, no claim (the base);
//   - eo: exactlyoncev5.TxListener with its defaults (pre-check on);
//   - eo-nocheck: the same WithTableCheck(false): the claim alone dedupes.
//
// Every variant applies the business transaction of cmd/eobench's e2e mode
// (internal/benchbank): an UPDATE of an account balance and an INSERT of a
// ledger row per message. It prints messages/s per variant (from the first
// business transaction's start to the last message done) and this process's
// CPU per message, then the ratios to at-least-once (the median of the
// rounds' ratios) and the ceiling (noop: a listener that does nothing, the
// most the client and the proxy deliver), and fails unless every variant
// applied every message exactly once. Its tables are named eobench5_*.
// docs/benchmarks.md ("On the RocketMQ 5 gRPC client") has the figures:
//
//	scripts/testdb.sh sh -c 'cd exactlyoncev5 && go run ./cmd/eobench5'
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/credentials"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/exactlyoncev5"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/benchbank"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/remoting"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mysqldriver" // "mysql"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/pgxdriver"   // "pgx"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.driver, "driver", "mysql", `database/sql driver: "mysql" or "pgx"`)
	flag.StringVar(&cfg.dsn, "dsn", "", "data source name (default $MYSQL_DSN, or $POSTGRES_DSN for pgx)")
	flag.StringVar(&cfg.proxy, "proxy", os.Getenv("ROCKETMQ_PROXY"), "RocketMQ 5 proxy `host:port` (its gRPC port; default $ROCKETMQ_PROXY)")
	flag.StringVar(&cfg.namesrv, "namesrv", os.Getenv("ROCKETMQ_NAMESRV"), "name server `host:port` of the proxy's cluster, to create the topic (default $ROCKETMQ_NAMESRV)")
	flag.IntVar(&cfg.messages, "messages", 10000, "messages preloaded into the topic, consumed by every variant")
	flag.IntVar(&cfg.bodySize, "body-size", 1024, "bytes per message body")
	flag.IntVar(&cfg.queues, "queues", 4, "queues of the topic")
	flag.IntVar(&cfg.accounts, "accounts", 1000, "business rows per variant and round")
	flag.IntVar(&cfg.rounds, "rounds", 1, "each round runs every variant once, with new groups")
	flag.DurationVar(&cfg.stall, "stall", time.Minute, "fail when consumption makes no progress for this long")
	flag.Parse()
	if cfg.dsn == "" {
		cfg.dsn = os.Getenv("MYSQL_DSN")
		if cfg.driver == "pgx" {
			cfg.dsn = os.Getenv("POSTGRES_DSN")
		}
	}
	switch {
	case flag.NArg() > 0:
		fail(errors.New("no arguments are taken"))
	case cfg.driver != "mysql" && cfg.driver != "pgx":
		fail(fmt.Errorf("-driver %q: want mysql or pgx", cfg.driver))
	case cfg.dsn == "" || cfg.proxy == "" || cfg.namesrv == "":
		fail(errors.New("-dsn (or $MYSQL_DSN / $POSTGRES_DSN), -proxy (or $ROCKETMQ_PROXY) and -namesrv (or $ROCKETMQ_NAMESRV) are required: run under scripts/testdb.sh"))
	case cfg.messages < 1 || cfg.bodySize < 1 || cfg.queues < 1 || cfg.accounts < 1 || cfg.rounds < 1:
		fail(errors.New("-messages, -body-size, -queues, -accounts and -rounds must be at least 1"))
	case cfg.stall <= 0:
		fail(fmt.Errorf("-stall %v: must be positive", cfg.stall))
	}
	cfg.prefix, cfg.out = "eobench5", os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, cfg); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "eobench5:", err)
	os.Exit(2)
}

// config is what a run uses.
type config struct {
	driver, dsn    string
	proxy, namesrv string
	messages       int // preloaded; every variant consumes all of them
	bodySize       int
	queues         int
	accounts       int // business rows per variant and round
	rounds         int
	stall          time.Duration
	prefix         string // of the tables' names and the topic's
	out            io.Writer
}

// result is what one consumption run of a variant left in the database.
type result struct {
	variant       string
	rows, balance int64
}

// bench is one run: a topic preloaded once, a database, and the consumers
// of every variant, whose shutdowns run in the background (the v5 client's
// GracefulStop waits up to about half a minute for its long polls).
type bench struct {
	cfg   config
	bank  *benchbank.Bank
	topic string
	run   string // unique per run: groups

	stopping sync.WaitGroup
}

// variant is one consumer of the comparison: listener builds its listener
// for a consumption run under group, writing to the accounts of slot, that
// calls started as its business transaction begins; done counts the
// messages it finished (committed, or skipped as applied).
type variant struct {
	name     string
	listener func(group string, slot int, started func()) (l rmq.MessageListener, done func() int64)
}

// run runs the benchmark and returns what every consumption run left in the
// database; it fails unless each applied every message exactly once.
func run(ctx context.Context, cfg config) ([]result, error) {
	b := &bench{cfg: cfg, run: randomHex(4)}
	b.topic = cfg.prefix + "_" + b.run
	if err := b.open(ctx); err != nil {
		return nil, err
	}
	defer b.close()
	out := cfg.out
	fmt.Fprintf(out, "eobench5: driver %s, RocketMQ 5 proxy at %s (gRPC client), topic %s, %d messages of %d bytes, %d round(s), %d business rows per variant\n",
		cfg.driver, cfg.proxy, b.topic, cfg.messages, cfg.bodySize, cfg.rounds, cfg.accounts)
	start := time.Now()
	if err := b.preload(ctx); err != nil {
		return nil, fmt.Errorf("preload: %w", err)
	}
	fmt.Fprintf(out, "preloaded %d messages in %.1f s\n\n", cfg.messages, time.Since(start).Seconds())

	vs := b.variants()
	fmt.Fprintf(out, "%-5s %-16s %9s %8s %12s\n", "round", "variant", "msgs/s", "seconds", "client µs/m")
	var results []result
	walls := map[string][]time.Duration{}
	for r := range cfg.rounds {
		for _, v := range vs {
			group := fmt.Sprintf("%s_%s_%s_r%d", cfg.prefix, b.run, v.name, r+1)
			slot, err := b.bank.NewSlot(ctx)
			if err != nil {
				return results, err
			}
			var c clock
			l, done := v.listener(group, slot, c.start)
			cpu, err := b.consume(ctx, group, l, done)
			wall := c.since()
			if err != nil {
				return results, fmt.Errorf("%s: %w", v.name, err)
			}
			res := result{variant: v.name}
			res.rows, res.balance, err = b.bank.Check(ctx, group, slot, int64(cfg.messages))
			results = append(results, res)
			if err != nil {
				return results, fmt.Errorf("%s: %w", v.name, err)
			}
			walls[v.name] = append(walls[v.name], wall)
			fmt.Fprintf(out, "%-5d %-16s %9.0f %8.2f %12.1f\n", r+1, v.name,
				float64(cfg.messages)/wall.Seconds(), wall.Seconds(), perMsg(cpu, cfg.messages))
		}
	}
	fmt.Fprintln(out)
	for _, v := range vs[1:] {
		fmt.Fprintf(out, "ratio %s/%s %.2f\n", v.name, vs[0].name, benchbank.MedianRatio(walls[vs[0].name], walls[v.name]))
	}
	fmt.Fprintln(out, "(ratio: the variant's messages/s over at-least-once's; with -rounds, the median of the rounds' ratios)")
	return results, b.ceiling(ctx)
}

// ceiling consumes the topic with a listener that does nothing: the most
// the client and the proxy deliver, which bounds every variant.
func (b *bench) ceiling(ctx context.Context) error {
	var n atomic.Int64
	var c clock
	l := &rmq.FuncMessageListener{Consume: func(*rmq.MessageView) rmq.ConsumerResult {
		c.start()
		n.Add(1)
		return rmq.SUCCESS
	}}
	cpu, err := b.consume(ctx, fmt.Sprintf("%s_%s_noop", b.cfg.prefix, b.run), l, n.Load)
	if err != nil {
		return fmt.Errorf("noop: %w", err)
	}
	wall := c.since()
	fmt.Fprintf(b.cfg.out, "\nceiling: a listener that does nothing\n%-16s %9s %8s %12s\n%-16s %9.0f %8.2f %12.1f\n",
		"variant", "msgs/s", "seconds", "client µs/m", "noop", float64(b.cfg.messages)/wall.Seconds(), wall.Seconds(), perMsg(cpu, b.cfg.messages))
	return nil
}

// clock measures a consumption run from its first message: the client's
// start-up and first queue assignment are not consumption.
type clock struct{ first atomic.Pointer[time.Time] }

// start starts the clock unless it runs already; safe for concurrent use.
func (c *clock) start() {
	if c.first.Load() == nil {
		now := time.Now()
		c.first.CompareAndSwap(nil, &now)
	}
}

// since returns the time since start.
func (c *clock) since() time.Duration { return time.Since(*c.first.Load()) }

func perMsg(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }

// open connects to the database and creates the tables and the topic.
func (b *bench) open(ctx context.Context) (err error) {
	if b.bank, err = benchbank.Open(ctx, b.cfg.driver, b.cfg.dsn, b.cfg.prefix, b.cfg.accounts); err != nil {
		return err
	}
	if _, err := remoting.EnsureTopic(ctx, b.cfg.namesrv, b.topic, b.cfg.queues); err != nil {
		b.bank.Close()
		return err
	}
	return nil
}

// close waits for the consumers to stop, then drops the tables.
func (b *bench) close() {
	b.stopping.Wait()
	b.bank.Close()
}

func clientConfig(endpoint, group string) *rmq.Config {
	return &rmq.Config{Endpoint: endpoint, ConsumerGroup: group, Credentials: &credentials.SessionCredentials{}}
}

// preload sends the messages from 16 goroutines: the v5 client sends one
// message per request.
func (b *bench) preload(ctx context.Context) error {
	p, err := rmq.NewProducer(clientConfig(b.cfg.proxy, ""), rmq.WithTopics(b.topic))
	if err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	defer func() { _ = p.GracefulStop() }()
	body := []byte(strings.Repeat("x", b.cfg.bodySize))
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.cfg.messages) {
				sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := p.Send(sctx, &rmq.Message{Topic: b.topic, Body: body})
				cancel()
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// variants are the consumers, in the order they run; the first is the base
// of the ratios.
func (b *bench) variants() []variant {
	eo := func(opts ...exactlyoncev5.Option) func(string, int, func()) (rmq.MessageListener, func() int64) {
		return func(group string, slot int, started func()) (rmq.MessageListener, func() int64) {
			stats := new(exactlyonce.Stats)
			opts := append([]exactlyoncev5.Option{exactlyoncev5.WithMetrics(stats), exactlyoncev5.WithLogger(nil)}, opts...)
			return exactlyoncev5.TxListener(b.bank.DS, group, func(ctx context.Context, tx *sql.Tx, mv *rmq.MessageView) error {
				started()
				return b.bank.Apply(ctx, tx, group, slot, mv.GetMessageId())
			}, opts...), func() int64 { return benchbank.Acked(stats) }
		}
	}
	return []variant{
		{"at-least-once", func(group string, slot int, started func()) (rmq.MessageListener, func() int64) {
			var n atomic.Int64
			return &rmq.FuncMessageListener{Consume: func(mv *rmq.MessageView) rmq.ConsumerResult {
				started()
				err := b.bank.InTx(context.Background(), func(tx *sql.Tx) error {
					return b.bank.Apply(context.Background(), tx, group, slot, mv.GetMessageId())
				})
				if err != nil {
					return rmq.FAILURE
				}
				n.Add(1)
				return rmq.SUCCESS
			}}, n.Load
		}},
		{"eo", eo()},
		{"eo-nocheck", eo(exactlyoncev5.WithTableCheck(false))},
	}
}

// consume starts a push consumer of group on the topic with l and waits
// until done reaches the number of messages; it returns this process's CPU
// time from the consumer's start. It fails when done stops moving for
// cfg.stall. The consumer is stopped in the background.
func (b *bench) consume(ctx context.Context, group string, l rmq.MessageListener, done func() int64) (cpu time.Duration, err error) {
	pc, err := rmq.NewPushConsumer(clientConfig(b.cfg.proxy, group),
		rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{b.topic: rmq.SUB_ALL}),
		rmq.WithPushMessageListener(l))
	if err != nil {
		return 0, err
	}
	cpu0 := processCPU()
	if err := pc.Start(); err != nil {
		return 0, err
	}
	defer b.stopping.Go(func() { _ = pc.GracefulStop() })
	if err := benchbank.WaitDone(ctx, done, int64(b.cfg.messages), b.cfg.stall); err != nil {
		return 0, err
	}
	return processCPU() - cpu0, nil
}

// processCPU returns the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
