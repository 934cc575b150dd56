package exactlyonce

import (
	"context"
	"database/sql"
)

// This file exports the small pieces that adapters for other RocketMQ
// clients (module exactlyoncev5, for the gRPC client of RocketMQ 5) share
// with this package, so that both generations keep one outcome vocabulary,
// one Metrics interface, one pre-check cache and one TxFromContext.

// ContextWithTx returns a context derived from ctx that carries tx for
// TxFromContext. The listeners of this package and of exactlyoncev5 use
// it for the transaction a TxHandler runs in; code deeper in the call chain
// reads it with TxFromContext whichever client delivered the message.
func ContextWithTx(ctx context.Context, tx *sql.Tx) context.Context {
	return context.WithValue(ctx, txKey{}, tx)
}

// SeenCache is the pre-check's bounded set of message ids (key#group)
// known to be committed, evicting the least recently used: the cache of
// WithCacheSize, for adapters of other clients. A nil *SeenCache is empty
// and remembers nothing. Safe for concurrent use.
type SeenCache struct{ c *idCache }

// NewSeenCache returns a cache of at most size ids, or nil (no cache) when
// size <= 0.
func NewSeenCache(size int) *SeenCache {
	c := newIDCache(size)
	if c == nil {
		return nil
	}
	return &SeenCache{c: c}
}

// Contains reports whether id is cached, marking it recently used.
func (s *SeenCache) Contains(id string) bool { return s != nil && s.c.contains(id) }

// Add caches id, evicting the least recently used id when full.
func (s *SeenCache) Add(id string) {
	if s != nil {
		s.c.add(id)
	}
}
