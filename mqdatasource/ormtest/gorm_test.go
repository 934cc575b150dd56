package ormtest

import (
	"context"
	"errors"
	"testing"

	gormmysql "gorm.io/driver/mysql"
	gormpostgres "gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
)

// openGORM opens GORM on the fixture's DataSource, as a GORM user opens it
// on a *sql.DB (gormmysql.Config{Conn: db}). It is not closed: closing its
// *sql.DB would close ds.DB(), which the fixture closes.
func openGORM(t *testing.T, f *fixture, cfg *gorm.Config) *gorm.DB {
	t.Helper()
	var dialector gorm.Dialector
	if f.Name == "mysql" {
		dialector = gormmysql.New(gormmysql.Config{Conn: f.ds.DB()})
	} else {
		dialector = gormpostgres.New(gormpostgres.Config{Conn: f.ds.DB()})
	}
	cfg.Logger = logger.Discard
	db, err := gorm.Open(dialector, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestGORM: unchanged GORM handlers of every transaction style, on MariaDB
// and PostgreSQL: writes each in a default transaction of GORM's own,
// Transaction, nested Transaction (a savepoint) committed and rolled back,
// SkipDefaultTransaction, and Create reading back its id (RETURNING on
// PostgreSQL, LAST_INSERT_ID on MySQL); each message delivered
// concurrently and again in turn, and applied once.
func TestGORM(t *testing.T) {
	// add adds n to account id's balance.
	add := func(db *gorm.DB, f *fixture, id, n int) error {
		return db.Table(f.account).Where("id = ?", id).Update("balance", gorm.Expr("balance + ?", n)).Error
	}
	// twoWrites adds 5 and then 7 to account m's balance.
	twoWrites := func(db *gorm.DB, f *fixture, m int) error {
		if err := add(db, f, m, 5); err != nil {
			return err
		}
		return add(db, f, m, 7)
	}
	// gormCase is a case whose handler runs fn on GORM opened with
	// SkipDefaultTransaction set to skipDefault, with the delivery's ctx.
	gormCase := func(name string, skipDefault bool, fn func(db *gorm.DB, f *fixture, m int) error, wantBalance, wantLedger int64) handlerCase {
		return handlerCase{name, func(t *testing.T, f *fixture) func(context.Context, int) error {
			db := openGORM(t, f, &gorm.Config{SkipDefaultTransaction: skipDefault})
			return func(ctx context.Context, m int) error { return fn(db.WithContext(ctx), f, m) }
		}, wantBalance, wantLedger}
	}
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		runCases(t, e, []handlerCase{
			// Without Transaction, each GORM write runs in a default
			// transaction of its own: all join the delivery's transaction.
			gormCase("two writes, default transactions", false, twoWrites, 12, 0),
			gormCase("three writes, default transactions", false, func(db *gorm.DB, f *fixture, m int) error {
				for _, n := range []int{1, 2, 3} {
					if err := add(db, f, m, n); err != nil {
						return err
					}
				}
				return nil
			}, 6, 0),
			gormCase("Transaction", false, func(db *gorm.DB, f *fixture, m int) error {
				return db.Transaction(func(tx *gorm.DB) error {
					if err := add(tx, f, m, 5); err != nil {
						return err
					}
					return add(tx, f, m, 7)
				})
			}, 12, 0),
			gormCase("nested Transaction", false, func(db *gorm.DB, f *fixture, m int) error {
				return db.Transaction(func(tx *gorm.DB) error {
					if err := add(tx, f, m, 5); err != nil {
						return err
					}
					return tx.Transaction(func(tx2 *gorm.DB) error { return add(tx2, f, m, 7) })
				})
			}, 12, 0),
			gormCase("nested Transaction rolled back to its savepoint", false, func(db *gorm.DB, f *fixture, m int) error {
				return db.Transaction(func(tx *gorm.DB) error {
					if err := add(tx, f, m, 5); err != nil {
						return err
					}
					errNested := errors.New("nested failed")
					err := tx.Transaction(func(tx2 *gorm.DB) error {
						if err := add(tx2, f, m, 7); err != nil {
							return err
						}
						return errNested
					})
					if !errors.Is(err, errNested) {
						return err
					}
					return nil // the outer transaction goes on without the nested one
				})
			}, 5, 0),
			gormCase("SkipDefaultTransaction", true, twoWrites, 12, 0),
			gormCase("Create with a returned id, then an update", false, func(db *gorm.DB, f *fixture, m int) error {
				row := ledgerRow{Account: m, Amount: 12}
				if err := db.Table(f.ledger).Create(&row).Error; err != nil {
					return err
				}
				if row.ID == 0 {
					return errors.New("Create returned no id")
				}
				return add(db, f, m, 12)
			}, 12, 1),
		})
	})
}
