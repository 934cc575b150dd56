package exactlyoncev5_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/credentials"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyoncev5/internal/proxytest"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/brokertest"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// suite records the end-to-end tests' outcomes for the run's E2E line
// ("e2e: exactlyonce v5 grpc on apache-rocketmq-proxy 5.3.3: ok (...)"),
// written to E2E_SUMMARY when scripts/test.sh sets it.
var suite = brokertest.NewSuite("exactlyonce v5 grpc")

// apache returns the proxy of the run (see proxytest.FromEnv).
//
// Under the race detector the end-to-end tests are skipped: the switch
// tests run rocketmq-client-go v2.1.2, which races with itself (see
// docs/consumer.md), and their hundreds of seconds would grow several times.
// scripts/test.sh runs them again without it.
func apache(t *testing.T) *proxytest.Env {
	t.Helper()
	if raceEnabled {
		t.Skip("skipped under -race: run without it (scripts/test.sh does)")
	}
	p := proxytest.FromEnv(t)
	suite.Record(t, "apache-rocketmq-proxy "+p.Version())
	return p
}

func TestMain(m *testing.M) {
	// The v5 client logs to the console unless told not to; its file log
	// under $HOME/logs stays.
	os.Setenv("mq.consoleAppender.enabled", "false")
	rmq.ResetLogger()
	rlog.SetLogLevel("error")
	if os.Getenv(envChild) != "" {
		os.Exit(childConsumer())
	}
	code := m.Run()
	if err := suite.Report(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e summary:", err)
	}
	os.Exit(code)
}

// bank is the business of the end-to-end tests: a message "idx:account:amount"
// adds amount to the account's balance and writes a ledger row (no unique
// key: a message applied twice shows as two rows and a wrong balance).
type bank struct {
	e                         *dbtest.Env
	ds                        *mqdatasource.DataSource
	accounts, ledger, records string
}

const nAccounts = 4

