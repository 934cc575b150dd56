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
	raw := sql.OpenDB(memdb.New())
	b.Cleanup(func() { raw.Close() })
	rawStyles := []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"one-tx", func(ctx context.Context) error {
			tx, err := raw.BeginTx(ctx, nil)
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
				tx, err := raw.BeginTx(ctx, nil)
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
	for _, s := range rawStyles {
		b.Run("driver-alone/"+s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := s.fn(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	var n int
	for _, s := range styles {
		b.Run("delivery/"+s.name, func(b *testing.B) {
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
