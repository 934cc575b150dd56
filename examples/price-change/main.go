package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce/rlogslog"
)

const usage = `price-change: price changes applied exactly once from RocketMQ to a database.

Usage:
  price-change [demo] [flags]   the whole scenario in one process (default)
  price-change produce [flags]  publish the price changes
  price-change consume [flags]  apply them, until interrupted
  price-change verify [flags]   check the database; exit status 1 on a mismatch

Run "price-change <command> -h" for the flags of a command.
`

var (
	// errMismatch makes the program exit with status 1.
	errMismatch = errors.New("mismatches found")
	// errUsage makes it exit with status 2; the flag package said why.
	errUsage = errors.New("usage")
)

// parse parses the command's flags.
func (f *flags) parse(args []string) error {
	err := f.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return errUsage
	}
	if err == nil && f.style != "plain" && f.style != "tx" {
		fmt.Fprintf(f.Output(), "unknown -style %q (want plain or tx)\n", f.style)
		return errUsage
	}
	if set := f.setFlags(); err == nil && f.proxy != "" && set["namesrv"] && f.nameServer != "" {
		// Each names the client to use: the v5 one or rocketmq-client-go.
		// (-namesrv= clears $NAMESRV_ADDR, which -proxy then ignores.)
		fmt.Fprintln(f.Output(), "-proxy and -namesrv exclude each other (-proxy runs on the v5 client, -namesrv on rocketmq-client-go)")
		return errUsage
	}
	return err
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errMismatch):
		os.Exit(1)
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "price-change:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "demo"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "demo":
		return runDemoCmd(ctx, args, stdout, stderr)
	case "produce":
		return runProduce(ctx, args, stderr)
	case "consume":
		return runConsume(ctx, args, stderr)
	case "verify":
		return runVerify(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// flags are the flags the commands share; each command registers the ones
// it uses, and the others keep their defaults.
type flags struct {
	*flag.FlagSet
	nameServer, proxy   string
	dsn, driver         string
	topic, group, style string
	products, changes   int
	seed                uint64
	resend              float64
	verbose, jsonOut    bool
}

func newFlags(name string, stderr io.Writer, use ...string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		if name == "demo" {
			fmt.Fprint(stderr, usage)
		}
		fmt.Fprintf(stderr, "\nFlags of %s:\n", name)
		fs.PrintDefaults()
	}
	f := &flags{FlagSet: fs, driver: "mysql", style: "plain", products: 50, changes: 60, seed: 1, resend: 0.03}
	register := map[string]func(){
		"namesrv": func() {
			fs.StringVar(&f.nameServer, "namesrv", os.Getenv("NAMESRV_ADDR"), "RocketMQ name server `host:port` (or $NAMESRV_ADDR)")
		},
		"proxy": func() {
			fs.StringVar(&f.proxy, "proxy", "", "RocketMQ 5 proxy `host:port`: use the v5 gRPC client (exactlyoncev5) instead of rocketmq-client-go and -namesrv; -topic must be a FIFO topic, -group an orderly group")
		},
		"dsn": func() {
			fs.StringVar(&f.dsn, "dsn", os.Getenv("PRICE_CHANGE_DSN"), "database `DSN` (or $PRICE_CHANGE_DSN)")
		},
		"driver": func() {
			fs.StringVar(&f.driver, "driver", cmp.Or(os.Getenv("PRICE_CHANGE_DRIVER"), f.driver), "database/sql driver of -dsn: mysql, pgx or sqlserver (or $PRICE_CHANGE_DRIVER)")
		},
		"topic": func() { fs.StringVar(&f.topic, "topic", "", "topic (default price-change)") },
		"group": func() { fs.StringVar(&f.group, "group", "", "consumer group (default product-service)") },
		"style": func() {
			fs.StringVar(&f.style, "style", f.style, "handler style: plain (database/sql, exactlyonce.Listener) or tx (managed transaction, exactlyonce.TxListener)")
		},
		"products": func() { fs.IntVar(&f.products, "products", f.products, "number of products") },
		"changes":  func() { fs.IntVar(&f.changes, "changes", f.changes, "price changes per product") },
		"seed": func() {
			fs.Uint64Var(&f.seed, "seed", f.seed, "varies the prices; the producer and the verifier must agree")
		},
		"resend": func() { fs.Float64Var(&f.resend, "resend", f.resend, "fraction of changes the producer sends twice") },
		"v":      func() { fs.BoolVar(&f.verbose, "v", false, "log the listeners and the RocketMQ client at info level") },
		"json":   func() { fs.BoolVar(&f.jsonOut, "json", false, "print the report as JSON") },
	}
	for _, u := range append(use, "v") {
		register[u]()
	}
	return f
}

