package mqdatasource_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"testing"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/memdb"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// A connection database/sql hands out for a delivery's work only routes it
// to the delivery's own connection, so its session reset is deferred until
// it is handed out for work of its own; a reset that then finds it dead
// still makes database/sql retry on another connection.
func TestSessionResetDeferredForDeliveries(t *testing.T) {
	mem := memdb.New()
	ds, err := mqdatasource.OpenConnector(mem, mqdatasource.WithDialect(mqdatasource.PostgreSQL()), mqdatasource.WithSchemaCheck(false))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	ds.DB().SetMaxOpenConns(1) // one pooled connection, reused for everything
	const add = `UPDATE counter SET n = n + $1 WHERE id = $2`
	bg := context.Background()
	if _, err := ds.DB().ExecContext(bg, add, 1, 1); err != nil {
		t.Fatal(err)
	}
	resets := mem.Count(memdb.Reset)

	d := mqdatasource.Delivery{ConsumerGroup: "g", Key: "k1", Topic: "t"}
	res, err := mqdatasource.Deliver(bg, d, func(ctx context.Context) error {
		for range 3 { // GORM's default: a transaction per write
			tx, err := ds.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, add, 10, 1); err != nil {
				return err
			}
			if err := tx.Commit(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || res != mqdatasource.Committed {
		t.Fatalf("Deliver = %v, %v; want Committed", res, err)
	}
	if got := mem.Count(memdb.Reset) - resets; got != 0 {
		t.Errorf("%d session resets during the delivery, want 0 (deferred)", got)
	}

	// The pooled connection is dead by now: its deferred reset says so
	// when it is handed out for work of its own, and database/sql opens
	// another one for the statement, which runs once.
	mem.Fail(memdb.Reset, driver.ErrBadConn)
	if _, err := ds.DB().ExecContext(bg, add, 100, 1); err != nil {
		t.Fatalf("statement after a failed deferred reset: %v", err)
	}
	if got := mem.Count(memdb.Reset) - resets; got != 1 {
		t.Errorf("%d session resets after the delivery, want 1", got)
	}
	if got := mem.Counter(1); got != 131 {
		t.Errorf("counter = %d, want 131 (1 + 3×10 + 100, each once)", got)
	}
	if !mem.Recorded("k1#g") {
		t.Error("delivery k1 not recorded")
	}
}

// A *sql.Conn taken with a delivery's context and then used for work of
// its own (a context without the delivery) runs the deferred reset before
// that work. A dead connection then fails the call with driver.ErrBadConn,
// which database/sql does not retry on a *sql.Conn, and nothing of it is
// applied.
func TestSessionResetDeferredSQLConn(t *testing.T) {
	mem := memdb.New()
	ds, err := mqdatasource.OpenConnector(mem, mqdatasource.WithDialect(mqdatasource.PostgreSQL()), mqdatasource.WithSchemaCheck(false))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	ds.DB().SetMaxOpenConns(1)
	const add = `UPDATE counter SET n = n + $1 WHERE id = $2`
	d := mqdatasource.Delivery{ConsumerGroup: "g", Key: "k1", Topic: "t"}
	res, err := mqdatasource.Deliver(context.Background(), d, func(ctx context.Context) error {
		if _, err := ds.DB().ExecContext(ctx, add, 10, 1); err != nil { // the delivery's
			return err
		}
		own := mqdatasource.WithoutDelivery(ctx)
		c, err := ds.DB().Conn(ctx)
		if err != nil {
			return err
		}
		resets := mem.Count(memdb.Reset)
		if _, err := c.ExecContext(own, add, 1, 2); err != nil {
			t.Errorf("own work on a *sql.Conn taken with the delivery's context: %v", err)
		}
		if got := mem.Count(memdb.Reset) - resets; got != 1 {
			t.Errorf("%d session resets before the connection's own work, want 1", got)
		}
		c.Close()

		mem.Fail(memdb.Reset, driver.ErrBadConn)
		c, err = ds.DB().Conn(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.ExecContext(own, add, 100, 2); !errors.Is(err, driver.ErrBadConn) {
			t.Errorf("own work on a dead connection: %v, want driver.ErrBadConn", err)
		}
		return nil
	})
	if err != nil || res != mqdatasource.Committed {
		t.Fatalf("Deliver = %v, %v; want Committed", res, err)
	}
	if a, b := mem.Counter(1), mem.Counter(2); a != 10 || b != 1 {
		t.Errorf("counters = %d, %d; want 10 (the delivery's) and 1 (the own work that ran)", a, b)
	}
}
