package ormtest

import (
	"context"
	"errors"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/mysqldialect"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
)

// openBun opens bun on the fixture's DataSource, as a bun user opens it
// on a *sql.DB. It is not closed: bun's Close would close ds.DB(), which
// the fixture closes.
func openBun(f *fixture) *bun.DB {
	if f.Name == "mysql" {
		return bun.NewDB(f.ds.DB(), mysqldialect.New())
	}
	return bun.NewDB(f.ds.DB(), pgdialect.New())
}

// TestBun: unchanged bun handlers, on MariaDB (mysqldialect) and
// PostgreSQL (pgdialect): RunInTx, writes without a transaction, and an
// insert that reads its id back; each message delivered concurrently and
// again in turn, and applied once.
func TestBun(t *testing.T) {
	// add adds n to account id's balance: db is a *bun.DB or a bun.Tx.
	add := func(ctx context.Context, db bun.IDB, f *fixture, id, n int) error {
		_, err := db.NewUpdate().Table(f.account).Set("balance = balance + ?", n).Where("id = ?", id).Exec(ctx)
		return err
	}
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		runCases(t, e, []handlerCase{
			{"RunInTx with two writes", func(_ *testing.T, f *fixture) func(context.Context, int) error {
				db := openBun(f)
				return func(ctx context.Context, m int) error {
					return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
						if err := add(ctx, tx, f, m, 5); err != nil {
							return err
						}
						return add(ctx, tx, f, m, 7)
					})
				}
			}, 12, 0},
			{"two writes without a transaction", func(_ *testing.T, f *fixture) func(context.Context, int) error {
				db := openBun(f)
				return func(ctx context.Context, m int) error {
					if err := add(ctx, db, f, m, 5); err != nil {
						return err
					}
					return add(ctx, db, f, m, 7)
				}
			}, 12, 0},
			// Returning("id") is INSERT ... RETURNING on PostgreSQL, and on
			// MariaDB from 10.5 (bun's mysqldialect asks the server's
			// version); before that bun reads LAST_INSERT_ID instead.
			{"Insert with Returning id, then a write", func(_ *testing.T, f *fixture) func(context.Context, int) error {
				db := openBun(f)
				return func(ctx context.Context, m int) error {
					row := ledgerRow{Account: m, Amount: 12}
					if _, err := db.NewInsert().Model(&row).ModelTableExpr(f.ledger).Returning("id").Exec(ctx); err != nil {
						return err
					}
					if row.ID == 0 {
						return errors.New("Insert returned no id")
					}
					return add(ctx, db, f, m, 12)
				}
			}, 12, 1},
		})
	})
}
