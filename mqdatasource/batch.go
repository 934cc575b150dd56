package mqdatasource

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// MaxBatch is the most deliveries DeliverBatch claims in one statement
// (SQL Server takes at most 2100 parameters, seven a row).
const MaxBatch = 256

// DeliverBatch runs fn as one delivery of several messages: one transaction
// in ds whose first statements claim all of batch (one multi-row INSERT; on
// PostgreSQL it returns the rows it inserted, elsewhere the ids found
// recorded are read back only when the INSERT met a duplicate), then fn
// with the indexes of the deliveries that were not recorded yet (fresh, in
// order), and one commit. It returns the fresh indexes when that commit
// succeeded; the other deliveries were duplicates (a message twice in the
// batch is fresh at its first delivery only). With every delivery
// recorded, fn is not called and fresh is empty.
//
// Everything fn does through ds with its context runs in the transaction,
// as for Deliver; another DataSource cannot join a batch (ErrBatchScope).
// On any error nothing is committed: to keep one bad message from failing
// its neighbours again and again, deliver them one by one next (the
// exactlyonce batch listener does). Every delivery is validated before any
// SQL runs (ErrInvalidDelivery names the first invalid one).
func (ds *DataSource) DeliverBatch(ctx context.Context, batch []Delivery, fn func(ctx context.Context, fresh []int) error) (fresh []int, err error) {
	switch {
	case len(batch) == 0:
		return nil, nil
	case len(batch) > MaxBatch:
		return nil, fmt.Errorf("mqdatasource: a batch of %d deliveries, over MaxBatch (%d)", len(batch), MaxBatch)
	}
	s := newScope(ctx, batch)
	dctx := context.WithValue(ctx, deliveryKey{}, s)
	t, err := s.join(ds.core, driver.TxOptions{}, true)
	if err != nil {
		s.finish(err)
		return nil, err
	}
	fresh = t.fresh
	if len(fresh) == 0 {
		s.finish(nil)
		return fresh, nil
	}
	defer func() {
		if r := recover(); r != nil {
			s.finish(fmt.Errorf("mqdatasource: panic in the delivery: %v", r))
			panic(r)
		}
	}()
	if _, err := s.finish(fn(dctx, fresh)); err != nil {
		return nil, err
	}
	return fresh, nil
}

// ErrBatchScope means a batch delivery's context was used with another
// DataSource than the one DeliverBatch claims in.
var ErrBatchScope = errors.New("mqdatasource: a batch delivery runs in its own DataSource only")

// beginBatch begins the delivery transaction and claims every id; fresh
// lists the indexes of the ids that were not recorded. The transaction is
// open on success, also when nothing is fresh.
func (pc *pconn) beginBatch(ctx context.Context, batch []Delivery, ids []string) (fresh []int, err error) {
	dl := pc.core.dialect.impl()
	if dl.implicitBegin && !pc.autocommitOff {
		if e, ok := pc.inner.(driver.ExecerContext); ok {
			if _, err := e.ExecContext(ctx, "SET autocommit=0", nil); err != nil {
				pc.observe(ctx, err)
				return nil, err
			}
			pc.autocommitOff = true
		}
	}
	if dl.implicitBegin && pc.autocommitOff {
		pc.itx = &implicitTx{pc: pc, e: pc.inner.(driver.ExecerContext)}
	} else {
		itx, err := beginInner(ctx, pc.inner, driver.TxOptions{})
		if err != nil {
			pc.observe(ctx, err)
			return nil, err
		}
		pc.itx = itx
	}
	fresh, err = pc.claimBatch(ctx, batch, ids)
	if err != nil {
		if rbErr := pc.rollback(); rbErr != nil {
			pc.broken = true
		}
		return nil, err
	}
	return fresh, nil
}

