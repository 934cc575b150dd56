// Package proxytest gives exactlyoncev5's end-to-end tests the real Apache
// RocketMQ proxy that scripts/testdb.sh starts (internal/throwaway with
// WithProxy: the broker runs inside rocketmq-proxy in local mode) and names
// in ROCKETMQ_PROXY, beside ROCKETMQ_NAMESRV for the remoting clients
// (internal/brokertest). Tests skip, visibly, without it, and fail under
// REQUIRE_APACHE_ROCKETMQ=1. It is for tests only.
package proxytest

import (
	"context"
	"testing"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/brokertest"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/remoting"
)

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
	endpoint, b := brokertest.Proxy(t)
	return &Env{Broker: b, Endpoint: endpoint}
}

// UniqueName returns a topic or group name of this run only.
func UniqueName(t testing.TB, prefix string) string { return brokertest.UniqueName(t, prefix) }

// CreateFIFO creates topic as a FIFO topic (attribute message.type=FIFO,
// which the proxy checks FIFO messages against) and group as an orderly
// group (the proxy tells its consumers to consume FIFO), and waits for the
// topic's route: the v5 clients refuse a topic without one.
func (e *Env) CreateFIFO(t testing.TB, topic, group string, queues int) {
	t.Helper()
	if _, err := remoting.EnsureFIFOTopic(context.Background(), e.NameServer(), topic, group, queues); err != nil {
		t.Fatalf("create FIFO topic %s and orderly group %s: %v", topic, group, err)
	}
}
