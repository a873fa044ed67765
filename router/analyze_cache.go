package router

import (
	"sync"
	"sync/atomic"
)

// textCache maps statement text to what the router learned from it (the
// analyzer's verdicts, the shard-key extractions). Every query that misses
// the fast path looks here, from every client goroutine at once, so a hit
// takes no lock: sync.Map (a concurrent hash trie since Go 1.24) loads
// without one, and the entry's "used" bit is only written when it is clear.
//
// The bound is enforced by a second-chance sweep: when the cache grows past
// its entry or byte limit, one goroutine walks it, drops entries that were
// not used since the last sweep and clears the bit on the others, until an
// eighth of the room is free. Statements in steady use (prepared ones, ORM
// queries) survive; a stream of one-off texts with inline literals churns
// only itself. Texts longer than maxText are never cached (bulk literals).
type textCache[V any] struct {
	m        sync.Map // string → *textEntry[V]
	n        atomic.Int64
	bytes    atomic.Int64
	maxN     int64
	maxBytes int64
	maxText  int
	sweeping sync.Mutex
}

type textEntry[V any] struct {
	v    V
	used atomic.Bool
}

func newTextCache[V any](entries, bytes, maxText int) *textCache[V] {
	return &textCache[V]{maxN: int64(max(entries, 1)), maxBytes: int64(max(bytes, 1)), maxText: maxText}
}

// verdictCache holds the analyzer's verdicts.
type verdictCache = textCache[*Analysis]

func newVerdictCache(entries, bytes int) *verdictCache {
	return newTextCache[*Analysis](entries, bytes, maxCachedText)
}

func (c *textCache[V]) get(sql string) (V, bool) {
	v, ok := c.m.Load(sql)
	if !ok {
		var zero V
		return zero, false
	}
	e := v.(*textEntry[V])
	if !e.used.Load() {
		e.used.Store(true)
	}
	return e.v, true
}

// put stores v for sql; sql must not alias a buffer the caller reuses.
func (c *textCache[V]) put(sql string, v V) {
	if len(sql) > c.maxText {
		return
	}
	if _, loaded := c.m.LoadOrStore(sql, &textEntry[V]{v: v}); loaded {
		return
	}
	n := c.n.Add(1)
	b := c.bytes.Add(int64(len(sql)))
	if n > c.maxN || b > c.maxBytes {
		c.sweep()
	}
}

// sweep evicts until the cache is at 7/8 of its limits. Concurrent callers
// leave it to the one already sweeping.
func (c *textCache[V]) sweep() {
	if !c.sweeping.TryLock() {
		return
	}
	defer c.sweeping.Unlock()
	targetN, targetB := c.maxN-c.maxN/8, c.maxBytes-c.maxBytes/8
	over := func() bool { return c.n.Load() > targetN || c.bytes.Load() > targetB }
	// Pass 0 spares entries used since the last sweep, pass 1 those used
	// during pass 0, pass 2 spares nothing.
	for pass := 0; pass < 3 && over(); pass++ {
		c.m.Range(func(k, v any) bool {
			if pass < 2 && v.(*textEntry[V]).used.Swap(false) {
				return true
			}
			if _, ok := c.m.LoadAndDelete(k); ok {
				c.n.Add(-1)
				c.bytes.Add(-int64(len(k.(string))))
			}
			return over()
		})
	}
}

// len reports the number of cached entries.
func (c *textCache[V]) len() int { return int(c.n.Load()) }