// claimBatch inserts the claim rows of ids not yet recorded. PostgreSQL
// reports the rows it inserted (ON CONFLICT DO NOTHING RETURNING); MySQL
// and SQL Server insert plainly, so that no other error is hidden (INSERT
// IGNORE would turn a truncation into a warning), and on a duplicate of the
// record's unique key read which ids are recorded and insert the rest.
func (pc *pconn) claimBatch(ctx context.Context, batch []Delivery, ids []string) ([]int, error) {
	dl := pc.core.dialect.impl()
	ctime := time.Now().UnixMilli()
	// A message twice in one batch is claimed once: its first delivery.
	todo := make([]int, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for i, id := range ids {
		if !seen[id] {
			seen[id] = true
			todo = append(todo, i)
		}
	}
	for range len(batch) + 1 {
		args := make([]driver.NamedValue, 0, len(todo)*len(claimColumns))
		for _, i := range todo {
			for _, a := range dl.claimArgs(batch[i], ids[i], ctime) {
				a.Ordinal = len(args) + 1
				args = append(args, a)
			}
		}
		if err := checkArgs(pc.inner, args); err != nil {
			return nil, err
		}
		q := dl.claimRowsSQL(pc.core.table, len(todo))
		if dl.dupByCount {
			inserted, err := pc.queryStrings(ctx, q, args)
			if err != nil {
				return nil, err
			}
			fresh := keep(todo, ids, inserted, true)
			if skipped := keep(todo, ids, inserted, false); len(skipped) > 0 {
				// ON CONFLICT skipped them: confirm that each is recorded
				// under its own id, not another the column takes for it
				// (a nondeterministic collation; or a batch neighbour).
				recorded, err := pc.recorded(ctx, ids, skipped)
				if err != nil {
					return nil, err
				}
				if err := pc.core.batchCollision(ids, skipped, recorded, ""); err != nil {
					return nil, err
				}
			}
			return fresh, nil
		}
		_, err := pc.exec(ctx, q, args)
		if err == nil {
			return todo, nil
		}
		if !dl.isDuplicate(err, pc.core.uk(), "") {
			return nil, err
		}
		recorded, rerr := pc.recorded(ctx, ids, todo)
		if rerr != nil {
			return nil, rerr
		}
		rest := keep(todo, ids, recorded, false)
		if len(rest) == len(todo) || hasForeign(recorded, ids) {
			// The duplicate is not among the ids: another value that the
			// column takes for one of them is recorded, or two of them are
			// one value to the column.
			return nil, pc.core.batchCollision(ids, todo, recorded, dl.dupEntry(err))
		}
		todo = rest
		if len(todo) == 0 {
			return todo, nil
		}
	}
	return nil, fmt.Errorf("mqdatasource: claiming a batch of %d: duplicates kept appearing", len(batch))
}

// hasForeign reports whether set has a value that is none of ids.
func hasForeign(set map[string]bool, ids []string) bool {
	for v := range set {
		if !slices.Contains(ids, v) {
			return true
		}
	}
	return false
}

// batchCollision returns the *KeyCollisionError of the first id at todo
// that is not recorded byte for byte, with a recorded value that is none of
// ids (or entry, the value a duplicate error named) as the other key; nil
// when every id at todo is recorded. The batch fails; delivered one by
// one, each message then gets its own answer.
func (c *core) batchCollision(ids []string, todo []int, recorded map[string]bool, entry string) error {
	other := entry
	for v := range recorded {
		if !slices.Contains(ids, v) {
			other = v
			break
		}
	}
	for _, i := range todo {
		if !recorded[ids[i]] {
			return c.collision(ids[i], other)
		}
	}
	if other != "" {
		return c.collision(ids[todo[0]], other)
	}
	return nil
}

// keep returns the indexes in todo whose id is in set (in) or not in it.
func keep(todo []int, ids []string, set map[string]bool, in bool) []int {
	out := todo[:0:0]
	for _, i := range todo {
		if set[ids[i]] == in {
			out = append(out, i)
		}
	}
	return out
}

// recorded returns which of the ids at todo are recorded.
func (pc *pconn) recorded(ctx context.Context, ids []string, todo []int) (map[string]bool, error) {
	dl := pc.core.dialect.impl()
	args := make([]driver.NamedValue, len(todo))
	for n, i := range todo {
		args[n] = driver.NamedValue{Ordinal: n + 1, Value: dl.stringArg(ids[i])}
	}
	if err := checkArgs(pc.inner, args); err != nil {
		return nil, err
	}
	q := dl.lookupManySQL(pc.core.table, len(todo))
	if dl.name == "mysql" {
		// A locking read sees the latest committed rows; a consistent
		// read would see the transaction's snapshot, taken at its first
		// read, and miss a claim committed since.
		q += " LOCK IN SHARE MODE"
	}
	return pc.queryStrings(ctx, q, args)
}

// queryStrings runs a query of one string column and returns its values.
func (pc *pconn) queryStrings(ctx context.Context, q string, args []driver.NamedValue) (map[string]bool, error) {
	rows, err := pc.query(ctx, q, args)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	dest := make([]driver.Value, 1)
	for {
		err := rows.Next(dest)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			pc.observe(ctx, err)
			return nil, err
		}
		switch v := dest[0].(type) {
		case string:
			out[v] = true
		case []byte:
			out[string(v)] = true
		}
	}
}

