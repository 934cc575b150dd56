// Package exactlyoncev5 makes consumers of the RocketMQ 5 gRPC client,
// github.com/apache/rocketmq-clients/golang/v5 (v5.1.4), apply each
// message's database writes exactly once per consumer group: the
// counterpart of package exactlyonce (for rocketmq-client-go v2) on the
// same delivery model, mqdatasource.Deliver, with the same outcome table,
// Metrics, pre-check, handler styles and graceful shutdown.
//
// Every message runs as one delivery: all the handler's work through a
// mqdatasource.DataSource with the context it is given runs in one
// transaction whose first statement claims the message (key#group) in
// transaction_record, and which commits when the handler returns nil. A
// redelivery finds the record and is acknowledged without applying
// anything again.
//
// # Consumers
//
// PushConsumer (NewPushConsumer, NewPushTxConsumer) builds the client's push
// consumer with the adapter's listener and adds Shutdown(ctx); Listener and
// TxListener return the golang.MessageListener alone. A concurrent message
// that fails gets FAILURE and comes back after the group's retry delay. A
// FIFO message that fails is retried in the listener with back-off
// (WithRetryBackoff) until it succeeds, its message group waiting: the
// v5.1.4 client, given FAILURE, would hand out the group's next message
// while it waits to retry the failed one, and apply the group out of order.
//
// SimpleConsumer runs the receive loop of a golang.SimpleConsumer: receive
// (WithInvisibleDuration), deliver, then Ack on commit or duplicate, or
// change the invisible duration to the back-off on failure. A handler that
// outlives the invisible duration has it extended every half duration
// (WithExtendInvisible); if the message still comes back meanwhile, its
// second delivery waits on the first one's claim and is acknowledged as a
// duplicate.
//
// # Outcomes
//
// The outcome of each message is an exactlyonce.Outcome, reported to an
// exactlyonce.Metrics (WithMetrics), and acknowledged exactly when
// Outcome.Acked is true; the table is in package exactlyonce's
// documentation. Here "acknowledged" is SUCCESS (push) or Ack (simple);
// "retried" is FAILURE (push, concurrent), a retry in the listener (push,
// FIFO) or a shorter invisible duration (simple).
//
// # Keys
//
// DefaultKey is the EXTEND_UNIQ_INFO user property if present, else the
// message id, which for a gRPC consumer is the message's UNIQ_KEY (the
// offset message id of a message stored without one): the key the v2
// adapter derives for the same message, so that a group can move between
// the two clients on one table. One exception: Apache RocketMQ 5 treats
// EXTEND_UNIQ_INFO as a system property and does not pass it to gRPC
// clients, so messages stamped with exactlyonce.StampKey or
// exactlyonce.SetBusinessKey are keyed differently by the two adapters.
// WithKeysAsDedupeKey (KeysKey) matches exactlyonce.KeysKey. docs/v5.md has
// the table.
//
// # Why a separate module
//
// This package is its own Go module
// (github.com/b74fc070/rocketmq-exactlyonce/exactlyoncev5, with its own
// go.mod), not a package of the main module, so that users of the v2 client
// do not get gRPC, protobuf and the v5 client's other dependencies in their
// module graph. Measured with Go 1.26.8 on a tiny program that builds a v2
// Consumer (exactlyonce, mqdatasource, mqdatasource/mysqldriver) and one
// that builds a v5 PushConsumer (exactlyoncev5, the same driver):
//
//	                                         v2 program     v5 program
//	packages (go list -deps)                 247            456 (110 of gRPC/protobuf)
//	binary size (go build, linux/amd64)      12.9 MB        24.9 MB
//
// Go compiles only imported packages, so a sub-package would not have
// grown the v2 program's package list (247 either way). It would have
// grown the main module, measured by moving this package into it: its
// go.mod from 40 to 64 requirement lines and to "go 1.26.0" (the v5
// client's fixed golang.org/x/net needs it, so every v2 user would need Go
// 1.26), `go list -m all` from 102 to 193 modules and go.sum from 240 to 585
// lines, in every v2 user's downloads, go.sum and vulnerability scans; and
// minimal version selection would have moved modules the v2 client shares
// with the v5 client to the latter's versions (go.uber.org/atomic v1.5.1 to
// v1.11.0, among others), changing the v2 program's build (+7 KB). With a
// separate module the main module's go.mod is unchanged. The price is on
// the v5 side: this module imports exactlyonce for the shared vocabulary
// (Outcome, Metrics, Stats, the errors, TxFromContext), which links 10
// packages of rocketmq-client-go v2 into v5 programs.
package exactlyoncev5
