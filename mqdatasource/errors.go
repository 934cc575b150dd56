package mqdatasource

import "errors"

var (
	// ErrAlreadyConsumed means the delivery's message was already applied by
	// its consumer group: its transaction_record row exists. BeginTx returns
	// it (wrapped) after rolling the new transaction back; the caller should
	// acknowledge the message without doing the work again.
	ErrAlreadyConsumed = errors.New("mqdatasource: message already consumed")

	// ErrDeliveryReused means a transaction was begun with a delivery context
	// whose claim another transaction already holds or committed: a
	// programming error (two transactions for one message), never a
	// duplicate. The message should be retried and the code fixed.
	ErrDeliveryReused = errors.New("mqdatasource: delivery already claimed by another transaction")

	// ErrNoTransaction means a statement that writes was run outside a
	// transaction with a delivery in its context. It would not be protected
	// by the claim, so it is refused; run it inside BeginTx, or use
	// WithoutDelivery to run it unprotected on purpose.
	ErrNoTransaction = errors.New("mqdatasource: write outside a transaction with a delivery in context")

	// ErrInvalidDelivery means a delivery cannot be claimed: an empty key or
	// group, a key or group that is not valid UTF-8, a group containing "#"
	// (the separator of the message id), or a message id that is too long:
	// for Delivery.Validate longer than MaxMessageIDLen characters; for a
	// DataSource longer than the message_id column holds (the length
	// CheckSchema learned, in bytes on SQL Server, no limit for
	// varchar(max); MaxMessageIDLen when it learned none). No SQL was run.
	ErrInvalidDelivery = errors.New("mqdatasource: invalid delivery")

	// ErrInvalidTableName means the configured table name is not a plain
	// identifier. No SQL was run.
	ErrInvalidTableName = errors.New("mqdatasource: invalid table name")

	// ErrSchema means the transaction_record table is missing or does not
	// have the expected shape. The error names what is wrong and the
	// migration file that describes the table; see SchemaError.
	ErrSchema = errors.New("mqdatasource: transaction_record schema mismatch")

	// ErrTxAborted means the server already rolled the transaction back
	// (deadlock victim, serialization failure, lock timeout with rollback,
	// lost connection). The wrapper refuses further statements on it, because
	// MySQL would run them in autocommit. Retry the whole transaction.
	ErrTxAborted = errors.New("mqdatasource: transaction aborted by the server")

	// ErrCommitUnknown means the connection failed while COMMIT was in
	// flight: the transaction may or may not have committed. Retry the
	// message; if the commit landed, the redelivery finds the record and is
	// acknowledged as a duplicate.
	ErrCommitUnknown = errors.New("mqdatasource: commit outcome unknown")
)
