package rocketmqtest_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// brokerGoroutines returns the stacks of goroutines running code of package
// rocketmqtest (not of its tests).
func brokerGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "rocketmq-exactlyonce/rocketmqtest.") && !strings.Contains(g, "brokerGoroutines") {
			out = append(out, g)
		}
	}
	return out
}

func TestNoGoroutineLeftAfterClose(t *testing.T) {
	if left := brokerGoroutines(); len(left) > 0 {
		t.Skipf("another test's broker is still running: %d goroutines", len(left))
	}
	b, err := rocketmqtest.New(rocketmqtest.WithTopic("t", 2))
	if err != nil {
		t.Fatal(err)
	}
	// Open connections, one with a held long-polling pull, one idle, one
	// half-written frame; a pending delayed message and delayed response.
	held := rawDial(b.Addr())
	defer held.close()
	go func() {
		_, _ = held.call(&rocketmqtest.Command{Code: rocketmqtest.CodePullMessage,
			ExtFields: map[string]string{"consumerGroup": "g", "topic": "t", "queueId": "0", "queueOffset": "0",
				"maxMsgNums": "8", "sysFlag": "6", "commitOffset": "0", "suspendTimeoutMillis": "60000",
				"subscription": "*", "expressionType": "TAG"}})
	}()
	idle := rawDial(b.Addr())
	defer idle.close()
	half := rawDial(b.Addr())
	defer half.close()
	_, _ = half.nc.Write([]byte{0, 0, 1, 0, 0})
	b.DelayResponses(rocketmqtest.AnyCode, time.Hour)
	sender := rawDial(b.Addr())
	defer sender.close()
	go func() {
		_, _ = sender.call(&rocketmqtest.Command{Code: rocketmqtest.CodeSendMessage, Body: []byte("later"),
			ExtFields: map[string]string{"producerGroup": "p", "topic": "t", "queueId": "0", "sysFlag": "0",
				"bornTimestamp": "1", "flag": "0", "properties": "DELAY\x0118\x02"}})
	}()
	eventually(t, 5*time.Second, "delayed message stored", func() bool { return len(b.Messages("SCHEDULE_TOPIC_XXXX")) == 1 })
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	again := rawDial(b.Addr())
	defer again.close()

	b.Close()
	b.Close() // idempotent
	// Close waits for every goroutine's WaitGroup Done, which each runs as
	// its last deferred call: a goroutine may still be in its epilogue for a
	// moment after Close returns, so allow it that moment.
	deadline := time.Now().Add(2 * time.Second)
	left := brokerGoroutines()
	for len(left) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		left = brokerGoroutines()
	}
	if len(left) > 0 {
		t.Fatalf("%d goroutines left after Close:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}
