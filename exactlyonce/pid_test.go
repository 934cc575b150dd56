package exactlyonce

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// needUnshare skips the test, saying why, unless new pid namespaces can
// be made here (unshare(1), as root, as CI runs the tests).
func needUnshare(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("SKIPPED: unshare(1) not found: the two-producer pid collision needs pid namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: not root: unshare --pid needs root (CI runs the tests as root)")
	}
	if out, err := exec.Command("unshare", "--pid", "--fork", "true").CombinedOutput(); err != nil {
		t.Skipf("SKIPPED: unshare --pid --fork fails here: %v %s", err, out)
	}
}

// buildHelper builds the command in testdata/name and returns its path.
func buildHelper(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/"+name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/%s: %v\n%s", name, err, out)
	}
	return bin
}

// TestIntegrationTwoProducersSamePid: two producer processes, each pid 1 in
// a pid namespace of its own on this host, send 200 distinct messages each
// at the same moment. Through the plain client they issue the same
// UNIQ_KEYs (IP, pid cut to 16 bits, second, counter), so the consumer's
// default key makes messages of one producer duplicates of the other's:
// distinct messages are dropped (the 300 of 600). Through
// WrapProducer every message carries its own EXTEND_UNIQ_INFO, though the
// UNIQ_KEYs still repeat, and all 400 are applied exactly once, on MariaDB
// and PostgreSQL. The producers send to rocketmqtest's in-process broker;
// the messages it stored (decoded as a pull returns them) are handed to the
// listener as the consumer would hand them over, without the PushConsumer,
// whose own data races would keep the test from running under -race.
func TestIntegrationTwoProducersSamePid(t *testing.T) {
	needUnshare(t)
	envs := dbtest.Envs(t)
	bin := buildHelper(t, "pidproducer")
	const n = 200
	for _, stamp := range []bool{false, true} {
		name := "plain client"
		if stamp {
			name = "WrapProducer"
		}
		t.Run(name, func(t *testing.T) {
			b := rocketmqtest.NewBroker(t, rocketmqtest.WithDelayScale(time.Millisecond))
			const topic = "pids"
			b.CreateTopic(topic, 2)
			b.CreateTopic(topic+"-warmup", 1)
			// Both start just after a second boundary, so that their
			// sends fall into the same seconds.
			start := time.Now().Truncate(time.Second).Add(2*time.Second + 50*time.Millisecond)
			var wg sync.WaitGroup
			outs := make([]string, 2)
			for i, tag := range []string{"A", "B"} {
				args := []string{"--pid", "--fork", bin, "-namesrv", b.Addr(), "-topic", topic, "-tag", tag,
					"-n", "200", "-start", itoa(start.UnixMilli())}
				if stamp {
					args = append(args, "-stamp")
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					out, err := exec.Command("unshare", args...).CombinedOutput()
					outs[i] = string(out)
					if err != nil {
						t.Errorf("producer %s: %v\n%s", tag, err, out)
					}
				}()
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			for i, out := range outs {
				if !strings.Contains(out, "pid=1 sent=200") {
					t.Fatalf("producer %d: %q, want pid=1 sent=200", i, out)
				}
			}
			msgs := b.Messages(topic)
			if len(msgs) != 2*n {
				t.Fatalf("%d messages stored, want %d", len(msgs), 2*n)
			}
			uniq, stamps := map[string]int{}, map[string]int{}
			for _, m := range msgs {
				uniq[m.GetProperty(primitive.PropertyUniqueClientMessageIdKeyIndex)]++
				if s := m.GetProperty(PropertyExtendUniqInfo); s != "" {
					stamps[s]++
				}
			}
			shared := 2*n - len(uniq)
			t.Logf("%d of %d messages share their UNIQ_KEY with the other producer's", 2*shared, 2*n)
			if shared == 0 {
				t.Fatal("no UNIQ_KEY repeated between the two pid-1 producers: the test shows nothing")
			}
			if stamp && len(stamps) != 2*n {
				t.Fatalf("%d distinct EXTEND_UNIQ_INFO among %d stamped messages", len(stamps), 2*n)
			}
			for _, e := range envs {
				t.Run(e.Name, func(t *testing.T) {
					f := newFixture(t, e)
					stats := &Stats{}
					l := Listener(f.ds, "pid_group", func(ctx context.Context, m *primitive.MessageExt) error {
						_, err := f.ds.DB().ExecContext(ctx, f.Rebind("INSERT INTO "+f.applied+" (grp, k, seq) VALUES (?, ?, ?)"), "pid_group", string(m.Body), 0)
						return err
					}, quiet, WithMetrics(stats))
					for _, m := range msgs {
						deliverUntilOK(t, l, "pid_group", false, func() []*primitive.MessageExt { return []*primitive.MessageExt{m} })
					}
					rows, distinct := f.appliedCount(t)
					if rows != distinct {
						t.Fatalf("%d applications of %d messages: one applied twice", rows, distinct)
					}
					if stamp {
						if rows != 2*n {
							t.Fatalf("stamped: %d of %d messages applied: %v", rows, 2*n, stats.Snapshot())
						}
						return
					}
					lost := 2*n - int(rows)
					t.Logf("plain client: %d of %d distinct messages dropped as duplicates: %v", lost, 2*n, stats.Snapshot())
					if lost != shared {
						t.Fatalf("plain client: %d dropped, want %d (one per shared UNIQ_KEY)", lost, shared)
					}
				})
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
