package mqdatasource

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"

	mssql "github.com/microsoft/go-mssqldb"
)

// A scripted in-memory driver shaped like go-mssqldb (no ExecerContext: every
// statement is prepared), to unit-test the wrapper's SQL Server behaviour
// where no SQL Server can run. The real drivers are exercised by the
// integration tests.

type fakeServer struct {
	mu       sync.Mutex
	log      []string // what reached the "server"
	args     [][]driver.NamedValue
	prepared []string // what was prepared
	// fail returns the error for a statement, or nil.
	fail func(stmt string) error
	// stored returns the message_id values the server's column takes for
	// id (the confirmation read of a duplicate); nil: id itself.
	stored func(id string) []string
}

func (s *fakeServer) record(stmt string, args []driver.NamedValue) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, stmt)
	s.args = append(s.args, args)
	if s.fail != nil {
		return s.fail(stmt)
	}
	return nil
}

func (s *fakeServer) statements() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

type fakeConnector struct{ s *fakeServer }

func (c fakeConnector) Connect(context.Context) (driver.Conn, error) { return &fakeConn{s: c.s}, nil }
func (c fakeConnector) Driver() driver.Driver                        { return fakeDriver{} }

type fakeConn struct{ s *fakeServer }

func (c *fakeConn) Prepare(q string) (driver.Stmt, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.prepared = append(c.s.prepared, q)
	return &fakeStmt{c: c, q: q}, nil
}
func (c *fakeConn) Close() error { return nil }
func (c *fakeConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}
func (c *fakeConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	if err := c.s.record("BEGIN", nil); err != nil {
		return nil, err
	}
	return &fakeTx{c: c}, nil
}

type fakeTx struct{ c *fakeConn }

func (t *fakeTx) Commit() error   { return t.c.s.record("COMMIT", nil) }
func (t *fakeTx) Rollback() error { return t.c.s.record("ROLLBACK", nil) }

type fakeStmt struct {
	c *fakeConn
	q string
}

func (s *fakeStmt) Close() error  { return nil }
func (s *fakeStmt) NumInput() int { return -1 }
func (s *fakeStmt) Exec([]driver.Value) (driver.Result, error) {
	return nil, errors.New("not used")
}
func (s *fakeStmt) Query([]driver.Value) (driver.Rows, error) {
	return nil, errors.New("not used")
}

// QueryContext answers the reads of message ids: the stored values the
// column takes for the first argument.
func (s *fakeStmt) QueryContext(_ context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := s.c.s.record(s.q, args); err != nil {
		return nil, err
	}
	id := fmt.Sprint(args[0].Value)
	vals := []string{id}
	if s.c.s.stored != nil {
		vals = s.c.s.stored(id)
	}
	return &fakeRows{vals: vals}, nil
}

type fakeRows struct{ vals []string }

func (r *fakeRows) Columns() []string { return []string{"message_id"} }
func (r *fakeRows) Close() error      { return nil }
func (r *fakeRows) Next(dest []driver.Value) error {
	if len(r.vals) == 0 {
		return io.EOF
	}
	dest[0], r.vals = r.vals[0], r.vals[1:]
	return nil
}
func (s *fakeStmt) ExecContext(_ context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.c.s.record(s.q, args); err != nil {
		return nil, err
	}
	return driver.RowsAffected(1), nil
}

// CheckNamedValue accepts mssql.VarChar like go-mssqldb does.
func (c *fakeConn) CheckNamedValue(*driver.NamedValue) error { return nil }

func openFake(t *testing.T, s *fakeServer) *sql.DB {
	t.Helper()
	c, err := NewConnector(fakeConnector{s}, WithDialect(SQLServer()), WithTable("tr"))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

const fakeClaim = "INSERT INTO [tr] ([consumer_group], [message_id], [topic_name], [ctime], [queue_id], [offset], [broker_name]) VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7)"

// fakeConfirm is the read that confirms a duplicate claim.
const fakeConfirm = "SELECT [message_id] FROM [tr] WHERE [message_id] = @p1"

func fakeDelivery(key string) Delivery {
	return Delivery{ConsumerGroup: "g", Key: key, Topic: "t", BrokerName: "b", QueueID: 1, QueueOffset: 2}
}

// claimTx runs one delivery of key whose handler begins a transaction,
// which is where a lazy claim happens, and returns BeginTx's error.
func claimTx(db *sql.DB, key string) (Result, error) {
	return Deliver(context.Background(), fakeDelivery(key), func(ctx context.Context) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		return tx.Commit()
	})
}

