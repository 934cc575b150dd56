// Package exactlyonce makes rocketmq-client-go (v2.1.2) consumers apply each
// message's database writes exactly once per consumer group, on top of
// package mqdatasource.
//
// RocketMQ delivers at least once. mqdatasource records every consumed
// message (key#group) in transaction_record inside the same local
// transaction as the handler's writes, so a redelivery finds the record and
// its transaction rolls back. This package is the consumer side: it builds
// the delivery for each message, puts it in the handler's context, runs the
// handler, and turns the outcome into the ConsumeResult the client needs,
// closing the traps of the v2.1.2 client on the way (a returned error is
// ignored and acknowledges; an orderly consumer acknowledges
// ConsumeRetryLater; the orderly suspension defaults to a hot loop; panics
// are not recovered in orderly mode; Shutdown waits for nothing).
//
// # Drop-in listener
//
// Listener and TxListener return the function PushConsumer.Subscribe takes,
// so an existing consumer changes one line:
//
//	c.Subscribe("orders", consumer.MessageSelector{},
//		exactlyonce.TxListener(ds, "order-service", applyOrder))
//
// A Handler does its work through the DataSource with the context it is
// given (any ORM on ds.DB() works, with or without transactions of its
// own); a TxHandler is given a *sql.Tx that already holds the claim. Either
// way all of a message's work runs in one delivery transaction
// (mqdatasource.Deliver) that the listener commits when the handler returns
// nil. Both work for concurrent and orderly consumers; the listener detects
// the mode.
//
// # Outcomes
//
// For every message of a delivery:
//
//	what happened to the message                           acknowledged   Outcome
//	its delivery transaction committed                     yes            OutcomeProcessed
//	in the listener's cache (handler not run)              yes            OutcomeSkippedCache
//	in transaction_record (handler not run)                yes            OutcomeSkippedTable
//	the claim found the record (returned or swallowed)     yes            OutcomeDuplicate
//	Handler returned nil, never used the DataSource        yes, Warn log  OutcomeUnclaimed
//	error, commit error, partial commit                    no, retried    OutcomeFailed
//	panic (handler, key function; recovered, logged)       no, retried    OutcomePanic
//	not attempted (orderly after a failure; shutdown)      no, retried    OutcomeNotRun
//	Handler rolled a transaction back and returned nil     no, retried    OutcomeRolledBack
//	no key, or an id the column cannot hold (not run)      no, retried    OutcomeInvalid
//	record of another id the column takes for this one     no, retried    OutcomeKeyCollision
//	no EXTEND_UNIQ_INFO under WithRequireProducerKey       no, retried    OutcomeUnstamped
//
// A duplicate is acknowledged only when the record is this message's id
// byte for byte: a record the message_id column only takes for it (a
// case-insensitive collation) is mqdatasource.ErrKeyCollision, retried and
// in the end dead-lettered, never acknowledged unapplied.
//
// Transient database failures (mqdatasource.IsRetryable) are first retried
// in place (WithLocalRetries). A delivery succeeds (ConsumeSuccess, nil
// error) only if all its messages
// are acknowledged. Otherwise a concurrent consumer gets ConsumeRetryLater
// (the client sends the whole batch back to the retry topic; the messages
// that committed are skipped when it returns), except under a Consumer (or
// with WithSendBack), which sends the failed messages back itself and checks the broker's
// answer, since v2.1.2 takes a refused send-back for a success (upstream
// #1106): the delivery succeeds once they are stored for retry, and a
// refused one is run again here (docs/consumer.md, Send-backs). An orderly consumer gets
// SuspendCurrentQueueAMoment, with the orderly context's
// SuspendCurrentQueueTimeMillis set to the back-off (WithSuspendBackoff,
// default 1s), never ConsumeRetryLater, which v2.1.2's orderly
// consumer never redelivers. Under a Consumer, an orderly message that
// fails past the client's maximum reconsume times is sent to the
// dead-letter queue by the listener, with the answer checked (the queue is
// suspended while the broker refuses), and the rest of its batch runs
// (docs/consumer.md, Orderly mode). Success is never returned together
// with an error.
//
// # Pre-check
//
// Before the handler runs, the listener skips a message whose id it
// committed itself (a bounded LRU cache, WithCacheSize) or that
// transaction_record holds (DataSource.IsConsumed, WithTableCheck). The Java
// ExactlyOnceConsumer has no pre-check and runs the business code again for
// every duplicate. A failed lookup does not skip anything: the claim still
// protects. Before both, a delivery the claim could not record
// (DataSource.ValidateDelivery, mqdatasource.ErrInvalidDelivery, e.g. an id
// too long for the column, or with a character the column's character set
// cannot store) fails without running the handler. The cache holds exact
// ids and IsConsumed compares the record it finds byte for byte, so the
// pre-check never takes another message for this one.
//
// # Keys
//
// The dedupe key is EXTEND_UNIQ_INFO, else UNIQ_KEY, else ORIGIN_MESSAGE_ID,
// else the message id (DefaultKey), compatible with the Java client's
// message_id format. WithKeysAsDedupeKey uses the message Keys (a business
// key); WithKeyFunc anything else.
//
// Safe keys are EXTEND_UNIQ_INFO stamped by WrapProducer, StampKey or the
// Java producer, and business keys (SetBusinessKey, Keys) that name one
// fact. A bare UNIQ_KEY is not: the client builds it from the IP, the pid
// cut to 16 bits, the second and a counter, so two producers with the same
// IP and pid (two pid-1 containers with host networking) issue the same
// ids, and the second message of each pair would be acknowledged as a
// duplicate of the first. Build every producer with WrapProducer (or
// NewProducer), which stamps each message, batch members included, with
// UNIQ_KEY and 32 random bits in the Java producer's EXTEND_UNIQ_INFO
// format; then WithRequireProducerKey makes consumers refuse unstamped
// messages (OutcomeUnstamped). docs/guarantees.md, "Keys", has the whole
// story.
//
// # Consumer
//
// NewConsumer builds the PushConsumer itself and adds a graceful
// Shutdown(ctx): stop taking deliveries, wait for running handlers, cancel
// them when ctx ends, persist offsets, shut the client down. WithPurge runs
// DataSource.Purge in the background.
//
// # Logging and metrics
//
// Logs go to log/slog (WithLogger). Counters per Outcome and handler time go
// to a Metrics implementation (WithMetrics); Stats counts in memory. A
// Tracer (WithTracer) gets a span per message and per Phase; the nested
// modules eoprom and eotel implement these for Prometheus and
// OpenTelemetry.
//
// docs/consumer.md has the details, and the client bugs this package
// closes and those that remain.
package exactlyonce
