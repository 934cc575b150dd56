// Command eobench measures what the exactly-once claim costs: on one
// database, side by side in one run, it times
//
//   - plain:   a transaction with one business UPDATE;
//   - claim:   the same transaction through an mqdatasource.DataSource with
//     a delivery in its context (claim INSERT + UPDATE);
//   - select-insert: the hand-written dedupe, "SELECT the id, then process,
//     then INSERT the id" (SELECT before the transaction, INSERT in it);
//   - manual-claim: the claim INSERT written by hand in a plain transaction
//     (what the wrapper automates; its lower bound without the wrapper's
//     MySQL round-trip saving);
//
// at each worker count, and prints the throughput of each (median round),
// the wall time per transaction and its ratio to plain, and, when the server
// runs on this machine, the CPU time per transaction (client + server, and
// each part) and its ratio to plain: on a machine shared with other work
// the CPU time is the steadier measure of what the claim costs.
// With -status it also prints, per transaction of each variant, the
// server's status counters that changed (statements, handler calls, InnoDB
// page and log requests, bytes). Variants run one after
// the other in each round, the ratio is taken per round and the median
// round's ratio is reported, so drift in the load of a shared machine hits
// the variants alike.
//
// Run it against a throwaway MariaDB:
//
//	TESTDB_ONLY=mysql scripts/testdb.sh go run ./cmd/eobench
//
// or any server: go run ./cmd/eobench -driver mysql -dsn 'user@tcp(host:3306)/db'.
// It creates and drops the tables eobench_record, eobench_account and
// eobench_dedupe.
//
// With -mode e2e it measures instead the consumers users would pick, end to
// end: it preloads -messages messages into a topic (on an in-process
// rocketmqtest broker, or the broker of -namesrv) and consumes all of them
// with rocketmq-client-go's PushConsumer once per variant, each in its own
// consumer group, to committed rows: at-least-once (no dedupe),
// select-insert (hand-written dedupe), eo and eo-nocheck
// (exactlyonce.TxListener with and without its pre-check lookup),
// eo-batch8 and eo-batch32 (exactlyonce.BatchListener), and listeners that
// do nothing (the ceiling of the client and the broker); then a redelivery
// storm replays every message to the eo and eo-batch32 groups, rewound to
// offset 0, found first in the claim table and then in the listener's
// cache. It prints messages/s, CPU per message, RSS and the ratios to
// at-least-once, and fails unless every variant applied every message
// exactly once. Its tables are named eobench_e2e_*. docs/benchmarks.md
// ("End to end") has the details and figures:
//
//	TESTDB_ONLY=mysql scripts/testdb.sh go run ./cmd/eobench -mode e2e
package main

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

const (
	recordTable  = "eobench_record"
	accountTable = "eobench_account"
	dedupeTable  = "eobench_dedupe"
	// The one-column tables of -floor.
	bigintTable = "eobench_floor_bigint"
	msgidTable  = "eobench_floor_msgid"
)

func main() {
	if err := run(); err != nil {
		log.Fatalf("eobench: %v", err)
	}
}

