package exactlyonce

import (
	"context"
	"errors"
	"testing"
	"time"

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

func TestNewConsumerPurgeDurations(t *testing.T) {
	client := WithClientOptions(consumer.WithNameServer(primitive.NamesrvAddr{"127.0.0.1:1"}), consumer.WithInstance("eo-purge-args"))
	for _, c := range []struct {
		keep, every time.Duration
		ok          bool
	}{
		{0, 0, true}, // no purge
		{time.Hour, time.Minute, true},
		{time.Hour, 0, false},
		{0, time.Minute, false},
		{-time.Hour, time.Minute, false},
		{time.Hour, -time.Minute, false},
		{-time.Hour, -time.Minute, false},
	} {
		_, err := NewConsumer(&mqdatasource.DataSource{}, "eo_purge_args", quiet, client, WithPurge(c.keep, c.every))
		if (err == nil) != c.ok {
			t.Errorf("WithPurge(%v, %v): err = %v, want ok = %v", c.keep, c.every, err, c.ok)
		}
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
