package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/brokertest"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/remoting"
)

// TestDemo runs the demo's scenario, smaller, on the in-process broker:
// broker duplicates, producer resends, a consumer restart with lost offset
// commits, and an offset rewind; every change must be applied exactly once.
func TestDemo(t *testing.T) {
	for _, tc := range []struct{ db, style string }{
		{"mysql", "plain"},
		{"postgres", "tx"},
	} {
		t.Run(tc.db+"-"+tc.style, func(t *testing.T) {
			t.Parallel()
			db := newTestDB(t, tc.db)
			r := demoReport(t, "-namesrv=", "-driver", db.driver, "-dsn", db.dsn, "-style", tc.style)
			if r.Resends <= 0 || r.BrokerDuplicates <= 0 || r.Rewound <= 0 || r.Restarts != 1 {
				t.Errorf("duplicates not injected: resends %d, broker duplicates %d, rewound %d, restarts %d",
					r.Resends, r.BrokerDuplicates, r.Rewound, r.Restarts)
			}
		})
	}
}

// TestDemoV5 runs the demo on the RocketMQ 5 gRPC client (-proxy) against
// the real proxy, on a FIFO topic and an orderly group created first:
// producer resends and a consumer restart; every change must be applied
// exactly once, in order.
func TestDemoV5(t *testing.T) {
	for _, tc := range []struct{ db, style string }{
		{"mysql", "plain"},
		{"postgres", "tx"},
	} {
		t.Run(tc.db+"-"+tc.style, func(t *testing.T) {
			t.Parallel()
			endpoint, b := brokertest.Proxy(t)
			e2eSuite.Record(t, "apache-rocketmq-proxy "+b.Version())
			db := newTestDB(t, tc.db)
			topic, group := brokertest.UniqueName(t, "price_change_v5"), brokertest.UniqueName(t, "product_service_v5")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := remoting.EnsureFIFOTopic(ctx, b.NameServer(), topic, group, 4); err != nil {
				t.Fatal(err)
			}
			r := demoReport(t, "-namesrv=", "-proxy", endpoint, "-topic", topic, "-group", group,
				"-driver", db.driver, "-dsn", db.dsn, "-style", tc.style)
			if r.Resends <= 0 || r.Restarts != 1 {
				t.Errorf("duplicates not injected: resends %d, restarts %d", r.Resends, r.Restarts)
			}
		})
	}
}

// demoReport runs the demo program on 20 products with 30 changes each, with
// args, and returns its report. It fails the test unless the verifier found
// every change applied exactly once, in order (final prices, change
// counters, history rows), one transaction_record row per change, and every
// duplicate injected skipped.
func demoReport(t *testing.T, args ...string) Report {
	t.Helper()
	const total = 20 * 30
	bin := programBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"demo"}, args...),
		"-products", "20", "-changes", "30", "-resend", "0.05", "-timeout", "170s", "-json")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("demo took %v; stderr:\n%s", time.Since(start).Round(time.Millisecond), stderr.String())
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s", err, stdout.String())
	}
	var r Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	t.Logf("report: %+v", r)
	if r.Mismatches != 0 {
		t.Fatalf("%d mismatches: %v", r.Mismatches, r.Problems)
	}
	if r.ChangesSent != total || r.Applied != total || r.Records != total {
		t.Errorf("sent %d, applied %d, records %d; want %d each", r.ChangesSent, r.Applied, r.Records, total)
	}
	if r.Skipped < r.injected() {
		t.Errorf("%d duplicates skipped, want at least the %d injected", r.Skipped, r.injected())
	}
	// Every delivery is applied, skipped or retried: none was
	// acknowledged without a claim (OutcomeUnclaimed).
	if r.Deliveries != r.Applied+r.Skipped+r.Retried {
		t.Errorf("deliveries %d != applied %d + skipped %d + retried %d", r.Deliveries, r.Applied, r.Skipped, r.Retried)
	}
	return r
}

// Unreachable servers and bad flags fail at once with a clear message and
// exit status 2.
func TestDemoUnreachableServers(t *testing.T) {
	bin := programBinary(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"name server", []string{"produce", "-namesrv", "127.0.0.1:1"}, "cannot reach the RocketMQ name server at 127.0.0.1:1"},
		{"proxy", []string{"produce", "-proxy", "127.0.0.1:1"}, "cannot reach the RocketMQ 5 proxy at 127.0.0.1:1"},
		{"database", []string{"verify", "-dsn", "root@tcp(127.0.0.1:1)/test"}, "cannot reach the mysql database"},
		{"driver", []string{"verify", "-driver", "oracle", "-dsn", "x"}, `unsupported -driver "oracle"`},
		{"no database", []string{"demo"}, "-dsn is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tc.args...)
			cmd.Env = append(os.Environ(), "PRICE_CHANGE_DSN=")
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output %q does not say %q", out, tc.want)
			}
		})
	}
}

