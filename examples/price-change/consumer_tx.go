package main

import (
	"context"
	"database/sql"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// applyPriceChangeTx is the same handler in the managed-transaction style
// (exactlyonce.TxListener, Consumer.SubscribeTx): the listener begins the
// transaction, whose first statement already claimed the message, and
// commits it when the handler returns nil or rolls it back when it returns an
// error. A change applied before never reaches the handler.
func applyPriceChangeTx(d mqdatasource.Dialect) exactlyonce.TxHandler {
	return func(ctx context.Context, tx *sql.Tx, msg *primitive.MessageExt) error {
		return applyMessageTx(ctx, tx, d, msg.MsgId, msg.Body)
	}
}

// applyMessageTx is the managed-transaction handler's work, whichever client
// delivered the message.
func applyMessageTx(ctx context.Context, tx *sql.Tx, d mqdatasource.Dialect, msgID string, body []byte) error {
	c, err := decodeChange(msgID, body)
	if err != nil {
		return err
	}
	return applyChange(ctx, tx, d, c)
}
