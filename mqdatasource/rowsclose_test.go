package mqdatasource_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// TestDeadlockReportedByRowsClose: a locking read whose rows are closed
// early (the handler read what it needed) has the rest of its result
// drained by Close; a deadlock met while the server produced that rest is
// reported by Close, not by Next. MySQL has then rolled the transaction
// back, and a later statement would run in autocommit, outside the claim:
// it must be refused like after a deadlock reported anywhere else, even
// when the handler ignores the error of Close (defer rows.Close()).
func TestDeadlockReportedByRowsClose(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		if e.Name != "mysql" {
			t.Skip("InnoDB picks the lighter transaction as the deadlock victim, which this test relies on; PostgreSQL fails every later statement of an aborted transaction anyway")
		}
		f := newFixture(t, e, 1)
		ctx := context.Background()
		big, heavy := dbtest.UniqueName(t, "big"), dbtest.UniqueName(t, "heavy")
		t.Cleanup(func() {
			e.Exec(t, "DROP TABLE IF EXISTS "+big)
			e.Exec(t, "DROP TABLE IF EXISTS "+heavy)
		})
		e.Exec(t, "CREATE TABLE "+big+" (id int PRIMARY KEY, pad mediumtext NOT NULL)")
		e.Exec(t, "CREATE TABLE "+heavy+" (id int PRIMARY KEY)")
		// Row 1 is larger than the server's network buffer, so it reaches
		// the client before the server blocks on row 2.
		e.Exec(t, "INSERT INTO "+big+" VALUES (1, REPEAT('x', 200000)), (2, 'y')")

		// B locks row 2 and is made heavier than A (many undo records),
		// so that InnoDB picks A as the deadlock victim.
		txB, err := e.Admin.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer txB.Rollback()
		vals := make([]string, 300)
		for i := range vals {
			vals[i] = fmt.Sprintf("(%d)", i+1)
		}
		if _, err := txB.ExecContext(ctx, "INSERT INTO "+heavy+" VALUES "+strings.Join(vals, ",")); err != nil {
			t.Fatal(err)
		}
		if _, err := txB.ExecContext(ctx, "SELECT id FROM "+big+" WHERE id = 2 FOR UPDATE"); err != nil {
			t.Fatal(err)
		}

		var cerr, execErr, commitErr error
		res, err := mqdatasource.Deliver(ctx, delivery("g", "rows-close"), func(actx context.Context) error {
			txA, err := f.ds.BeginTx(actx, nil)
			if err != nil {
				return err
			}
			defer txA.Rollback()
			rows, err := txA.QueryContext(actx, "SELECT id, pad FROM "+big+" ORDER BY id FOR UPDATE")
			if err != nil {
				return err
			}
			first := make(chan bool, 1)
			go func() { first <- rows.Next() }()
			select {
			case ok := <-first:
				if !ok {
					return fmt.Errorf("first row: %w", rows.Err())
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the first row did not arrive while the server waited for row 2")
			}
			// B now waits for row 1, which A holds: a deadlock, A the victim.
			if _, err := txB.ExecContext(ctx, "SELECT id FROM "+big+" WHERE id = 1 FOR UPDATE"); err != nil {
				t.Fatalf("B after the deadlock: %v (A should have been the victim)", err)
			}
			if err := txB.Commit(); err != nil {
				t.Fatal(err)
			}
			cerr = rows.Close() // a handler with defer rows.Close() never sees this
			_, execErr = txA.ExecContext(actx, "UPDATE "+f.account+" SET balance = balance + 1 WHERE id = 1")
			commitErr = txA.Commit()
			return nil // the handler ignores it all
		})
		t.Logf("rows.Close: %v", cerr)
		if !errors.Is(execErr, mqdatasource.ErrTxAborted) {
			t.Errorf("statement after the deadlock reported by rows.Close: %v, want ErrTxAborted", execErr)
		}
		if !errors.Is(commitErr, mqdatasource.ErrTxAborted) {
			t.Errorf("Commit after the deadlock reported by rows.Close: %v, want ErrTxAborted", commitErr)
		}
		wantResult(t, "Deliver", res, err, mqdatasource.Failed, mqdatasource.ErrTxAborted)
		if b, rec := f.balance(t, 1), f.hasRecord(t, delivery("g", "rows-close")); b != 0 || rec {
			t.Fatalf("balance %d, record %v: the update ran outside the rolled-back claim (a redelivery would apply it again)", b, rec)
		}
	})
}
