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

// Handler processes one message through the DataSource (DataSource.DB or
// BeginTx, with any ORM on top) using ctx, which carries the delivery: all
// its work through the DataSource with ctx — any number of transactions,
// statements outside a transaction — runs in one delivery transaction
// whose first statement claims the message in transaction_record, and
// which the listener commits when the handler returns nil. A Commit in the
// handler ends nothing; a Rollback marks the delivery rollback-only.
//
//   - It returns nil: the delivery's transaction commits and the message is
//     acknowledged (OutcomeProcessed). If the commit fails, the message is
//     retried; if the commit did land, the redelivery is skipped.
//   - It returns nil without having used the DataSource with ctx (it
//     ignored the message): acknowledged as OutcomeUnclaimed with a warning,
//     or retried under WithRequireClaim.
//   - The message was already applied: the first BeginTx or statement
//     fails with mqdatasource.ErrAlreadyConsumed (so do later ones). The
//     handler may return that error or nil; either way the message is
//     acknowledged (OutcomeDuplicate).
//   - It returns nil after rolling back one of its transactions: the work
//     is incomplete, so all of it is rolled back and the message retried
//     (OutcomeRolledBack, mqdatasource.ErrRollbackOnly).
//   - It returns any other error, or panics: everything is rolled back and
//     the message is retried (concurrent mode: sent back to the broker's
//     retry queue; orderly mode: the queue is suspended for the back-off,
//     WithSuspendBackoff), after up to WithLocalRetries attempts in place if
//     the error is a transient database error.
//
// ctx is cancelled when the handler returns, and when a Consumer's shutdown
// grace period ends. Goroutines of the handler may share ctx: their
// statements are serialised on the delivery's connection.
type Handler func(ctx context.Context, msg *primitive.MessageExt) error

// TxHandler processes one message inside the delivery's transaction, which
// the listener began (with WithTxOptions) by claiming the message: tx holds
// the claim, and so does everything else done through the DataSource with
// ctx. TxFromContext(ctx) returns tx.
//
//   - It returns nil: the listener commits and acknowledges the message
//     (OutcomeProcessed). If the commit fails, the message is retried; if
//     the commit did land, the redelivery is skipped as a duplicate.
//   - It returns an error, or panics: the listener rolls back and the
//     message is retried, as for Handler.
//   - The message was already applied: the handler is not called.
//
// tx.Commit ends nothing (the listener commits after the handler); do not
// call tx.Rollback to give up, return an error.
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
