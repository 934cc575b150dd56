package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// demoConfig configures the demo run.
type demoConfig struct {
	Plan       plan
	NameServer string // "" starts the in-process rocketmqtest broker
	Proxy      string // RocketMQ 5 proxy: run on the v5 gRPC client instead
	Driver     string // database/sql driver of DSN: mysql, pgx or sqlserver
	DSN        string
	Reset      bool   // empty the example's tables first
	Style      string // handler style: "plain" or "tx"
	Topic      string // "" picks one
	Group      string // "" picks one
	Queues     int    // queues of the topic, when the demo creates it
	Timeout    time.Duration
	Logger     *slog.Logger // the listeners' logger
	Verbose    bool         // keep the client's logs at shutdown
}

// demo is one run: a database, a broker, a producer, two consumers, and the
// faults the run injects along the way.
type demo struct {
	cfg    demoConfig
	prog   *progress
	ds     *mqdatasource.DataSource
	broker *rocketmqtest.Broker // nil with an external name server
	stats  exactlyonce.Stats    // shared by all consumers
	pub    publishStats
	report Report

	mu        sync.Mutex
	consumers map[string]stopper // by instance name
}

// runDemo runs the demo and returns its report. The report is valid, and
// verified, whenever err is nil; mismatches are in the report.
func runDemo(ctx context.Context, cfg demoConfig, prog *progress) (*Report, error) {
	d := &demo{cfg: cfg, prog: prog, consumers: map[string]stopper{}}
	d.report = Report{Resends: -1, BrokerDuplicates: -1, Rewound: -1}
	return &d.report, d.run(ctx)
}

func (d *demo) run(ctx context.Context) error {
	cfg := d.cfg
	runID := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)

	for _, srv := range []struct{ what, addr string }{{"RocketMQ name server", cfg.NameServer}, {"RocketMQ 5 proxy", cfg.Proxy}} {
		if srv.addr != "" {
			if err := probe(ctx, srv.what, srv.addr); err != nil {
				return err
			}
		}
	}

	ds, err := openDB(ctx, cfg.Driver, cfg.DSN)
	if err != nil {
		return err
	}
	defer ds.Close()
	d.ds = ds
	if err := emptyTables(ctx, ds, cfg.Reset); err != nil {
		return err
	}
	if err := seedProducts(ctx, ds, cfg.Plan.Products); err != nil {
		return err
	}

	// The broker: in-process unless a name server or proxy was given. On a
	// real cluster the topic and group are new for every run, so that
	// messages and offsets of earlier runs stay out of it.
	nameServer := cfg.NameServer
	topic, group := cfg.Topic, cfg.Group
	switch {
	case cfg.Proxy != "":
		// The in-process broker does not speak gRPC. A v5 consumer gets a
		// product's changes in order only from a FIFO topic, through an
		// orderly group: both must exist.
		if topic == "" || group == "" {
			return errors.New("with -proxy, -topic names an existing FIFO topic and -group an orderly consumer group " +
				"(mqadmin updateTopic -a +message.type=FIFO, updateSubGroup -o true; scripts/demo.sh v5 creates both)")
		}
		d.prog.event("RocketMQ 5 proxy at %s (gRPC client), FIFO topic %s", cfg.Proxy, topic)
	case nameServer == "":
		if topic == "" {
			topic = "price-change"
		}
		b, err := rocketmqtest.New(
			rocketmqtest.WithTopic(topic, cfg.Queues),
			// Orderly consumers lock their queues on the broker. rocketmq-client-go
			// v2.1.2 never unlocks a queue it gives up in a rebalance, so the new
			// owner waits for the lock to expire: 60 s on a real broker.
			// The demo shortens the expiry (and renews locks more often).
			rocketmqtest.WithLockExpiry(time.Second),
		)
		if err != nil {
			return fmt.Errorf("start the in-process broker: %w", err)
		}
		defer b.Close()
		d.broker = b
		nameServer = b.Addr()
		d.prog.event("in-process RocketMQ broker on %s, topic %s with %d queues", nameServer, topic, cfg.Queues)
	default:
		// The consumers start before anything is published, and a client
		// refuses to start on a topic without a route: the topic must exist.
		if topic == "" {
			return errors.New("with -namesrv, -topic names an existing topic (create it with mqadmin updateTopic; scripts/demo.sh apache does)")
		}
		d.prog.event("RocketMQ at %s, topic %s", nameServer, topic)
	}
	if group == "" {
		// A group of its own, so that records of earlier runs in the same
		// database do not count in this run's verification.
		group = "product-service-" + runID
	}

	consumerCfg := func(instance string) consumerConfig {
		c := consumerConfig{
			NameServer: nameServer, Proxy: cfg.Proxy, Topic: topic, Group: group, Instance: instance,
			Style: cfg.Style, Stats: &d.stats, Logger: cfg.Logger,
		}
		if d.broker != nil {
			c.LockInterval = 300 * time.Millisecond // well within the 1 s lock expiry
		}
		return c
	}
	defer d.shutdownAll()
	for _, name := range []string{"consumer-a", "consumer-b"} {
		if err := d.startConsumer(consumerCfg(name)); err != nil {
			return err
		}
	}
	kind := "orderly consumers"
	if cfg.Proxy != "" {
		kind = "FIFO push consumers of the v5 client"
	}
	d.prog.event("2 %s (%s handler) in group %s", kind, cfg.Style, group)

	send, stopProducer, err := startProducer(nameServer, cfg.Proxy, "price-engine-"+runID, topic)
	if err != nil {
		return fmt.Errorf("start producer: %w", err)
	}
	defer stopProducer()

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	published := make(chan error, 1)
	go func() { published <- d.publish(ctx, send) }()

	go d.nudge(ctx)
	if err := d.drive(ctx, published, consumerCfg("consumer-b"), group, topic); err != nil {
		return err
	}
	if !cfg.Verbose {
		// The client logs errors when the consumers of a group shut down
		// together (each rebalances while the other leaves): not actionable.
		rlog.SetLogLevel("fatal")
	}
	d.shutdownAll()
	d.prog.done()

	d.report.Resends = d.pub.Resends.Load()
	d.report.addStats(&d.stats)
	vctx, vcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer vcancel()
	return verify(vctx, ds, cfg.Plan, group, &d.report)
}

