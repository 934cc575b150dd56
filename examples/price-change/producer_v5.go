package main

import (
	"context"
	"encoding/json"
	"fmt"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/credentials"
)

// newMessageV5 builds the RocketMQ 5 client's message for a change. The
// product id is the message group: on a FIFO topic the broker stores a
// group's messages in send order and hands them out one at a time. The
// business key is the message key, which the v5 consumer dedupes by
// (exactlyoncev5.WithKeysAsDedupeKey): a v5 producer cannot set
// EXTEND_UNIQ_INFO, which the proxy reserves.
func newMessageV5(topic string, c PriceChange) (*rmq.Message, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	msg := &rmq.Message{Topic: topic, Body: body}
	msg.SetMessageGroup(c.ProductID)
	msg.SetKeys(c.Key())
	return msg, nil
}

// startProducerV5 starts a producer of the RocketMQ 5 gRPC client on the
// proxy at endpoint and returns its sendFunc and its stop function.
func startProducerV5(endpoint, topic string) (sendFunc, func(), error) {
	p, err := rmq.NewProducer(&rmq.Config{Endpoint: endpoint, Credentials: &credentials.SessionCredentials{}},
		rmq.WithTopics(topic))
	if err != nil {
		return nil, nil, err
	}
	// A failed Start stops the producer itself (the client's Start calls
	// GracefulStop when its startUp fails; a second GracefulStop would only
	// return "client has been closed"), so there is nothing to stop here.
	if err := p.Start(); err != nil {
		return nil, nil, fmt.Errorf("start producer: %w (is %s a RocketMQ 5 proxy, and does topic %s exist?)", err, endpoint, topic)
	}
	send := func(ctx context.Context, c PriceChange) error {
		msg, err := newMessageV5(topic, c)
		if err != nil {
			return err
		}
		_, err = p.Send(ctx, msg)
		return err
	}
	return send, func() { _ = p.GracefulStop() }, nil
}
