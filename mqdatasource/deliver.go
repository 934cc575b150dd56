package mqdatasource

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
)

// Result says how Deliver ended.
type Result int

const (
	// Failed: nothing was committed; the delivery should be retried. The
	// error says why.
	Failed Result = iota
	// Committed: the work committed together with the claim, in every
	// DataSource the delivery used.
	Committed
	// Duplicate: a claim found the message recorded for the group (a
	// previous delivery applied it); nothing was committed. Acknowledge it.
	Duplicate
	// Unclaimed: fn returned nil without using any DataSource with its
	// context, so nothing was claimed or recorded.
	Unclaimed
)

var resultNames = [...]string{"failed", "committed", "duplicate", "unclaimed"}

func (r Result) String() string {
	if r < 0 || int(r) >= len(resultNames) {
		return fmt.Sprintf("Result(%d)", int(r))
	}
	return resultNames[r]
}

// A DeliverOption configures Deliver.
type DeliverOption interface{ applyDeliver(*deliverConfig) }

type deliverConfig struct{ claims []eagerClaim }

type eagerClaim struct {
	core *core
	opts driver.TxOptions
}

type deliverOptionFunc func(*deliverConfig)

func (f deliverOptionFunc) applyDeliver(c *deliverConfig) { f(c) }

// ClaimIn makes Deliver claim the delivery in ds before fn runs, with the
// transaction options opts (nil for the driver's default; ReadOnly is
// ignored, the claim writes). A message already recorded in every claimed
// DataSource is a Duplicate without fn being called. Give every DataSource a
// handler writes to: when an earlier delivery committed in some of them
// but not in others (a partial commit), the claims tell which, and fn's
// work is then kept only where the message is new (see Deliver).
func ClaimIn(ds *DataSource, opts *sql.TxOptions) DeliverOption {
	return deliverOptionFunc(func(c *deliverConfig) {
		var o driver.TxOptions
		if opts != nil {
			o.Isolation = driver.IsolationLevel(opts.Isolation)
		}
		c.claims = append(c.claims, eagerClaim{core: ds.core, opts: o})
	})
}

// Deliver runs fn as one delivery of d, and owns the delivery's
// transactions: all work done with fn's context through a DataSource —
// every BeginTx/Commit pair (an ORM's per-write transactions included),
// statements outside a transaction, prepared statements — runs in one
// physical transaction per DataSource, on a connection of the delivery's
// own, whose first statement inserts the claim row. fn's own Commit calls
// end nothing; Deliver commits every delivery transaction after fn returns
// nil and rolls them back otherwise. An inner Rollback marks the delivery
// rollback-only: Deliver then rolls everything back and fails with
// ErrRollbackOnly.
//
// Without ClaimIn, a DataSource claims the delivery at the first statement
// or BeginTx made with fn's context; when the message is recorded that call
// fails with ErrAlreadyConsumed, and so does every later one through that
// DataSource. With ClaimIn, the claims are made before fn runs.
//
// It returns:
//   - Committed, nil: fn returned nil and every delivery transaction
//     committed;
//   - Duplicate, nil: a claim found the message recorded and no other
//     DataSource holds a new claim, whether fn then returned nil or an error
//     wrapping ErrAlreadyConsumed; nothing was committed;
//   - Unclaimed, nil: fn returned nil without using a DataSource;
//   - Failed and an error otherwise: fn's error (after rolling back),
//     ErrRollbackOnly, ErrTxAborted, ErrCommitUnknown, ErrPartialCommit,
//     a *KeyCollisionError (ErrKeyCollision: the claim met another
//     message's record, which the column takes for this one; never
//     Duplicate), ErrInvalidDelivery (also when fn swallowed it) or the
//     database's error. Retry the delivery: what committed is found
//     recorded by the next one.
//
// When the message is recorded in some DataSources and new in others (an
// earlier delivery's commit reached only some databases), the recorded
// ones run fn's statements in a transaction that is rolled back, the new
// ones commit: each database applies the message once.
//
// A panic in fn rolls everything back and is re-raised. Statements of the
// delivery are serialised per DataSource: goroutines of fn may share its
// context, and one waits while another's statement runs; a statement made
// while a Rows of the delivery is open fails with ErrDeliveryBusy.
func Deliver(ctx context.Context, d Delivery, fn func(ctx context.Context) error, opts ...DeliverOption) (res Result, err error) {
	var cfg deliverConfig
	for _, o := range opts {
		if o != nil {
			o.applyDeliver(&cfg)
		}
	}
	s := newScope(ctx, []Delivery{d})
	s.batch = nil
	dctx := context.WithValue(ctx, deliveryKey{}, s)
	for _, c := range cfg.claims {
		if _, err := s.join(c.core, c.opts, true); err != nil {
			s.finish(err)
			return Failed, err
		}
	}
	if len(cfg.claims) > 0 && !s.anyNew() {
		s.finish(nil)
		return Duplicate, nil
	}
	defer func() {
		if r := recover(); r != nil {
			s.finish(fmt.Errorf("mqdatasource: panic in the delivery: %v", r))
			panic(r)
		}
	}()
	return s.finish(fn(dctx))
}

