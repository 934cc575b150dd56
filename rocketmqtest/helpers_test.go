package rocketmqtest_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/rlog"
)

func TestMain(m *testing.M) {
	rlog.SetLogLevel("fatal")
	os.Exit(m.Run())
}

// eventually polls cond until it holds or the deadline passes.
// consumerHeartbeat is a HEART_BEAT body for a consumer of each group, with
// no subscriptions: it adds the groups to the broker's subscription-group
// table, as a consumer's first heartbeat does, so that their offset commits
// are taken.
func consumerHeartbeat(groups ...string) []byte {
	var b strings.Builder
	b.WriteString(`{"clientID":"hb","producerDataSet":[],"consumerDataSet":[`)
	for i, g := range groups {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"groupName":%q,"subscriptionDataSet":[]}`, g)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
