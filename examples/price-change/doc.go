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
//	go run ./examples/price-change -driver mysql -dsn 'root@tcp(127.0.0.1:3306)/test'
//
// scripts/demo.sh in the repository runs it on a throwaway MariaDB or
// PostgreSQL, and with "apache" on a throwaway Apache RocketMQ too.
// -namesrv (or $NAMESRV_ADDR) points it at a real RocketMQ cluster instead
// of the in-process broker, with -topic naming an existing topic. The subcommands produce,
// consume and verify run the parts as separate processes; README.md shows a
// run where the consumer process is killed with SIGKILL mid-run.
package main
