package exactlyonce

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// ListenerFunc is the function type rocketmq-client-go's
// PushConsumer.Subscribe takes. Listener and TxListener return one.
type ListenerFunc = func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error)

// Handler processes one message and opens its own transaction through the
// DataSource (DataSource.DB or BeginTx, with any ORM on top) using ctx, which
// carries the delivery: the first statement of that transaction claims the
// message in transaction_record.
//
//   - It returns nil after its transaction committed: the message is
//     acknowledged (OutcomeProcessed).
//   - It returns nil without having begun a transaction with ctx (it ignored
//     the message): the message is acknowledged as OutcomeUnclaimed and a
//     warning is logged, or retried under WithRequireClaim.
//   - It returns nil after a transaction with ctx claimed the message but
//     none committed (rolled back, a swallowed error, a forgotten Commit):
//     the work is not applied, so the message is retried (ErrUnclaimed).
//   - It returns an error wrapping mqdatasource.ErrAlreadyConsumed (from
//     BeginTx): the message was applied before; it is acknowledged
//     (OutcomeDuplicate).
//   - It returns any other error, or panics: the message is retried
//     (concurrent mode: sent back to the broker's retry queue; orderly mode:
//     the queue is suspended for the back-off, WithSuspendBackoff), after
//     up to WithLocalRetries attempts in place if the error is a transient
//     database error. If its transaction did commit, the redelivery is
//     skipped as already consumed.
//   - Beginning a second transaction with ctx fails with
//     mqdatasource.ErrDeliveryReused; returning that error retries the
//     message and logs an error: one delivery, one transaction.
//
// A transaction the handler leaves open when it returns or panics is rolled
// back: ctx is cancelled when the handler returns. ctx is also cancelled
// when a Consumer's shutdown grace period ends.
type Handler func(ctx context.Context, msg *primitive.MessageExt) error

// TxHandler processes one message inside a transaction the listener began
// (with WithTxOptions) and whose first statement claimed the message: tx
// already holds the claim, so every statement run on tx applies exactly once.
// TxFromContext(ctx) returns the same tx.
//
//   - It returns nil: the listener commits tx and acknowledges the message
//     (OutcomeProcessed). If the commit fails, the message is retried; if the
//     commit did land, the redelivery is skipped as a duplicate.
//   - It returns an error, or panics: the listener rolls tx back and the
//     message is retried, as for Handler (transient database errors first
//     in place, WithLocalRetries, each time with a new transaction).
//   - The message was already applied: the handler is not called.
//
// The handler must not call tx.Commit or tx.Rollback itself, nor begin other
// transactions with ctx (they fail with mqdatasource.ErrDeliveryReused).
type TxHandler func(ctx context.Context, tx *sql.Tx, msg *primitive.MessageExt) error

type txKey struct{}

// TxFromContext returns the transaction a TxHandler runs in, for code deeper
// in the call chain that only receives ctx.
func TxFromContext(ctx context.Context) (*sql.Tx, bool) {
	tx, ok := ctx.Value(txKey{}).(*sql.Tx)
	return tx, ok && tx != nil
}

var (
	// ErrShutdown means a Consumer is shutting down: the delivery was not
	// processed and is left for redelivery.
	ErrShutdown = errors.New("exactlyonce: consumer is shutting down")

	// ErrUnclaimed means a Handler returned nil without committing a
	// transaction that holds the delivery's claim, after one claimed it
	// (always) or without claiming it at all (under WithRequireClaim).
	ErrUnclaimed = errors.New("exactlyonce: handler returned nil but committed no claim")

	// ErrGroup means the listener does not know the consumer group: none
	// was given and the client's context carries none, or the one given
	// differs from the consumer's (two groups sharing records would skip each
	// other's messages).
	ErrGroup = errors.New("exactlyonce: consumer group missing or mismatched")
)

// PanicError is the error a delivery fails with when its handler panics.
type PanicError struct {
	Value any    // what the handler panicked with
	Stack []byte // the goroutine's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("exactlyonce: handler panicked: %v", e.Value) }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
