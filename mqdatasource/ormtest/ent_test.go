package ormtest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"entgo.io/ent/dialect/sql/sqlgraph"
	"entgo.io/ent/schema/field"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
)

// The ent handlers run without a generated client: generating one takes an
// ent schema, go generate and thousands of lines of generated code checked
// in for a test of two tables. A generated client is a thin layer over
// ent's SQL driver and its sqlgraph package: client.Tx is drv.Tx wrapped in
// a txDriver, and the builders' Save calls sqlgraph.UpdateNode, UpdateNodes
// and CreateNode, which call the driver's (or the transaction's) Tx, Exec,
// Query and Commit. The handlers below make those same calls, with the
// specs a generated client builds, so the statements, transactions and
// reads that reach ds.DB() are a generated client's.

// openEnt opens ent's SQL driver on the fixture's DataSource, as
// ent.NewClient(ent.Driver(entsql.OpenDB(dialect.MySQL, db))) does on a
// *sql.DB. It is not closed: its Close would close ds.DB(), which the
// fixture closes.
func openEnt(f *fixture) *entsql.Driver {
	if f.Name == "mysql" {
		return entsql.OpenDB(dialect.MySQL, f.ds.DB())
	}
	return entsql.OpenDB(dialect.Postgres, f.ds.DB())
}

// txDriver is the driver a generated client's transaction runs its
// builders on (txDriver in the generated tx.go, without the commit hooks):
// the builders' Tx gets the transaction itself back, whose Commit and
// Rollback do nothing, so that a builder does not end the client's
// transaction; the user's tx.Commit does.
type txDriver struct {
	drv dialect.Driver
	tx  dialect.Tx
}

var _ dialect.Driver = (*txDriver)(nil)

func (tx *txDriver) Tx(context.Context) (dialect.Tx, error) { return tx, nil }
func (tx *txDriver) Dialect() string                        { return tx.drv.Dialect() }
func (*txDriver) Close() error                              { return nil }
func (*txDriver) Commit() error                             { return nil }
func (*txDriver) Rollback() error                           { return nil }

func (tx *txDriver) Exec(ctx context.Context, query string, args, v any) error {
	return tx.tx.Exec(ctx, query, args, v)
}

func (tx *txDriver) Query(ctx context.Context, query string, args, v any) error {
	return tx.tx.Query(ctx, query, args, v)
}

// entUpdateOne is client.Account.UpdateOneID(id).AddBalance(n).Save(ctx):
// sqlgraph.UpdateNode begins a transaction (drv.Tx; in a client
// transaction, the transaction itself), runs the UPDATE, reads the row
// back with a SELECT and commits. It returns the balance read back.
func entUpdateOne(ctx context.Context, drv dialect.Driver, f *fixture, id, n int) (int64, error) {
	spec := sqlgraph.NewUpdateSpec(f.account, []string{"id", "balance"}, sqlgraph.NewFieldSpec("id", field.TypeInt))
	spec.Node.ID.Value = id
	spec.AddField("balance", field.TypeInt, n)
	var balance int64
	spec.ScanValues = func([]string) ([]any, error) {
		return []any{new(entsql.NullInt64), new(entsql.NullInt64)}, nil
	}
	spec.Assign = func(_ []string, values []any) error {
		balance = values[1].(*entsql.NullInt64).Int64
		return nil
	}
	err := sqlgraph.UpdateNode(ctx, drv, spec)
	return balance, err
}

// entUpdateWhere is client.Account.Update().Where(account.ID(id)).
// AddBalance(n).Save(ctx): sqlgraph.UpdateNodes runs one UPDATE with no
// transaction of its own.
func entUpdateWhere(ctx context.Context, drv dialect.Driver, f *fixture, id, n int) error {
	spec := sqlgraph.NewUpdateSpec(f.account, []string{"id", "balance"}, sqlgraph.NewFieldSpec("id", field.TypeInt))
	spec.Predicate = func(s *entsql.Selector) { s.Where(entsql.EQ(s.C("id"), id)) }
	spec.AddField("balance", field.TypeInt, n)
	_, err := sqlgraph.UpdateNodes(ctx, drv, spec)
	return err
}

// entCreate is client.Ledger.Create().SetAccount(account).SetAmount(amount).
// Save(ctx): sqlgraph.CreateNode runs INSERT ... RETURNING id through
// Query on PostgreSQL, and INSERT through Exec then LastInsertId on MySQL.
// It returns the new row's id.
func entCreate(ctx context.Context, drv dialect.Driver, f *fixture, account, amount int) (int64, error) {
	spec := sqlgraph.NewCreateSpec(f.ledger, sqlgraph.NewFieldSpec("id", field.TypeInt64))
	spec.SetField("account", field.TypeInt, account)
	spec.SetField("amount", field.TypeInt, amount)
	if err := sqlgraph.CreateNode(ctx, drv, spec); err != nil {
		return 0, err
	}
	return spec.ID.Value.(int64), nil
}

// TestEnt: unchanged ent handlers on MariaDB and PostgreSQL: a client
// transaction, and builders without one (each UpdateOne in a transaction
// of its own); each message delivered concurrently and again in turn, and
// applied once.
func TestEnt(t *testing.T) {
	// work is the handler's body: two updates of account m, each reading
	// its row back, and a ledger row for it.
	work := func(ctx context.Context, drv dialect.Driver, f *fixture, m int) error {
		b, err := entUpdateOne(ctx, drv, f, m, 5)
		if err != nil {
			return err
		}
		if b != 5 { // the row as this delivery's transaction sees it
			return fmt.Errorf("UpdateOne read back balance %d, want 5", b)
		}
		if err := entUpdateWhere(ctx, drv, f, m, 7); err != nil {
			return err
		}
		id, err := entCreate(ctx, drv, f, m, 12)
		if err != nil {
			return err
		}
		if id == 0 {
			return errors.New("Create returned no id")
		}
		return nil
	}
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		runCases(t, e, []handlerCase{
			// client.Tx, the builders on the transaction, Rollback on an
			// error and Commit, as ent's documentation writes it.
			{"client transaction", func(_ *testing.T, f *fixture) func(context.Context, int) error {
				drv := openEnt(f)
				return func(ctx context.Context, m int) error {
					tx, err := drv.Tx(ctx)
					if err != nil {
						return err
					}
					if err := work(ctx, &txDriver{drv: drv, tx: tx}, f, m); err != nil {
						if rerr := tx.Rollback(); rerr != nil {
							err = fmt.Errorf("%w: rolling back transaction: %v", err, rerr)
						}
						return err
					}
					return tx.Commit()
				}
			}, 12, 1},
			{"builders without a transaction", func(_ *testing.T, f *fixture) func(context.Context, int) error {
				drv := openEnt(f)
				return func(ctx context.Context, m int) error { return work(ctx, drv, f, m) }
			}, 12, 1},
		})
	})
}
