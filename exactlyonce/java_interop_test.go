package exactlyonce

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/brokertest"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// Interop with Java producers: messages sent to Apache RocketMQ by Apache's
// own Java client (singles, a resend of one message, a batch sent twice) and
// by Alibaba's ons-client with EXACTLYONCE_DELIVERY are applied exactly once
// by our consumer, keyed as the Java ExactlyOnceConsumer keys them. The Java
// side is interop/java, run through scripts/java-interop.sh. Alibaba's
// ExactlyOnceConsumer itself is not on Maven Central, so the migration
// between it and this library cannot run here (docs/migrating-from-java.md).

// javaSend is one send of the Java harness: a message can be sent more than
// once (a resend), with the same msgId each time.
type javaSend struct {
	scenario string // "apache-single", "apache-resend", "apache-batch", "ons-exactlyonce"
	body     string // "name:account:amount", the name unique per message
	msgID    string // the UNIQ_KEY the producer set
}

// javaSuite records TestJavaInterop for the summary ("e2e: java interop on
// apache-rocketmq 5.3.3: ok (...)"), which TestMain reports.
var javaSuite = brokertest.NewSuite("java interop")

// TestJavaInterop runs the Java producers once into one topic, then
// consumes the topic with a new group per database.
func TestJavaInterop(t *testing.T) {
	skipIfRace(t)
	javaSuite.Record(t, "apache")
	b := &apacheBroker{Broker: brokertest.Apache(t), queues: map[string]int{}}
	topic := unique(t, "java_interop")
	b.createTopic(t, topic, 2)
	sends := runJavaProducers(t, b.NameServer(), topic)
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		testJavaInterop(t, b, e, topic, sends)
	})
}

// runJavaProducers runs interop.Main of the Java harness against the name
// server and returns its sends. Without a JDK or Maven the test is skipped,
// unless REQUIRE_APACHE_ROCKETMQ=1: then the script installs them (as root)
// or the test fails, as without the broker.
func runJavaProducers(t *testing.T, nameServer, topic string) []javaSend {
	t.Helper()
	if os.Getenv(brokertest.EnvRequire) != "1" {
		for _, tool := range []string{"java", "javac", "mvn"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s not installed: skipping the Java interop test (scripts/java-interop.sh installs it as root)", tool)
			}
		}
	}
	// The first run builds the harness and fetches its jars.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../scripts/java-interop.sh", "interop.Main", nameServer, topic)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("Java producers: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.Bytes())
	}
	var sends []javaSend
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) != 3 {
			t.Fatalf("Java producers: unexpected line %q", line)
		}
		sends = append(sends, javaSend{scenario: f[0], body: f[1], msgID: f[2]})
	}
	if len(sends) == 0 {
		t.Fatalf("Java producers sent nothing; stderr:\n%s", stderr.Bytes())
	}
	return sends
}

