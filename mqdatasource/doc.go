// Package mqdatasource makes the database writes of a message handler take
// effect exactly once, by recording the message in the same local
// transaction as the writes: the Go counterpart of the Java MQDataSource of
// Alibaba Cloud's ExactlyOnceConsumer, for any code that uses a *sql.DB.
//
// # How it works
//
// A DataSource wraps the database driver at the database/sql driver level
// (like XSAM/otelsql), so plain database/sql, sqlx, GORM, bun and ent all go
// through it unchanged. The delivery of a message (consumer group, dedupe
// key, topic, broker, queue, offset) travels in the context: the exactlyonce
// package puts it there, and users of other brokers call WithDelivery.
//
// When a transaction is begun with a context that carries a delivery,
// BeginTx inserts the delivery's row into transaction_record as the
// transaction's first statement (the claim). The row's unique key on
// message_id ("<key>#<consumer group>", the Java client's format) admits
// one row per message and group:
//
//   - the first delivery's claim succeeds, the handler's writes follow in
//     the same transaction, and COMMIT makes the writes and the record
//     durable together (a rollback undoes both);
//   - a concurrent delivery of the same message blocks on the unique key
//     until the first transaction ends, then fails with ErrAlreadyConsumed
//     (if it committed) or claims the message (if it rolled back), before
//     running any business statement;
//   - a later redelivery fails at once with ErrAlreadyConsumed; the
//     transaction is rolled back and the message should be acknowledged.
//
// The claim goes first, not at commit as in the Java client: on MariaDB, a
// claim at commit let two consumers of one message both run the business
// work and ended in a deadlock; a claim first makes the loser wait on the
// unique key and get a clean duplicate without running anything.
//
// # The guarantee
//
// For one consumer group, the writes that a handler makes through a
// DataSource inside a transaction begun with the delivery's context are
// committed at most once per message, and, as long as the message is
// redelivered until a transaction commits or ErrAlreadyConsumed is returned,
// exactly once. It does not cover side effects outside that database
// transaction (HTTP calls, e-mails, writes to a second database), nor
// statements run outside the transaction. See docs/guarantees.md.
//
// # Statements outside a transaction
//
// With a delivery in the context, a statement run outside a transaction
// would not be protected by the claim. Exec (and a prepared statement's
// Exec) outside a transaction fails with ErrNoTransaction instead of
// running; Query outside a transaction runs (reads need no protection; a
// write sent through Query, such as INSERT ... RETURNING, is not
// protected). WithoutDelivery(ctx) opts out for statements meant to run
// unprotected. The Java client protected only the first write of such a
// sequence; this package protects all or refuses.
//
// One transaction per delivery: a second transaction begun with the same
// delivery context, while the first is open or after it committed, fails
// with ErrDeliveryReused (a programming error, never a duplicate). After a
// rollback the claim is free again and the handler may retry.
// ClaimCommitted(ctx) tells, without SQL, whether a transaction begun with
// the context committed its claim, and ClaimAttempted(ctx) whether one tried
// to claim it at all.
//
// # Errors
//
//	ErrAlreadyConsumed   BeginTx: the message is recorded for the group. Acknowledge it.
//	ErrDeliveryReused    BeginTx: a second transaction for one delivery. Fix the code; retry the message.
//	ErrInvalidDelivery   BeginTx, IsConsumed, ValidateDelivery: empty key or group, invalid UTF-8, # in the group, or id too long. No SQL ran.
//	ErrNoTransaction     Exec outside a transaction with a delivery. Use a transaction or WithoutDelivery.
//	ErrTxAborted         statement or Commit after the server aborted the transaction. Retry the message.
//	ErrCommitUnknown     Commit: the connection failed during COMMIT. Retry the message.
//	ErrInvalidTableName  Open: the table name is not a plain identifier. No SQL ran.
//	ErrSchema            Open, CheckSchema, Migrate: the table is missing or wrong (*SchemaError).
//
// IsRetryable reports whether an error is worth retrying (deadlocks,
// serialization and snapshot conflicts, lock timeouts, lost connections,
// ErrTxAborted, ErrCommitUnknown). Database errors on pass-through paths are
// returned unchanged, so errors.As into *mysql.MySQLError, *pgconn.PgError
// or mssql.Error works. See docs/errors.md.
//
// After a deadlock MySQL has rolled the transaction back, yet *sql.Tx still
// looks open and later statements on it would run in autocommit. The
// wrapper marks such a transaction aborted and refuses every later
// statement with ErrTxAborted, without touching the server.
//
// # Dialects
//
// MySQL and MariaDB (go-sql-driver/mysql), SQL Server (microsoft/go-mssqldb)
// and PostgreSQL (jackc/pgx/v5/stdlib; lib/pq is in maintenance mode and
// only detected, pgx is the supported driver) are detected from the driver
// and can be set with WithDialect. The claim table's DDL for each is in
// the schema package (schema/transaction_record.sql and its SQL Server and
// PostgreSQL siblings); Migrate creates it, CheckSchema (run by Open)
// verifies it.
package mqdatasource
