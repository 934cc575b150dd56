package mqdatasource

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// MaxMessageIDLen is the length, in characters, of the migration files'
// transaction_record message_id column. The stored id is Delivery.Key + "#"
// + ConsumerGroup, so the key and the group together must fit in it.
// Delivery.Validate checks against it; a DataSource checks against the
// length its schema check learned, and against MaxMessageIDLen only when it
// learned none.
const MaxMessageIDLen = 255

// Delivery identifies one delivery of a message to a consumer group: what the
// claim row in transaction_record records. The exactlyonce package builds it
// from a rocketmq-client-go MessageExt; users of other brokers fill it in
// themselves and pass it with WithDelivery.
type Delivery struct {
	// ConsumerGroup is the group the message is consumed by. Each group
	// applies a message once: the stored id is Key + "#" + ConsumerGroup.
	ConsumerGroup string
	// Key is the message's dedupe key: stable across every delivery of the
	// same message (for RocketMQ the EXTEND_UNIQ_INFO property, else the
	// UNIQ_KEY msgId, else the offset msgId).
	Key string
	// Topic, BrokerName, QueueID and QueueOffset say where the delivery came
	// from. They are stored for operations and purging, not for dedupe.
	Topic       string
	BrokerName  string
	QueueID     int
	QueueOffset int64
}

// MessageID returns the value stored in transaction_record.message_id:
// Key + "#" + ConsumerGroup, the format of the Java ExactlyOnceConsumer, so a
// consumer group can move between the two on the same table.
func (d Delivery) MessageID() string { return d.Key + "#" + d.ConsumerGroup }

// Validate reports whether d can be claimed: a non-empty key and group, a
// group without "#" (so that the message id names one key and group), and
// a message id of at most MaxMessageIDLen characters. It knows no table: a
// DataSource holds the id to the actual column instead (see
// DataSource.ValidateDelivery). The error wraps ErrInvalidDelivery.
func (d Delivery) Validate() error {
	if err := d.validateShape(); err != nil {
		return err
	}
	id := d.MessageID()
	if n := utf8.RuneCountInString(id); n > MaxMessageIDLen {
		return fmt.Errorf("%w: message id %q is %d characters, over MaxMessageIDLen (%d)", ErrInvalidDelivery, truncate(id, 40), n, MaxMessageIDLen)
	}
	return nil
}

// validateShape is Validate without the length check, which a DataSource
// makes against the column.
func (d Delivery) validateShape() error {
	switch {
	case d.Key == "":
		return fmt.Errorf("%w: empty dedupe key (topic %q, queue %d, offset %d)", ErrInvalidDelivery, d.Topic, d.QueueID, d.QueueOffset)
	case d.ConsumerGroup == "":
		return fmt.Errorf("%w: empty consumer group for key %q", ErrInvalidDelivery, d.Key)
	case !utf8.ValidString(d.Key) || !utf8.ValidString(d.ConsumerGroup):
		return fmt.Errorf("%w: key %q or group %q is not valid UTF-8", ErrInvalidDelivery, d.Key, d.ConsumerGroup)
	case strings.Contains(d.ConsumerGroup, "#"):
		// The id would be ambiguous: key "a", group "b#c" and key "a#b",
		// group "c" are both "a#b#c", and one group's record would stop
		// the other's message. (RocketMQ group names cannot contain #.)
		return fmt.Errorf("%w: consumer group %q contains #, the separator of the message id", ErrInvalidDelivery, d.ConsumerGroup)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// claim is the per-delivery state shared by every transaction begun with the
// same delivery context: it is what makes a second claim a detectable misuse.
type claim struct {
	d  Delivery
	id string // d.MessageID()

	mu        sync.Mutex
	state     claimState
	attempted bool // a transaction has tried to claim the delivery
}

type claimState int

const (
	claimFree      claimState = iota // no transaction holds the claim
	claimActive                      // a transaction holds it and is open
	claimCommitted                   // a transaction holding it committed
)

type deliveryKey struct{}

// WithDelivery returns a copy of ctx carrying d. A transaction begun through
// a DataSource with that context (or one derived from it) first claims d in
// transaction_record; see DataSource.BeginTx. Call it once per delivery: every
// transaction begun with the returned context shares one claim, and after one
// of them commits, beginning another fails with ErrDeliveryReused.
func WithDelivery(ctx context.Context, d Delivery) context.Context {
	return context.WithValue(ctx, deliveryKey{}, &claim{d: d, id: d.MessageID()})
}

// DeliveryFromContext returns the delivery WithDelivery put in ctx, and
// false when there is none (WithoutDelivery removes it).
func DeliveryFromContext(ctx context.Context) (Delivery, bool) {
	c := claimFromContext(ctx)
	if c == nil {
		return Delivery{}, false
	}
	return c.d, true
}

// WithoutDelivery returns a context derived from ctx that carries no
// delivery, for statements a handler deliberately runs unprotected (reads on a
// separate connection, writes to an audit table that must survive a rollback).
func WithoutDelivery(ctx context.Context) context.Context {
	return context.WithValue(ctx, deliveryKey{}, (*claim)(nil))
}

func claimFromContext(ctx context.Context) *claim {
	c, _ := ctx.Value(deliveryKey{}).(*claim)
	return c
}

// acquire marks the claim held by a new transaction, or says why it cannot
// be: another transaction holds it, or one already committed it.
func (c *claim) acquire() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case claimActive:
		return fmt.Errorf("%w: message id %q is claimed by a transaction that is still open", ErrDeliveryReused, c.id)
	case claimCommitted:
		return fmt.Errorf("%w: message id %q was claimed by a transaction that committed; a delivery gets one transaction", ErrDeliveryReused, c.id)
	}
	c.state = claimActive
	c.attempted = true
	return nil
}

// release ends the holding transaction's claim: committed, or free again
// after a rollback or a failed begin (the handler may retry the delivery).
// A nil claim is a no-op.
func (c *claim) release(committed bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if committed {
		c.state = claimCommitted
	} else if c.state == claimActive {
		c.state = claimFree
	}
}

// ClaimCommitted reports whether a transaction begun with ctx's delivery
// committed its claim: the delivery's message was applied by this delivery.
// It reads the state WithDelivery put in ctx (no SQL), so a listener can
// tell after the handler returned whether the work was committed, without
// looking the record up. It is false without a delivery in ctx.
func ClaimCommitted(ctx context.Context) bool {
	c := claimFromContext(ctx)
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == claimCommitted
}

// ClaimAttempted reports whether a transaction was begun with ctx's delivery
// and tried to claim it, whatever came of it. With ClaimCommitted it tells a
// handler that ignored its message (neither) from one whose claimed work was
// rolled back or never committed (attempted, not committed): a listener
// acknowledges the first and must retry the second. It is false without a
// delivery in ctx.
func ClaimAttempted(ctx context.Context) bool {
	c := claimFromContext(ctx)
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attempted
}