// Deliver is Deliver(ctx, d, fn, ClaimIn(ds, nil)): the claim is made in ds
// before fn runs, and fn is not called for a duplicate.
func (ds *DataSource) Deliver(ctx context.Context, d Delivery, fn func(ctx context.Context) error) (Result, error) {
	return Deliver(ctx, d, fn, ClaimIn(ds, nil))
}

// scope is one delivery in progress, shared through the context by every
// statement made with it: the delivery transactions it joined, one per
// DataSource. Deliver owns it and ends it.
type scope struct {
	d     Delivery // the delivery; a batch's first
	id    string
	batch []Delivery      // DeliverBatch's deliveries, nil for Deliver
	ids   []string        // their message ids
	ctx   context.Context // Deliver's: begins and ends the transactions

	mu    sync.Mutex
	txs   []*dtx // in the order the DataSources joined
	ended bool
	dup   bool // a claim found the record
	// refused is why a DataSource could not join: the delivery cannot be
	// claimed (a key collision, an invalid delivery). It fails the
	// delivery even when fn swallows it, so that the message is not
	// taken for one that needed no claim (Unclaimed).
	refused error
}

func newScope(ctx context.Context, batch []Delivery) *scope {
	s := &scope{d: batch[0], batch: batch, ids: make([]string, len(batch)), ctx: ctx}
	for i, d := range batch {
		s.ids[i] = d.MessageID()
	}
	s.id = s.ids[0]
	return s
}

// join returns the delivery transaction of core, beginning it with the
// claim on a delivery connection at the DataSource's first use. A claim
// that finds the record is a duplicate: with eager (ClaimIn), or when
// another DataSource holds a new claim, the transaction stays open and is
// rolled back at the end (its statements still run); otherwise join fails
// with ErrAlreadyConsumed, as every later use of core does.
func (s *scope) join(co *core, opts driver.TxOptions, eager bool) (*dtx, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, fmt.Errorf("%w (message id %q)", ErrDeliveryDone, s.id)
	}
	for _, t := range s.txs {
		if t.core == co {
			return t, t.checkOpts(opts)
		}
	}
	if s.batch != nil && len(s.txs) > 0 {
		return nil, ErrBatchScope
	}
	for i, id := range s.ids {
		if err := co.validate(s.deliveryAt(i), id); err != nil {
			if s.refused == nil {
				s.refused = err
			}
			return nil, err
		}
	}
	t := &dtx{s: s, core: co, opts: driver.TxOptions{Isolation: opts.Isolation}}
	keep := eager || s.anyNewLocked()
	dup, err := t.begin(keep)
	if err != nil {
		if errors.Is(err, ErrKeyCollision) && s.refused == nil {
			s.refused = err
		}
		return nil, err
	}
	s.txs = append(s.txs, t)
	if dup {
		s.dup = true
		if !keep {
			return nil, t.dupErr()
		}
	}
	return t, nil
}

func (s *scope) deliveryAt(i int) Delivery {
	if s.batch == nil {
		return s.d
	}
	return s.batch[i]
}

func (s *scope) anyNew() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.anyNewLocked()
}

func (s *scope) anyNewLocked() bool {
	for _, t := range s.txs {
		if !t.dup {
			return true
		}
	}
	return false
}

// finish ends the delivery after fn returned fnErr: it commits the new
// claims' transactions when that is right, rolls back everything else, and
// returns the Result (see Deliver).
func (s *scope) finish(fnErr error) (Result, error) {
	s.mu.Lock()
	s.ended = true
	txs := s.txs
	dup := s.dup
	refused := s.refused
	s.mu.Unlock()
	if refused != nil && (fnErr == nil || errors.Is(fnErr, ErrAlreadyConsumed)) {
		// fn swallowed the refusal (or a later duplicate); the
		// delivery still failed.
		fnErr = refused
	}

	var news []*dtx
	for _, t := range txs {
		t.closeRows()
		if !t.dup {
			news = append(news, t)
		}
	}
	rollbackAll := func() {
		for _, t := range txs {
			t.end(false)
		}
	}
	switch {
	case fnErr != nil && !(dup && len(news) == 0 && errors.Is(fnErr, ErrAlreadyConsumed)):
		rollbackAll()
		return Failed, fnErr
	case len(txs) == 0:
		return Unclaimed, nil
	case len(news) == 0:
		rollbackAll()
		return Duplicate, nil
	}
	for _, t := range news {
		if err := t.commitErr(); err != nil {
			rollbackAll()
			return Failed, err
		}
	}
	committed := 0
	for i, t := range news {
		if err := t.end(true); err != nil {
			for _, rest := range news[i+1:] {
				rest.end(false)
			}
			for _, t := range txs {
				if t.dup {
					t.end(false)
				}
			}
			if committed > 0 {
				return Failed, fmt.Errorf("%w: %d of %d databases committed message id %q: %w", ErrPartialCommit, committed, len(news), s.id, err)
			}
			return Failed, err
		}
		committed++
	}
	for _, t := range txs {
		if t.dup {
			t.end(false)
		}
	}
	return Committed, nil
}

