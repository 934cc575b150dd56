package mqdatasource

import (
	"context"
	"fmt"
	"strings"
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
// themselves and pass it to Deliver.
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

type deliveryKey struct{}

// DeliveryFromContext returns the delivery that Deliver runs, and false when
// ctx carries none (WithoutDelivery removes it) or a batch (DeliverBatch).
func DeliveryFromContext(ctx context.Context) (Delivery, bool) {
	s := scopeFromContext(ctx)
	if s == nil || s.batch != nil {
		return Delivery{}, false
	}
	return s.d, true
}

// WithoutDelivery returns a context derived from ctx that carries no
// delivery, for statements a handler deliberately runs outside the
// delivery's transaction: they run on a pooled connection of their own, in
// autocommit or in a transaction of their own, and survive the delivery's
// rollback (an audit row, a read that must not wait for the delivery's
// locks).
func WithoutDelivery(ctx context.Context) context.Context {
	return context.WithValue(ctx, deliveryKey{}, (*scope)(nil))
}

func scopeFromContext(ctx context.Context) *scope {
	s, _ := ctx.Value(deliveryKey{}).(*scope)
	return s
}
