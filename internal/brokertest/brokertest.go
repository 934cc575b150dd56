// Package brokertest gives tests the real Apache RocketMQ named by
// ROCKETMQ_NAMESRV (scripts/testdb.sh starts a throwaway one and sets it):
// topic creation through rocketmq-client-go's admin API, names unique to a
// run (the broker is shared by every test of the run, and by packages
// tested in parallel), and the broker queries the client's admin API lacks.
//
// Tests that need it skip, visibly, when ROCKETMQ_NAMESRV is unset, unless
// REQUIRE_APACHE_ROCKETMQ=1 (scripts/test.sh sets it): then they fail, so
// that CI cannot pass without having run them.
//
// It is for tests only: non-test code must not import it.
package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/remoting"
)

// The environment variables the package reads.
const (
	EnvNameServer = "ROCKETMQ_NAMESRV"        // host:port of the name server
	EnvProxy      = "ROCKETMQ_PROXY"          // host:port of the RocketMQ 5 proxy's gRPC service
	EnvRequire    = "REQUIRE_APACHE_ROCKETMQ" // "1": fail instead of skipping without it
)

// Broker is the Apache RocketMQ a test runs against: a name server and the
// one broker registered with it.
type Broker struct {
	nameServer string
	addr       string // the broker's
	version    string
}

// Version returns the broker's release, as "5.3.3".
func (b *Broker) Version() string { return b.version }

// NameServer returns the name server's address, host:port.
func (b *Broker) NameServer() string { return b.nameServer }

// Addr returns the broker's address, host:port.
func (b *Broker) Addr() string { return b.addr }

var (
	mu     sync.Mutex
	cached = map[string]*Broker{} // by name server address
)

// Apache returns the Apache RocketMQ named by ROCKETMQ_NAMESRV. Without it
// the test is skipped, or fails when REQUIRE_APACHE_ROCKETMQ=1.
func Apache(t testing.TB) *Broker {
	t.Helper()
	ns := os.Getenv(EnvNameServer)
	if ns == "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s=1 but %s is not set: run under scripts/testdb.sh", EnvRequire, EnvNameServer)
		}
		t.Skipf("%s not set: skipping the run on Apache RocketMQ (run under scripts/testdb.sh)", EnvNameServer)
	}
	mu.Lock()
	defer mu.Unlock()
	if b := cached[ns]; b != nil {
		return b
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Every broker serves TBW102, the template of automatically created
	// topics; its route names the broker. The route's broker address table
	// has numeric keys, which encoding/json refuses.
	route, err := remoting.Route(ctx, ns, "TBW102")
	if err != nil {
		t.Fatalf("%s=%s: no route from the name server: %v", EnvNameServer, ns, err)
	}
	m := regexp.MustCompile(`"brokerAddrs":\{0:"([^"]+)"`).FindSubmatch(route)
	if m == nil {
		t.Fatalf("%s=%s: no master broker in the route %s", EnvNameServer, ns, route)
	}
	b := &Broker{nameServer: ns, addr: string(m[1])}
	v, err := remoting.BrokerVersion(ctx, b.addr)
	if err != nil {
		t.Fatalf("broker %s: %v", b.addr, err)
	}
	b.version = strings.ReplaceAll(strings.TrimPrefix(v, "V"), "_", ".")
	cached[ns] = b
	return b
}

// Proxy returns the gRPC address of the Apache RocketMQ proxy named by
// ROCKETMQ_PROXY, for the v5 clients (scripts/testdb.sh runs the broker
// inside rocketmq-proxy in local mode), and the broker behind it. Without
// it the test is skipped, or fails when REQUIRE_APACHE_ROCKETMQ=1.
func Proxy(t testing.TB) (endpoint string, b *Broker) {
	t.Helper()
	endpoint = os.Getenv(EnvProxy)
	if endpoint == "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s=1 but %s is not set: run under scripts/testdb.sh", EnvRequire, EnvProxy)
		}
		t.Skipf("%s not set: skipping the run on a real Apache RocketMQ proxy (run under scripts/testdb.sh)", EnvProxy)
	}
	return endpoint, Apache(t)
}