// run does the work of main and returns its error only after its deferred
// clean-up ran: the tables are dropped and a changed server setting is
// restored whether the run succeeds, fails or is interrupted.
func run() error {
	var (
		driverName = flag.String("driver", "mysql", `database/sql driver: "mysql" or "pgx"`)
		dsn        = flag.String("dsn", "", "data source name (default $MYSQL_DSN, or $POSTGRES_DSN for pgx)")
		ops        = flag.Int("ops", 1500, "transactions per variant per round")
		rounds     = flag.Int("rounds", 7, "rounds (the median is reported)")
		workerList = flag.String("workers", "1,8", "comma-separated worker counts")
		accounts   = flag.Int("accounts", 1000, "rows in the business table")
		cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of this process to the file")
		dropIndex  = flag.String("drop-index", "", "drop this index of the claim table after creating it (e.g. load_key, to measure what it costs)")
		status     = flag.Bool("status", false, "MySQL/MariaDB: also print the server's status counters (SHOW GLOBAL STATUS: Com_*, Handler_*, Innodb_*, bytes) that changed, per transaction of each variant")
		onlyList   = flag.String("variants", "", "comma-separated variants to run: claim, manual-claim, select-insert, claim-3w, claim-3tx (default all; plain always runs)")
		recordDDL  = flag.String("record-ddl", "", "create the claim table from this DDL file (its table name transaction_record is replaced) instead of the migration, to measure another schema of the table")
		floor      = flag.Bool("floor", false, "MySQL/MariaDB: instead of the claim variants, measure what the parts of a claimed transaction cost, on one held connection per worker with autocommit=0, against the same transaction with BEGIN on such a connection (held-plain): no first statement, a no-op statement, an INSERT of one bigint, an INSERT of the message id alone, and the claim INSERT")
		flushLog   = flag.Int("flush-log-at-trx-commit", -1, "MySQL/MariaDB: set innodb_flush_log_at_trx_commit for the run (1 = durable, the server default; the throwaway server runs with 2) and restore it after")
		mode       = flag.String("mode", "tx", `"tx": the transactions of the claim variants, without a broker; "e2e": consumers of a preloaded topic, from the broker to committed rows (docs/benchmarks.md, "End to end")`)
		messages   = flag.Int("messages", 20000, "e2e: messages preloaded into the topic, consumed by every variant")
		bodySize   = flag.Int("body-size", 1024, "e2e: bytes per message body")
		queues     = flag.Int("queues", 4, "e2e: queues of the topic on the in-process broker")
		namesrv    = flag.String("namesrv", "", "e2e: name server host:port of a running broker (default: start an in-process rocketmqtest broker); the redelivery storm needs the in-process one")
	)
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })

	// Every flag is checked before anything touches the database.
	switch *driverName {
	case "mysql":
		*dsn = cmp.Or(*dsn, os.Getenv("MYSQL_DSN"))
	case "pgx":
		*dsn = cmp.Or(*dsn, os.Getenv("POSTGRES_DSN"))
	default:
		return fmt.Errorf("-driver %q: want mysql or pgx", *driverName)
	}
	if *dsn == "" {
		return errors.New("no DSN: pass -dsn or set MYSQL_DSN / POSTGRES_DSN (scripts/testdb.sh does)")
	}
	if *driverName != "mysql" && *flushLog >= 0 {
		return errors.New("-flush-log-at-trx-commit is for MySQL/MariaDB only")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch *mode {
	case "tx":
		for _, name := range e2eFlags {
			if set[name] {
				return fmt.Errorf("-%s is for -mode e2e", name)
			}
		}
	case "e2e":
		for _, name := range txFlags {
			if set[name] {
				return fmt.Errorf("-%s is for -mode tx", name)
			}
		}
		if !set["rounds"] {
			*rounds = 1 // a round consumes every message once per variant
		}
		if *messages < 1 || *bodySize < 1 || *queues < 1 || *rounds < 1 || *accounts < 1 {
			return errors.New("-messages, -body-size, -queues, -rounds and -accounts must be at least 1")
		}
		stopProfile, err := startProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
		_, err = runE2E(ctx, e2eConfig{
			driver: *driverName, dsn: *dsn, messages: *messages, bodySize: *bodySize, queues: *queues,
			accounts: *accounts, rounds: *rounds, namesrv: *namesrv, prefix: "eobench_e2e",
			flushLog: *flushLog, stall: time.Minute, pgStatWait: 11 * time.Second, out: os.Stdout,
		})
		return err
	default:
		return fmt.Errorf("-mode %q: want tx or e2e", *mode)
	}
	if *ops < 1 || *rounds < 1 || *accounts < 1 {
		return fmt.Errorf("-ops, -rounds and -accounts must be at least 1 (got %d, %d, %d)", *ops, *rounds, *accounts)
	}
	var workers []int
	for _, s := range strings.Split(*workerList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bad -workers %q: want comma-separated counts of at least 1", *workerList)
		}
		workers = append(workers, n)
	}
	if *driverName != "mysql" && (*status || *floor) {
		return errors.New("-status and -floor are for MySQL/MariaDB only")
	}
	if *floor && *onlyList != "" {
		return errors.New("-floor replaces -variants: give one of them")
	}
	var only map[string]bool
	if *onlyList != "" {
		only = map[string]bool{"plain": true}
		for _, v := range strings.Split(*onlyList, ",") {
			v = strings.TrimSpace(v)
			if !slices.Contains(variantNames, v) {
				return fmt.Errorf("-variants: unknown variant %q (one of %s)", v, strings.Join(variantNames, ", "))
			}
			only[v] = true
		}
	}
	if *dropIndex != "" {
		if err := mqdatasource.ValidateTableName(*dropIndex); err != nil {
			return fmt.Errorf("-drop-index: %w", err)
		}
	}

	stopProfile, err := startProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	b, err := setup(*driverName, *dsn, *accounts)
	if err != nil {
		return err
	}
	defer b.teardown()
	b.only = only
	if *recordDDL != "" {
		if err := b.recreateRecord(*recordDDL); err != nil {
			return fmt.Errorf("-record-ddl: %w", err)
		}
	}
	if *dropIndex != "" {
		q := "ALTER TABLE " + recordTable + " DROP INDEX " + *dropIndex
		if *driverName == "pgx" {
			q = "DROP INDEX " + recordTable + "_" + *dropIndex
		}
		if _, err := b.plain.Exec(q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		fmt.Printf("eobench: dropped index %s of %s\n", *dropIndex, recordTable)
	}
	if *flushLog >= 0 {
		restore, err := setFlushLog(b.plain, b.driver, *flushLog, os.Stdout)
		if err != nil {
			return fmt.Errorf("-flush-log-at-trx-commit: %w", err)
		}
		defer restore()
	}
	if *status {
		b.status = map[string]map[string]float64{}
	}
	if *floor {
		if err := b.setupFloor(); err != nil {
			return fmt.Errorf("-floor: %w", err)
		}
	}
	if b.driver == "mysql" && !b.hasStatTables() {
		fmt.Println("eobench: note: the server has no mysql.table_stats (a datadir without the system schema): MariaDB then tries to open its statistics tables at every statement that opens a table, which inflates the cost of each statement alike")
	}
	return b.run(ctx, workers, *ops, *rounds)
}