func newBank(t *testing.T, e *dbtest.Env) *bank {
	t.Helper()
	b := &bank{e: e, accounts: dbtest.UniqueName(t, "acct"), ledger: dbtest.UniqueName(t, "ledger"), records: dbtest.UniqueName(t, "tr")}
	ds, err := mqdatasource.Open(e.Driver, e.DSN, mqdatasource.WithTable(b.records), mqdatasource.WithSchemaCheck(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ds.Close()
		for _, tb := range []string{b.accounts, b.ledger, b.records} {
			e.Exec(t, "DROP TABLE IF EXISTS "+tb)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ds.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ds.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	e.Exec(t, "CREATE TABLE "+b.accounts+" (id INT PRIMARY KEY, balance BIGINT NOT NULL)")
	e.Exec(t, "CREATE TABLE "+b.ledger+" (idx INT NOT NULL, grp VARCHAR(64) NOT NULL, seq INT NOT NULL)")
	for i := range nAccounts {
		e.Exec(t, "INSERT INTO "+b.accounts+" (id, balance) VALUES (?, 0)", i)
	}
	b.ds = ds
	return b
}

// body returns message idx's body; account and amount derive from idx.
func body(idx int) []byte {
	return []byte(fmt.Sprintf("%d:%d:%d", idx, idx%nAccounts, idx+1))
}

// transfers returns n v2 messages to topic, with the bodies body(0) to
// body(n-1).
func transfers(topic string, n int) []*primitive.Message {
	msgs := make([]*primitive.Message, n)
	for i := range msgs {
		msgs[i] = primitive.NewMessage(topic, body(i))
	}
	return msgs
}

func parse(t testing.TB, b []byte) (idx, acct, amount int) {
	idx, acct, amount, err := parseBody(b)
	if err != nil {
		t.Error(err)
	}
	return idx, acct, amount
}

func parseBody(b []byte) (idx, acct, amount int, err error) {
	parts := strings.Split(string(b), ":")
	if len(parts) != 3 {
		return -1, 0, 0, fmt.Errorf("bad body %q", b)
	}
	idx, _ = strconv.Atoi(parts[0])
	acct, _ = strconv.Atoi(parts[1])
	amount, _ = strconv.Atoi(parts[2])
	return idx, acct, amount, nil
}

// apply is the business transaction, through the DataSource with the
// delivery's context: group and seq are for FIFO checks.
func (b *bank) apply(ctx context.Context, t testing.TB, payload []byte, group string, seq int) error {
	if _, _, _, err := parseBody(payload); err != nil {
		t.Error(err)
		return err
	}
	return b.applyBody(ctx, payload, group, seq)
}

func (b *bank) applyBody(ctx context.Context, payload []byte, group string, seq int) error {
	idx, acct, amount, err := parseBody(payload)
	if err != nil {
		return err
	}
	db := b.ds.DB()
	if _, err := db.ExecContext(ctx, b.e.Rebind("UPDATE "+b.accounts+" SET balance = balance + ? WHERE id = ?"), amount, acct); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, b.e.Rebind("INSERT INTO "+b.ledger+" (idx, grp, seq) VALUES (?, ?, ?)"), idx, group, seq)
	return err
}

func (b *bank) applyTx(ctx context.Context, t testing.TB, tx *sql.Tx, payload []byte) error {
	idx, acct, amount := parse(t, payload)
	if _, err := tx.ExecContext(ctx, b.e.Rebind("UPDATE "+b.accounts+" SET balance = balance + ? WHERE id = ?"), amount, acct); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, b.e.Rebind("INSERT INTO "+b.ledger+" (idx, grp, seq) VALUES (?, '', 0)"), idx)
	return err
}

func (b *bank) ledgerRows(t testing.TB) int64 {
	return b.e.QueryInt(t, "SELECT COUNT(*) FROM "+b.ledger)
}

// waitApplied waits until the ledger has n rows, then a little longer, so
// that a late second application would show.
func (b *bank) waitApplied(t testing.TB, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for b.ledgerRows(t) < n {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d of %d messages applied", timeout, b.ledgerRows(t), n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
}

// check asserts that messages 0..n-1 were each applied exactly once: the
// balances are their sums, the ledger has one row per message, and
// transaction_record one row per message.
func (b *bank) check(t testing.TB, n int) {
	t.Helper()
	want := make([]int64, nAccounts)
	for i := range n {
		want[i%nAccounts] += int64(i + 1)
	}
	for a := range nAccounts {
		if got := b.e.QueryInt(t, "SELECT balance FROM "+b.accounts+" WHERE id = ?", a); got != want[a] {
			t.Errorf("account %d: balance %d, want %d", a, got, want[a])
		}
	}
	if rows, distinct := b.ledgerRows(t), b.e.QueryInt(t, "SELECT COUNT(DISTINCT idx) FROM "+b.ledger); rows != int64(n) || distinct != int64(n) {
		t.Errorf("ledger: %d rows for %d distinct messages, want %d of each", rows, distinct, n)
	}
	if got := b.e.QueryInt(t, "SELECT COUNT(*) FROM "+b.records); got != int64(n) {
		t.Errorf("transaction_record: %d rows, want %d", got, n)
	}
}

func v5Config(p *proxytest.Env, group string) *rmq.Config { return v5ConfigAt(p.Endpoint, group) }

func v5ConfigAt(endpoint, group string) *rmq.Config {
	return &rmq.Config{Endpoint: endpoint, ConsumerGroup: group, Credentials: &credentials.SessionCredentials{}}
}

// v5Producer returns a started v5 producer for topics.
func v5Producer(t *testing.T, p *proxytest.Env, topics ...string) rmq.Producer {
	t.Helper()
	pr, err := rmq.NewProducer(v5Config(p, ""), rmq.WithTopics(topics...))
	if err != nil {
		t.Fatal(err)
	}
	startRetrying(t, pr.Start)
	t.Cleanup(func() { _ = pr.GracefulStop() })
	return pr
}

// startRetrying calls start until it succeeds: a new topic's route reaches
// the name server with the broker's next registration.
func startRetrying(t *testing.T, start func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := start()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("start: %v", err)
		}
		time.Sleep(time.Second)
	}
}

func v2Producer(t *testing.T, p *proxytest.Env) rocketmq.Producer {
	t.Helper()
	pr, err := rocketmq.NewProducer(producer.WithNameServer([]string{p.NameServer()}), producer.WithRetry(2),
		producer.WithInstanceName(fmt.Sprintf("p-%d", time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pr.Shutdown() })
	return pr
}

func sendV2(t *testing.T, pr rocketmq.Producer, msgs ...*primitive.Message) {
	t.Helper()
	for _, m := range msgs {
		// The broker's flow control (TIMEOUT_CLEAN_QUEUE) rejects sends
		// when the machine is busy; a resend of the same message keeps its
		// UNIQ_KEY, so it is at worst a duplicate the consumer skips.
		for try := 0; ; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := pr.SendSync(ctx, m)
			cancel()
			if err == nil {
				break
			}
			if try == 5 {
				t.Fatalf("v2 send: %v", err)
			}
			time.Sleep(time.Second)
		}
	}
}

func sendV5(t *testing.T, pr rmq.Producer, msgs ...*rmq.Message) {
	t.Helper()
	for _, m := range msgs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := pr.Send(ctx, m)
		cancel()
		if err != nil {
			t.Fatalf("v5 send: %v", err)
		}
	}
}
