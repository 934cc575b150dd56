package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// applyPriceChange is the handler in the plain database/sql style: it opens
// its own transaction through the DataSource with the ctx the listener
// passes. That ctx carries the delivery, so the transaction's first
// statement claims the message in transaction_record; the claim and the
// writes of applyChange commit together or not at all.
//
// The error decides what happens to the message: nil acknowledges it; an
// error wrapping mqdatasource.ErrAlreadyConsumed (from BeginTx: the change
// was applied before) acknowledges it as a duplicate; any other error retries
// it (orderly mode: the product's queue pauses and the same change comes
// again, so later changes of the product never overtake it). A message that
// can never be applied, such as one that does not decode, would block its
// queue that way: a real service would record it somewhere (in a transaction
// begun with ctx, so that it is recorded once) and return nil.
func applyPriceChange(ds *mqdatasource.DataSource) exactlyonce.Handler {
	return func(ctx context.Context, msg *primitive.MessageExt) error {
		return applyMessage(ctx, ds, msg.MsgId, msg.Body)
	}
}

// applyMessage is the handler's work, whichever client delivered the
// message (consumer_v5.go has the RocketMQ 5 one).
func applyMessage(ctx context.Context, ds *mqdatasource.DataSource, msgID string, body []byte) error {
	c, err := decodeChange(msgID, body)
	if err != nil {
		return err
	}
	tx, err := ds.BeginTx(ctx, nil) // claims the message
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit
	if err := applyChange(ctx, tx, ds.Dialect(), c); err != nil {
		return err
	}
	return tx.Commit()
}

// decodeChange decodes a message body.
func decodeChange(msgID string, body []byte) (PriceChange, error) {
	var c PriceChange
	if err := json.Unmarshal(body, &c); err != nil {
		return c, fmt.Errorf("decode %s: %w", msgID, err)
	}
	return c, nil
}

// applyChange makes the change's writes in tx: the new price and the change
// counter, which is not idempotent on purpose (a change applied twice counts
// twice, and the verifier notices), and a history row.
func applyChange(ctx context.Context, tx *sql.Tx, d mqdatasource.Dialect, c PriceChange) error {
	res, err := tx.ExecContext(ctx, rebind(d,
		`UPDATE product SET price_cents = ?, version = ?, change_count = change_count + 1 WHERE id = ?`),
		c.PriceCents, c.Version, c.ProductID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		// Retried: the change applies once the catalogue has the product.
		return fmt.Errorf("product %s is not in the catalogue", c.ProductID)
	}
	_, err = tx.ExecContext(ctx, rebind(d,
		`INSERT INTO price_history (product_id, version, price_cents, change_cents) VALUES (?, ?, ?, ?)`),
		c.ProductID, c.Version, c.PriceCents, c.ChangeCents)
	return err
}

// consumerConfig is what a consumer instance needs.
type consumerConfig struct {
	NameServer string
	Proxy      string // with it, the RocketMQ 5 client's consumer (consumer_v5.go)
	Topic      string
	Group      string
	Instance   string // distinct per consumer in one process
	Style      string // "plain" (applyPriceChange) or "tx" (applyPriceChangeTx)
	Stats      *exactlyonce.Stats
	Logger     *slog.Logger

	// LockInterval is how often the orderly consumer renews its queue locks
	// (the client's default is 20 s).
	LockInterval time.Duration
}

// stopper is a running consumer of either client generation.
type stopper interface {
	// Shutdown stops taking messages, waits for the running handlers until
	// ctx ends, and stops the client.
	Shutdown(ctx context.Context) error
}

// startConsumer starts an orderly consumer of the price changes. Orderly
// mode consumes each queue with one goroutine, in order, holding the queue's
// lock on the broker: with the product id as sharding key, each product's
// changes are applied in version order. With cfg.Proxy it starts the
// RocketMQ 5 client's consumer instead (startConsumerV5).
func startConsumer(ds *mqdatasource.DataSource, cfg consumerConfig) (stopper, error) {
	if cfg.Proxy != "" {
		return startConsumerV5(ds, cfg)
	}
	clientOpts := []consumer.Option{
		consumer.WithNameServer(primitive.NamesrvAddr{cfg.NameServer}),
		consumer.WithInstance(cfg.Instance),
		consumer.WithConsumerOrder(true),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	}
	if cfg.LockInterval > 0 {
		clientOpts = append(clientOpts, consumer.WithRebalanceLockInterval(cfg.LockInterval))
	}
	c, err := exactlyonce.NewConsumer(ds, cfg.Group,
		exactlyonce.WithClientOptions(clientOpts...),
		exactlyonce.WithMetrics(cfg.Stats),
		exactlyonce.WithLogger(cfg.Logger),
		// Every change carries its business key in EXTEND_UNIQ_INFO: a
		// message without one is refused, not keyed by a UNIQ_KEY that two
		// producers could share.
		exactlyonce.WithRequireProducerKey(),
	)
	if err != nil {
		return nil, err
	}
	switch cfg.Style {
	case "plain":
		err = c.Subscribe(cfg.Topic, consumer.MessageSelector{}, applyPriceChange(ds))
	case "tx":
		err = c.SubscribeTx(cfg.Topic, consumer.MessageSelector{}, applyPriceChangeTx(ds.Dialect()))
	default:
		err = fmt.Errorf("unknown handler style %q (want plain or tx)", cfg.Style)
	}
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.Shutdown(sctx)
		cancel()
		if strings.Contains(err.Error(), "route info not found") {
			err = fmt.Errorf("%w (is %s a name server, and does topic %s exist? "+
				"brokers without autoCreateTopicEnable need it created first)", err, cfg.NameServer, cfg.Topic)
		}
		return nil, fmt.Errorf("start consumer %s: %w", cfg.Instance, err)
	}
	return c, nil
}
