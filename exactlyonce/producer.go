package exactlyonce

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// StampKey gives each message a dedupe key that stays the same however often
// the application sends that *primitive.Message again, and that another
// producer process cannot issue, before the first send. It sets, when
// absent:
//
//   - UNIQ_KEY, the message id, from the client's own generator
//     (primitive.CreateUniqID). The v2.1.2 producer sets it on a single
//     message at its first send and keeps it across its internal retries,
//     but never on the messages of a batch (SendSync(ctx, m1, m2, ...)):
//     their MsgId is then the broker's offset id, different for every
//     send, so a resent batch could not be recognised;
//   - EXTEND_UNIQ_INFO, the key consumers prefer (DefaultKey, and the Java
//     ExactlyOnceConsumer), in the Java producer's format: UNIQ_KEY followed
//     by 8 upper-case hex digits (4 bytes; 40 characters in all with the
//     client's 32-character UNIQ_KEY). The Java producer's 4 bytes are one
//     random value per producer; here they are random per message, the
//     same format and a smaller chance of a repeat. The client's UNIQ_KEY
//     has no random part: it is the IP, the process id cut to 16 bits, the
//     second and a 16-bit counter, so two producers with the same IP and
//     pid (containers that are both pid 1 with host networking) issue the
//     same ids, and one process repeats them above 65,536 messages a
//     second. The random suffix keeps the dedupe key apart in both cases
//     (two stamped keys coincide only if 32 random bits do too).
//
// WrapProducer calls it on every message a producer sends. A message
// rebuilt from scratch for a resend is a new message with a new key: give
// such messages a business key (SetBusinessKey) instead. Stamping a message
// after it has been sent changes its dedupe key; stamp before the first
// send. Nil messages are ignored.
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
			var b [4]byte
			_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go >= 1.24)
			m.WithProperty(PropertyExtendUniqInfo, uniq+strings.ToUpper(hex.EncodeToString(b[:])))
		}
	}
}

// WrapProducer returns p with every message it sends stamped with StampKey
// first (SendSync, SendAsync and SendOneWay, batches included, and Request;
// not RequestAsync, whose callback type the client keeps internal: stamp
// its message with StampKey), so that consumers deduplicate by a key that no other
// producer process can issue and that a resend of the same
// *primitive.Message keeps. Keys already set (SetBusinessKey, a UNIQ_KEY)
// are kept. It is the documented way to build every producer whose
// messages an exactly-once consumer reads:
//
//	p, err := rocketmq.NewProducer(opts...)
//	...
//	p = exactlyonce.WrapProducer(p)
//
// A producer interceptor (producer.WithInterceptor) cannot do this: the
// client encodes a batch into one message before it calls the
// interceptors, so the members could no longer be stamped.
func WrapProducer(p rocketmq.Producer) rocketmq.Producer {
	if p == nil {
		panic("exactlyonce: WrapProducer needs a producer")
	}
	if _, ok := p.(stampingProducer); ok {
		return p
	}
	return stampingProducer{p}
}

// NewProducer is rocketmq.NewProducer wrapped by WrapProducer.
func NewProducer(opts ...producer.Option) (rocketmq.Producer, error) {
	p, err := rocketmq.NewProducer(opts...)
	if err != nil {
		return nil, err
	}
	return WrapProducer(p), nil
}

// stampingProducer stamps the messages of every send (see WrapProducer).
type stampingProducer struct{ rocketmq.Producer }

var _ rocketmq.Producer = stampingProducer{}

func (p stampingProducer) SendSync(ctx context.Context, msgs ...*primitive.Message) (*primitive.SendResult, error) {
	StampKey(msgs...)
	return p.Producer.SendSync(ctx, msgs...)
}

func (p stampingProducer) SendAsync(ctx context.Context, f func(context.Context, *primitive.SendResult, error), msgs ...*primitive.Message) error {
	StampKey(msgs...)
	return p.Producer.SendAsync(ctx, f, msgs...)
}

func (p stampingProducer) SendOneWay(ctx context.Context, msgs ...*primitive.Message) error {
	StampKey(msgs...)
	return p.Producer.SendOneWay(ctx, msgs...)
}

func (p stampingProducer) Request(ctx context.Context, ttl time.Duration, msg *primitive.Message) (*primitive.Message, error) {
	StampKey(msg)
	return p.Producer.Request(ctx, ttl, msg)
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
