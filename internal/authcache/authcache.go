// Package authcache keeps the answers of passthrough authentication's
// look-ups (auth_query) for a while, for both protocols: one look-up in
// flight per key, answers (a user's verifier, or its absence) reused until
// their TTL ends, failures never kept, and a bounded number of entries,
// since unknown names are kept too and a client chooses them.
package authcache

import (
	"sync"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
)

// MaxEntries bounds the answers kept.
const MaxEntries = 10000

// Cache is safe for concurrent use; its zero value is ready.
type Cache struct {
	mu       sync.Mutex
	entries  map[string]entry
	inflight map[string]*call
	now      func() time.Time // tests
}

type entry struct {
	value   string
	expires time.Time
}

type call struct {
	done  chan struct{}
	value string
	err   error
}

// Result says where an answer came from.
type Result int

const (
	Cached Result = iota // from the cache, or from a look-up another login ran
	Fetched
)

// Get returns the value of key: kept, or from fetch (run once for all the
// callers that ask at the same time), which is then kept for ttl unless it
// failed or ttl is 0.
func (c *Cache) Get(key string, ttl time.Duration, fetch func() (string, error)) (string, Result, error) {
	c.mu.Lock()
	now := c.clock()
	if e, ok := c.entries[key]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.value, Cached, nil
	}
	if cl := c.inflight[key]; cl != nil {
		c.mu.Unlock()
		<-cl.done
		return cl.value, Cached, cl.err
	}
	cl := &call{done: make(chan struct{})}
	if c.inflight == nil {
		c.inflight = make(map[string]*call)
	}
	c.inflight[key] = cl
	c.mu.Unlock()

	cl.value, cl.err = fetch()

	c.mu.Lock()
	delete(c.inflight, key)
	if cl.err == nil && ttl > 0 {
		if c.entries == nil {
			c.entries = make(map[string]entry)
		}
		now := c.clock()
		if len(c.entries) >= MaxEntries {
			for k, e := range c.entries {
				if !now.Before(e.expires) {
					delete(c.entries, k)
				}
			}
			if len(c.entries) >= MaxEntries {
				clear(c.entries)
			}
		}
		c.entries[key] = entry{value: cl.value, expires: now.Add(ttl)}
	}
	c.mu.Unlock()
	close(cl.done)
	return cl.value, Fetched, cl.err
}

// Len is the number of answers kept.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *Cache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// Lookup is a passthrough login's look-up of user name in cluster cl
// (both protocols): cached under the cluster, its auth_user and auth_query
// for auth_cache_ttl, and counted in switchyard_auth_query_lookups_total.
// "" with a nil error: no such user.
func (c *Cache) Lookup(protocol string, cl *config.Cluster, name string, fetch func() (string, error)) (string, error) {
	st := cl.Settings
	key := cl.Name + "\x00" + st.AuthUser + "\x00" + st.AuthQuery + "\x00" + name
	v, from, err := c.Get(key, st.AuthCacheTTL, fetch)
	result := "found"
	switch {
	case from == Cached && err == nil:
		result = "cached"
	case err != nil:
		result = "error"
	case v == "":
		result = "not_found"
	}
	metrics.AuthQueries.WithLabelValues(protocol, cl.Name, result).Inc()
	return v, err
}