// publish sends the plan. With the in-process broker, the first tenth of
// the versions is sent while the broker stores every message twice (what a
// producer retry after a lost send response does).
func (d *demo) publish(ctx context.Context, send sendFunc) error {
	const workers = 4
	if d.broker == nil {
		return publish(ctx, send, d.cfg.Plan, 1, d.cfg.Plan.Changes, workers, &d.pub)
	}
	first := max(d.cfg.Plan.Changes/10, 1)
	dup := d.broker.DuplicateSends()
	err := publish(ctx, send, d.cfg.Plan, 1, first, workers, &d.pub)
	d.report.BrokerDuplicates = int64(dup.Hits()) // before Remove, which forgets the count
	dup.Remove()
	d.prog.event("broker stored versions 1-%d of every product twice (%d duplicates)", first, d.report.BrokerDuplicates)
	if err != nil || first == d.cfg.Plan.Changes {
		return err
	}
	return publish(ctx, send, d.cfg.Plan, first+1, d.cfg.Plan.Changes, workers, &d.pub)
}

// drive watches the run and injects the consumer-side faults at set points
// of progress. With the in-process broker, offset commits are lost from 35%
// applied on, as when a consumer dies before its offsets reach the broker;
// at 45% consumer-b restarts (so it, and consumer-a while it holds
// consumer-b's queues, resume from older offsets); at 75% the group's offsets
// are rewound to the start, so every message is delivered again. With a real
// cluster consumer-b just restarts at 40%. drive returns when every change
// is applied and every duplicate drained, or fails when the timeout ends
// first.
func (d *demo) drive(ctx context.Context, published <-chan error, restartCfg consumerConfig, group, topic string) error {
	total := int64(d.cfg.Plan.total())
	var (
		pubDone      bool
		lost         *rocketmqtest.Fault // offset commits dropped
		restarted    bool
		stallNoted   bool
		rewound      bool
		sinceRewind  int64 // deliveries counted when the rewind was made
		lastDelivery int64
		idleSince    = time.Now()
	)
	defer func() {
		if lost != nil {
			lost.Remove()
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-published:
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			pubDone = true
			published = nil
		case <-ctx.Done():
			d.prog.done()
			applied := d.stats.Count(exactlyonce.OutcomeProcessed)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("demo did not finish within %v (applied %d of %d changes; -timeout sets the limit)",
					d.cfg.Timeout, applied, total)
			}
			return fmt.Errorf("interrupted (applied %d of %d changes)", applied, total)
		case <-tick.C:
		}
		var now Report
		now.addStats(&d.stats)
		d.prog.status("sent %d/%d  deliveries %d  applied %d/%d  duplicates skipped %d",
			d.pub.Sent.Load(), total, now.Deliveries, now.Applied, total, now.Skipped)
		if now.Deliveries != lastDelivery {
			lastDelivery, idleSince = now.Deliveries, time.Now()
		}

		switch applied := now.Applied; {
		case d.broker != nil && lost == nil && !restarted && applied >= total*35/100:
			lost = d.broker.DropOffsetCommits()
			d.prog.event("the broker loses offset commits from now on, as if consumers crashed before committing")
		case !restarted && applied >= total*45/100:
			restarted = true
			if err := d.restart(ctx, restartCfg); err != nil {
				return err
			}
			if lost != nil {
				lost.Remove()
				lost = nil
			}
		case d.broker != nil && restarted && !rewound && applied >= total*3/4:
			rewound = true
			sinceRewind = now.Deliveries
			// Every change applied so far comes again: a duplicate each.
			d.report.Rewound = now.Applied
			d.broker.RewindOffsets(group, topic)
			d.prog.event("offsets of group %s rewound to the start: the %d changes applied so far come again "+
				"(the client waits 10 s first)", group, d.report.Rewound)
		}

		if d.broker == nil && d.cfg.Proxy == "" && restarted && !stallNoted && now.Applied < total && time.Since(idleSince) > 5*time.Second {
			stallNoted = true
			d.prog.event("waiting for the broker to expire the queue locks consumer-a kept when consumer-b came back " +
				"(rocketmq-client-go v2.1.2 does not unlock queues it hands over; brokers expire locks after 60 s)")
		}
		if !pubDone || !restarted || now.Applied < total {
			continue
		}
		if d.broker == nil {
			// Real cluster: done when nothing was delivered for 3 s.
			if time.Since(idleSince) >= 3*time.Second {
				return nil
			}
			continue
		}
		if rewound && now.Deliveries-sinceRewind >= d.storedMessages(topic) && d.offsetsCommitted(group, topic) {
			return nil
		}
	}
}

