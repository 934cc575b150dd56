// Package memdb is an in-memory database/sql driver for unit tests of the
// code above mqdatasource, in the manner of database/sql's fakedb_test.go:
// the real DataSource runs over it (with mqdatasource.WithDialect
// (PostgreSQL()) and no schema check), so the claim, the delivery
// transaction and the listener are tested without a server and without a
// model of mqdatasource.
//
// It understands only the statements the tests send: the claim INSERT of
// one or more rows (ON CONFLICT DO NOTHING, RETURNING the inserted ids,
// waiting like PostgreSQL for a transaction that holds the same message
// id), the record lookups, and a counter table:
//
//	UPDATE counter SET n = n + $1 WHERE id = $2
//	SELECT n FROM counter WHERE id = $1
//
// Writes made in a transaction become visible at its commit; statements
// outside a transaction commit at once. Fail injects errors.
package memdb

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

const (
	claimPrefix      = `INSERT INTO "transaction_record"`
	lookupPrefix     = `SELECT 1 FROM "transaction_record"`
	lookupManyPrefix = `SELECT "message_id" FROM "transaction_record"`
	addSQL           = `UPDATE counter SET n = n + $1 WHERE id = $2`
	readSQL          = `SELECT n FROM counter WHERE id = $1`
)

// Statement kinds, for Fail and Count.
const (
	Begin    = "BEGIN"
	Commit   = "COMMIT"
	Rollback = "ROLLBACK"
	Claim    = "CLAIM"
	Lookup   = "LOOKUP"
	Add      = "ADD"
	Read     = "READ"
	Reset    = "RESET" // a session reset, before database/sql reuses a connection
)

// DB is one in-memory database. It is a driver.Connector.
type DB struct {
	mu       sync.Mutex
	ended    *sync.Cond // signalled when a transaction ends
	records  map[string]bool
	claimed  map[string]*tx // message ids held by open transactions
	counters map[int64]int64
	counts   map[string]int
	fails    map[string][]error
	open     int // transactions begun and not ended
}

// New returns an empty database.
func New() *DB {
	db := &DB{records: map[string]bool{}, claimed: map[string]*tx{}, counters: map[int64]int64{}, counts: map[string]int{}, fails: map[string][]error{}}
	db.ended = sync.NewCond(&db.mu)
	return db
}

// Connect opens a connection.
func (db *DB) Connect(context.Context) (driver.Conn, error) { return &conn{db: db}, nil }

// Driver returns a driver whose Open ignores its name and connects to db.
func (db *DB) Driver() driver.Driver { return drv{db} }

type drv struct{ db *DB }

func (d drv) Open(string) (driver.Conn, error) { return &conn{db: d.db}, nil }

// Fail makes the next statements of kind fail with errs, one each.
func (db *DB) Fail(kind string, errs ...error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.fails[kind] = append(db.fails[kind], errs...)
}

// Count returns how many statements of kind reached the database.
func (db *DB) Count(kind string) int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.counts[kind]
}

// Recorded reports whether message id is recorded (committed).
func (db *DB) Recorded(id string) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.records[id]
}

// Record records message id, as a committed claim would.
func (db *DB) Record(id string) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.records[id] = true
}

// Counter returns the committed value of counter id.
func (db *DB) Counter(id int64) int64 {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.counters[id]
}

// Open returns how many transactions are open.
func (db *DB) Open() int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.open
}

// hit counts a statement of kind and returns its injected error, if any.
// db.mu is held.
func (db *DB) hit(kind string) error {
	db.counts[kind]++
	if errs := db.fails[kind]; len(errs) > 0 {
		db.fails[kind] = errs[1:]
		return errs[0]
	}
	return nil
}

type tx struct {
	c      *conn
	claims []string
	adds   map[int64]int64
}

type conn struct {
	db *DB
	tx *tx
}

var (
	_ driver.ConnBeginTx     = (*conn)(nil)
	_ driver.ExecerContext   = (*conn)(nil)
	_ driver.QueryerContext  = (*conn)(nil)
	_ driver.SessionResetter = (*conn)(nil)
)

func (c *conn) Prepare(q string) (driver.Stmt, error) { return stmt{c, q}, nil }
func (c *conn) Close() error                          { return nil }
func (c *conn) Begin() (driver.Tx, error)             { return c.BeginTx(context.Background(), driver.TxOptions{}) }

func (c *conn) ResetSession(context.Context) error {
	c.db.mu.Lock()
	defer c.db.mu.Unlock()
	return c.db.hit(Reset)
}

func (c *conn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	c.db.mu.Lock()
	defer c.db.mu.Unlock()
	if c.tx != nil {
		return nil, errors.New("memdb: transaction already open")
	}
	if err := c.db.hit(Begin); err != nil {
		return nil, err
	}
	c.tx = &tx{c: c, adds: map[int64]int64{}}
	c.db.open++
	return c.tx, nil
}

func (t *tx) Commit() error   { return t.end(true) }
func (t *tx) Rollback() error { return t.end(false) }

