package rocketmqtest_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

func TestSendSyncConsumeConcurrently(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	const topic, n = "orders", 50
	p := newProducer(t, b)
	var sent []string
	for i := range n {
		msg := primitive.NewMessage(topic, []byte(fmt.Sprintf("m%03d", i)))
		msg.WithKeys([]string{fmt.Sprint("k", i)})
		res, err := p.SendSync(context.Background(), msg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != primitive.SendOK {
			t.Fatalf("status %v", res.Status)
		}
		sent = append(sent, res.MsgID)
	}

	var got collector
	c := newConsumer(t, b, "g1")
	err := c.Subscribe(topic, consumer.MessageSelector{}, func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		got.add(msgs...)
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "all messages consumed", func() bool { return got.len() >= n })

	var ids, bodies []string
	for _, m := range got.snapshot() {
		ids = append(ids, m.MsgId)
		bodies = append(bodies, string(m.Body))
		if m.Topic != topic || m.StoreHost != b.Addr() {
			t.Errorf("topic %q store host %q", m.Topic, m.StoreHost)
		}
	}
	sort.Strings(ids)
	sort.Strings(sent)
	sort.Strings(bodies)
	if fmt.Sprint(ids) != fmt.Sprint(sent) {
		t.Errorf("consumed ids differ from sent ids")
	}
	if bodies[0] != "m000" || bodies[n-1] != fmt.Sprintf("m%03d", n-1) {
		t.Errorf("bodies %v", bodies)
	}
}
