package exactlyoncev5

import (
	"fmt"
	"strings"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
)

// A KeyFunc derives the dedupe key of a message: the same on every delivery
// of the message, different between messages the group consumes. The key
// plus "#" plus the group is what transaction_record stores. "" or an error
// fails the delivery (exactlyonce.OutcomeInvalid: retried, never
// acknowledged unprocessed).
type KeyFunc func(msg *rmq.MessageView) (string, error)

// DefaultKey is the default KeyFunc: the EXTEND_UNIQ_INFO user property
// when a proxy passes one, else the message id.
//
// The message id of a gRPC MessageView is what the proxy reads from the
// stored message: its UNIQ_KEY property (set by every producer, v5 and
// remoting alike, once per message and kept across send retries and
// redeliveries), else, for a message stored without one (a batch sent by
// rocketmq-client-go v2), the broker's offset message id. That is exactly
// what exactlyonce.DefaultKey returns for the same message in a v2
// consumer, unless the message carries EXTEND_UNIQ_INFO: Apache RocketMQ 5
// treats that property as a system property, refuses it from v5 producers
// and does not pass it to v5 consumers, so a v2 consumer keys such a
// message (exactlyonce.StampKey, SetBusinessKey, Alibaba's Java producer)
// by it and a v5 consumer cannot. docs/v5.md has the table and what to do
// for a group that moves between the two clients.
func DefaultKey(msg *rmq.MessageView) (string, error) {
	if msg == nil {
		return "", exactlyonce.ErrNoKey
	}
	if k := msg.GetProperties()[exactlyonce.PropertyExtendUniqInfo]; k != "" {
		return k, nil
	}
	if k := msg.GetMessageId(); k != "" {
		return k, nil
	}
	return "", fmt.Errorf("%w (topic %q, queue offset %d)", exactlyonce.ErrNoKey, msg.GetTopic(), msg.GetOffset())
}

// KeysKey is a KeyFunc that returns the message's keys (Message.SetKeys;
// KEYS for remoting producers), joined by spaces in the producer's order,
// as its dedupe key: the same string exactlyonce.KeysKey returns for the
// same message in a v2 consumer. The keys must identify the message's fact
// ("order-42:paid"), not an entity several messages are about. A message
// without keys fails with exactlyonce.ErrNoKey.
func KeysKey(msg *rmq.MessageView) (string, error) {
	if msg == nil {
		return "", exactlyonce.ErrNoKey
	}
	k := strings.TrimSpace(strings.Join(msg.GetKeys(), " "))
	if k == "" {
		return "", fmt.Errorf("%w: the message has no keys (topic %q, message id %s)", exactlyonce.ErrNoKey, msg.GetTopic(), msg.GetMessageId())
	}
	return k, nil
}
