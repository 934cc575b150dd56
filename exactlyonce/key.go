package exactlyonce

import (
	"errors"
	"fmt"
	"strings"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// PropertyExtendUniqInfo is the message property that, when present, is the
// message's dedupe key. Alibaba's Java producers set it when exactly-once
// delivery is on; WrapProducer, StampKey and SetBusinessKey set it here.
const PropertyExtendUniqInfo = "EXTEND_UNIQ_INFO"

// ErrNoKey means no dedupe key could be derived from a message. The delivery
// fails and is retried (and ends in the dead-letter queue after the group's
// retries in concurrent mode); it is never acknowledged unprocessed.
var ErrNoKey = errors.New("exactlyonce: message has no dedupe key")

// A KeyFunc derives the dedupe key of a message: a string that is the same
// on every delivery of the message and differs between messages a consumer
// group consumes. The key plus "#" plus the group is what transaction_record
// stores. Returning "" or an error fails the delivery (it is retried).
type KeyFunc func(msg *primitive.MessageExt) (string, error)

// DefaultKey is the default KeyFunc. It returns the first non-empty of:
//
//   - the EXTEND_UNIQ_INFO property (Alibaba Java producers with exactly-once
//     delivery, StampKey, SetBusinessKey);
//   - the UNIQ_KEY property, the client-generated message id the Go and Java
//     producers set once per message and keep across their send retries and
//     across the broker's send-back to the retry topic;
//   - the ORIGIN_MESSAGE_ID property, which the broker sets on a retry copy
//     to the id of the first delivery: it keeps the key stable for messages
//     without UNIQ_KEY (batches sent by the Go producer) across send-back;
//   - MsgId, then OffsetMsgId (the id derived from the broker's commit log
//     position: stable across redeliveries of that stored message only).
//
// It matches the Java ExactlyOnceConsumer (EXTEND_UNIQ_INFO, else msgId) for
// every message that has a UNIQ_KEY, so a group can move between the two.
//
// Only EXTEND_UNIQ_INFO is safe from collisions: the client's UNIQ_KEY has
// no random part (IP, pid cut to 16 bits, second, 16-bit counter), so two
// producers with the same IP and pid issue the same ids, and the second
// message of such a pair is taken for a duplicate of the first. Stamp
// producers with WrapProducer; WithRequireProducerKey refuses messages
// without the property.
func DefaultKey(msg *primitive.MessageExt) (string, error) {
	if msg == nil {
		return "", ErrNoKey
	}
	for _, k := range [...]string{
		msg.GetProperty(PropertyExtendUniqInfo),
		msg.GetProperty(primitive.PropertyUniqueClientMessageIdKeyIndex),
		msg.GetProperty(primitive.PropertyOriginMessageId),
		msg.MsgId,
		msg.OffsetMsgId,
	} {
		if k != "" {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w (topic %q, queue offset %d)", ErrNoKey, msg.Topic, msg.QueueOffset)
}

// KeysKey is a KeyFunc that returns the message's Keys property (what the
// producer set with Message.WithKeys; several keys are joined by spaces, and
// the whole string, in the producer's order, is the key) as its dedupe key.
// Every message with the same Keys is applied once per group: the Keys must
// identify the message's fact ("order-42:paid"), not an entity that several
// messages are about ("order-42"). A message without keys fails with
// ErrNoKey: it is retried, not acknowledged, so a producer that forgets the
// key is noticed.
func KeysKey(msg *primitive.MessageExt) (string, error) {
	if msg == nil {
		return "", ErrNoKey
	}
	k := strings.TrimSpace(msg.GetKeys())
	if k == "" {
		return "", fmt.Errorf("%w: the KEYS property is empty (topic %q, msgId %s)", ErrNoKey, msg.Topic, msg.MsgId)
	}
	return k, nil
}
