package mqdatasource_test

import (
	"context"
	"database/sql"
	"strconv"
	"testing"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/memdb"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// BenchmarkDeliverWrites measures the client-side cost of a delivery of
// three writes over an in-memory driver (no server), by transaction style:
// one explicit transaction, or each write in a BeginTx/Commit pair of its
// own (GORM's default). The same two styles on the driver alone, without
// the DataSource or a delivery (three transactions of their own there),
// give database/sql's own cost of a pair for comparison.
func BenchmarkDeliverWrites(b *testing.B) {
	ds, err := mqdatasource.OpenConnector(memdb.New(), mqdatasource.WithDialect(mqdatasource.PostgreSQL()), mqdatasource.WithSchemaCheck(false))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ds.Close() })
	raw := sql.OpenDB(memdb.New())
	b.Cleanup(func() { raw.Close() })

	n := 0 // keys stay new across -count runs
	for name, db := range map[string]*sql.DB{"driver-alone": raw, "delivery": ds.DB()} {
		for style, writes := range map[string]func(context.Context, *sql.DB) error{"one-tx": oneTx, "tx-per-write": txPerWrite} {
			b.Run(name+"/"+style, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if db == raw {
						if err := writes(context.Background(), db); err != nil {
							b.Fatal(err)
						}
						continue
					}
					n++
					d := mqdatasource.Delivery{ConsumerGroup: "bench", Key: style + strconv.Itoa(n), Topic: "t"}
					res, err := mqdatasource.Deliver(context.Background(), d, func(ctx context.Context) error { return writes(ctx, db) })
					if err != nil || res != mqdatasource.Committed {
						b.Fatalf("delivery: %v, %v", res, err)
					}
				}
			})
		}
	}
}

const benchAdd = `UPDATE counter SET n = n + $1 WHERE id = $2`

// oneTx makes three writes in one transaction.
func oneTx(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for range 3 {
		if _, err := tx.ExecContext(ctx, benchAdd, 1, 1); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// txPerWrite makes three writes, each in a transaction of its own.
func txPerWrite(ctx context.Context, db *sql.DB) error {
	for range 3 {
		if err := oneWrite(ctx, db); err != nil {
			return err
		}
	}
	return nil
}

func oneWrite(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, benchAdd, 1, 1); err != nil {
		return err
	}
	return tx.Commit()
}