// probeBroker checks that the server produce and consume connect to
// accepts connections: -proxy for the v5 client, else -namesrv.
func (f *flags) probeBroker(ctx context.Context) error {
	switch {
	case f.proxy != "":
		return probe(ctx, "RocketMQ 5 proxy", f.proxy)
	case f.nameServer != "":
		return probe(ctx, "RocketMQ name server", f.nameServer)
	}
	return errors.New("-namesrv (or $NAMESRV_ADDR) or -proxy is required")
}

// setFlags returns the names of the flags given on the command line.
func (f *flags) setFlags() map[string]bool {
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	return set
}

func (f *flags) plan() (plan, error) {
	if f.products < 1 || f.changes < 1 {
		return plan{}, errors.New("-products and -changes must be at least 1")
	}
	if f.resend < 0 || f.resend > 1 {
		return plan{}, errors.New("-resend must be between 0 and 1")
	}
	return plan{Products: f.products, Changes: f.changes, Seed: f.seed, Resend: f.resend}, nil
}

// logger returns the listeners' logger, errors only unless -v, and routes
// the RocketMQ client's logs (logrus by default) through the same handler.
func (f *flags) logger(stderr io.Writer) *slog.Logger {
	level, clientLevel := slog.LevelError, "error"
	if f.verbose {
		level, clientLevel = slog.LevelInfo, "info"
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	rlogslog.SetDefault(logger.With("component", "rocketmq"))
	rlog.SetLogLevel(clientLevel)
	return logger
}

func runDemoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("demo", stderr, "namesrv", "proxy", "dsn", "driver", "topic", "group", "style",
		"products", "changes", "seed", "resend", "json")
	reset := f.Bool("reset", false, "empty the product and price_history tables of -dsn first")
	queues := f.Int("queues", 8, "queues of the topic on the in-process broker (with -namesrv the topic exists already)")
	timeout := f.Duration("timeout", 3*time.Minute, "give up after this long")
	if err := f.parse(args); err != nil {
		return err
	}
	if set := f.setFlags(); set["driver"] && f.dsn == "" {
		fmt.Fprintln(f.Output(), "-driver names the driver of -dsn, which is missing")
		return errUsage
	}
	if *queues < 1 || *timeout <= 0 {
		fmt.Fprintf(f.Output(), "-queues must be at least 1 and -timeout positive (got %d and %v)\n", *queues, *timeout)
		return errUsage
	}
	pl, err := f.plan()
	if err != nil {
		return err
	}
	if f.dsn == "" {
		return errors.New("-dsn is required (or $PRICE_CHANGE_DSN); scripts/demo.sh runs the demo on a throwaway MariaDB or PostgreSQL")
	}
	cfg := demoConfig{
		Plan: pl, NameServer: f.nameServer, Proxy: f.proxy, Driver: f.driver, DSN: f.dsn,
		Reset: *reset, Style: f.style, Topic: f.topic, Group: f.group,
		Queues: *queues, Timeout: *timeout, Logger: f.logger(stderr), Verbose: f.verbose,
	}
	start := time.Now()
	r, err := runDemo(ctx, cfg, newProgress(stderr))
	if err != nil {
		return err
	}
	if err := writeReport(stdout, r, f.jsonOut); err != nil {
		return err
	}
	if !f.jsonOut {
		fmt.Fprintf(stdout, "(%.1fs)\n", time.Since(start).Seconds())
	}
	if r.Mismatches > 0 {
		return errMismatch
	}
	return nil
}

