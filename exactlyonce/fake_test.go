package exactlyonce

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// A fake store for unit tests: a database/sql driver whose transactions
// record the delivery of their context, and a store whose BeginTx claims like
// mqdatasource does (duplicate, reuse) without a database.

type fakeDB struct {
	mu        sync.Mutex
	committed map[string]bool // message ids
	attempted map[string]bool // message ids a transaction tried to claim
	inflight  map[string]int
	begun     int
	commits   int
	rollbacks int
	commitErr error
}

var (
	fakeDBs   sync.Map // name -> *fakeDB
	fakeSeq   atomic.Int64
	fakeRegOK sync.Once
)

type fakeDriver struct{}

func (fakeDriver) Open(name string) (driver.Conn, error) {
	v, ok := fakeDBs.Load(name)
	if !ok {
		return nil, fmt.Errorf("no fake db %q", name)
	}
	return &fakeConn{db: v.(*fakeDB)}, nil
}

type fakeConn struct{ db *fakeDB }

func (c *fakeConn) Prepare(string) (driver.Stmt, error) {
	return nil, errors.New("fake: no statements")
}
func (c *fakeConn) Close() error { return nil }
func (c *fakeConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}
func (c *fakeConn) BeginTx(ctx context.Context, _ driver.TxOptions) (driver.Tx, error) {
	id := ""
	if d, ok := mqdatasource.DeliveryFromContext(ctx); ok {
		id = d.MessageID()
	}
	c.db.mu.Lock()
	defer c.db.mu.Unlock()
	c.db.begun++
	if id != "" {
		c.db.inflight[id]++
		c.db.attempted[id] = true
	}
	return &fakeTx{db: c.db, id: id}, nil
}

type fakeTx struct {
	db *fakeDB
	id string
}

func (t *fakeTx) Commit() error {
	t.db.mu.Lock()
	defer t.db.mu.Unlock()
	if t.id != "" {
		t.db.inflight[t.id]--
	}
	if t.db.commitErr != nil {
		return t.db.commitErr
	}
	t.db.commits++
	if t.id != "" {
		t.db.committed[t.id] = true
	}
	return nil
}

func (t *fakeTx) Rollback() error {
	t.db.mu.Lock()
	defer t.db.mu.Unlock()
	if t.id != "" {
		t.db.inflight[t.id]--
	}
	t.db.rollbacks++
	return nil
}

type fakeStore struct {
	db          *sql.DB
	f           *fakeDB
	validateErr error // for a valid Delivery, as if the column were too short
	lookupErr   error
	beginErr    error
	lookups     atomic.Int64
}

func newFakeStore(t *testing.T) *fakeStore {
	t.Helper()
	fakeRegOK.Do(func() { sql.Register("exactlyonce-fake", fakeDriver{}) })
	f := &fakeDB{committed: map[string]bool{}, attempted: map[string]bool{}, inflight: map[string]int{}}
	name := "db" + strconv.FormatInt(fakeSeq.Add(1), 10)
	fakeDBs.Store(name, f)
	db, err := sql.Open("exactlyonce-fake", name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(); fakeDBs.Delete(name) })
	return &fakeStore{db: db, f: f}
}

func (s *fakeStore) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	if s.beginErr != nil {
		return nil, s.beginErr
	}
	if d, ok := mqdatasource.DeliveryFromContext(ctx); ok {
		id := d.MessageID()
		s.f.mu.Lock()
		dup, busy := s.f.committed[id], s.f.inflight[id] > 0
		if !busy {
			s.f.attempted[id] = true
		}
		s.f.mu.Unlock()
		switch {
		case busy:
			return nil, fmt.Errorf("%w: %s", mqdatasource.ErrDeliveryReused, id)
		case dup:
			return nil, fmt.Errorf("%w: %s", mqdatasource.ErrAlreadyConsumed, id)
		}
	}
	return s.db.BeginTx(ctx, opts)
}

func (s *fakeStore) ValidateDelivery(d mqdatasource.Delivery) error {
	if err := d.Validate(); err != nil {
		return err
	}
	return s.validateErr
}

func (s *fakeStore) IsConsumed(_ context.Context, d mqdatasource.Delivery) (bool, error) {
	s.lookups.Add(1)
	if s.lookupErr != nil {
		return false, s.lookupErr
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.f.committed[d.MessageID()], nil
}

// ClaimCommitted stands in for mqdatasource.ClaimCommitted, whose state only
// a real DataSource's transactions set: it reads the fake's commits instead.
func (s *fakeStore) ClaimCommitted(ctx context.Context) bool {
	d, ok := mqdatasource.DeliveryFromContext(ctx)
	return ok && s.isCommitted(d.MessageID())
}

// ClaimAttempted stands in for mqdatasource.ClaimAttempted likewise.
func (s *fakeStore) ClaimAttempted(ctx context.Context) bool {
	d, ok := mqdatasource.DeliveryFromContext(ctx)
	if !ok {
		return false
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.f.attempted[d.MessageID()]
}

func (s *fakeStore) markCommitted(id string) {
	s.f.mu.Lock()
	s.f.committed[id] = true
	s.f.mu.Unlock()
}

func (s *fakeStore) counts() (begun, commits, rollbacks int) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.f.begun, s.f.commits, s.f.rollbacks
}

func (s *fakeStore) isCommitted(id string) bool {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.f.committed[id]
}