func (t *tx) end(commit bool) error {
	db := t.c.db
	db.mu.Lock()
	defer db.mu.Unlock()
	if t.c.tx != t {
		return errors.New("memdb: transaction already ended")
	}
	t.c.tx = nil
	db.open--
	kind := Rollback
	if commit {
		kind = Commit
	}
	err := db.hit(kind)
	for _, id := range t.claims {
		delete(db.claimed, id)
		if commit && err == nil {
			db.records[id] = true
		}
	}
	if commit && err == nil {
		for k, v := range t.adds {
			db.counters[k] += v
		}
	}
	db.ended.Broadcast()
	return err
}

func (c *conn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	n, _, err := c.run(ctx, q, args)
	if err != nil {
		return nil, err
	}
	return driver.RowsAffected(n), nil
}

func (c *conn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	_, r, err := c.run(ctx, q, args)
	if err != nil {
		return nil, err
	}
	if r == nil {
		r = &rows{}
	}
	return r, nil
}

// run executes one statement, in the connection's transaction or (outside
// one) in a transaction of its own.
func (c *conn) run(ctx context.Context, q string, args []driver.NamedValue) (int64, *rows, error) {
	db := c.db
	db.mu.Lock()
	defer db.mu.Unlock()
	t := c.tx
	auto := t == nil
	if auto {
		t = &tx{c: c, adds: map[int64]int64{}}
	}
	var (
		n   int64
		r   *rows
		err error
	)
	switch {
	case strings.HasPrefix(q, claimPrefix):
		var inserted []string
		inserted, err = c.claim(ctx, t, args)
		n = int64(len(inserted))
		if strings.Contains(q, "RETURNING") {
			r = &rows{cols: []string{"message_id"}}
			for _, id := range inserted {
				r.vals = append(r.vals, []driver.Value{id})
			}
		}
	case strings.HasPrefix(q, lookupManyPrefix):
		if err = db.hit(Lookup); err == nil {
			r = &rows{cols: []string{"message_id"}}
			for i := range args {
				if id := str(args, i); db.records[id] {
					r.vals = append(r.vals, []driver.Value{id})
				}
			}
		}
	case strings.HasPrefix(q, lookupPrefix):
		if err = db.hit(Lookup); err == nil {
			r = &rows{cols: []string{"1"}}
			if db.records[str(args, 0)] {
				r.vals = [][]driver.Value{{int64(1)}}
			}
		}
	case q == addSQL:
		if err = db.hit(Add); err == nil {
			t.adds[integer(args, 1)] += integer(args, 0)
			n = 1
		}
	case q == readSQL:
		if err = db.hit(Read); err == nil {
			id := integer(args, 0)
			r = &rows{cols: []string{"n"}, vals: [][]driver.Value{{db.counters[id] + t.adds[id]}}}
		}
	default:
		err = fmt.Errorf("memdb: unknown statement %q", q)
	}
	if auto && err == nil {
		for _, id := range t.claims {
			delete(db.claimed, id)
			db.records[id] = true
		}
		for k, v := range t.adds {
			db.counters[k] += v
		}
		db.ended.Broadcast()
	}
	return n, r, err
}

// claimColumns is the number of arguments of one claim row; the message
// id is the second.
const claimColumns = 7

// claim inserts the records of the message ids of args' rows that are not
// recorded, waiting for an open transaction that holds one, and returns
// the ids it inserted. db.mu is held.
func (c *conn) claim(ctx context.Context, t *tx, args []driver.NamedValue) ([]string, error) {
	db := c.db
	if err := db.hit(Claim); err != nil {
		return nil, err
	}
	var inserted []string
	for r := 0; r+claimColumns <= len(args); r += claimColumns {
		id := str(args, r+1)
		for {
			holder, held := db.claimed[id]
			if db.records[id] || !held || holder == t {
				break
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			db.ended.Wait()
		}
		if _, held := db.claimed[id]; held || db.records[id] {
			continue
		}
		db.claimed[id] = t
		t.claims = append(t.claims, id)
		inserted = append(inserted, id)
	}
	return inserted, nil
}

func str(args []driver.NamedValue, i int) string {
	if i < len(args) {
		if s, ok := args[i].Value.(string); ok {
			return s
		}
	}
	return ""
}

func integer(args []driver.NamedValue, i int) int64 {
	if i < len(args) {
		if v, ok := args[i].Value.(int64); ok {
			return v
		}
	}
	return 0
}

type stmt struct {
	c *conn
	q string
}

func (s stmt) Close() error  { return nil }
func (s stmt) NumInput() int { return -1 }
func (s stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.c.ExecContext(context.Background(), s.q, named(args))
}
func (s stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.c.QueryContext(context.Background(), s.q, named(args))
}

func named(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv
}

type rows struct {
	cols []string
	vals [][]driver.Value
}

func (r *rows) Columns() []string { return r.cols }
func (r *rows) Close() error      { return nil }
func (r *rows) Next(dest []driver.Value) error {
	if len(r.vals) == 0 {
		return io.EOF
	}
	copy(dest, r.vals[0])
	r.vals = r.vals[1:]
	return nil
}
