package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

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
		var c PriceChange
		if err := json.Unmarshal(msg.Body, &c); err != nil {
			return fmt.Errorf("decode %s: %w", msg.MsgId, err)
		}
		return applyChange(ctx, tx, d, c)
	}
}