// UniqueName returns a topic or group name unique to this run of the test:
// prefix and a random suffix, in the characters RocketMQ allows.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	s := make([]byte, 4)
	_, _ = rand.Read(s)
	return prefix + "_" + hex.EncodeToString(s)
}

// CreateTopic creates topic with queues queues through rocketmq-client-go's
// admin API, and waits until the name server serves its route (clients
// refuse to start on a topic without one).
func (b *Broker) CreateTopic(t testing.TB, topic string, queues int) {
	t.Helper()
	a, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{b.nameServer})))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.CreateTopic(ctx, admin.WithTopicCreate(topic), admin.WithBrokerAddrCreate(b.addr),
		admin.WithReadQueueNums(queues), admin.WithWriteQueueNums(queues)); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	for {
		route, err := remoting.Route(ctx, b.nameServer, topic)
		if err == nil && strings.Contains(string(route), fmt.Sprintf(`"writeQueueNums":%d`, queues)) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("topic %s: no route after creating it: %v %s", topic, err, route)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SetRetryWritable makes the broker accept (true) or refuse (false, with
// NO_PERMISSION) the send-backs of group, by making its one-queue retry
// topic writable or read-only: a real refusal, and one that no other
// group of the shared broker sees.
func (b *Broker) SetRetryWritable(t testing.TB, group string, writable bool) {
	t.Helper()
	perm := remoting.PermRead
	if writable {
		perm = remoting.PermReadWrite
	}
	call(t, "set the retry topic's permission", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, remoting.CreateTopicPerm(ctx, b.addr, "%RETRY%"+group, 1, perm)
	})
}

// call runs f with a short deadline and fails the test on an error.
func call[T any](t testing.TB, what string, f func(ctx context.Context) (T, error)) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := f(ctx)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// CommittedOffset returns the offset group committed for queue of topic,
// or -1 when the broker says it has none (Apache RocketMQ answers 0 instead
// while the queue still holds its first message).
func (b *Broker) CommittedOffset(t testing.TB, group, topic string, queue int) int64 {
	t.Helper()
	return call(t, "query consumer offset", func(ctx context.Context) (int64, error) {
		off, ok, err := remoting.CommittedOffset(ctx, b.addr, group, topic, queue)
		if !ok {
			off = -1
		}
		return off, err
	})
}

// SetOffset stores offset as group's committed offset for queue of topic,
// as a consumer's commit does (a running consumer overwrites it with its
// own at its next commit).
func (b *Broker) SetOffset(t testing.TB, group, topic string, queue int, offset int64) {
	t.Helper()
	call(t, "update consumer offset", func(ctx context.Context) (*remoting.Response, error) {
		return remoting.Expect(ctx, b.addr, remoting.UpdateConsumerOffset, map[string]string{
			"consumerGroup": group,
			"topic":         topic,
			"queueId":       fmt.Sprint(queue),
			"commitOffset":  fmt.Sprint(offset),
		}, nil, remoting.Success)
	})
}

// MaxOffset returns the offset past the last message of queue of topic, 0
// for a topic the broker does not have. It lags a moment behind the sends
// the broker has answered: the queue index is built from the commit log
// asynchronously.
func (b *Broker) MaxOffset(t testing.TB, topic string, queue int) int64 {
	t.Helper()
	return call(t, "get max offset", func(ctx context.Context) (int64, error) {
		return remoting.MaxOffset(ctx, b.addr, topic, queue)
	})
}

// ConsumerIDs returns the client ids of group's connected consumers.
func (b *Broker) ConsumerIDs(t testing.TB, group string) []string {
	t.Helper()
	return call(t, "get consumer list", func(ctx context.Context) ([]string, error) {
		return remoting.ConsumerIDs(ctx, b.addr, group)
	})
}

// ResetOffsets rewinds group's offsets of topic to the first message stored
// at or after ts, as mqadmin resetOffsetByTime does: the broker stores the
// new offsets and tells the group's running consumers to take them.
func (b *Broker) ResetOffsets(t testing.TB, group, topic string, ts time.Time) {
	t.Helper()
	call(t, "reset offsets", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, remoting.ResetOffsets(ctx, b.addr, group, topic, ts)
	})
}
