package throwaway

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/remoting"
)

func TestApacheRocketMQ(t *testing.T) {
	// Opt-in like TestServers: it may apt-get install Java and Maven and
	// fetch ~85 MB from Maven Central.
	if os.Getenv("THROWAWAY_TEST") == "" {
		t.Skip("starts (and may install and download) Apache RocketMQ: set THROWAWAY_TEST=1 (scripts/test.sh does)")
	}
	begin := time.Now()
	r, err := ApacheRocketMQ(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	t.Logf("Apache RocketMQ %s up in %v: name server %s, broker %s", ApacheRocketMQVersion, time.Since(begin).Round(time.Millisecond), r.NameServer(), r.Broker())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := remoting.CreateTopic(ctx, r.Broker(), "throwaway_test", 2); err != nil {
		t.Fatal(err)
	}
	route, err := remoting.Route(ctx, r.NameServer(), "throwaway_test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(route), `"writeQueueNums":2`) {
		t.Errorf("route %s: want 2 write queues", route)
	}
	if _, err := remoting.Route(ctx, r.NameServer(), "no_such_topic"); err == nil {
		t.Error("a route for a topic never created")
	}

	// Killed and restarted, the broker keeps its store: a message sent
	// before is still there (the queue index is rebuilt asynchronously:
	// poll).
	if _, err := remoting.Expect(ctx, r.Broker(), remoting.SendMessage, map[string]string{
		"producerGroup": "throwaway_test", "topic": "throwaway_test", "defaultTopic": "TBW102",
		"defaultTopicQueueNums": "4", "queueId": "0", "sysFlag": "0", "bornTimestamp": "0", "flag": "0",
		"properties": "", "reconsumeTimes": "0", "unitMode": "false", "batch": "false",
	}, []byte("kept"), remoting.Success); err != nil {
		t.Fatal(err)
	}
	if err := r.RestartBroker(ctx); err == nil {
		t.Error("RestartBroker of a running broker succeeded")
	}
	if err := r.KillBroker(); err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	if err := r.RestartBroker(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("broker restarted in %v", time.Since(begin).Round(time.Millisecond))
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		off, err := remoting.MaxOffset(ctx, r.Broker(), "throwaway_test", 0)
		if err == nil && off == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after the restart, max offset %d (%v), want 1", off, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(r.dir); !os.IsNotExist(err) {
		t.Errorf("dir %s still there after Stop (%v)", r.dir, err)
	}
	for _, s := range []*Server{r.namesrv, r.broker} {
		select {
		case <-s.done:
		default:
			t.Errorf("%s still running after Stop", s.cmd.Args)
		}
	}
}