// claimRowsSQL returns the INSERT of n claim rows; on PostgreSQL it skips
// recorded ids and returns the message ids it inserted.
func (d *dialect) claimRowsSQL(table string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (", d.quote(table))
	for i, c := range claimColumns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.quote(c))
	}
	b.WriteString(") VALUES ")
	p := 1
	for r := range n {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for i := range claimColumns {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(d.param(p))
			p++
		}
		b.WriteByte(')')
	}
	b.WriteString(d.claimSuffix)
	if d.dupByCount {
		b.WriteString(" RETURNING " + d.quote("message_id"))
	}
	return b.String()
}

// lookupManySQL returns the SELECT of the message ids among n arguments
// that are recorded.
func (d *dialect) lookupManySQL(table string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT %s FROM %s WHERE %s IN (", d.quote("message_id"), d.quote(table), d.quote("message_id"))
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.param(i + 1))
	}
	b.WriteByte(')')
	return b.String()
}

// ConsumedOf reports which of batch are recorded as consumed by their
// consumer groups, in one query: the pre-check of a batch, like IsConsumed.
// consumed[i] is batch[i]'s answer. Invalid deliveries fail the call
// (ErrInvalidDelivery) before any SQL.
func (ds *DataSource) ConsumedOf(ctx context.Context, batch []Delivery) (consumed []bool, err error) {
	if len(batch) == 0 {
		return nil, nil
	}
	if len(batch) > MaxBatch {
		return nil, fmt.Errorf("mqdatasource: a batch of %d deliveries, over MaxBatch (%d)", len(batch), MaxBatch)
	}
	dl := ds.core.dialect.impl()
	ids := make([]string, len(batch))
	args := make([]any, len(batch))
	for i, d := range batch {
		ids[i] = d.MessageID()
		if err := ds.core.validate(d, ids[i]); err != nil {
			return nil, err
		}
		args[i] = dl.stringArg(ids[i])
	}
	// Not prepared once, unlike IsConsumed's lookup: the statement has one
	// argument per delivery, 1 to MaxBatch of them, so each batch size
	// would be a statement of its own on every connection, and the
	// prepare (a round trip with go-sql-driver/mysql's default DSN) is
	// paid once per batch, not per message.
	rows, err := ds.db.QueryContext(WithoutDelivery(ctx), dl.lookupManySQL(ds.core.table, len(batch)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		found[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	consumed = make([]bool, len(batch))
	for i, id := range ids {
		consumed[i] = found[id]
	}
	return consumed, nil
}