// TestKillConsumer runs the parts as processes: a broker, the producer, and
// a consumer that is killed with SIGKILL mid-run and started again; the
// verifier must then find every change applied exactly once. On MariaDB
// with the plain handler, and on PostgreSQL with the managed transaction;
// each on the standalone broker of cmd/rocketmqtest and on Apache RocketMQ
// (the shared one named by ROCKETMQ_NAMESRV; see internal/brokertest).
func TestKillConsumer(t *testing.T) {
	for _, broker := range []string{"rocketmqtest", "apache"} {
		t.Run(broker, func(t *testing.T) {
			for _, tc := range []struct{ db, style string }{
				{"mysql", "plain"},
				{"postgres", "tx"},
			} {
				t.Run(tc.db+"-"+tc.style, func(t *testing.T) {
					t.Parallel()
					e2eSuite.Record(t, broker)
					testKillConsumer(t, broker, tc.db, tc.style)
				})
			}
		})
	}
}

func testKillConsumer(t *testing.T, broker, kind, style string) {
	// The example's topic and group on a broker of its own; names of the
	// test's own on the shared one.
	nameServer, topic, group := "", "price-change", "product-service"
	if broker == "apache" {
		nameServer = brokertest.Apache(t).NameServer()
		topic, group = brokertest.UniqueName(t, "price_change"), brokertest.UniqueName(t, "product_service")
	} else {
		nameServer = startBroker(t)
	}
	db := newTestDB(t, kind)
	bin := programBinary(t)
	const products, changes = 30, 60
	total := int64(products * changes)
	plan := []string{"-products", fmt.Sprint(products), "-changes", fmt.Sprint(changes)}
	args := func(cmd string, extra ...string) []string {
		return append(append([]string{cmd}, extra...), plan...)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, args("produce", "-namesrv", nameServer, "-resend", "0.05", "-topic", topic)...).CombinedOutput(); err != nil {
		t.Fatalf("produce: %v\n%s", err, out)
	}

	ds := db.open(t)
	applied := func() int64 {
		var n int64
		if err := ds.DB().QueryRow("SELECT COALESCE(SUM(change_count), 0) FROM product").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	consume := func(name string) (*exec.Cmd, *syncBuffer) {
		cmd := exec.CommandContext(ctx, bin, "consume", "-namesrv", nameServer, "-driver", db.driver, "-dsn", db.dsn,
			"-instance", "consumer", "-style", style, "-products", fmt.Sprint(products), "-topic", topic, "-group", group)
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		return cmd, out
	}

	first, firstOut := consume("first consumer")
	eventually(t, 60*time.Second, "a third of the changes applied", func() bool { return applied() >= total/3 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	atKill := applied()
	t.Logf("killed the consumer with %d of %d changes applied; its output:\n%s", atKill, total, firstOut)
	if atKill >= total {
		t.Fatalf("the consumer finished before it was killed: make the run longer")
	}

	second, secondOut := consume("second consumer")
	eventually(t, 60*time.Second, "every change applied", func() bool { return applied() >= total })
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("second consumer: %v\n%s", err, secondOut)
	}
	t.Logf("second consumer:\n%s", secondOut)
	if skipped := lastCount(t, secondOut.String(), "duplicates skipped"); skipped <= 0 {
		t.Errorf("the restarted consumer skipped %d duplicates, want > 0 (resends at least)", skipped)
	}

	out, err := exec.CommandContext(ctx, bin, args("verify", "-driver", db.driver, "-dsn", db.dsn, "-group", group)...).CombinedOutput()
	t.Logf("verify:\n%s", out)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !regexp.MustCompile(`(?m)^\s*mismatches\s+0$`).Match(out) {
		t.Errorf("verify output lacks \"mismatches 0\"")
	}
}

// startBroker builds cmd/rocketmqtest, starts it as a process and returns
// the address it prints on its first line.
func startBroker(t *testing.T) string {
	t.Helper()
	bin := buildOnce(t, "rocketmqtest", "github.com/b74fc070/rocketmq-exactlyonce/cmd/rocketmqtest")
	cmd := exec.Command(bin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case addr := <-lines:
		if addr == "" {
			t.Fatalf("rocketmqtest printed no address; stderr:\n%s", stderr.String())
		}
		// The first line is the address, possibly with words around it.
		if m := regexp.MustCompile(`[0-9.]+:[0-9]+`).FindString(addr); m != "" {
			addr = m
		}
		t.Logf("standalone broker (cmd/rocketmqtest, pid %d) on %s", cmd.Process.Pid, addr)
		return addr
	case <-time.After(30 * time.Second):
		t.Fatalf("rocketmqtest printed no address within 30 s; stderr:\n%s", stderr.String())
	}
	return ""
}

// lastCount returns the number after the last occurrence of label in out,
// or -1.
func lastCount(t *testing.T, out, label string) int64 {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(label)+` (\d+)`).FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return -1
	}
	n, _ := strconv.ParseInt(m[len(m)-1][1], 10, 64)
	return n
}

// syncBuffer is a bytes.Buffer safe for a process writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
