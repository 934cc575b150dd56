package main

import (
	"context"
	"database/sql"
	"fmt"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/credentials"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyoncev5"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// startConsumerV5 starts a push consumer of the RocketMQ 5 gRPC client
// (github.com/apache/rocketmq-clients/golang/v5) through exactlyoncev5: the
// same handlers, transaction and claim as the v2 consumer, on the other
// client generation. cfg.Group must be an orderly group and cfg.Topic a FIFO
// topic (scripts/demo.sh v5 creates both with internal/mktopic): the broker
// then hands out each message group, here a product's changes, in order and
// one message at a time, as the orderly v2 consumer reads a queue.
func startConsumerV5(ds *mqdatasource.DataSource, cfg consumerConfig) (*exactlyoncev5.PushConsumer, error) {
	clientCfg := &rmq.Config{
		Endpoint:      cfg.Proxy,
		ConsumerGroup: cfg.Group,
		Credentials:   &credentials.SessionCredentials{},
	}
	opts := []exactlyoncev5.Option{
		exactlyoncev5.WithMetrics(cfg.Stats),
		exactlyoncev5.WithLogger(cfg.Logger),
		// The business key travels as the message key (newMessageV5): the
		// proxy does not pass EXTEND_UNIQ_INFO to v5 clients, and the
		// message id of a v5 send is new on every send. A message without
		// keys is refused.
		exactlyoncev5.WithKeysAsDedupeKey(),
		exactlyoncev5.WithPushOptions(
			rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{cfg.Topic: rmq.SUB_ALL})),
	}
	var (
		c   *exactlyoncev5.PushConsumer
		err error
	)
	switch cfg.Style {
	case "plain":
		c, err = exactlyoncev5.NewPushConsumer(ds, clientCfg, func(ctx context.Context, mv *rmq.MessageView) error {
			return applyMessage(ctx, ds, mv.GetMessageId(), mv.GetBody())
		}, opts...)
	case "tx":
		c, err = exactlyoncev5.NewPushTxConsumer(ds, clientCfg, func(ctx context.Context, tx *sql.Tx, mv *rmq.MessageView) error {
			return applyMessageTx(ctx, tx, ds.Dialect(), mv.GetMessageId(), mv.GetBody())
		}, opts...)
	default:
		err = fmt.Errorf("unknown handler style %q (want plain or tx)", cfg.Style)
	}
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		_ = c.Shutdown(context.Background())
		return nil, fmt.Errorf("start consumer %s: %w (is %s a RocketMQ 5 proxy, and do FIFO topic %s and orderly group %s exist?)",
			cfg.Instance, err, cfg.Proxy, cfg.Topic, cfg.Group)
	}
	return c, nil
}