func TestWrapperSQLServerClaim(t *testing.T) {
	s := &fakeServer{}
	db := openFake(t, s)
	res, err := Deliver(context.Background(), fakeDelivery("k"), func(ctx context.Context) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE a SET n = n + 1 WHERE id = @p1", 1); err != nil {
			return err
		}
		return tx.Commit()
	})
	if res != Committed || err != nil {
		t.Fatalf("Deliver: %v, %v; want committed", res, err)
	}
	want := []string{"BEGIN", fakeClaim, "UPDATE a SET n = n + 1 WHERE id = @p1", "COMMIT"}
	if got := s.statements(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("statements\n got %q\nwant %q", got, want)
	}
	if id, ok := s.args[1][1].Value.(mssql.VarChar); !ok || id != "k#g" {
		t.Fatalf("message id argument %#v, want mssql.VarChar(\"k#g\")", s.args[1][1].Value)
	}
}

func TestWrapperSQLServerErrors(t *testing.T) {
	dup := mssql.Error{Number: 2627, Message: "Violation of UNIQUE KEY constraint 'uk_tr_message_id'. Cannot insert duplicate key in object 'dbo.tr'. The duplicate key value is (k#g)."}
	businessDup := mssql.Error{Number: 2627, Message: "Violation of PRIMARY KEY constraint 'pk_a'. Cannot insert duplicate key in object 'dbo.a'. The duplicate key value is (1)."}
	deadlock := mssql.Error{Number: 1205, Message: "Transaction (Process ID 51) was deadlocked on lock resources with another process and has been chosen as the deadlock victim. Rerun the transaction."}
	lockTimeout := mssql.Error{Number: 1222, Message: "Lock request time out period exceeded."}
	aborted := mssql.Error{Number: 0, Message: "server does not have an active transaction: the transaction was aborted by the server, likely due to an error while SET XACT_ABORT is ON; any changes have been rolled back"}
	connLost := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	update := "UPDATE a SET n = n + 1"
	failOn := func(stmt string, err error) func(string) error {
		n := 0
		return func(s string) error {
			if s == stmt {
				n++
				if n == 1 {
					return err
				}
			}
			return nil
		}
	}
	for _, tc := range []struct {
		name      string
		fail      func(string) error
		beginErr  error    // wanted from BeginTx
		execErr   error    // wanted from the first UPDATE (errors.Is)
		secondErr error    // wanted from a second UPDATE
		commitErr error    // wanted from Commit
		want      []string // statements that reached the server
	}{
		{name: "duplicate claim", fail: failOn(fakeClaim, dup), beginErr: ErrAlreadyConsumed,
			want: []string{"BEGIN", fakeClaim, fakeConfirm, "ROLLBACK"}},
		{name: "deadlock on the claim", fail: failOn(fakeClaim, deadlock), beginErr: deadlock,
			want: []string{"BEGIN", fakeClaim, "ROLLBACK"}},
		{name: "business duplicate is an ordinary error", fail: failOn(update, businessDup), execErr: businessDup,
			want: []string{"BEGIN", fakeClaim, update, update, "COMMIT"}},
		{name: "deadlock victim: nothing more reaches the server", fail: failOn(update, deadlock), execErr: deadlock, secondErr: ErrTxAborted, commitErr: ErrTxAborted,
			want: []string{"BEGIN", fakeClaim, update, "ROLLBACK"}},
		{name: "aborted transaction report", fail: failOn(update, aborted), execErr: aborted, secondErr: ErrTxAborted, commitErr: ErrTxAborted,
			want: []string{"BEGIN", fakeClaim, update, "ROLLBACK"}},
		{name: "lock timeout fails the statement only", fail: failOn(update, lockTimeout), execErr: lockTimeout,
			want: []string{"BEGIN", fakeClaim, update, update, "COMMIT"}},
		{name: "connection lost at commit", fail: failOn("COMMIT", connLost), commitErr: ErrCommitUnknown,
			want: []string{"BEGIN", fakeClaim, update, update, "COMMIT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &fakeServer{fail: tc.fail}
			db := openFake(t, s)
			res, derr := Deliver(context.Background(), fakeDelivery("k"), func(ctx context.Context) error {
				tx, err := db.BeginTx(ctx, nil)
				if tc.beginErr != nil {
					if !matches(err, tc.beginErr) {
						t.Errorf("BeginTx: %v, want %v", err, tc.beginErr)
					}
					if errors.Is(tc.beginErr, ErrAlreadyConsumed) != errors.Is(err, ErrAlreadyConsumed) {
						t.Errorf("BeginTx: %v", err)
					}
					return err
				}
				if err != nil {
					return err
				}
				_, err = tx.ExecContext(ctx, update)
				if tc.execErr == nil && err != nil || tc.execErr != nil && !matches(err, tc.execErr) {
					t.Errorf("first statement: %v, want %v", err, tc.execErr)
				}
				if errors.Is(err, ErrAlreadyConsumed) {
					t.Errorf("first statement taken for a duplicate: %v", err)
				}
				_, err = tx.ExecContext(ctx, update)
				if tc.secondErr == nil && err != nil || tc.secondErr != nil && !matches(err, tc.secondErr) {
					t.Errorf("second statement: %v, want %v", err, tc.secondErr)
				}
				return tx.Commit()
			})
			switch {
			case tc.beginErr != nil && errors.Is(tc.beginErr, ErrAlreadyConsumed):
				if res != Duplicate || derr != nil {
					t.Fatalf("Deliver: %v, %v; want duplicate", res, derr)
				}
			case tc.beginErr != nil:
				if res != Failed || !matches(derr, tc.beginErr) {
					t.Fatalf("Deliver: %v, %v; want failed with %v", res, derr, tc.beginErr)
				}
			case tc.commitErr != nil:
				if res != Failed || !matches(derr, tc.commitErr) || !IsRetryable(derr) {
					t.Fatalf("Deliver: %v, %v; want failed, retryable, with %v", res, derr, tc.commitErr)
				}
			default:
				if res != Committed || derr != nil {
					t.Fatalf("Deliver: %v, %v; want committed", res, derr)
				}
			}
			if got := s.statements(); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("statements\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestClaimStmtKeptOnDuplicate: the claim statement, prepared once per
// connection, survives a duplicate even when the unique key has another
// name than the migration file's (the Java client's table, no schema
// check) and only the message id in the error identifies the duplicate.
// Another error drops it (it may be stale).
func TestClaimStmtKeptOnDuplicate(t *testing.T) {
	dup := mssql.Error{Number: 2627, Message: "Violation of UNIQUE KEY constraint 'message_id_unique_key'. Cannot insert duplicate key in object 'dbo.tr'. The duplicate key value is (k#g)."}
	deadlock := mssql.Error{Number: 1205, Message: "Transaction (Process ID 51) was deadlocked on lock resources with another process and has been chosen as the deadlock victim. Rerun the transaction."}
	claims := 0
	s := &fakeServer{fail: func(stmt string) error {
		if stmt != fakeClaim {
			return nil
		}
		claims++
		if claims == 4 {
			return deadlock
		}
		return dup
	}}
	db := openFake(t, s)
	prepares := func() int { // of the claim; the confirmation read is another statement
		s.mu.Lock()
		defer s.mu.Unlock()
		n := 0
		for _, q := range s.prepared {
			if q == fakeClaim {
				n++
			}
		}
		return n
	}
	for i := range 3 {
		if res, err := claimTx(db, "k"); res != Duplicate || err != nil {
			t.Fatalf("claim %d: %v, %v; want duplicate", i+1, res, err)
		}
	}
	if n := prepares(); n != 1 {
		t.Fatalf("%d prepares for 3 duplicate claims on one connection, want 1", n)
	}
	if _, err := claimTx(db, "k"); !matches(err, deadlock) {
		t.Fatalf("claim 4: %v, want the deadlock", err)
	}
	if res, err := claimTx(db, "k"); res != Duplicate || err != nil {
		t.Fatalf("claim 5: %v, %v; want duplicate", res, err)
	}
	if n := prepares(); n != 2 {
		t.Fatalf("%d prepares after a claim failed otherwise, want 2 (prepared anew)", n)
	}
}

// TestExecOutsideTransactionJoinsDelivery: a statement made with the
// delivery's context outside any transaction runs in the delivery's
// transaction, claim first; WithoutDelivery opts out.
func TestExecOutsideTransactionJoinsDelivery(t *testing.T) {
	s := &fakeServer{}
	db := openFake(t, s)
	res, err := Deliver(context.Background(), fakeDelivery("k"), func(ctx context.Context) error {
		if _, err := db.ExecContext(WithoutDelivery(ctx), "INSERT INTO audit"); err != nil {
			return err
		}
		_, err := db.ExecContext(ctx, "DELETE FROM a")
		return err
	})
	if res != Committed || err != nil {
		t.Fatalf("Deliver: %v, %v", res, err)
	}
	want := []string{"INSERT INTO audit", "BEGIN", fakeClaim, "DELETE FROM a", "COMMIT"}
	if got := s.statements(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("statements\n got %q\nwant %q", got, want)
	}
}

// matches is errors.Is, and for mssql.Error (not comparable: it holds a
// slice) errors.As with the same number.
func matches(err, want error) bool {
	var w mssql.Error
	if errors.As(want, &w) {
		var e mssql.Error
		return errors.As(err, &e) && e.Number == w.Number
	}
	return errors.Is(err, want)
}
