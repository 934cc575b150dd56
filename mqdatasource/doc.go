// Package mqdatasource makes the database writes of a message handler take
// effect exactly once, by recording the message in the same local
// transaction as the writes: the Go counterpart of the Java MQDataSource of
// Alibaba Cloud's ExactlyOnceConsumer, for any code that uses a *sql.DB.
//
// # How it works
//
// A DataSource wraps the database driver at the database/sql driver level
// (like XSAM/otelsql), so plain database/sql, sqlx, GORM, bun and ent all go
// through it unchanged. Deliver runs a handler as one delivery of a message
// (consumer group, dedupe key, topic, broker, queue, offset) and puts the
// delivery in the handler's context; the exactlyonce package calls it for
// every RocketMQ message.
//
// # The delivery-scoped transaction
//
// All work done through a DataSource with a delivery's context runs in one
// physical transaction, the delivery's, on a connection of its own: every
// BeginTx/Commit pair (an ORM's per-write transactions included),
// statements outside a transaction, prepared statements, whichever pooled
// connection database/sql picks for each call. Its first statement
// inserts the delivery's row into transaction_record (the claim). The
// row's unique key on message_id ("<key>#<consumer group>", the Java
// client's format) admits one row per message and group:
//
//   - the first delivery's claim succeeds, the handler's writes follow in
//     the same transaction, and Deliver commits the writes and the record
//     together after the handler returns nil (a failure rolls back both);
//   - a concurrent delivery of the same message blocks on the unique key
//     until the first transaction ends, then gets ErrAlreadyConsumed (if it
//     committed) or claims the message (if it rolled back), before running
//     any business statement;
//   - a later redelivery gets ErrAlreadyConsumed at once, from the first
//     BeginTx or statement and every later one, and Deliver reports
//     Duplicate, whether the handler returns that error or nil.
//
// A duplicate is certain or it is an error: a claim that meets the unique
// key reads the record back and compares it with the message id byte for
// byte; a record the column only takes for it (a case-insensitive
// collation, characters stored as '?') is ErrKeyCollision, never
// Duplicate. CheckSchema refuses a message_id whose character set cannot
// store every key (WithCharsetWarnOnly keeps it for a table shared with the
// Java client), and an id with a character the column cannot store is
// refused before any SQL (ErrUnstorableKey).
//
// A Commit inside the handler ends nothing; a Rollback marks the delivery
// rollback-only (Deliver rolls everything back and fails with
// ErrRollbackOnly: committing the rest would apply the message in part).
// This is transaction propagation as in Spring's REQUIRED, at the driver
// level, so that no user code changes. WithoutDelivery(ctx) opts a
// statement out, onto a connection of the pool in autocommit.
//
// The claim goes first, not at commit as in the Java client: on MariaDB, a
// claim at commit let two consumers of one message both run the business
// work and ended in a deadlock; a claim first makes the loser wait on the
// unique key and get a clean duplicate without running anything.
//
// A handler that writes to several databases gets a claim and a delivery
// transaction in each; Deliver commits them in turn, and a failure after
// some committed (ErrPartialCommit) is retried: with ClaimIn for every
// DataSource, the redelivery keeps the work only where the message is new.
//
// # The guarantee
//
// For one consumer group, the writes that a handler makes through a
// DataSource with the delivery's context are committed at most once per
// message, and, as long as the message is redelivered until Deliver
// reports Committed or Duplicate, exactly once. It does not cover side
// effects outside the database (HTTP calls, e-mails), statements run with
// WithoutDelivery or on another *sql.DB, nor DDL or other statements with
// an implicit commit (MySQL commits the delivery's transaction at a CREATE
// TABLE). See docs/guarantees.md.
//
// # Errors
//
//	ErrAlreadyConsumed   first use of a DataSource in a delivery: the message is recorded for the group. Acknowledge it.
//	ErrRollbackOnly      Deliver: a transaction of the delivery was rolled back, then the handler returned nil. Retry.
//	ErrDeliveryBusy      a statement while a Rows of the delivery is open. Close the rows first.
//	ErrDeliveryDone      a statement with a delivery's context after Deliver returned. Refused.
//	ErrTxOptions         BeginTx at another isolation level than the delivery's transaction. Nothing committed.
//	ErrPartialCommit     Deliver: committed in some databases only. Retry the message.
//	ErrInvalidDelivery   empty key or group, invalid UTF-8, # in the group, id too long, or a character the column cannot store (ErrUnstorableKey). No SQL ran.
//	ErrKeyCollision      Deliver, DeliverBatch, IsConsumed: the record met is another id the column takes for this one (*KeyCollisionError). Not a duplicate: retry; fix the column.
//	ErrTxAborted         statement or commit after the server aborted the transaction. Retry the message.
//	ErrCommitUnknown     the connection failed during COMMIT. Retry the message.
//	ErrInvalidTableName  Open: the table name is not a plain identifier. No SQL ran.
//	ErrDriverPackage     Open: the driver needs its package of this module (mysqldriver, pgxdriver, mssqldriver) imported. No SQL ran.
//	ErrSchema            Open, CheckSchema, Migrate: the table is missing or wrong, or message_id cannot store every key (*SchemaError).
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
// and can be set with WithDialect (for a wrapped connector, e.g. otelsql).
// This package imports no driver, so a program links only the one it uses:
// import the package of yours, which registers it and tells this package
// how to read its errors (and, for pgx, how to begin a delivery
// transaction in one round trip):
//
//	import _ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mysqldriver" // "mysql"
//	import _ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/pgxdriver"   // "pgx"
//	import _ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mssqldriver" // "sqlserver", "mssql"
//
// Without it, Open fails with ErrDriverPackage for MySQL and SQL Server
// (their duplicates are known by error numbers) and for pgx. The claim table's DDL for each is in
// the schema package (schema/transaction_record.sql and its SQL Server and
// PostgreSQL siblings); Migrate creates it, CheckSchema (run by Open)
// verifies it.
package mqdatasource
