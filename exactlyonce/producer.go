package exactlyonce

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// StampKey gives each message a dedupe key that stays the same however often
// the application sends that *primitive.Message again, before the first
// send. It sets, when absent:
//
//   - UNIQ_KEY, the message id, from the client's own generator
//     (primitive.CreateUniqID). The v2.1.2 producer sets it on a single
//     message at its first send and keeps it across its internal retries,
//     but never on the messages of a batch (SendSync(ctx, m1, m2, ...)):
//     their MsgId is then the broker's offset id, different for every
//     send, so a resent batch could not be recognised;
//   - EXTEND_UNIQ_INFO, the key consumers prefer (DefaultKey, and the Java
//     ExactlyOnceConsumer), as UNIQ_KEY followed by 64 random bits. The
//     client's UNIQ_KEY repeats once a process sends more than 65,536
//     messages in one second (its counter is 16 bits); the random suffix
//     keeps the dedupe key unique anyway.
//
// A message rebuilt from scratch for a resend is a new message with a new
// key: give such messages a business key (SetBusinessKey) instead. Stamping
// a message after it has been sent changes its dedupe key; stamp before the
// first send. Nil messages are ignored.
func StampKey(msgs ...*primitive.Message) {
	for _, m := range msgs {
		if m == nil {
			continue
		}
		uniq := m.GetProperty(primitive.PropertyUniqueClientMessageIdKeyIndex)
		if uniq == "" {
			uniq = primitive.CreateUniqID()
			m.WithProperty(primitive.PropertyUniqueClientMessageIdKeyIndex, uniq)
		}
		if m.GetProperty(PropertyExtendUniqInfo) == "" {
			var b [8]byte
			_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go >= 1.24)
			m.WithProperty(PropertyExtendUniqInfo, uniq+strings.ToUpper(hex.EncodeToString(b[:])))
		}
	}
}

// ErrBadKey means a business key cannot be used as a dedupe key.
var ErrBadKey = errors.New("exactlyonce: invalid business key")

// SetBusinessKey makes key the message's dedupe key (the EXTEND_UNIQ_INFO
// property, which DefaultKey and the Java ExactlyOnceConsumer read first):
// two messages with the same key are applied once per consumer group, even
// when the producer application built and sent them separately (a resend
// after a crash, two instances publishing the same event). The key must be
// unique among everything the consuming groups consume (e.g. prefix it with
// the event type: "price-change:SKU-1:v42"). It fails with ErrBadKey for an
// empty key, one that is not UTF-8 or contains the bytes 0x01 or 0x02 (the
// property separators of the wire format), or one longer than
// mqdatasource.MaxMessageIDLen-2 characters, which no record of the
// migration's table fits (the message id is key#group, with a group of at
// least one character; a wider message_id column of your own is not known
// to the producer). Whether
// the key fits with the consuming group's name in the actual message_id
// column is only known when consumed: a delivery whose id does not fit fails
// with mqdatasource.ErrInvalidDelivery, and is retried like any failure.
//
// To use the message Keys (Message.WithKeys) as the dedupe key instead, set
// WithKeysAsDedupeKey on the consumer.
func SetBusinessKey(msg *primitive.Message, key string) error {
	switch {
	case msg == nil:
		return fmt.Errorf("%w: nil message", ErrBadKey)
	case key == "":
		return fmt.Errorf("%w: empty", ErrBadKey)
	case !utf8.ValidString(key) || strings.ContainsAny(key, "\x01\x02"):
		return fmt.Errorf("%w: %q is not UTF-8 or contains a property separator", ErrBadKey, key)
	case utf8.RuneCountInString(key) > mqdatasource.MaxMessageIDLen-2:
		return fmt.Errorf("%w: %d characters, at most %d with the group", ErrBadKey, utf8.RuneCountInString(key), mqdatasource.MaxMessageIDLen-2)
	}
	msg.WithProperty(PropertyExtendUniqInfo, key)
	return nil
}
