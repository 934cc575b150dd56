package ormtest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// Each test delivers messages 1..messages, message m to account m: message
// lone alone first, then copies deliveries of each of the others at once,
// then two more of every message in turn.
const messages, copies = 4, 8

// lone is the message delivered alone, before any other: with nothing to
// wait for or retry, its first delivery must be Committed at once.
const lone = messages

// fixture is a claim table, an account table (id, balance) with accounts
// 1..messages at balance 0 and a ledger table (an id the database assigns,
// account, amount), and a DataSource on them. The mqdatasource package's
// own fixture is in its _test.go files, which another module cannot
// import.
type fixture struct {
	*dbtest.Env
	ds      *mqdatasource.DataSource
	claims  string
	account string
	ledger  string
}

// newFixture creates the tables, dropped when the test ends, and opens a
// DataSource on them.
func newFixture(t *testing.T, e *dbtest.Env) *fixture {
	t.Helper()
	f := &fixture{
		Env:     e,
		claims:  dbtest.UniqueName(t, "tr"),
		account: dbtest.UniqueName(t, "acct"),
		ledger:  dbtest.UniqueName(t, "ledger"),
	}
	t.Cleanup(func() {
		for _, table := range []string{f.claims, f.account, f.ledger} {
			e.Exec(t, "DROP TABLE IF EXISTS "+table)
		}
	})
	ds, err := mqdatasource.Open(e.Driver, e.DSN, mqdatasource.WithTable(f.claims), mqdatasource.WithMigrate())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { ds.Close() })
	// No limit on the pool: each losing delivery waits for the winner's
	// claim while holding a pooled connection, and the winner still needs
	// one for its own statements.
	ds.DB().SetMaxOpenConns(0)
	f.ds = ds
	e.Exec(t, "CREATE TABLE "+f.account+" (id int PRIMARY KEY, balance int NOT NULL)")
	for m := 1; m <= messages; m++ {
		e.Exec(t, "INSERT INTO "+f.account+" (id, balance) VALUES (?, 0)", m)
	}
	id := map[string]string{"mysql": "id bigint AUTO_INCREMENT PRIMARY KEY", "postgres": "id bigserial PRIMARY KEY"}[e.Name]
	e.Exec(t, "CREATE TABLE "+f.ledger+" ("+id+", account int NOT NULL, amount int NOT NULL)")
	return f
}

// claimModes are the two ways to run a delivery. ds.Deliver claims the
// message before the handler runs, as the exactlyonce listeners do (with
// ClaimIn): a duplicate never reaches the handler. mqdatasource.Deliver
// leaves the claim to the handler's first statement or BeginTx: a
// duplicate then fails inside the ORM's own calls (its BeginTx, its
// rollback on error) with ErrAlreadyConsumed, and must still end as
// Duplicate.
var claimModes = []struct {
	name    string
	deliver deliverFunc
}{
	{"claim first", func(ctx context.Context, ds *mqdatasource.DataSource, d mqdatasource.Delivery, fn func(context.Context) error) (mqdatasource.Result, error) {
		return ds.Deliver(ctx, d, fn)
	}},
	{"claim at first statement", func(ctx context.Context, _ *mqdatasource.DataSource, d mqdatasource.Delivery, fn func(context.Context) error) (mqdatasource.Result, error) {
		return mqdatasource.Deliver(ctx, d, fn)
	}},
}

// deliverFunc runs fn as one delivery of d through ds.
type deliverFunc func(ctx context.Context, ds *mqdatasource.DataSource, d mqdatasource.Delivery, fn func(context.Context) error) (mqdatasource.Result, error)

// ledgerRow is a row of the fixture's ledger table, whose id the database
// assigns, with the tags bun and GORM read.
type ledgerRow struct {
	ID      int64 `bun:"id,pk,autoincrement" gorm:"primaryKey"`
	Account int   `bun:"account"`
	Amount  int   `bun:"amount"`
}

// handlerCase is a handler of message m (to account m), written as a user
// of the ORM would, for the ORM opened on f.ds.DB() (failing t if it
// cannot), and what it leaves once applied: account m's balance and the
// ledger rows per message.
type handlerCase struct {
	name        string
	handler     func(t *testing.T, f *fixture) func(ctx context.Context, m int) error
	wantBalance int64
	wantLedger  int64
}

// runCases runs each case on e in each claim mode, on a fixture of its
// own: message lone delivered alone, which must be Committed at its first
// attempt; every other message delivered by copies goroutines at once,
// retrying as a consumer would; then every message twice more in turn,
// each a Duplicate at its first attempt. Each message must be applied by
// exactly one delivery and leave the case's balance, ledger rows and one
// claim record.
func runCases(t *testing.T, e *dbtest.Env, cases []handlerCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range claimModes {
				t.Run(mode.name, func(t *testing.T) {
					f := newFixture(t, e)
					apply := tc.handler(t, f)
					// once is one delivery of message m, as a consumer
					// makes it.
					once := func(m int) (mqdatasource.Result, error) {
						d := mqdatasource.Delivery{ConsumerGroup: "g", Key: fmt.Sprintf("orm-%d", m), Topic: "T", BrokerName: "broker-a", QueueID: 1, QueueOffset: 42}
						return mode.deliver(context.Background(), f.ds, d, func(ctx context.Context) error { return apply(ctx, m) })
					}
					var applied [messages + 1]atomic.Int32
					if res, err := once(lone); res != mqdatasource.Committed || err != nil {
						t.Errorf("message %d delivered alone: %v, %v; want Committed", lone, res, err)
					} else {
						applied[lone].Add(1)
					}
					var wg sync.WaitGroup
					for m := 1; m < lone; m++ {
						for range copies {
							wg.Add(1)
							go func() {
								defer wg.Done()
								ok, err := redeliver(func() (mqdatasource.Result, error) { return once(m) })
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
							if res, err := once(m); res != mqdatasource.Duplicate || err != nil {
								t.Errorf("sequential redelivery of message %d: %v, %v; want Duplicate", m, res, err)
							}
						}
					}
					for m := 1; m <= messages; m++ {
						if n := applied[m].Load(); n != 1 {
							t.Errorf("message %d applied by %d deliveries, want 1", m, n)
						}
						if b := f.QueryInt(t, "SELECT balance FROM "+f.account+" WHERE id = ?", m); b != tc.wantBalance {
							t.Errorf("account %d: balance %d, want %d", m, b, tc.wantBalance)
						}
						if n := f.QueryInt(t, "SELECT COUNT(*) FROM "+f.ledger+" WHERE account = ?", m); n != tc.wantLedger {
							t.Errorf("account %d: %d ledger rows, want %d", m, n, tc.wantLedger)
						}
					}
					if n := f.QueryInt(t, "SELECT COUNT(*) FROM "+f.claims); n != messages {
						t.Errorf("%d claim records, want %d", n, messages)
					}
				})
			}
		})
	}
}

// redeliver makes deliveries of one message with attempt the way a
// consumer would: a retryable error is retried as a redelivery (a new
// attempt), Committed or Duplicate ends it. It reports whether this call
// applied the message.
func redeliver(attempt func() (mqdatasource.Result, error)) (applied bool, err error) {
	for n := 0; ; n++ {
		res, err := attempt()
		switch {
		case res == mqdatasource.Committed:
			return true, nil
		case res == mqdatasource.Duplicate:
			return false, nil
		case err == nil:
			return false, fmt.Errorf("delivery ended %v", res)
		case mqdatasource.IsRetryable(err) && n < 100:
			continue
		default:
			return false, err
		}
	}
}
