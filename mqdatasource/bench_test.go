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
// own (GORM's default). Compare the two with benchstat, or read the ratio
// of their ns/op.
func BenchmarkDeliverWrites(b *testing.B) {
	mem := memdb.New()
	ds, err := mqdatasource.OpenConnector(mem, mqdatasource.WithDialect(mqdatasource.PostgreSQL()), mqdatasource.WithSchemaCheck(false))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ds.Close() })
	const add = `UPDATE counter SET n = n + $1 WHERE id = $2`
	write := func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, add, 1, 1)
		return err
	}
	styles := []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"one-tx", func(ctx context.Context) error {
			tx, err := ds.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			for range 3 {
				if err := write(ctx, tx); err != nil {
					return err
				}
			}
			return tx.Commit()
		}},
		{"tx-per-write", func(ctx context.Context) error {
			for range 3 {
				tx, err := ds.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				if err := write(ctx, tx); err != nil {
					return err
				}
				if err := tx.Commit(); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	var n int
	for _, s := range styles {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n++
				d := mqdatasource.Delivery{ConsumerGroup: "bench", Key: "k" + strconv.Itoa(n), Topic: "t"}
				res, err := mqdatasource.Deliver(context.Background(), d, s.fn)
				if err != nil || res != mqdatasource.Committed {
					b.Fatalf("delivery: %v, %v", res, err)
				}
			}
		})
	}
}