// restart stops consumer-b and starts it again.
func (d *demo) restart(ctx context.Context, cfg consumerConfig) error {
	d.prog.event("%s stops", cfg.Instance)
	d.mu.Lock()
	c := d.consumers[cfg.Instance]
	delete(d.consumers, cfg.Instance)
	d.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := c.Shutdown(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("stop %s: %w", cfg.Instance, err)
	}
	if err := d.startConsumer(cfg); err != nil {
		return err
	}
	d.report.Restarts++
	d.prog.event("%s restarted", cfg.Instance)
	return nil
}

func (d *demo) startConsumer(cfg consumerConfig) error {
	c, err := startConsumer(d.ds, cfg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.consumers[cfg.Instance] = c
	d.mu.Unlock()
	return nil
}

// shutdownAll stops the running consumers, each within 10 s.
func (d *demo) shutdownAll() {
	d.mu.Lock()
	cs := d.consumers
	d.consumers = map[string]stopper{}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for name, c := range cs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Shutdown(ctx); err != nil {
				d.prog.event("stop %s: %v", name, err)
			}
		})
	}
	wg.Wait()
}

// nudge makes the consumers rebalance twice a second. rocketmq-client-go
// v2.1.2 rebalances every 20 s (and when the group changes); an orderly queue
// whose lock was still held at the last rebalance would otherwise sit idle
// until the next one.
func (d *demo) nudge(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d.mu.Lock()
		for _, c := range d.consumers {
			if c, ok := c.(*exactlyonce.Consumer); ok {
				if r, ok := c.Client().(interface{ Rebalance() }); ok {
					r.Rebalance()
				}
			}
		}
		d.mu.Unlock()
	}
}

// storedMessages is the number of messages the in-process broker holds in
// the topic.
func (d *demo) storedMessages(topic string) int64 {
	var n int64
	for q := range d.cfg.Queues {
		n += d.broker.MaxOffset(topic, q)
	}
	return n
}

// offsetsCommitted pushes the consumers' offsets to the in-process broker
// and reports whether every queue's committed offset reached its end.
func (d *demo) offsetsCommitted(group, topic string) bool {
	d.mu.Lock()
	for _, c := range d.consumers {
		if c, ok := c.(*exactlyonce.Consumer); ok {
			if p, ok := c.Client().(interface{ PersistConsumerOffset() error }); ok {
				_ = p.PersistConsumerOffset()
			}
		}
	}
	d.mu.Unlock()
	for q := range d.cfg.Queues {
		if d.broker.CommittedOffset(group, topic, q) < d.broker.MaxOffset(topic, q) {
			return false
		}
	}
	return true
}

// probe checks that the address of a server (what it is: "RocketMQ name
// server") accepts connections, so that a wrong address fails at once with
// a clear message instead of the client's endless retries.
func probe(ctx context.Context, what, addr string) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("cannot reach the %s at %s: no answer within 5 s", what, addr)
		}
		return fmt.Errorf("cannot reach the %s at %s: %w", what, addr, err)
	}
	return conn.Close()
}
