//go:build !race

// rocketmq-client-go v2.1.2 has data races of its own: a test driving it
// fails under -race.

package chaos

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/remoting"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/throwaway"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mysqldriver"
)

// The environment the test reads.
const (
	envChaos    = "CHAOS"          // "1": run the test (it takes minutes)
	envMessages = "CHAOS_MESSAGES" // messages to send (default 5000)
	envDuration = "CHAOS_DURATION" // how long the producer spreads them over (default 60s)
	envConsumer = "CHAOS_CONSUMER" // set by the test in its consumer processes
)

func TestMain(m *testing.M) {
	rlog.SetLogLevel("fatal")
	if cfg := os.Getenv(envConsumer); cfg != "" {
		if err := runConsumer(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "chaos consumer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// change is a message: amount added to an account's balance, under a
// business key unique to the change however often it is sent.
type change struct {
	Key     string `json:"key"`
	Account int    `json:"account"`
	Amount  int64  `json:"amount"`
}

// consumerConfig is what a consumer process is given, as JSON in
// CHAOS_CONSUMER.
type consumerConfig struct {
	NameServer, DSN, Topic, Group, Claims, Accounts, Ledger, Instance string
}

// runConsumer is a consumer process: an exactlyonce consumer whose handler
// appends the change to a ledger (no unique key, so that a change applied
// twice shows as two rows) and adds it to the account's balance, in the
// claim's transaction. It runs until SIGTERM (or SIGKILL, which is the
// point).
func runConsumer(cfgJSON string) error {
	var cfg consumerConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return err
	}
	ds, err := mqdatasource.Open("mysql", cfg.DSN, mqdatasource.WithTable(cfg.Claims))
	if err != nil {
		return err
	}
	defer ds.Close()
	var stats exactlyonce.Stats
	c, err := exactlyonce.NewConsumer(ds, cfg.Group, exactlyonce.WithMetrics(&stats), exactlyonce.WithClientOptions(
		consumer.WithNameServer([]string{cfg.NameServer}),
		consumer.WithInstance(cfg.Instance),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	))
	if err != nil {
		return err
	}
	insert := "INSERT INTO " + cfg.Ledger + " (k, account, amount) VALUES (?, ?, ?)"
	update := "UPDATE " + cfg.Accounts + " SET balance = balance + ? WHERE id = ?"
	err = c.SubscribeTx(cfg.Topic, consumer.MessageSelector{}, func(ctx context.Context, tx *sql.Tx, msg *primitive.MessageExt) error {
		var ch change
		if err := json.Unmarshal(msg.Body, &ch); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, insert, ch.Key, ch.Account, ch.Amount); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, update, ch.Amount, ch.Account)
		return err
	})
	if err != nil {
		return err
	}
	// Started while the broker is down, Start retries until its deadline;
	// past it the process exits and the test starts another.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.StartContext(ctx); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "chaos consumer: started", cfg.Instance)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	// The outcome counters, often: a killed process's last line is what
	// the test adds up (at most 200 ms of counts are lost with it).
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-sig:
			done = true
		case <-tick.C:
		}
		b, _ := json.Marshal(stats.Snapshot())
		fmt.Fprintf(os.Stderr, "%s%s\n", statsPrefix, b)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	err = c.Shutdown(sctx)
	b, _ := json.Marshal(stats.Snapshot())
	fmt.Fprintf(os.Stderr, "%s%s\n", statsPrefix, b)
	return err
}

// statsPrefix starts a consumer process's lines of outcome counters.
const statsPrefix = "chaos stats: "

