// Command price-change is the price-change sync service of Alibaba Cloud's
// exactly-once documentation, built on this module: an upstream pricing
// module publishes product price changes to RocketMQ, a downstream product
// service applies them to its database, and every change must take effect
// exactly once although RocketMQ delivers at least once.
//
// What to read, in order:
//
//   - producer.go: the message (product id as sharding key, so a product's
//     changes land in one queue in order; a business key as dedupe key, so a
//     change sent twice is applied once);
//   - consumer.go: the handler in the plain database/sql style
//     (exactlyonce.Listener), one transaction per change through the
//     mqdatasource.DataSource: new price, a price_history row, and a change
//     counter that is not idempotent on purpose; and the orderly consumer;
//   - consumer_tx.go: the same handler in the managed-transaction style
//     (exactlyonce.TxListener), selected with -style=tx;
//   - producer_v5.go and consumer_v5.go: the same on the RocketMQ 5 gRPC
//     client (exactlyoncev5), selected with -proxy: a FIFO topic with the
//     product id as message group, the business key as message key;
//   - schema.sql: the example's tables (transaction_record itself comes from
//     DataSource.Migrate);
//   - verify.go: the check that proves it: for every product, the final
//     price is that of its last change, the counter and the history count
//     each change once, in order.
//
// Run with only -dsn (and -driver) it is a demo (demo.go): on that database
// and the in-process rocketmqtest broker it publishes 3,000 changes while
// injecting duplicates (producer resends, the broker storing messages twice,
// a consumer restart that loses its offset commits, an offset rewind that
// replays the whole topic), runs two consumers, verifies the database and
// prints the result:
//
//	go run . -driver mysql -dsn 'root@tcp(127.0.0.1:3306)/test'
//
// (in this directory: the example is a Go module of its own, so that the
// v5 client's gRPC stays out of the library's module graph).
// scripts/demo.sh in the repository runs it on a throwaway MariaDB or
// PostgreSQL, with "apache" on a throwaway Apache RocketMQ too, and with
// "v5" on that broker's proxy through the RocketMQ 5 client.
// -namesrv (or $NAMESRV_ADDR) points it at a real RocketMQ cluster instead
// of the in-process broker, with -topic naming an existing topic; -proxy
// points it at a RocketMQ 5 proxy and runs it on the v5 gRPC client, with
// -topic naming an existing FIFO topic and -group an orderly consumer
// group (the broker faults and the offset rewind need the in-process
// broker, so a real cluster gets producer resends and a consumer restart
// only). The subcommands produce,
// consume and verify run the parts as separate processes; README.md shows a
// run where the consumer process is killed with SIGKILL mid-run.
package main
