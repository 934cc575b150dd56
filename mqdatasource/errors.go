package mqdatasource

import "errors"

var (
	// ErrDriverPackage means the DataSource's SQL driver needs the package
	// of this module that tells mqdatasource about it (mysqldriver,
	// pgxdriver, mssqldriver), and the program does not import it.
	ErrDriverPackage = errors.New("mqdatasource: the driver's package of this module is not imported")

	// ErrAlreadyConsumed means the delivery's message was already applied by
	// its consumer group: its transaction_record row exists. The first
	// BeginTx or statement of a delivery through a DataSource returns it
	// (wrapped), and so does every later one; Deliver then reports
	// Duplicate, whether the handler returns this error or nil. Acknowledge
	// the message without doing the work again.
	ErrAlreadyConsumed = errors.New("mqdatasource: message already consumed")

	// ErrRollbackOnly means a transaction of the delivery was rolled back
	// (an inner Rollback, e.g. an ORM undoing a failed write) while the
	// handler went on to return nil: the delivery's work is incomplete, so
	// Deliver rolls all of it back and fails. Retry the message.
	ErrRollbackOnly = errors.New("mqdatasource: delivery marked rollback-only by an inner rollback")

	// ErrDeliveryBusy means a statement of a delivery was made while a Rows
	// of the same delivery was still open: the delivery runs on one
	// connection, which cannot interleave them. Close the rows first.
	ErrDeliveryBusy = errors.New("mqdatasource: the delivery's connection is busy with open rows")

	// ErrDeliveryDone means a statement was made with a delivery's context
	// after the delivery ended (Deliver returned): it could not be
	// protected by the claim, so it is refused.
	ErrDeliveryDone = errors.New("mqdatasource: the delivery has ended")

	// ErrTxOptions means a transaction asked for an isolation level other
	// than the one the delivery's transaction already runs at. Nothing
	// committed; give every transaction of a delivery the same level (or
	// the listener's WithTxOptions).
	ErrTxOptions = errors.New("mqdatasource: transaction options differ from the delivery's transaction")

	// ErrPartialCommit means a delivery that used several DataSources
	// committed in some and failed in others. Retry the message: the
	// databases that committed find the record and keep their work, the
	// others apply it (see Deliver and ClaimIn).
	ErrPartialCommit = errors.New("mqdatasource: delivery committed in some databases only")

	// ErrInvalidDelivery means a delivery cannot be claimed: an empty key or
	// group, a key or group that is not valid UTF-8, a group containing "#"
	// (the separator of the message id), or a message id that is too long:
	// for Delivery.Validate longer than MaxMessageIDLen characters; for a
	// DataSource longer than the message_id column holds (the length
	// CheckSchema learned, in bytes on SQL Server, no limit for
	// varchar(max); MaxMessageIDLen when it learned none), or for a
	// DataSource an id with a character the column's character set cannot
	// store (also wrapping ErrUnstorableKey). No SQL was run.
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
