package mqdatasource_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jmoiron/sqlx"
	gormmysql "gorm.io/driver/mysql"
	gormpostgres "gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// TestGORM: unchanged GORM code on ds.DB() gets the claim through ctx.
func TestGORM(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		var dialector gorm.Dialector
		switch e.Name {
		case "mysql":
			dialector = gormmysql.New(gormmysql.Config{Conn: f.ds.DB()})
		default:
			dialector = gormpostgres.New(gormpostgres.Config{Conn: f.ds.DB()})
		}
		db, err := gorm.Open(dialector, &gorm.Config{Logger: logger.Discard})
		if err != nil {
			t.Fatal(err)
		}
		d := delivery("g", "gorm")
		for i, want := range []mqdatasource.Result{mqdatasource.Committed, mqdatasource.Duplicate} {
			res, err := mqdatasource.Deliver(context.Background(), d, func(ctx context.Context) error {
				return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
					return tx.Table(f.account).Where("id = ?", 1).Update("balance", gorm.Expr("balance + ?", 1)).Error
				})
			})
			wantResult(t, fmt.Sprintf("delivery %d", i+1), res, err, want, nil)
		}
		if b := f.balance(t, 1); b != 1 || !f.hasRecord(t, d) {
			t.Fatalf("balance %d record %v, want 1 and a record", b, f.hasRecord(t, d))
		}

		// Without Transaction, each GORM write runs in its own default
		// transaction: both join the delivery's transaction.
		d = delivery("g", "gorm-default-tx")
		for i, want := range []mqdatasource.Result{mqdatasource.Committed, mqdatasource.Duplicate} {
			res, err := mqdatasource.Deliver(context.Background(), d, func(ctx context.Context) error {
				if err := db.WithContext(ctx).Table(f.account).Where("id = ?", 1).Update("balance", gorm.Expr("balance + ?", 5)).Error; err != nil {
					return err
				}
				return db.WithContext(ctx).Table(f.account).Where("id = ?", 1).Update("balance", gorm.Expr("balance + ?", 7)).Error
			})
			wantResult(t, fmt.Sprintf("delivery %d", i+1), res, err, want, nil)
		}
		if b := f.balance(t, 1); b != 13 || !f.hasRecord(t, d) {
			t.Fatalf("balance %d record %v, want 13 and a record", b, f.hasRecord(t, d))
		}
	})
}

// TestSqlx: unchanged sqlx code on ds.DB() gets the claim through ctx.
func TestSqlx(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e, 1)
		db := sqlx.NewDb(f.ds.DB(), e.Driver)
		handler := func(ctx context.Context) error {
			tx, err := db.BeginTxx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, tx.Rebind("UPDATE "+f.account+" SET balance = balance + ? WHERE id = ?"), 1, 1); err != nil {
				return err
			}
			return tx.Commit()
		}
		d := delivery("g", "sqlx")
		for i, want := range []mqdatasource.Result{mqdatasource.Committed, mqdatasource.Duplicate} {
			res, err := mqdatasource.Deliver(context.Background(), d, handler)
			wantResult(t, fmt.Sprintf("delivery %d", i+1), res, err, want, nil)
		}
		if b := f.balance(t, 1); b != 1 {
			t.Fatalf("balance %d, want 1", b)
		}
	})
}