// startProfile starts a CPU profile into the file named path ("": none)
// and returns what stops it.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// txFlags and e2eFlags are the flags of only one -mode.
var (
	txFlags  = []string{"ops", "workers", "drop-index", "status", "variants", "record-ddl", "floor"}
	e2eFlags = []string{"messages", "body-size", "queues", "namesrv"}
)

type bench struct {
	driver string
	plain  *sql.DB
	ds     *mqdatasource.DataSource
	// claimSQL is the claim INSERT written by hand, with ? placeholders.
	claimSQL string
	// manualClaim is claimSQL prepared on the plain pool: the
	// "manual-claim" variant writes the record by hand, the lower bound of
	// what the wrapper can cost.
	manualClaim *sql.Stmt
	accounts    int
	seq         atomic.Int64 // message keys
	// serverPID is the local database server's pid (0: unknown), for
	// measuring its CPU time.
	serverPID int
	// status, with -status, sums per variant name the changes of the
	// server's status counters over the measured runs (nil: off).
	status map[string]map[string]float64
	only   map[string]bool // -variants (nil: all)
	floor  bool            // -floor: run floorVariants instead
}

// recreateRecord replaces the claim table by one created from the DDL in
// file, with recordTable for transaction_record.
func (b *bench) recreateRecord(file string) error {
	ddl, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if _, err := b.plain.Exec("DROP TABLE " + recordTable); err != nil {
		return err
	}
	if _, err := b.plain.Exec(strings.ReplaceAll(string(ddl), "transaction_record", recordTable)); err != nil {
		return err
	}
	fmt.Printf("eobench: %s created from %s\n", recordTable, file)
	return nil
}

// hasStatTables reports whether a MySQL/MariaDB server has its
// engine-independent statistics table (what a server installed with
// mariadb-install-db or mysqld --initialize has).
func (b *bench) hasStatTables() bool {
	var n int
	err := b.plain.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'mysql' AND TABLE_NAME = 'table_stats'").Scan(&n)
	return err != nil || n > 0
}

// statusPrefixes are the SHOW GLOBAL STATUS counters -status reports.
var statusPrefixes = []string{"Com_", "Handler_", "Innodb_", "Bytes_", "Questions", "Table_locks", "Opened_", "Table_open_cache"}

// serverStatus reads the server's numeric status counters named by
// statusPrefixes.
func (b *bench) serverStatus() (map[string]float64, error) { return serverStatus(b.plain) }

// serverStatus reads a MySQL/MariaDB server's numeric status counters named
// by statusPrefixes.
func serverStatus(db *sql.DB) (map[string]float64, error) {
	rows, err := db.Query("SHOW GLOBAL STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[string]float64{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return nil, err
		}
		for _, p := range statusPrefixes {
			if strings.HasPrefix(name, p) {
				if f, err := strconv.ParseFloat(value, 64); err == nil {
					m[name] = f
				}
				break
			}
		}
	}
	return m, rows.Err()
}

