package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
)

// PriceChange is the message body the pricing module publishes: the v-th
// price of a product. Versions of a product start at 1 and have no gaps.
type PriceChange struct {
	ProductID   string `json:"product_id"`
	Version     int64  `json:"version"`
	PriceCents  int64  `json:"price_cents"`  // the new price
	ChangeCents int64  `json:"change_cents"` // new price minus the previous one
}

// Key is the change's business key, its dedupe key: the same however often
// the change is published, and unique among all changes.
func (c PriceChange) Key() string {
	return fmt.Sprintf("price:%s:%d", c.ProductID, c.Version)
}

// newMessage builds the message for a change. The product id is the sharding
// key (the hash queue selector sends all changes of a product to one queue,
// so an orderly consumer sees them in order) and the message key (for
// lookups in the console); the business key is the dedupe key, so a resend of
// the change, even one built from scratch, is applied once.
func newMessage(topic string, c PriceChange) (*primitive.Message, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	msg := primitive.NewMessage(topic, body)
	msg.WithShardingKey(c.ProductID)
	msg.WithKeys([]string{c.ProductID})
	if err := exactlyonce.SetBusinessKey(msg, c.Key()); err != nil {
		return nil, err
	}
	return msg, nil
}

// newProducer starts a producer whose queue selector hashes the sharding key,
// built by exactlyonce.NewProducer like every producer an exactly-once
// consumer reads: a message without a business key would get a stamped
// EXTEND_UNIQ_INFO instead of relying on the client's UNIQ_KEY, which
// another producer with the same IP and pid can repeat.
func newProducer(nameServer, instance string) (rocketmq.Producer, error) {
	p, err := exactlyonce.NewProducer(
		producer.WithNameServer(primitive.NamesrvAddr{nameServer}),
		producer.WithGroupName("price-engine"),
		producer.WithInstanceName(instance),
		producer.WithQueueSelector(producer.NewHashQueueSelector()),
		producer.WithRetry(2),
		producer.WithSendMsgTimeout(3*time.Second),
	)
	if err != nil {
		return nil, err
	}
	if err := p.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

// startProducer starts the producer of a run's client generation:
// rocketmq-client-go's through the name server at nameServer, or with proxy
// set the RocketMQ 5 client's (startProducerV5). It returns the producer's
// sendFunc for topic and its stop function.
func startProducer(nameServer, proxy, instance, topic string) (sendFunc, func(), error) {
	if proxy != "" {
		return startProducerV5(proxy, topic)
	}
	p, err := newProducer(nameServer, instance)
	if err != nil {
		return nil, nil, err
	}
	return sendWith(p, topic), func() { _ = p.Shutdown() }, nil
}

// plan is the set of changes a run publishes: changes versions of each of
// products products, each price a pure function of (seed, product, version),
// so the verifier can recompute what was sent without talking to the
// producer.
type plan struct {
	Products int     // products SKU-0001 ...
	Changes  int     // changes per product, versions 1..Changes
	Seed     uint64  // varies the prices
	Resend   float64 // fraction of changes the producer publishes twice
}

func (p plan) total() int { return p.Products * p.Changes }

func productID(i int) string { return fmt.Sprintf("SKU-%04d", i+1) }

// hash mixes the seed and a few numbers into 64 pseudo-random bits.
func (p plan) hash(nums ...uint64) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for _, n := range append([]uint64{p.Seed}, nums...) {
		binary.LittleEndian.PutUint64(b[:], n)
		h.Write(b[:])
	}
	return h.Sum64()
}

// price is the price of product i after version v (0 before the first).
func (p plan) price(i int, v int64) int64 {
	if v == 0 {
		return 0
	}
	return 100 + int64(p.hash(uint64(i), uint64(v))%99_900) // 1.00 to 999.99
}

// change is version v of product i.
func (p plan) change(i int, v int64) PriceChange {
	price := p.price(i, v)
	return PriceChange{
		ProductID:   productID(i),
		Version:     v,
		PriceCents:  price,
		ChangeCents: price - p.price(i, v-1),
	}
}

// resent reports whether the producer publishes change v of product i twice.
func (p plan) resent(i int, v int64) bool {
	return float64(p.hash(uint64(i), uint64(v), 1)%10_000) < p.Resend*10_000
}

// publishStats counts what publish sent; safe to read while it runs.
type publishStats struct {
	Sent    atomic.Int64 // distinct changes sent
	Resends atomic.Int64 // extra sends of a change already sent
}

// sendFunc publishes one change, as a new message each time it is called.
type sendFunc func(ctx context.Context, c PriceChange) error

// sendWith returns the sendFunc of a rocketmq-client-go producer.
func sendWith(p rocketmq.Producer, topic string) sendFunc {
	return func(ctx context.Context, c PriceChange) error {
		msg, err := newMessage(topic, c)
		if err != nil {
			return err
		}
		_, err = p.SendSync(ctx, msg)
		return err
	}
}

// publish sends versions from to to (inclusive) of every product of the
// plan: one goroutine per group of products, each sending its products'
// changes in version order and waiting for each send, so that a product's
// changes are stored in order in its queue.
// A change selected by plan.resent is built and sent a second time, as a
// pricing module that lost the send result and retried from scratch would:
// a new message (new message id) with the same business key.
func publish(ctx context.Context, sendMsg sendFunc, pl plan, from, to, workers int, st *publishStats) error {
	if workers < 1 {
		workers = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	send := func(c PriceChange) error {
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		if err := sendMsg(sctx, c); err != nil {
			return fmt.Errorf("send %s: %w", c.Key(), err)
		}
		return nil
	}
	for w := range workers {
		wg.Go(func() {
			for v := int64(from); v <= int64(to); v++ {
				for i := w; i < pl.Products; i += workers {
					if ctx.Err() != nil {
						return
					}
					c := pl.change(i, v)
					if err := send(c); err != nil {
						fail(err)
						return
					}
					st.Sent.Add(1)
					if pl.resent(i, v) {
						if err := send(c); err != nil {
							fail(err)
							return
						}
						st.Resends.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
