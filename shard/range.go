package shard

import (
	"fmt"
	"slices"
	"strconv"
)

// Range is a range shard map: shard i owns the keys in [low, high) of its
// range. Ranges are all integers or all strings (compared bytewise, so
// "B" < "a"). Overlaps are refused when the map is built; config refuses
// gaps at load, and a map built by hand with a gap answers a key in it
// with an error that names the gap.
//
// Integer keys on a string map are compared as their canonical decimal
// text; string keys on an integer map must be the canonical decimal form
// of an integer (see Canonical in the package documentation), anything
// else is ErrKeyType rather than a guess.
type Range struct {
	routes
	ints []intSpan // sorted by low; nil for a string map
	strs []strSpan // sorted by low; nil for an integer map
}

var _ Map = (*Range)(nil)

type intSpan struct {
	lo, hi int64
	shard  int
}

type strSpan struct {
	lo, hi string
	shard  int
}

// NewRange builds a range map; ranges[i] is [low, high) of shard i, both
// int64 (or another Go integer type) or both string.
func NewRange(ranges [][2]any, version uint64) (*Range, error) {
	if len(ranges) == 0 {
		return nil, fmt.Errorf("shard: a range map needs at least one shard")
	}
	r := &Range{routes: newRoutes(len(ranges), version)}
	kind := ""
	for i, rg := range ranges {
		lo, hi := rg[0], rg[1]
		var k string
		switch {
		case isInt(lo) && isInt(hi):
			k = "integer"
			l, _ := asInt(lo)
			h, _ := asInt(hi)
			if l >= h {
				return nil, fmt.Errorf("shard: shards[%d] range [%d, %d): low must be less than high (high is exclusive)", i, l, h)
			}
			r.ints = append(r.ints, intSpan{l, h, i})
		case isStr(lo) && isStr(hi):
			k = "string"
			l, h := lo.(string), hi.(string)
			if l >= h {
				return nil, fmt.Errorf("shard: shards[%d] range [%q, %q): low must be less than high (high is exclusive)", i, l, h)
			}
			r.strs = append(r.strs, strSpan{l, h, i})
		default:
			return nil, fmt.Errorf("shard: shards[%d] range [%s, %s): must be two integers or two strings", i, showKey(lo), showKey(hi))
		}
		if kind == "" {
			kind = k
		} else if k != kind {
			return nil, fmt.Errorf("shard: shards[%d] has a %s range but shards[0] an %s one; a map has one type", i, k, kind)
		}
	}
	if r.ints != nil {
		slices.SortFunc(r.ints, func(a, b intSpan) int { return cmpInt(a.lo, b.lo) })
		for j := 1; j < len(r.ints); j++ {
			if a, b := r.ints[j-1], r.ints[j]; b.lo < a.hi {
				if a.shard > b.shard {
					a, b = b, a
				}
				return nil, fmt.Errorf("shard: shards[%d] range [%d, %d) overlaps shards[%d] range [%d, %d)",
					b.shard, b.lo, b.hi, a.shard, a.lo, a.hi)
			}
		}
	} else {
		slices.SortFunc(r.strs, func(a, b strSpan) int { return cmpStr(a.lo, b.lo) })
		for j := 1; j < len(r.strs); j++ {
			if a, b := r.strs[j-1], r.strs[j]; b.lo < a.hi {
				if a.shard > b.shard {
					a, b = b, a
				}
				return nil, fmt.Errorf("shard: shards[%d] range [%q, %q) overlaps shards[%d] range [%q, %q)",
					b.shard, b.lo, b.hi, a.shard, a.lo, a.hi)
			}
		}
	}
	return r, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func isInt(v any) bool { _, ok := asInt(v); return ok }
func isStr(v any) bool { _, ok := v.(string); return ok }

// Integers reports whether the ranges are integers (else strings).
func (r *Range) Integers() bool { return r.ints != nil }

// Ranges returns [low, high) of every shard, indexed by shard, for admin
// views: int64 or string elements.
func (r *Range) Ranges() [][2]any {
	out := make([][2]any, r.Shards())
	for _, s := range r.ints {
		out[s.shard] = [2]any{s.lo, s.hi}
	}
	for _, s := range r.strs {
		out[s.shard] = [2]any{s.lo, s.hi}
	}
	return out
}

// ShardOf implements Map.
func (r *Range) ShardOf(v any) (int, error) {
	switch v := v.(type) {
	case nil:
		return 0, keyError(nil, ErrNullKey)
	case string:
		return r.shardOfText(v)
	case []byte:
		return r.ShardOfBytes(v)
	}
	if n, ok := asInt(v); ok {
		return r.ShardOfInt(n)
	}
	return 0, keyError(v, ErrKeyType)
}

// ShardOfInt implements Map.
func (r *Range) ShardOfInt(n int64) (int, error) {
	if r.ints == nil {
		var buf [20]byte
		if s, ok := r.shardOfBytes(strconv.AppendInt(buf[:0], n, 10)); ok {
			return s, nil
		}
		return 0, keyError(n, ErrNoShard)
	}
	s := r.ints
	// The last span whose low is <= n.
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].lo <= n {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo > 0 && n < s[lo-1].hi {
		return s[lo-1].shard, nil
	}
	return 0, keyError(n, ErrNoShard)
}

// ShardOfBytes implements Map; b is canonical bytes. A nil b is NULL.
func (r *Range) ShardOfBytes(b []byte) (int, error) {
	if b == nil {
		return 0, keyError(nil, ErrNullKey)
	}
	if r.ints != nil {
		return r.shardOfIntText(b)
	}
	if s, ok := r.shardOfBytes(b); ok {
		return s, nil
	}
	return 0, keyError(string(b), ErrNoShard)
}

func (r *Range) shardOfText(v string) (int, error) {
	if r.ints != nil {
		return r.shardOfIntText(v)
	}
	if s, ok := r.shardOfStr(v); ok {
		return s, nil
	}
	return 0, keyError(v, ErrNoShard)
}

// shardOfIntText reads a key written as text on a map of integer ranges.
func (r *Range) shardOfIntText(v any) (int, error) {
	n, err := intTextKey(v, "the shard ranges are integers")
	if err != nil {
		return 0, err
	}
	return r.ShardOfInt(n)
}

// shardOfStr finds v among string spans. The callers build the error:
// handing v to keyError here would box it on every call.
func (r *Range) shardOfStr(v string) (int, bool) {
	s := r.strs
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].lo <= v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo > 0 && v < s[lo-1].hi {
		return s[lo-1].shard, true
	}
	return 0, false
}

// shardOfBytes is shardOfStr for bytes; string(v) in a comparison does
// not allocate.
func (r *Range) shardOfBytes(v []byte) (int, bool) {
	s := r.strs
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].lo <= string(v) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo > 0 && string(v) < s[lo-1].hi {
		return s[lo-1].shard, true
	}
	return 0, false
}
