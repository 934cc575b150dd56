package exactlyonce

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

func TestNewConsumerArguments(t *testing.T) {
	if _, err := NewConsumer(nil, "g"); err == nil {
		t.Error("nil DataSource accepted")
	}
	if _, err := NewConsumer(&mqdatasource.DataSource{}, ""); !errors.Is(err, ErrGroup) {
		t.Errorf("empty group: %v", err)
	}
}

func TestConsumerShutdownBeforeStart(t *testing.T) {
	c, err := NewConsumer(&mqdatasource.DataSource{}, "eo_unstarted", quiet,
		WithClientOptions(consumer.WithNameServer(primitive.NamesrvAddr{"127.0.0.1:1"}), consumer.WithInstance("eo-unstarted")))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown before Start: %v", err)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := c.Start(); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Start after Shutdown: %v", err)
	}
	if err := c.Subscribe("t", consumer.MessageSelector{}, nil); err == nil {
		t.Fatal("nil handler accepted")
	}
}
