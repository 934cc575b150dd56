package proxytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// The environment variables that name a running proxy (Proxy.Env).
const (
	EnvProxy      = "ROCKETMQ_PROXY"          // the proxy's gRPC host:port
	EnvNameServer = "ROCKETMQ_NAMESRV"        // its name server, for remoting clients
	EnvBroker     = "ROCKETMQ_BROKER"         // the broker's remoting host:port
	EnvLib        = "ROCKETMQ_LIB"            // the jars, for mqadmin
	EnvRequire    = "REQUIRE_APACHE_ROCKETMQ" // "1": fail instead of skipping without a proxy
)

// Env is the proxy a test runs against.
type Env struct {
	Endpoint, NameServer, Broker, Lib string
}

// FromEnv returns the proxy named by the environment. Without one the test
// is skipped, visibly, or fails when REQUIRE_APACHE_ROCKETMQ=1.
func FromEnv(t testing.TB) *Env {
	t.Helper()
	e := &Env{Endpoint: os.Getenv(EnvProxy), NameServer: os.Getenv(EnvNameServer), Broker: os.Getenv(EnvBroker), Lib: os.Getenv(EnvLib)}
	if e.Endpoint == "" || e.NameServer == "" || e.Broker == "" || e.Lib == "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s=1 but %s, %s, %s or %s is not set: run under scripts/test.sh (exactlyoncev5/internal/withproxy)", EnvRequire, EnvProxy, EnvNameServer, EnvBroker, EnvLib)
		}
		t.Skipf("%s not set: skipping the run on a real Apache RocketMQ proxy (run under exactlyoncev5/internal/withproxy)", EnvProxy)
	}
	return e
}

// UniqueName returns prefix and a random suffix, a topic or group name of
// this run only (the proxy is shared by the whole test run).
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// CreateTopic creates a normal topic with queues queues through
// rocketmq-client-go's admin API. The v5 clients refuse to start on a topic
// without a route; the name server has it at the broker's next
// registration, which the clients' retries wait for.
func (e *Env) CreateTopic(t testing.TB, topic string, queues int) {
	t.Helper()
	a, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{e.NameServer})))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.CreateTopic(ctx, admin.WithTopicCreate(topic), admin.WithBrokerAddrCreate(e.Broker),
		admin.WithReadQueueNums(queues), admin.WithWriteQueueNums(queues)); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// CreateFIFO creates topic as a FIFO topic (message.type=FIFO, which the
// proxy checks FIFO messages against) and group as an orderly group (the
// proxy tells its consumers to consume FIFO), through mqadmin.
func (e *Env) CreateFIFO(t testing.TB, topic, group string, queues int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q := strconv.Itoa(queues)
	for _, args := range [][]string{
		{"updateTopic", "-n", e.NameServer, "-b", e.Broker, "-t", topic, "-r", q, "-w", q, "-a", "+message.type=FIFO"},
		{"updateSubGroup", "-n", e.NameServer, "-b", e.Broker, "-g", group, "-o", "true"},
	} {
		out, err := MQAdmin(ctx, e.Lib, args...)
		if err != nil || !strings.Contains(out, "success") {
			t.Fatalf("mqadmin %v: %v\n%s", args, err, out)
		}
	}
}
