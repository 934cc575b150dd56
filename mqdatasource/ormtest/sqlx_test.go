package ormtest

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
)

// TestSqlx: an unchanged sqlx handler (BeginTxx, a statement in the
// database's placeholders by Rebind, Commit) on MariaDB and PostgreSQL;
// each message delivered concurrently and again in turn, and applied once.
func TestSqlx(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		runCases(t, e, []handlerCase{
			{"BeginTxx", func(_ *testing.T, f *fixture) func(context.Context, int) error {
				// Not closed: its Close would close ds.DB(), which the
				// fixture closes.
				db := sqlx.NewDb(f.ds.DB(), f.Driver)
				return func(ctx context.Context, m int) error {
					tx, err := db.BeginTxx(ctx, nil)
					if err != nil {
						return err
					}
					defer tx.Rollback()
					if _, err := tx.ExecContext(ctx, tx.Rebind("UPDATE "+f.account+" SET balance = balance + ? WHERE id = ?"), 1, m); err != nil {
						return err
					}
					return tx.Commit()
				}
			}, 1, 0},
		})
	})
}