// setFlushLog sets the server's innodb_flush_log_at_trx_commit (how durable a
// commit is, which decides how much a commit costs beside the statements)
// and returns a function that restores the previous value. It is a global
// setting: on a shared server it changes every client's commits.
func setFlushLog(db *sql.DB, driverName string, n int, out io.Writer) (restore func(), err error) {
	if driverName != "mysql" {
		return nil, fmt.Errorf("only for MySQL/MariaDB, not %s", driverName)
	}
	var old int
	if err := db.QueryRow("SELECT @@GLOBAL.innodb_flush_log_at_trx_commit").Scan(&old); err != nil {
		return nil, err
	}
	set := func(v int) error {
		_, err := db.Exec("SET GLOBAL innodb_flush_log_at_trx_commit = " + strconv.Itoa(v))
		return err
	}
	if err := set(n); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "eobench: innodb_flush_log_at_trx_commit = %d for this run (was %d)\n", n, old)
	return func() {
		if err := set(old); err != nil {
			log.Printf("eobench: restoring innodb_flush_log_at_trx_commit: %v", err)
		}
	}, nil
}

// q turns the ? placeholders of s into the database's form.
func (b *bench) q(s string) string { return sqlx.Rebind(sqlx.BindType(b.ds.Dialect().Name()), s) }

func setup(driverName, dsn string, accounts int) (_ *bench, err error) {
	ctx := context.Background()
	plain, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	ds, err := mqdatasource.Open(driverName, dsn, mqdatasource.WithTable(recordTable), mqdatasource.WithSchemaCheck(false))
	if err != nil {
		plain.Close()
		return nil, err
	}
	b := &bench{driver: driverName, plain: plain, ds: ds, accounts: accounts}
	defer func() {
		if err != nil {
			b.teardown() // drop what was created before the failure
		}
	}()
	b.teardown0()
	if driverName == "mysql" {
		b.serverPID = findServerPID(plain)
	}
	if err := ds.Migrate(ctx); err != nil {
		return nil, err
	}
	for _, s := range []string{
		"CREATE TABLE " + accountTable + " (id int PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE " + dedupeTable + " (id varchar(255) PRIMARY KEY)",
	} {
		if _, err := plain.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
	}
	offset := "`offset`"
	if driverName == "pgx" {
		offset = `"offset"`
	}
	b.claimSQL = "INSERT INTO " + recordTable + " (consumer_group, message_id, topic_name, ctime, queue_id, " + offset + ", broker_name) VALUES (?, ?, ?, ?, ?, ?, ?)"
	b.manualClaim, err = plain.PrepareContext(ctx, b.q(b.claimSQL))
	if err != nil {
		return nil, err
	}
	for i := 1; i <= accounts; i += 500 {
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + accountTable + " (id, balance) VALUES ")
		for j := i; j < i+500 && j <= accounts; j++ {
			if j > i {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "(%d, 0)", j)
		}
		if _, err := plain.ExecContext(ctx, sb.String()); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *bench) teardown0() {
	for _, t := range []string{recordTable, accountTable, dedupeTable, bigintTable, msgidTable} {
		_, _ = b.plain.Exec("DROP TABLE IF EXISTS " + t)
	}
}

func (b *bench) teardown() {
	b.teardown0()
	b.ds.Close()
	b.plain.Close()
}

// variant runs one transaction for worker w's i-th operation.
type variant struct {
	name string
	op   func(ctx context.Context, account int) error
	// held, if set, replaces op: it prepares one worker's own connection
	// and returns the worker's op and what releases the connection.
	held func(ctx context.Context) (op func(ctx context.Context, account int) error, release func(), err error)
	// base is the variant whose time is 1.00 in this one's ratio ("" is
	// plain).
	base string
}

// variantNames are the names of the variants, in the order they run.
var variantNames = []string{"plain", "claim", "manual-claim", "select-insert", "claim-3w", "claim-3tx"}

