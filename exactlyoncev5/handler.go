package exactlyoncev5

import (
	"context"
	"database/sql"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
)

// Handler processes one message through the DataSource (DataSource.DB or
// BeginTx, with any ORM on top) using ctx, which carries the delivery: all
// its work through the DataSource with ctx runs in one delivery transaction
// whose first statement claims the message in transaction_record, and which
// is committed when the handler returns nil. The contract is
// exactlyonce.Handler's, for a *golang.MessageView:
//
//   - It returns nil: the transaction commits and the message is
//     acknowledged (exactlyonce.OutcomeProcessed).
//   - The message was already applied: the first BeginTx or statement fails
//     with mqdatasource.ErrAlreadyConsumed; returning that error or nil
//     acknowledges the message (exactlyonce.OutcomeDuplicate).
//   - It returns nil without using the DataSource with ctx: acknowledged
//     with a warning (exactlyonce.OutcomeUnclaimed), or retried under
//     WithRequireClaim.
//   - It returns nil after rolling back one of its transactions: all of its
//     work is rolled back and the message retried
//     (exactlyonce.OutcomeRolledBack).
//   - It returns another error, or panics: everything is rolled back and the
//     message comes back (see the package documentation for how each
//     consumer type retries).
//
// ctx is cancelled when the handler returns and when a consumer's shutdown
// grace period ends. The client gives a push listener no context, so ctx
// starts from context.Background().
type Handler func(ctx context.Context, msg *rmq.MessageView) error

// TxHandler processes one message inside the delivery's transaction, begun
// (claim first) before it is called; exactlyonce.TxFromContext(ctx) returns
// tx. It returns nil to commit, an error to roll back and retry; it is not
// called for a message already applied. tx.Commit ends nothing; do not call
// tx.Rollback to give up, return an error.
type TxHandler func(ctx context.Context, tx *sql.Tx, msg *rmq.MessageView) error
