package exactlyonce

import (
	"container/list"
	"sync"
)

// idCache is a bounded set of message ids (Key#Group) known to be committed,
// evicting the least recently used. A nil *idCache is an empty, disabled
// cache. Safe for concurrent use.
type idCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recently used; values are string
	items map[string]*list.Element
}

func newIDCache(max int) *idCache {
	if max <= 0 {
		return nil
	}
	return &idCache{max: max, order: list.New(), items: make(map[string]*list.Element, min(max, 1024))}
}

// contains reports whether id is cached, marking it recently used.
func (c *idCache) contains(id string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[id]
	if ok {
		c.order.MoveToFront(e)
	}
	return ok
}

// add caches id, evicting the least recently used id when full.
func (c *idCache) add(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[id]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.items[id] = c.order.PushFront(id)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(string))
	}
}
