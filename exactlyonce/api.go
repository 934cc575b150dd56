package exactlyonce

import (
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// Listener returns the function to pass to PushConsumer.Subscribe in place
// of an existing listener: it runs h once per message of every delivery,
// with the delivery in h's context, and maps the outcomes to the client's
// ConsumeResult (see Handler and the package documentation). It works for
// concurrent and orderly consumers (it detects orderly mode from the
// context the client passes).
//
// group is the consumer group the records are kept under; it must be the
// group of the consumer that calls the listener (a mismatch fails every
// delivery with ErrGroup, since two groups sharing records would skip each
// other's messages; "namespace%group" matches group). With group "" the
// group is read from the client's context on every call.
//
// It panics if ds or h is nil. The listener keeps its own pre-check cache:
// build one per subscription.
func Listener(ds *mqdatasource.DataSource, group string, h Handler, opts ...Option) ListenerFunc {
	if ds == nil || h == nil {
		panic("exactlyonce: Listener needs a DataSource and a Handler")
	}
	return newListener(ds, group, h, nil, opts).consume
}

// TxListener is Listener for a TxHandler: the listener begins each message's
// transaction through ds (claim first), calls h with it, and commits when h
// returns nil or rolls back when it fails.
func TxListener(ds *mqdatasource.DataSource, group string, h TxHandler, opts ...Option) ListenerFunc {
	if ds == nil || h == nil {
		panic("exactlyonce: TxListener needs a DataSource and a TxHandler")
	}
	return newListener(ds, group, nil, h, opts).consume
}
