package exactlyoncev5_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyoncev5"
	"github.com/b74fc070/rocketmq-exactlyonce/exactlyoncev5/internal/proxytest"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// envChild makes the test binary run childConsumer instead of the tests;
// the other EOV5_ variables configure it.
const envChild = "EOV5_CHILD"

// TestE2ESimpleKill9: a SimpleConsumer in a child process is killed with
// SIGKILL while it applies messages (transactions open, commits not yet
// acknowledged), and a consumer of the same group finishes the topic: each
// message is applied once.
func TestE2ESimpleKill9(t *testing.T) {
	t.Parallel() // own topic and group; the suite is mostly waiting on the broker
	p := apache(t)
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		b := newBank(t, e)
		topic, group := proxytest.UniqueName(t, "v5kill"), proxytest.UniqueName(t, "v5killg")
		p.CreateTopic(t, topic, 2)
		const n = 24
		pr := v2Producer(t, p)
		sendV2(t, pr, transfers(topic, n)...)
		child := exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(),
			envChild+"=1",
			"EOV5_ENDPOINT="+p.Endpoint, "EOV5_DB="+e.Name, "EOV5_DRIVER="+e.Driver, "EOV5_DSN="+e.DSN,
			"EOV5_TABLES="+strings.Join([]string{b.accounts, b.ledger, b.records}, ","),
			"EOV5_GROUP="+group, "EOV5_TOPIC="+topic)
		// Dies with the test binary if the test does not get to kill it.
		child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out := &strings.Builder{}
		child.Stdout, child.Stderr = out, out
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for b.ledgerRows(t) < n/3 {
			if time.Now().After(deadline) {
				_ = child.Process.Kill()
				_ = child.Wait()
				t.Fatalf("the child applied %d messages in 60s:\n%s", b.ledgerRows(t), out)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := child.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = child.Wait()
		killedAt := b.ledgerRows(t)
		simpleConsumer(t, b, p, group, topic, nil, func(ctx context.Context, mv *rmq.MessageView) error {
			return b.apply(ctx, t, mv.GetBody(), "", 0)
		}, exactlyoncev5.WithInvisibleDuration(2*time.Second))
		b.waitApplied(t, n, 90*time.Second)
		b.check(t, n)
		t.Logf("killed after %d of %d messages", killedAt, n)
	})
}

// childConsumer is the killed consumer: a SimpleConsumer whose handler
// keeps each message's transaction open for a while after its writes.
func childConsumer() int {
	tables := strings.Split(os.Getenv("EOV5_TABLES"), ",")
	if len(tables) != 3 {
		fmt.Fprintln(os.Stderr, "child: bad EOV5_TABLES")
		return 2
	}
	ds, err := mqdatasource.Open(os.Getenv("EOV5_DRIVER"), os.Getenv("EOV5_DSN"), mqdatasource.WithTable(tables[2]))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	b := &bank{e: &dbtest.Env{Name: os.Getenv("EOV5_DB")}, ds: ds, accounts: tables[0], ledger: tables[1], records: tables[2]}
	group, topic := os.Getenv("EOV5_GROUP"), os.Getenv("EOV5_TOPIC")
	sc, err := rmq.NewSimpleConsumer(v5ConfigAt(os.Getenv("EOV5_ENDPOINT"), group),
		rmq.WithSimpleAwaitDuration(5*time.Second),
		rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL}))
	if err == nil {
		for try := 0; try < 60; try++ {
			if err = sc.Start(); err == nil {
				break
			}
			time.Sleep(time.Second)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	c, err := exactlyoncev5.NewSimpleConsumer(ds, group, sc, func(ctx context.Context, mv *rmq.MessageView) error {
		if err := b.applyBody(ctx, mv.GetBody(), "", 0); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond) // killed here: the transaction is open
		return nil
	}, exactlyoncev5.WithInvisibleDuration(2*time.Second), exactlyoncev5.WithMaxMessages(4), exactlyoncev5.WithLogger(nil))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	if err := c.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}