// TestChaos sends CHAOS_MESSAGES changes (5000) over CHAOS_DURATION (60 s)
// to a topic of an Apache RocketMQ of its own while it kills the broker
// with SIGKILL and restarts it on the same store three times, and kills one
// of two consumer processes with SIGKILL every few seconds (each replaced
// at once); then it checks the ledger and balances in MariaDB against the
// producer's log: every change applied, none twice, nothing else applied.
func TestChaos(t *testing.T) {
	if os.Getenv(envChaos) != "1" {
		t.Skipf("takes minutes and starts an Apache RocketMQ of its own: set %s=1 (see docs/apache-rocketmq.md)", envChaos)
	}
	dsn := os.Getenv("MYSQL_DSN")
	if dsn == "" {
		t.Fatal("MYSQL_DSN not set: run under scripts/testdb.sh")
	}
	messages := envInt(t, envMessages, 5000)
	duration := 60 * time.Second
	if v := os.Getenv(envDuration); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", envDuration, v, err)
		}
		duration = d
	}
	const accounts, consumers, brokerKills = 50, 2, 3
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	begin := time.Now()
	mq, err := throwaway.ApacheRocketMQ(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mq.Stop() })
	t.Logf("Apache RocketMQ %s up in %v: name server %s, broker %s", throwaway.ApacheRocketMQVersion,
		time.Since(begin).Round(100*time.Millisecond), mq.NameServer(), mq.Broker())

	suffix := randomSuffix()
	cfg := consumerConfig{
		NameServer: mq.NameServer(), DSN: dsn,
		Topic: "chaos_" + suffix, Group: "chaos_g_" + suffix,
		Claims: "chaos_claims_" + suffix, Accounts: "chaos_accounts_" + suffix, Ledger: "chaos_ledger_" + suffix,
	}
	db := setUpDB(t, cfg, accounts)
	for _, topic := range []struct {
		name   string
		queues int
	}{{cfg.Topic, 4}, {"%RETRY%" + cfg.Group, 1}} {
		// The retry topic too, before the consumers start: see
		// docs/apache-rocketmq.md on the retry topics of a new group.
		if err := remoting.CreateTopic(ctx, mq.Broker(), topic.name, topic.queues); err != nil {
			t.Fatal(err)
		}
	}
	waitRoute(t, ctx, mq.NameServer(), cfg.Topic)

	// The producer's log and the consumers' output stay when the test fails.
	dir, err := os.MkdirTemp("", "chaos-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("producer's log and consumers' output kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	fleet := &fleet{t: t, cfg: cfg, dir: dir}
	for i := range consumers {
		fleet.start(i)
	}
	t.Cleanup(fleet.stopAll)

	p, err := exactlyonce.NewProducer(
		producer.WithNameServer([]string{mq.NameServer()}),
		producer.WithGroupName("chaos_producer"),
		producer.WithInstanceName("chaos_producer_"+suffix),
		producer.WithRetry(2),
		producer.WithSendMsgTimeout(3*time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()

	// The producer's log: every change, written before its first send, and
	// marked acknowledged when a send of it succeeded.
	logPath := filepath.Join(fleet.dir, "producer.log")
	prodLog, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer prodLog.Close()
	var (
		logMu    sync.Mutex
		acked    = map[string]change{}
		resends  atomic.Int64
		sendErrs atomic.Int64
	)
	logLine := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(prodLog, format+"\n", args...)
	}

	start := time.Now()
	produced := make(chan struct{})
	const workers = 4
	var pwg sync.WaitGroup
	for w := range workers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for i := w; i < messages; i += workers {
				// Paced over duration, so that the kills fall in the run.
				time.Sleep(time.Until(start.Add(duration * time.Duration(i) / time.Duration(messages))))
				ch := change{Key: fmt.Sprintf("chg-%s-%05d", suffix, i), Account: i % accounts, Amount: int64(i%97 + 1)}
				logLine("sent %s %d %d", ch.Key, ch.Account, ch.Amount)
				body, _ := json.Marshal(ch)
				for attempt := 0; ; attempt++ {
					if ctx.Err() != nil {
						return
					}
					if attempt > 0 {
						// A new message with the same business key, as an
						// application retrying a send it cannot confirm:
						// it may have been stored already.
						resends.Add(1)
						time.Sleep(500 * time.Millisecond)
					}
					msg := primitive.NewMessage(cfg.Topic, body)
					if err := exactlyonce.SetBusinessKey(msg, ch.Key); err != nil {
						t.Error(err)
						return
					}
					res, err := p.SendSync(ctx, msg)
					if err == nil && res.Status == primitive.SendOK {
						break
					}
					sendErrs.Add(1)
				}
				logLine("acked %s", ch.Key)
				logMu.Lock()
				acked[ch.Key] = ch
				logMu.Unlock()
			}
		}()
	}
	go func() { pwg.Wait(); close(produced) }()

	// The broker: killed at 1/4, 2/4 and 3/4 of the run, restarted 2 s
	// later on the same store.
	var restarts []time.Duration
	brokerDone := make(chan struct{})
	go func() {
		defer close(brokerDone)
		for k := 1; k <= brokerKills; k++ {
			time.Sleep(time.Until(start.Add(duration * time.Duration(k) / (brokerKills + 1))))
			if err := mq.KillBroker(); err != nil {
				t.Errorf("kill broker: %v", err)
				return
			}
			t.Logf("%v: broker killed (%d/%d)", time.Since(start).Round(100*time.Millisecond), k, brokerKills)
			time.Sleep(2 * time.Second)
			rs := time.Now()
			if err := mq.RestartBroker(ctx); err != nil {
				t.Errorf("restart broker: %v", err)
				return
			}
			restarts = append(restarts, time.Since(rs).Round(100*time.Millisecond))
			t.Logf("%v: broker back after %v", time.Since(start).Round(100*time.Millisecond), restarts[len(restarts)-1])
		}
	}()

	// The consumers: one killed every 5 s, in turn, and replaced at once,
	// until the producer and the broker kills are done.
	consumerKills := 0
	for n := 0; ; n++ {
		select {
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
			t.Fatal("timed out during the run")
		}
		fleet.kill(n % consumers)
		fleet.start(n % consumers)
		consumerKills++
		fleet.restartExited()
		if isClosed(produced) && isClosed(brokerDone) {
			break
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("%v: producer and kills done: %d changes acknowledged, %d send errors (%d resends), %d broker kills, %d consumer kills",
		time.Since(start).Round(100*time.Millisecond), len(acked), sendErrs.Load(), resends.Load(), brokerKills, consumerKills)

	// Let the consumers finish: every change in the ledger, then a few
	// seconds more for late redeliveries, which must change nothing.
	count := func(q string) int64 {
		var n int64
		if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(5 * time.Minute); count("SELECT COUNT(DISTINCT k) FROM "+cfg.Ledger) < int64(messages); {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 min, %d of %d changes applied", count("SELECT COUNT(DISTINCT k) FROM "+cfg.Ledger), messages)
		}
		fleet.restartExited()
		time.Sleep(time.Second)
	}
	time.Sleep(10 * time.Second)
	fleet.stopAll()

	// The checks, against the producer's log.
	if len(acked) != messages {
		t.Errorf("%d of %d changes acknowledged to the producer", len(acked), messages)
	}
	logged := readLog(t, logPath)
	if len(logged) != messages {
		t.Errorf("producer's log: %d changes, want %d", len(logged), messages)
	}
	rows, err := db.QueryContext(ctx, "SELECT k, COUNT(*) FROM "+cfg.Ledger+" GROUP BY k")
	if err != nil {
		t.Fatal(err)
	}
	applied, twice, unknown := 0, 0, 0
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		applied++
		if n > 1 {
			twice++
			t.Errorf("%s applied %d times", k, n)
		}
		if !logged[k] {
			unknown++
			t.Errorf("%s applied but not in the producer's log", k)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	lost := messages - applied + unknown
	want := make([]int64, accounts)
	for _, ch := range acked {
		want[ch.Account] += ch.Amount
	}
	badBalances := 0
	for a := range accounts {
		var got int64
		if err := db.QueryRowContext(ctx, "SELECT balance FROM "+cfg.Accounts+" WHERE id = ?", a).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want[a] {
			badBalances++
			t.Errorf("account %d: balance %d, want %d", a, got, want[a])
		}
	}
	t.Logf("consumer outcomes, summed over the processes (from their last counts): %v", fleet.outcomes(t))
	t.Logf("chaos: %d messages in %v (producer %v), %d lost, %d applied twice, %d applied unknown, %d/%d balances wrong; "+
		"%d broker kills (restarts took %v), %d consumer kills, %d send errors, %d resends",
		messages, time.Since(begin).Round(time.Second), duration, lost, twice, unknown, badBalances, accounts,
		brokerKills, restarts, consumerKills, sendErrs.Load(), resends.Load())
}

// setUpDB creates the claim table, the accounts (balance 0) and the ledger,
// and drops them when the test ends.
func setUpDB(t *testing.T, cfg consumerConfig, accounts int) *sql.DB {
	t.Helper()
	ds, err := mqdatasource.Open("mysql", cfg.DSN, mqdatasource.WithTable(cfg.Claims), mqdatasource.WithMigrate())
	if err != nil {
		t.Fatal(err)
	}
	ds.Close()
	db, err := sql.Open("mysql", cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, table := range []string{cfg.Claims, cfg.Accounts, cfg.Ledger} {
			if _, err := db.Exec("DROP TABLE IF EXISTS " + table); err != nil {
				t.Error(err)
			}
		}
		db.Close()
	})
	for _, q := range []string{
		"CREATE TABLE " + cfg.Accounts + " (id int PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE " + cfg.Ledger + " (id bigint AUTO_INCREMENT PRIMARY KEY, k varchar(64) NOT NULL, account int NOT NULL, amount bigint NOT NULL, KEY (k))",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for a := range accounts {
		if _, err := db.Exec("INSERT INTO "+cfg.Accounts+" (id, balance) VALUES (?, 0)", a); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// fleet runs the consumer processes: the test binary again, with
// CHAOS_CONSUMER set, each writing its output to a file of dir.
type fleet struct {
	t    *testing.T
	cfg  consumerConfig
	dir  string
	mu   sync.Mutex
	cmds map[int]*exec.Cmd
	done map[int]chan struct{}
	seq  int
}

func (f *fleet) start(slot int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cmds == nil {
		f.cmds, f.done = map[int]*exec.Cmd{}, map[int]chan struct{}{}
	}
	f.seq++
	cfg := f.cfg
	// An instance name per process: a killed one's registration must not
	// be taken for the new one's.
	cfg.Instance = fmt.Sprintf("chaos_consumer_%d_%d", slot, f.seq)
	b, _ := json.Marshal(cfg)
	out, err := os.Create(filepath.Join(f.dir, cfg.Instance+".log"))
	if err != nil {
		f.t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envConsumer+"="+string(b))
	cmd.Stdout, cmd.Stderr = out, out
	// Dies with the test process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	f.cmds[slot], f.done[slot] = cmd, done
}

// kill kills slot's process with SIGKILL and waits for it.
func (f *fleet) kill(slot int) {
	f.mu.Lock()
	cmd, done := f.cmds[slot], f.done[slot]
	f.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// restartExited starts again the consumers that exited by themselves (a
// start that outlasted its deadline while the broker was down).
func (f *fleet) restartExited() {
	f.mu.Lock()
	var exited []int
	for slot, done := range f.done {
		if isClosed(done) {
			exited = append(exited, slot)
		}
	}
	f.mu.Unlock()
	for _, slot := range exited {
		f.t.Logf("consumer %d exited by itself; starting another", slot)
		f.start(slot)
	}
}

// stopAll stops every consumer with SIGTERM (a graceful shutdown), then
// SIGKILL after 30 s.
func (f *fleet) stopAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for slot, cmd := range f.cmds {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-f.done[slot]:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-f.done[slot]
		}
	}
}

// outcomes adds up the last outcome counters of every consumer process.
func (f *fleet) outcomes(t *testing.T) map[string]int64 {
	logs, err := filepath.Glob(filepath.Join(f.dir, "chaos_consumer_*.log"))
	if err != nil {
		t.Fatal(err)
	}
	total := map[string]int64{}
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var last map[string]int64
		for _, line := range strings.Split(string(b), "\n") {
			if s, ok := strings.CutPrefix(line, statsPrefix); ok {
				var m map[string]int64
				if json.Unmarshal([]byte(s), &m) == nil {
					last = m
				}
			}
		}
		for k, n := range last {
			if n != 0 && !strings.HasPrefix(k, "handler_ms") {
				total[k] += n
			}
		}
	}
	return total
}

// readLog returns the keys of the producer's log's "sent" lines.
func readLog(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var key string
		var account, amount int64
		if n, _ := fmt.Sscanf(sc.Text(), "sent %s %d %d", &key, &account, &amount); n == 3 {
			keys[key] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func waitRoute(t *testing.T, ctx context.Context, nameServer, topic string) {
	t.Helper()
	for {
		if _, err := remoting.Route(ctx, nameServer, topic); err == nil {
			return
		} else if ctx.Err() != nil {
			t.Fatalf("no route for %s: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