func (b *bench) variants() []variant {
	update := b.q("UPDATE " + accountTable + " SET balance = balance + 1 WHERE id = ?")
	sel := b.q("SELECT 1 FROM " + dedupeTable + " WHERE id = ?")
	ins := b.q("INSERT INTO " + dedupeTable + " (id) VALUES (?)")
	oneTx := func(ctx context.Context, begin func(context.Context, *sql.TxOptions) (*sql.Tx, error), account int, extra func(*sql.Tx) error) error {
		tx, err := begin(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, update, account); err != nil {
			_ = tx.Rollback()
			return err
		}
		if extra != nil {
			if err := extra(tx); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		return tx.Commit()
	}
	return []variant{
		{name: "plain", op: func(ctx context.Context, account int) error {
			return oneTx(ctx, b.plain.BeginTx, account, nil)
		}},
		{name: "claim", op: func(ctx context.Context, account int) error {
			return b.deliver(ctx, account, func(ctx context.Context) error {
				return oneTx(ctx, b.ds.BeginTx, account, nil)
			})
		}},
		{name: "manual-claim", op: func(ctx context.Context, account int) error {
			tx, err := b.plain.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			st := tx.StmtContext(ctx, b.manualClaim)
			if _, err := st.ExecContext(ctx, "bench", b.key()+"#bench", "bench", time.Now().UnixMilli(), account%8, account, "broker-a"); err != nil {
				_ = tx.Rollback()
				return err
			}
			if _, err := tx.ExecContext(ctx, update, account); err != nil {
				_ = tx.Rollback()
				return err
			}
			return tx.Commit()
		}},
		{name: "select-insert", op: func(ctx context.Context, account int) error {
			id := b.key() + "#bench"
			var one int
			switch err := b.plain.QueryRowContext(ctx, sel, id).Scan(&one); err {
			case sql.ErrNoRows:
			case nil:
				return nil // already processed
			default:
				return err
			}
			return oneTx(ctx, b.plain.BeginTx, account, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, ins, id)
				return err
			})
		}},
		// Three writes in one explicit transaction of a delivery, the base
		// of claim-3tx.
		{name: "claim-3w", op: func(ctx context.Context, account int) error {
			return b.deliver(ctx, account, func(ctx context.Context) error {
				return oneTx(ctx, b.ds.BeginTx, account, func(tx *sql.Tx) error {
					for range 2 {
						if _, err := tx.ExecContext(ctx, update, account); err != nil {
							return err
						}
					}
					return nil
				})
			})
		}},
		// The same three writes, each in a transaction of its own, as GORM
		// runs writes by default: one delivery transaction all the same.
		{name: "claim-3tx", base: "claim-3w", op: func(ctx context.Context, account int) error {
			return b.deliver(ctx, account, func(ctx context.Context) error {
				for range 3 {
					if err := oneTx(ctx, b.ds.BeginTx, account, nil); err != nil {
						return err
					}
				}
				return nil
			})
		}},
	}
}

// deliver runs fn as a delivery of a new message, failing unless it
// committed.
func (b *bench) deliver(ctx context.Context, account int, fn func(context.Context) error) error {
	d := mqdatasource.Delivery{ConsumerGroup: "bench", Key: b.key(), Topic: "bench", BrokerName: "broker-a", QueueID: account % 8, QueueOffset: int64(account)}
	res, err := mqdatasource.Deliver(ctx, d, fn)
	if err == nil && res != mqdatasource.Committed {
		err = fmt.Errorf("delivery %s", res)
	}
	return err
}