func writeReport(w io.Writer, r *Report, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	r.print(w)
	return nil
}

func runProduce(ctx context.Context, args []string, stderr io.Writer) error {
	f := newFlags("produce", stderr, "namesrv", "proxy", "topic", "products", "changes", "seed", "resend")
	workers := f.Int("workers", 4, "sending goroutines (each product is sent by one, in order)")
	if err := f.parse(args); err != nil {
		return err
	}
	pl, err := f.plan()
	if err != nil {
		return err
	}
	f.logger(stderr)
	if err := f.probeBroker(ctx); err != nil {
		return err
	}
	send, stop, err := startProducer(f.nameServer, f.proxy, fmt.Sprintf("price-engine-%d", os.Getpid()), cmp.Or(f.topic, "price-change"))
	if err != nil {
		return err
	}
	defer stop()
	var st publishStats
	start := time.Now()
	if err := publish(ctx, send, pl, 1, pl.Changes, *workers, &st); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "produce: sent %d changes to %d products (+%d resends) in %.1fs\n",
		st.Sent.Load(), pl.Products, st.Resends.Load(), time.Since(start).Seconds())
	return nil
}

func runConsume(ctx context.Context, args []string, stderr io.Writer) error {
	f := newFlags("consume", stderr, "namesrv", "proxy", "dsn", "driver", "topic", "group", "style", "products")
	instance := f.String("instance", "consumer", "client instance name; keep it across restarts so the process gets its queue locks back at once")
	if err := f.parse(args); err != nil {
		return err
	}
	logger := f.logger(stderr)
	if f.dsn == "" {
		return errors.New("-dsn is required (or $PRICE_CHANGE_DSN)")
	}
	if f.products < 1 {
		return errors.New("-products must be at least 1")
	}
	if err := f.probeBroker(ctx); err != nil {
		return err
	}
	ds, err := openDB(ctx, f.driver, f.dsn)
	if err != nil {
		return err
	}
	defer ds.Close()
	if err := seedProducts(ctx, ds, f.products); err != nil {
		return err
	}
	var stats exactlyonce.Stats
	c, err := startConsumer(ds, consumerConfig{
		NameServer: f.nameServer, Proxy: f.proxy, Topic: cmp.Or(f.topic, "price-change"),
		Group: cmp.Or(f.group, "product-service"), Instance: *instance,
		Style: f.style, Stats: &stats, Logger: logger,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "consume: %s started (pid %d)\n", *instance, os.Getpid())
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var last Report
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
		}
		var r Report
		r.addStats(&stats)
		if r.Deliveries != last.Deliveries || r.Retried != last.Retried || done {
			fmt.Fprintf(stderr, "consume: deliveries %d  applied %d  duplicates skipped %d  retried %d\n",
				r.Deliveries, r.Applied, r.Skipped, r.Retried)
			last = r
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return c.Shutdown(sctx)
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("verify", stderr, "dsn", "driver", "group", "products", "changes", "seed", "json")
	if err := f.parse(args); err != nil {
		return err
	}
	pl, err := f.plan()
	if err != nil {
		return err
	}
	if f.dsn == "" {
		return errors.New("-dsn is required (or $PRICE_CHANGE_DSN)")
	}
	ds, err := openDB(ctx, f.driver, f.dsn)
	if err != nil {
		return err
	}
	defer ds.Close()
	r := &Report{Resends: -1, BrokerDuplicates: -1, Rewound: -1, Deliveries: -1, Skipped: -1, Applied: -1, Retried: -1}
	if err := verify(ctx, ds, pl, cmp.Or(f.group, "product-service"), r); err != nil {
		return err
	}
	if err := writeReport(stdout, r, f.jsonOut); err != nil {
		return err
	}
	if r.Mismatches > 0 {
		return errMismatch
	}
	return nil
}
