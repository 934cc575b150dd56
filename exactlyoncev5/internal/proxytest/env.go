// Package proxytest gives exactlyoncev5's end-to-end tests the real Apache
// RocketMQ proxy that scripts/testdb.sh starts (internal/throwaway with
// WithProxy: the broker runs inside rocketmq-proxy in local mode) and names
// in ROCKETMQ_PROXY, beside ROCKETMQ_NAMESRV for the remoting clients
// (internal/brokertest). Tests skip, visibly, without it, and fail under
// REQUIRE_APACHE_ROCKETMQ=1. It is for tests only.
package proxytest

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/brokertest"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/remoting"
)

// EnvProxy names the proxy's gRPC address, host:port.
const EnvProxy = "ROCKETMQ_PROXY"

// Env is the proxy a test runs against, and the broker behind it.
type Env struct {
	*brokertest.Broker
	Endpoint string // the proxy's gRPC address, for the v5 clients
}

// FromEnv returns the proxy named by ROCKETMQ_PROXY and its broker
// (ROCKETMQ_NAMESRV). Without them the test is skipped, or fails when
// REQUIRE_APACHE_ROCKETMQ=1.
func FromEnv(t testing.TB) *Env {
	t.Helper()
	endpoint := os.Getenv(EnvProxy)
	if endpoint == "" {
		if os.Getenv(brokertest.EnvRequire) == "1" {
			t.Fatalf("%s=1 but %s is not set: run under scripts/testdb.sh", brokertest.EnvRequire, EnvProxy)
		}
		t.Skipf("%s not set: skipping the run on a real Apache RocketMQ proxy (run under scripts/testdb.sh)", EnvProxy)
	}
	return &Env{Broker: brokertest.Apache(t), Endpoint: endpoint}
}

// UniqueName returns a topic or group name of this run only.
func UniqueName(t testing.TB, prefix string) string { return brokertest.UniqueName(t, prefix) }

// Remoting request codes the Go admin API does not send (RequestCode in the
// Java broker).
const updateAndCreateSubscriptionGroup = 200

// CreateFIFO creates topic as a FIFO topic (attribute message.type=FIFO,
// which the proxy checks FIFO messages against) and group as an orderly
// group (the proxy tells its consumers to consume FIFO), with remoting
// requests to the broker.
func (e *Env) CreateFIFO(t testing.TB, topic, group string, queues int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := strconv.Itoa(queues)
	if _, err := remoting.Expect(ctx, e.Addr(), remoting.UpdateAndCreateTopic, map[string]string{
		"topic":           topic,
		"defaultTopic":    "TBW102",
		"readQueueNums":   n,
		"writeQueueNums":  n,
		"perm":            "6",
		"topicFilterType": "SINGLE_TAG",
		"topicSysFlag":    "0",
		"order":           "false",
		"attributes":      "+message.type=FIFO",
	}, nil, remoting.Success); err != nil {
		t.Fatalf("create FIFO topic %s: %v", topic, err)
	}
	body, err := json.Marshal(map[string]any{
		"groupName":                      group,
		"consumeEnable":                  true,
		"consumeFromMinEnable":           true,
		"consumeBroadcastEnable":         true,
		"consumeMessageOrderly":          true,
		"retryQueueNums":                 1,
		"retryMaxTimes":                  16,
		"brokerId":                       0,
		"whichBrokerWhenConsumeSlowly":   1,
		"notifyConsumerIdsChangedEnable": true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remoting.Expect(ctx, e.Addr(), updateAndCreateSubscriptionGroup, nil, body, remoting.Success); err != nil {
		t.Fatalf("create orderly group %s: %v", group, err)
	}
	// The v5 clients refuse a topic without a route.
	for {
		if _, err := remoting.Route(ctx, e.NameServer(), topic); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("FIFO topic %s: no route after creating it", topic)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