// setupFloor creates the one-column tables of -floor.
func (b *bench) setupFloor() error {
	for _, q := range []string{
		"CREATE TABLE " + bigintTable + " (id bigint PRIMARY KEY)",
		"CREATE TABLE " + msgidTable + " (message_id varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY)",
	} {
		if _, err := b.plain.Exec(q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	b.floor = true
	return nil
}

// floorVariants are the variants of -floor. Each worker holds one
// connection with autocommit=0 and the first statement prepared on it, so a
// transaction is (first statement,) UPDATE, COMMIT, the first statement
// opening it as the claim does in mqdatasource's MySQL path; held-plain is
// the plain transaction (BEGIN, UPDATE, COMMIT) on such a connection, the
// base of their ratios. Their differences price the parts of a claimed
// transaction: the BEGIN round trip it saves, a round trip that executes
// nothing, and INSERTs from the least a message-id claim can write to the
// claim row itself.
func (b *bench) floorVariants() []variant {
	update := "UPDATE " + accountTable + " SET balance = balance + 1 WHERE id = ?"
	held := func(begin bool, first string, args func(account int) []any) func(context.Context) (func(context.Context, int) error, func(), error) {
		return func(ctx context.Context) (func(context.Context, int) error, func(), error) {
			c, err := b.plain.Conn(ctx)
			if err != nil {
				return nil, nil, err
			}
			release := func() {
				// Back to autocommit before the pool reuses the connection.
				if _, err := c.ExecContext(ctx, "SET autocommit=1"); err != nil {
					_ = c.Raw(func(any) error { return driver.ErrBadConn })
				}
				_ = c.Close()
			}
			prepare := func(q string) (*sql.Stmt, error) { return c.PrepareContext(ctx, q) }
			_, err = c.ExecContext(ctx, "SET autocommit=0")
			var st *sql.Stmt
			if err == nil && first != "" {
				st, err = prepare(first)
			}
			if err != nil {
				release()
				return nil, nil, err
			}
			return func(ctx context.Context, account int) error {
				if begin {
					if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
						return err
					}
				}
				if st != nil {
					if _, err := st.ExecContext(ctx, args(account)...); err != nil {
						return err
					}
				}
				// Not prepared in advance: a prepare, execute and close, as
				// in plain.
				if _, err := c.ExecContext(ctx, update, account); err != nil {
					return err
				}
				_, err := c.ExecContext(ctx, "COMMIT")
				return err
			}, release, nil
		}
	}
	return []variant{
		{name: "held-plain", held: held(true, "", nil), base: "held-plain"},
		{name: "held-no-begin", held: held(false, "", nil), base: "held-plain"},
		{name: "held-noop", held: held(false, "DO ?", func(account int) []any { return []any{account} }), base: "held-plain"},
		{name: "held-insert-bigint", held: held(false, "INSERT INTO "+bigintTable+" (id) VALUES (?)", func(int) []any { return []any{b.seq.Add(1)} }), base: "held-plain"},
		{name: "held-insert-msgid", held: held(false, "INSERT INTO "+msgidTable+" (message_id) VALUES (?)", func(int) []any { return []any{b.key() + "#bench"} }), base: "held-plain"},
		{name: "held-claim", held: held(false, b.claimSQL, func(account int) []any {
			return []any{"bench", b.key() + "#bench", "bench", time.Now().UnixMilli(), account % 8, account, "broker-a"}
		}), base: "held-plain"},
	}
}

func (b *bench) key() string {
	return fmt.Sprintf("7F00000100002A9F0000%012X", b.seq.Add(1))
}

// sample is one timed run of a variant.
type sample struct {
	wall   time.Duration
	cpu    time.Duration // client + server CPU time; 0 if the server's is unknown
	client time.Duration // this process's share of cpu
}

// measure runs ops transactions of v on workers goroutines. It stops early
// with stop's error when stop is cancelled; the transactions themselves
// run without it, as a context that can be cancelled makes database/sql
// and the driver do more work per transaction.
func (b *bench) measure(stop context.Context, v variant, workers, ops int) (sample, error) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	ops1 := make([]func(context.Context, int) error, workers)
	for w := range ops1 {
		ops1[w] = v.op
		if v.held != nil {
			op, release, err := v.held(ctx)
			if err != nil {
				return sample{}, fmt.Errorf("%s: %w", v.name, err)
			}
			defer release()
			ops1[w] = op
		}
	}
	cpu0, cpuOK := b.cpuTime()
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go pprof.Do(ctx, pprof.Labels("variant", v.name), func(ctx context.Context) {
			// Labelled, so that a -cpuprofile splits by variant:
			// go tool pprof -tagfocus variant=claim-3tx ...
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(ops) {
					return
				}
				if err := stop.Err(); err != nil {
					errs <- err
					return
				}
				account := int((i*7919+int64(w))%int64(b.accounts)) + 1
				if err := ops1[w](ctx, account); err != nil {
					errs <- fmt.Errorf("%s: %w", v.name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := sample{wall: time.Since(start)}
	if cpu1, ok := b.cpuTime(); ok && cpuOK {
		s.cpu, s.client = cpu1.since(cpu0)
	}
	close(errs)
	return s, <-errs
}

// cpuSnapshot is the CPU time used so far by this process and by each
// thread of the database server.
type cpuSnapshot struct {
	client time.Duration
	server map[string]time.Duration // by thread id
}

// cpuTime reads the CPU time used so far by this process and the database
// server, when the server runs on this machine (its pid file is readable):
// the load of other processes on a shared machine does not change it the
// way it changes wall time.
func (b *bench) cpuTime() (cpuSnapshot, bool) {
	if b.serverPID == 0 {
		return cpuSnapshot{}, false
	}
	return readCPU(b.serverPID, false)
}

// readCPU reads the CPU time used so far by this process and, unless
// serverPID is 0, by each thread of the server process serverPID and, with
// children, of its child processes (PostgreSQL's backends).
func readCPU(serverPID int, children bool) (cpuSnapshot, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuSnapshot{}, false
	}
	snap := cpuSnapshot{client: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), server: map[string]time.Duration{}}
	if serverPID == 0 {
		return snap, true
	}
	pids := []int{serverPID}
	if children {
		pids = append(pids, childPIDs(serverPID)...)
	}
	for i, pid := range pids {
		// Per-thread scheduler statistics: nanoseconds on the CPU.
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			if i == 0 {
				return cpuSnapshot{}, false
			}
			continue // the child ended
		}
		for _, t := range tasks {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
			if err != nil {
				continue // the thread ended
			}
			if f := strings.Fields(string(data)); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				snap.server[t.Name()] = time.Duration(n) // thread ids are unique across processes
			}
		}
	}
	return snap, true
}

