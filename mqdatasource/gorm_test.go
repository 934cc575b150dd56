package mqdatasource_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	gormmysql "gorm.io/driver/mysql"
	gormpostgres "gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
)

// openGORM opens GORM on the fixture's DataSource.
func openGORM(t *testing.T, f *fixture, cfg *gorm.Config) *gorm.DB {
	t.Helper()
	var dialector gorm.Dialector
	switch f.Name {
	case "mysql":
		dialector = gormmysql.New(gormmysql.Config{Conn: f.ds.DB()})
	default:
		dialector = gormpostgres.New(gormpostgres.Config{Conn: f.ds.DB()})
	}
	cfg.Logger = logger.Discard
	db, err := gorm.Open(dialector, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// ledgerEntry is a row of the ledger table, whose id the database assigns
// (RETURNING on PostgreSQL, LAST_INSERT_ID on MySQL).
type ledgerEntry struct {
	ID      int64 `gorm:"primaryKey"`
	Account int
	Amount  int
}

// TestGORMStyles: unchanged GORM handlers of every transaction style, each
// message delivered by 8 goroutines at once and then twice more in turn:
// each applied exactly once.
func TestGORMStyles(t *testing.T) {
	const messages, copies = 3, 8
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		type handler func(db *gorm.DB, f *fixture, ledger string, id int) error
		add := func(db *gorm.DB, f *fixture, id, n int) error {
			return db.Table(f.account).Where("id = ?", id).Update("balance", gorm.Expr("balance + ?", n)).Error
		}
		for _, tc := range []struct {
			name        string
			skipDefault bool
			fn          handler
			wantBalance int64
			wantLedger  int64 // rows per message
		}{
			{"two writes, default transactions", false, func(db *gorm.DB, f *fixture, _ string, id int) error {
				if err := add(db, f, id, 5); err != nil {
					return err
				}
				return add(db, f, id, 7)
			}, 12, 0},
			{"three writes, default transactions", false, func(db *gorm.DB, f *fixture, _ string, id int) error {
				for _, n := range []int{1, 2, 3} {
					if err := add(db, f, id, n); err != nil {
						return err
					}
				}
				return nil
			}, 6, 0},
			{"Transaction", false, func(db *gorm.DB, f *fixture, _ string, id int) error {
				return db.Transaction(func(tx *gorm.DB) error {
					if err := add(tx, f, id, 5); err != nil {
						return err
					}
					return add(tx, f, id, 7)
				})
			}, 12, 0},
			{"nested Transaction", false, func(db *gorm.DB, f *fixture, _ string, id int) error {
				return db.Transaction(func(tx *gorm.DB) error {
					if err := add(tx, f, id, 5); err != nil {
						return err
					}
					return tx.Transaction(func(tx2 *gorm.DB) error { return add(tx2, f, id, 7) })
				})
			}, 12, 0},
			{"nested Transaction rolled back to its savepoint", false, func(db *gorm.DB, f *fixture, _ string, id int) error {
				return db.Transaction(func(tx *gorm.DB) error {
					if err := add(tx, f, id, 5); err != nil {
						return err
					}
					errNested := errors.New("nested failed")
					err := tx.Transaction(func(tx2 *gorm.DB) error {
						if err := add(tx2, f, id, 7); err != nil {
							return err
						}
						return errNested
					})
					if !errors.Is(err, errNested) {
						return err
					}
					return nil // the outer transaction goes on without the nested one
				})
			}, 5, 0},
			{"SkipDefaultTransaction", true, func(db *gorm.DB, f *fixture, _ string, id int) error {
				if err := add(db, f, id, 5); err != nil {
					return err
				}
				return add(db, f, id, 7)
			}, 12, 0},
			{"Create with a returned id, then an update", false, func(db *gorm.DB, f *fixture, ledger string, id int) error {
				entry := ledgerEntry{Account: id, Amount: 12}
				if err := db.Table(ledger).Create(&entry).Error; err != nil {
					return err
				}
				if entry.ID == 0 {
					return errors.New("Create returned no id")
				}
				return add(db, f, id, 12)
			}, 12, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, e, messages)
				// No limit on the pool: each losing delivery waits for the
				// winner's claim while holding a pooled connection, and the
				// winner still needs one for its own statements.
				f.ds.DB().SetMaxOpenConns(0)
				ledger := dbtest.UniqueName(t, "ledger")
				idCol := map[string]string{"mysql": "id bigint AUTO_INCREMENT PRIMARY KEY", "postgres": "id bigserial PRIMARY KEY"}[e.Name]
				e.Exec(t, "CREATE TABLE "+ledger+" ("+idCol+", account int NOT NULL, amount int NOT NULL)")
				t.Cleanup(func() { e.Exec(t, "DROP TABLE IF EXISTS "+ledger) })
				db := openGORM(t, f, &gorm.Config{SkipDefaultTransaction: tc.skipDefault})
				deliver := func(m int) (bool, error) {
					return redeliver(context.Background(), "g", fmt.Sprintf("gorm-%d", m), func(ctx context.Context) error {
						return tc.fn(db.WithContext(ctx), f, ledger, m)
					})
				}
				var applied [messages + 1]atomic.Int32
				var wg sync.WaitGroup
				for m := 1; m <= messages; m++ {
					for range copies {
						wg.Add(1)
						go func() {
							defer wg.Done()
							ok, err := deliver(m)
							if err != nil {
								t.Errorf("message %d: %v", m, err)
							}
							if ok {
								applied[m].Add(1)
							}
						}()
					}
				}
				wg.Wait()
				for range 2 {
					for m := 1; m <= messages; m++ {
						if ok, err := deliver(m); err != nil || ok {
							t.Errorf("sequential redelivery of message %d: applied=%v, %v; want a duplicate", m, ok, err)
						}
					}
				}
				for m := 1; m <= messages; m++ {
					if n := applied[m].Load(); n != 1 {
						t.Errorf("message %d applied by %d deliveries, want 1", m, n)
					}
					if b := f.balance(t, m); b != tc.wantBalance {
						t.Errorf("account %d: balance %d, want %d", m, b, tc.wantBalance)
					}
				}
				if n := f.records(t); n != messages {
					t.Errorf("%d records, want %d", n, messages)
				}
				if n := e.QueryInt(t, "SELECT COUNT(*) FROM "+ledger); n != tc.wantLedger*messages {
					t.Errorf("%d ledger rows, want %d", n, tc.wantLedger*messages)
				}
			})
		}
	})
}