// dtx is a delivery transaction: the physical transaction, on a delivery
// connection, that holds the claim of one delivery in one DataSource and
// runs every statement made through that DataSource with the delivery's
// context.
type dtx struct {
	s    *scope
	core *core
	opts driver.TxOptions

	mu           sync.Mutex // one statement at a time
	pc           *pconn     // nil once ended
	dup          bool       // the claim found the record: roll back at the end
	fresh        []int      // a batch's deliveries that were not recorded
	rows         *drows     // a Rows left open, nil if none
	rollbackOnly error      // why the delivery must roll back
}

// begin takes a delivery connection and begins the transaction with the
// claim. With keep, a duplicate's transaction stays open.
func (t *dtx) begin(keep bool) (dup bool, err error) {
	// Begin and end with Deliver's context: a statement's context (a
	// request timeout) must not decide the whole delivery's transaction.
	bctx := t.s.ctx
	var pc *pconn
	for try := 0; ; try++ {
		pc, err = t.core.pool.get(bctx, try > 0)
		if err != nil {
			return false, err
		}
		if t.s.batch != nil {
			t.fresh, err = pc.beginBatch(bctx, t.s.batch, t.s.ids)
			dup = len(t.fresh) == 0
		} else {
			pc.dupErr = nil
			dup, err = pc.begin(bctx, t.s.d, t.s.id, t.opts)
			if err == nil && dup {
				// A duplicate is certain or it is an error: one read, on
				// this path only, that the record is this id byte for byte.
				if err = pc.confirmDup(bctx, t.s.id, pc.dupErr); err != nil {
					if rbErr := pc.rollback(); rbErr != nil {
						pc.broken = true
					}
					t.core.pool.put(pc)
					return false, err
				}
			}
		}
		if err == nil {
			break
		}
		t.core.pool.put(pc)
		// A stale pooled connection failed before anything ran: try a
		// fresh one, as database/sql does.
		if !errors.Is(err, driver.ErrBadConn) || try > 0 {
			return false, err
		}
	}
	if dup && !keep {
		if rbErr := pc.rollback(); rbErr != nil {
			pc.broken = true
		}
		t.core.pool.put(pc)
		t.dup = true
		return true, nil
	}
	t.pc = pc
	t.dup = dup
	return dup, nil
}

func (t *dtx) dupErr() error {
	return fmt.Errorf("%w: message id %q", ErrAlreadyConsumed, t.s.id)
}

// checkOpts refuses a transaction whose isolation level differs from the
// delivery transaction's: it cannot be given, and running at another level
// than asked would be wrong silently. ReadOnly is ignored.
func (t *dtx) checkOpts(opts driver.TxOptions) error {
	if opts.Isolation == 0 || opts.Isolation == t.opts.Isolation {
		return nil
	}
	return fmt.Errorf("%w: isolation level %s asked, the delivery's transaction (message id %q) runs at %s", ErrTxOptions,
		sql.IsolationLevel(opts.Isolation), t.s.id, sql.IsolationLevel(t.opts.Isolation))
}

// usable returns why no statement can run in t now, or nil. t.mu is held.
func (t *dtx) usable() error {
	switch {
	case t.pc == nil && t.dup:
		return t.dupErr()
	case t.pc == nil:
		return fmt.Errorf("%w (message id %q)", ErrDeliveryDone, t.s.id)
	case t.rows != nil:
		return fmt.Errorf("%w (message id %q)", ErrDeliveryBusy, t.s.id)
	}
	return t.pc.abortedErr()
}

// markRollbackOnly records an inner Rollback.
func (t *dtx) markRollbackOnly() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rollbackOnly == nil && t.pc != nil {
		t.rollbackOnly = fmt.Errorf("%w (message id %q)", ErrRollbackOnly, t.s.id)
	}
}

// commitErr returns why t must not commit, or nil.
func (t *dtx) commitErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rollbackOnly != nil {
		return t.rollbackOnly
	}
	if t.pc == nil {
		return nil
	}
	return t.pc.abortedErr()
}

func (t *dtx) closeRows() {
	t.mu.Lock()
	r := t.rows
	t.mu.Unlock()
	if r != nil {
		_ = r.Close()
	}
}

// end commits or rolls back and hands the connection back to the pool.
func (t *dtx) end(commit bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	pc := t.pc
	if pc == nil {
		return nil
	}
	t.pc = nil
	var err error
	if commit {
		err = pc.commit()
	} else if rbErr := pc.rollback(); rbErr != nil {
		pc.broken = true
	}
	t.core.pool.put(pc)
	return err
}

// exec runs a statement in t.
func (t *dtx) exec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.usable(); err != nil {
		return nil, err
	}
	return t.pc.exec(ctx, query, args)
}

// query runs a query in t; t is busy until the rows are closed.
func (t *dtx) query(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.usable(); err != nil {
		return nil, err
	}
	r, err := t.pc.query(ctx, query, args)
	if err != nil {
		return nil, err
	}
	t.rows = &drows{columnTypes: columnTypes{r}, t: t, ctx: ctx}
	return t.rows, nil
}
