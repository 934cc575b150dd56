// Package benchbank is the business transaction of the end-to-end
// benchmarks, cmd/eobench -mode e2e (rocketmq-client-go v2) and
// exactlyoncev5's cmd/eobench5 (the RocketMQ 5 gRPC client), so that both
// client generations are measured doing the same work: per message, an
// UPDATE of an account balance (the account chosen by message id) and an
// INSERT of a ledger row. Each consumption run writes to a slot of
// accounts of its own, and Check proves it applied every message exactly
// once. It is for the benchmarks only.
package benchbank

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// Bank is a benchmark run's database: its business tables, reached two
// ways, plainly and through a DataSource with the run's claim table.
type Bank struct {
	Plain *sql.DB                  // without the claim, for the variants without the library
	DS    *mqdatasource.DataSource // with the claim table prefix_record

	db       *sql.DB // Plain
	accounts int     // per slot
	slots    int     // handed out so far

	record, account, ledger      string // table names
	update, insertLedger         string
	countLedger, sumSlotBalances string
}

// Execer is what the business transaction runs on: a *sql.Tx, or a
// DataSource's *sql.DB with a delivery in the context.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Open opens the database of driver and dsn twice, plainly and through
// mqdatasource with the claim table prefix_record, and creates that table
// and the business tables prefix_account and prefix_ledger, dropping
// leftovers of an interrupted run first; each slot has accounts accounts.
func Open(ctx context.Context, driver, dsn, prefix string, accounts int) (b *Bank, err error) {
	b = &Bank{accounts: accounts, record: prefix + "_record", account: prefix + "_account", ledger: prefix + "_ledger"}
	if b.Plain, err = sql.Open(driver, dsn); err != nil {
		return nil, err
	}
	b.db = b.Plain
	b.drop()
	if b.DS, err = mqdatasource.Open(driver, dsn, mqdatasource.WithTable(b.record), mqdatasource.WithMigrate()); err != nil {
		b.Plain.Close()
		return nil, err
	}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	// More than the clients' 20 consuming goroutines, so that neither pool
	// opens and closes connections.
	b.Plain.SetMaxIdleConns(32)
	b.DS.DB().SetMaxIdleConns(32)
	d := b.DS.Dialect()
	id := "id bigint AUTO_INCREMENT PRIMARY KEY"
	if d.Name() == "postgres" {
		id = "id bigserial PRIMARY KEY"
	}
	for _, s := range []string{
		"CREATE TABLE " + b.account + " (id int PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE " + b.ledger + " (" + id + ", consumer_group varchar(128) NOT NULL, message_id varchar(128) NOT NULL, account int NOT NULL, amount bigint NOT NULL)",
	} {
		if _, err := b.db.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
	}
	q := func(s string) string { return sqlx.Rebind(sqlx.BindType(d.Name()), s) }
	b.update = q("UPDATE " + b.account + " SET balance = balance + 1 WHERE id = ?")
	b.insertLedger = q("INSERT INTO " + b.ledger + " (consumer_group, message_id, account, amount) VALUES (?, ?, ?, 1)")
	b.countLedger = q("SELECT COUNT(*) FROM " + b.ledger + " WHERE consumer_group = ?")
	b.sumSlotBalances = q("SELECT COALESCE(SUM(balance), 0) FROM " + b.account + " WHERE id BETWEEN ? AND ?")
	return b, nil
}

// Close drops the tables and closes both pools.
func (b *Bank) Close() {
	b.drop()
	b.DS.Close()
	b.Plain.Close()
}

func (b *Bank) drop() {
	for _, t := range []string{b.record, b.account, b.ledger} {
		_, _ = b.db.Exec("DROP TABLE IF EXISTS " + t)
	}
}

// NewSlot creates the accounts of a new consumption run and returns its
// slot: accounts slot*accounts+1 ... (slot+1)*accounts.
func (b *Bank) NewSlot(ctx context.Context) (int, error) {
	slot := b.slots
	b.slots++
	first := slot*b.accounts + 1
	for i := first; i < first+b.accounts; i += 500 {
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + b.account + " (id, balance) VALUES ")
		for j := i; j < min(i+500, first+b.accounts); j++ {
			if j > i {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "(%d, 0)", j)
		}
		if _, err := b.db.ExecContext(ctx, sb.String()); err != nil {
			return 0, err
		}
	}
	return slot, nil
}

// AccountOf is the account a message moves: spread over the slot's
// accounts by message id, the same for every variant.
func (b *Bank) AccountOf(slot int, msgID string) int {
	h := fnv.New32a()
	h.Write([]byte(msgID))
	return slot*b.accounts + int(h.Sum32()%uint32(b.accounts)) + 1
}

// Apply is the business transaction's work for one message of group.
func (b *Bank) Apply(ctx context.Context, x Execer, group string, slot int, msgID string) error {
	account := b.AccountOf(slot, msgID)
	if _, err := x.ExecContext(ctx, b.update, account); err != nil {
		return err
	}
	_, err := x.ExecContext(ctx, b.insertLedger, group, msgID, account)
	return err
}

// InTx runs fn in a transaction of the database without the claim.
func (b *Bank) InTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Check reads what a consumption run of group on slot left and fails
// unless it applied want messages exactly once: want ledger rows, and a
// balance of want over the slot's accounts. It returns both.
func (b *Bank) Check(ctx context.Context, group string, slot int, want int64) (rows, balance int64, err error) {
	if err := b.db.QueryRowContext(ctx, b.countLedger, group).Scan(&rows); err != nil {
		return 0, 0, err
	}
	first := slot*b.accounts + 1
	if err := b.db.QueryRowContext(ctx, b.sumSlotBalances, first, first+b.accounts-1).Scan(&balance); err != nil {
		return rows, 0, err
	}
	if rows != want || balance != want {
		return rows, balance, fmt.Errorf("group %s: %d ledger rows and balance %d, want %d of each", group, rows, balance, want)
	}
	return rows, balance, nil
}

// WaitDone waits until done reaches want, and fails when it stops moving
// for stall, or when ctx ends.
func WaitDone(ctx context.Context, done func() int64, want int64, stall time.Duration) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	lastN, lastMove := int64(-1), time.Now()
	for {
		n := done()
		if n >= want {
			return nil
		}
		if n != lastN {
			lastN, lastMove = n, time.Now()
		} else if time.Since(lastMove) > stall {
			return fmt.Errorf("stalled at %d of %d messages for %v", n, want, stall)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// MedianRatio is the median over rounds of base[i]/v[i]: the throughput of
// v relative to base's in the same round, for the same number of messages.
func MedianRatio(base, v []time.Duration) float64 {
	rs := make([]float64, len(v))
	for i := range v {
		rs[i] = float64(base[i]) / float64(v[i])
	}
	slices.Sort(rs)
	return rs[len(rs)/2]
}

// Acked is how many messages an exactly-once listener reporting to s
// acknowledged: applied, or found applied.
func Acked(s *exactlyonce.Stats) int64 {
	var n int64
	for o := exactlyonce.OutcomeProcessed; o.Acked(); o++ {
		n += s.Count(o)
	}
	return n
}
