package remoting_test

import (
	"context"
	"testing"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/brokertest"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/remoting"
)

// EnsureTopic creates a missing topic, with empty queues, and leaves an
// existing one alone.
func TestEnsureTopicOnApache(t *testing.T) {
	b := brokertest.Apache(t)
	topic := brokertest.UniqueName(t, "price_change")
	for i, want := range []bool{true, false} {
		created, err := remoting.EnsureTopic(context.Background(), b.NameServer(), topic, 2)
		if err != nil || created != want {
			t.Fatalf("call %d: created %v, %v; want %v", i+1, created, err, want)
		}
	}
	if n := b.MaxOffset(t, topic, 1); n != 0 {
		t.Fatalf("queue 1 of the new topic: max offset %d, want 0 (an empty queue)", n)
	}
}