// distinctMessages returns the first send of each message: a message is a
// msgId with its body (a resend of one message repeats both; ons-client's
// resend of one message object gets a new msgId, so it is a new message).
func distinctMessages(sends []javaSend) []javaSend {
	seen := map[javaSend]bool{}
	var out []javaSend
	for _, s := range sends {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// parseBody splits a harness body, "name:account:amount".
func parseBody(body string) (name, account string, amount int64, err error) {
	f := strings.Split(body, ":")
	if len(f) != 3 {
		return "", "", 0, fmt.Errorf("body %q: want name:account:amount", body)
	}
	amount, err = strconv.ParseInt(f[2], 10, 64)
	return f[0], f[1], amount, err
}

// keyPattern matches the transaction_record message_id the Java
// ExactlyOnceConsumer would store for s in group: the msgId, or for an
// exactly-once producer EXTEND_UNIQ_INFO, the msgId followed by the
// producer's random int in 8 hex digits; then "#" and the group. (The
// harness's batch members carry their own msgId as EXTEND_UNIQ_INFO.)
func keyPattern(s javaSend, group string) *regexp.Regexp {
	suffix := ""
	if strings.HasPrefix(s.scenario, "ons-") {
		suffix = "[0-9A-F]{8}"
	}
	return regexp.MustCompile("^" + regexp.QuoteMeta(s.msgID) + suffix + "#" + regexp.QuoteMeta(group) + "$")
}

// javaTableFixture is newFixture with, on MySQL, the Java client's own
// transaction_record in place of ours (its DDL as in
// mqdatasource/duplicate_test.go: another unique key name, no load_key),
// opened with the schema check on: our consumer on the table the Java
// consumer created. Its character set is utf8mb4, as the DataSource
// requires (docs/migrating-from-java.md: ALTER a utf8 or latin1 one first).
func javaTableFixture(t *testing.T, e *dbtest.Env) *fixture {
	t.Helper()
	if e.Name != "mysql" {
		return newFixture(t, e)
	}
	f := &fixture{Env: e, records: dbtest.UniqueName(t, "javatr"), applied: dbtest.UniqueName(t, "applied")}
	t.Cleanup(func() {
		e.Exec(t, "DROP TABLE IF EXISTS "+f.records)
		e.Exec(t, "DROP TABLE IF EXISTS "+f.applied)
	})
	e.Exec(t, "CREATE TABLE "+f.records+` (
  consumer_group varchar(128) NOT NULL DEFAULT '',
  message_id varchar(255) NOT NULL DEFAULT '',
  topic_name varchar(255) NOT NULL DEFAULT '',
  ctime bigint(20) NOT NULL,
  queue_id int(11) NOT NULL,
  `+"`offset`"+` bigint(20) NOT NULL,
  broker_name varchar(255) NOT NULL DEFAULT '',
  id bigint(20) NOT NULL AUTO_INCREMENT,
  PRIMARY KEY (id),
  UNIQUE KEY message_id_unique_key (message_id),
  KEY ctime_key (ctime)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`)
	e.Exec(t, "CREATE TABLE "+f.applied+" (grp VARCHAR(64) NOT NULL, k VARCHAR(200) NOT NULL, seq INT NOT NULL)")
	// Its case-insensitive collation draws an expected Warn on every check.
	ds, err := mqdatasource.Open(e.Driver, e.DSN, mqdatasource.WithTable(f.records),
		mqdatasource.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("Open on the Java table: %v", err)
	}
	t.Cleanup(func() { ds.Close() }) // before the tables are dropped
	f.ds = ds
	return f
}

// testJavaInterop consumes every send with a new group doing a
// non-idempotent business transaction (balance = balance + amount, and one
// insert), then checks the final state: each message applied once, one
// record per message in the Java key format; then purges the records.
func testJavaInterop(t *testing.T, b *apacheBroker, e *dbtest.Env, topic string, sends []javaSend) {
	f := javaTableFixture(t, e)
	accounts := dbtest.UniqueName(t, "account")
	e.Exec(t, "CREATE TABLE "+accounts+" (id VARCHAR(32) PRIMARY KEY, balance BIGINT NOT NULL)")
	t.Cleanup(func() { e.Exec(t, "DROP TABLE IF EXISTS "+accounts) })
	messages := distinctMessages(sends)
	wantBalance := map[string]int64{}
	wantApplied := map[string]int64{} // applications by message name
	batchIDs := map[string]string{}   // a batch member's own msgId, by body
	for _, s := range messages {
		name, account, amount, err := parseBody(s.body)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := wantBalance[account]; !ok {
			e.Exec(t, e.Rebind("INSERT INTO "+accounts+" (id, balance) VALUES (?, 0)"), account)
		}
		wantBalance[account] += amount
		wantApplied[name]++
		if s.scenario == "apache-batch" {
			batchIDs[s.body] = s.msgID
		}
	}

	group := unique(t, "java_interop")
	start := time.Now()
	var mu sync.Mutex
	arrivedAs := map[string]string{} // the UNIQ_KEY a batch member arrived with, by body
	c := newConsumer(t, f, b, group)
	startTx(t, c, topic, func(ctx context.Context, tx *sql.Tx, m *primitive.MessageExt) error {
		name, account, amount, err := parseBody(string(m.Body))
		if err != nil {
			return err
		}
		if _, ok := batchIDs[string(m.Body)]; ok {
			mu.Lock()
			arrivedAs[string(m.Body)] = m.MsgId
			mu.Unlock()
		}
		if _, err := tx.ExecContext(ctx, f.Rebind("UPDATE "+accounts+" SET balance = balance + ? WHERE id = ?"), amount, account); err != nil {
			return err
		}
		return f.apply(ctx, tx, group, name, int(m.QueueOffset))
	})
	// Every stored copy, resends included, has been through the listener.
	eventuallyCommitted(t, b, c, group, topic, int64(len(sends)))

	// Why the harness stamps its batch members (ApacheProducer.java): they
	// arrive with the batch's UNIQ_KEY, not their own, so without
	// EXTEND_UNIQ_INFO the members of one send would share one key.
	mu.Lock()
	for body, id := range arrivedAs {
		if id == batchIDs[body] {
			t.Errorf("batch member %s arrived with its own UNIQ_KEY %s: the broker no longer overrides it; update docs/migrating-from-java.md", body, id)
		}
	}
	mu.Unlock()

	for name, n := range wantApplied {
		if got := e.QueryInt(t, f.Rebind("SELECT COUNT(*) FROM "+f.applied+" WHERE k = ?"), name); got != n {
			t.Errorf("%s applied %d times, want %d", name, got, n)
		}
	}
	if got, want := f.QueryInt(t, "SELECT COUNT(*) FROM "+f.applied), int64(len(messages)); got != want {
		t.Errorf("%d applications, want %d", got, want)
	}
	for account, w := range wantBalance {
		if got := e.QueryInt(t, e.Rebind("SELECT balance FROM "+accounts+" WHERE id = ?"), account); got != w {
			t.Errorf("balance of %s = %d, want %d", account, got, w)
		}
	}

	rows, err := e.Admin.Query("SELECT message_id, ctime FROM " + f.records)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	matched := make([]int, len(messages)) // records per message
	for rows.Next() {
		var id string
		var ctime int64
		if err := rows.Scan(&id, &ctime); err != nil {
			t.Fatal(err)
		}
		// Epoch milliseconds, as the Java consumer writes it.
		if ctime < start.Add(-time.Second).UnixMilli() || ctime > time.Now().Add(time.Second).UnixMilli() {
			t.Errorf("record %s: ctime %d is not the claim time in epoch milliseconds", id, ctime)
		}
		n := 0
		for i, s := range messages {
			if keyPattern(s, group).MatchString(id) {
				matched[i]++
				n++
			}
		}
		if n != 1 {
			t.Errorf("record %s matches %d of the sent messages, want 1", id, n)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for i, s := range messages {
		if matched[i] != 1 {
			t.Errorf("message %s (%s, msgId %s): %d records, want 1", s.body, s.scenario, s.msgID, matched[i])
		}
	}

	// Our purge on the (Java) table, by ctime in milliseconds: nothing is
	// older than the run, everything is older than now.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range []struct {
		before time.Time
		want   int64
	}{{start.Add(-time.Second), 0}, {time.Now().Add(time.Second), int64(len(messages))}} {
		if n, err := f.ds.Purge(ctx, p.before); err != nil || n != p.want {
			t.Errorf("Purge(%v) = %d, %v; want %d records deleted", p.before, n, err, p.want)
		}
	}
}
