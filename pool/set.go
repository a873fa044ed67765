package pool

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Set is the pools of one front end, by key: K holds whatever makes two
// server connections interchangeable (node, database, server user and
// password, the connection settings), so one key is one pool. Both wire
// packages keep their pools in a Set; what differs between them is how a
// pool dials (the open function given to Get) and what a key is.
//
// A reload goes through Reload: a pool whose key the new config still
// describes stays and takes the new limits in place (pool_size and the
// like; its connections stay as good as they were), any other pool is
// taken out of the set at once and drains in the background, so that
// transactions in flight finish on the pool they hold while new leases go
// to the pools of the new config.
//
// V is what the wire package keeps beside a pool (pgwire: what a fresh
// connection of that node reports); use struct{} for nothing.
type Set[K comparable, V any] struct {
	// Listed, when set, is called when a pool is opened and again after
	// Reload changed its limits: the caller makes it visible to metrics
	// and admin views. Unlisted is called once a pool left the set and is
	// closed or drained. Neither is called with the set's lock held.
	Listed   func(k K, p *Pool, l Limits)
	Unlisted func(p *Pool)
	// Paused, when set, is asked under the set's lock about each pool Get
	// opens: true pauses it (Pool.Pause) before anyone can lease from it.
	Paused func(k K) bool
	// Log, when set, gets a line per pool drained by Reload.
	Log *slog.Logger

	mu     sync.Mutex
	m      map[K]*setEntry[V]
	closed bool
}

type setEntry[V any] struct {
	p *Pool
	l Limits // as last asked for (New may clamp MinSize)
	v V
}

// Get returns k's pool and value, calling open to make them on first use.
// open runs under the set's lock, so that two clients never open the same
// pool twice: it must not block (New does not dial). An error from open is
// returned as is and nothing is kept. After Close, a pool open makes is
// closed at once and not kept: its Get fails with ErrClosed, which is what
// a client leasing at shutdown should see.
func (s *Set[K, V]) Get(k K, open func() (*Pool, V, error)) (*Pool, V, error) {
	s.mu.Lock()
	if e, ok := s.m[k]; ok {
		s.mu.Unlock()
		return e.p, e.v, nil
	}
	p, v, err := open()
	if err != nil {
		s.mu.Unlock()
		return nil, v, err
	}
	if s.closed {
		s.mu.Unlock()
		p.Close()
		return p, v, nil
	}
	if s.Paused != nil && s.Paused(k) {
		p.Pause()
	}
	if s.m == nil {
		s.m = make(map[K]*setEntry[V])
	}
	l := p.Limits()
	s.m[k] = &setEntry[V]{p: p, l: l, v: v}
	s.mu.Unlock()
	if s.Listed != nil {
		s.Listed(k, p, l)
	}
	return p, v, nil
}

// Reload applies a new config to the set. want says, for the key of each
// pool, whether the new config still describes it and with which limits.
// The pools it keeps take those limits in place (SetLimits); the others
// leave the set now, so the next Get of their key opens a fresh pool, and
// drain in the background: their leases finish first, for drain at most,
// then what is still leased is closed (Pool.Drain).
func (s *Set[K, V]) Reload(want func(K) (Limits, bool), drain time.Duration) {
	type resize struct {
		k K
		p *Pool
		l Limits
	}
	var resized []resize
	var stale []*Pool
	s.mu.Lock()
	for k, e := range s.m {
		l, ok := want(k)
		switch {
		case !ok:
			stale = append(stale, e.p)
			delete(s.m, k)
		case l != e.l:
			e.l = l
			resized = append(resized, resize{k, e.p, l})
		}
	}
	s.mu.Unlock()
	for _, r := range resized {
		r.p.SetLimits(r.l)
		if s.Listed != nil {
			s.Listed(r.k, r.p, r.l)
		}
	}
	for _, p := range stale {
		if s.Log != nil {
			s.Log.Info("draining pool after reload", "pool", p.Name())
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), drain)
			defer cancel()
			if err := p.Drain(ctx); err != nil && s.Log != nil {
				s.Log.Warn("pool drain after reload", "err", err)
			}
			if s.Unlisted != nil {
				s.Unlisted(p)
			}
		}()
	}
}

// Close closes every pool of the set (their leased connections close when
// they come back) and makes later Gets fail; see Get.
func (s *Set[K, V]) Close() {
	s.mu.Lock()
	s.closed = true
	m := s.m
	s.m = nil
	s.mu.Unlock()
	for _, e := range m {
		e.p.Close()
		if s.Unlisted != nil {
			s.Unlisted(e.p)
		}
	}
}

// Each calls f for every pool of the set, outside the set's lock.
func (s *Set[K, V]) Each(f func(k K, p *Pool, v V)) {
	type item struct {
		k K
		e *setEntry[V]
	}
	s.mu.Lock()
	items := make([]item, 0, len(s.m))
	for k, e := range s.m {
		items = append(items, item{k, e})
	}
	s.mu.Unlock()
	for _, it := range items {
		f(it.k, it.e.p, it.e.v)
	}
}

// Stats returns a snapshot of every pool of the set, by name.
func (s *Set[K, V]) Stats() map[string]Stats {
	m := make(map[string]Stats)
	s.Each(func(_ K, p *Pool, _ V) { m[p.Name()] = p.Stats() })
	return m
}