// childPIDs returns the processes whose parent is pid.
func childPIDs(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The parent pid is the second field after the command name,
		// which is in parentheses and may contain spaces.
		rest := string(data)
		if i := strings.LastIndexByte(rest, ')'); i >= 0 {
			rest = rest[i+1:]
		}
		if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// since returns the CPU time used between s0 and s, client + server, and
// the client's part. The server's is summed over its threads alive at s:
// a thread that ended in between (MariaDB's background pool retires idle
// threads) drops out, which loses only what it used in between, instead of
// subtracting all it ever used.
func (s cpuSnapshot) since(s0 cpuSnapshot) (total, client time.Duration) {
	var server time.Duration
	for tid, t := range s.server {
		if t0 := s0.server[tid]; t0 <= t { // else a new thread took the id
			t -= t0
		}
		server += t
	}
	client = s.client - s0.client
	return client + server, client
}

// findPostgresPID finds a PostgreSQL server's postmaster pid through the
// postmaster.pid file of its data directory, if the server runs here and
// the user may read data_directory (a superuser, or pg_read_all_settings).
func findPostgresPID(db *sql.DB) int {
	var dir string
	if err := db.QueryRow("SHOW data_directory").Scan(&dir); err != nil {
		return 0
	}
	data, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task", pid)); err != nil {
		return 0
	}
	return pid
}

// findServerPID finds the MySQL/MariaDB server's pid through its pid file,
// if the server runs here.
func findServerPID(db *sql.DB) int {
	var file string
	if err := db.QueryRow("SELECT @@pid_file").Scan(&file); err != nil {
		return 0
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task", pid)); err != nil {
		return 0
	}
	return pid
}

func (b *bench) run(ctx context.Context, workers []int, ops, rounds int) error {
	all := b.variants()
	if b.floor {
		all = append(all[:1], b.floorVariants()...)
	}
	var vs []variant
	for _, v := range all {
		if b.only == nil || b.only[v.name] {
			vs = append(vs, v)
		}
	}
	fmt.Printf("eobench: driver %s, %d transactions per variant per round, %d rounds, business table %d rows\n", b.driver, ops, rounds, b.accounts)
	if b.serverPID == 0 {
		fmt.Printf("(server CPU unknown: not a local MySQL/MariaDB; CPU columns omitted)\n")
	}
	fmt.Printf("\n%-8s %-14s %9s %10s %16s %10s %16s %14s\n", "workers", "variant", "tx/s", "µs/tx", "wall vs plain", "CPU µs/tx", "CPU vs plain", "client+server")
	for _, w := range workers {
		b.plain.SetMaxIdleConns(w + 2)
		b.ds.DB().SetMaxIdleConns(w + 2)
		// Warm up pools and prepared statements.
		for _, v := range vs {
			if _, err := b.measure(ctx, v, w, 100); err != nil {
				return err
			}
		}
		samples := make(map[string][]sample)
		for r := range rounds {
			// Each round starts with the next variant, so that none always
			// runs first or right after another (warm caches, a compaction
			// or checkpoint the one before set off).
			for i := range vs {
				v := vs[(i+r)%len(vs)]
				var st0 map[string]float64
				if b.status != nil {
					var err error
					if st0, err = b.serverStatus(); err != nil {
						return err
					}
				}
				s, err := b.measure(ctx, v, w, ops)
				if err != nil {
					return err
				}
				if b.status != nil {
					st1, err := b.serverStatus()
					if err != nil {
						return err
					}
					if b.status[v.name] == nil {
						b.status[v.name] = map[string]float64{}
					}
					for k, x := range st1 {
						b.status[v.name][k] += x - st0[k]
					}
				}
				samples[v.name] = append(samples[v.name], s)
			}
		}
		median := func(xs []float64) (lo, mid, hi float64) {
			xs = slices.Clone(xs)
			slices.Sort(xs)
			return xs[0], xs[len(xs)/2], xs[len(xs)-1]
		}
		// Ratios are taken per round (the variants of a round ran back to
		// back, under the same load), then the median round is reported.
		ratios := func(v variant, f func(sample) time.Duration) []float64 {
			base := cmp.Or(v.base, "plain")
			rs := make([]float64, rounds)
			for i := range rs {
				rs[i] = float64(f(samples[v.name][i])) / float64(f(samples[base][i]))
			}
			return rs
		}
		wall := func(s sample) time.Duration { return s.wall }
		cpu := func(s sample) time.Duration { return s.cpu }
		var claimWall, claimCPU float64
		for _, v := range vs {
			ws := make([]float64, rounds)
			cs := make([]float64, rounds)
			ccs := make([]float64, rounds)
			scs := make([]float64, rounds)
			for i, s := range samples[v.name] {
				ws[i], cs[i] = s.wall.Seconds(), s.cpu.Seconds()
				ccs[i], scs[i] = s.client.Seconds(), (s.cpu - s.client).Seconds()
			}
			_, mw, _ := median(ws)
			_, mc, _ := median(cs)
			_, mcc, _ := median(ccs)
			_, msc, _ := median(scs)
			wlo, wmid, whi := median(ratios(v, wall))
			line := fmt.Sprintf("%-8d %-18s %9.0f %10.1f %5.2f (%.2f-%.2f)", w, v.name, float64(ops)/mw, mw*1e6/float64(ops)*float64(w), wmid, wlo, whi)
			if b.serverPID != 0 {
				clo, cmid, chi := median(ratios(v, cpu))
				line += fmt.Sprintf(" %10.1f %5.2f (%.2f-%.2f) %6.1f+%.1f", mc*1e6/float64(ops), cmid, clo, chi, mcc*1e6/float64(ops), msc*1e6/float64(ops))
				if v.name == "claim" {
					claimCPU = cmid
				}
			}
			if v.name == "claim" {
				claimWall = wmid
			}
			fmt.Println(line)
		}
		if claimWall != 0 {
			fmt.Printf("%-8d ratio claim/plain: wall time %.2f", w, claimWall)
			if b.serverPID != 0 {
				fmt.Printf(", CPU time %.2f", claimCPU)
			}
			fmt.Printf(" (median of per-round ratios)\n")
		}
		fmt.Println()
		if b.status != nil {
			b.printStatus(vs, w, float64(ops*rounds))
		}
	}
	return nil
}

// printStatus prints, per transaction, the status counters that changed
// during the measured runs of some variant at w workers, and resets them.
// Counters of the server's own background work (purge, flushing) land on
// whichever variant ran at the time.
func (b *bench) printStatus(vs []variant, w int, txs float64) {
	var names []string
	for k := range b.status[vs[0].name] {
		for _, v := range vs {
			if x := b.status[v.name][k]; x/txs >= 0.005 || x/txs <= -0.005 {
				names = append(names, k)
				break
			}
		}
	}
	slices.Sort(names)
	fmt.Printf("%-8d server status counters per transaction (SHOW GLOBAL STATUS deltas over the measured runs)\n%-44s", w, "counter")
	for _, v := range vs {
		fmt.Printf(" %14s", v.name)
	}
	fmt.Println()
	for _, k := range names {
		fmt.Printf("%-44s", k)
		for _, v := range vs {
			fmt.Printf(" %14.2f", b.status[v.name][k]/txs)
		}
		fmt.Println()
	}
	fmt.Println()
	clear(b.status)
}
