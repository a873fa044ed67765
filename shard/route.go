package shard

import (
	"slices"
)

// Map sends a key to the shard that owns it. Implementations are immutable
// and safe for concurrent use; a reload builds a new Map.
type Map interface {
	// Shards is the number of shards, numbered 0..Shards()-1 in the
	// order of the config's [[clusters.shards]].
	Shards() int
	// Version identifies the config the map was built from; the caller
	// passes it in and makes it grow with every changed config, so that
	// a Route tells which map decided it.
	Version() uint64
	// ShardOf maps one key to its shard. v is an int64 (or another Go
	// integer type), a string, or a []byte of canonical bytes (a
	// text-format bind parameter); nil is ErrNullKey. Errors are
	// *KeyError.
	ShardOf(v any) (int, error)
	// ShardOfInt and ShardOfBytes are ShardOf for the two shapes a key
	// takes on the hot path, without boxing it into an interface (which
	// allocates for most int64 values and every []byte).
	ShardOfInt(n int64) (int, error)
	ShardOfBytes(b []byte) (int, error)
}

// Route is where a statement goes: one of Direct, Multi, All. Every Route
// carries the Version of the Map that decided it. The set is closed: the
// implementations are the types of this package only.
type Route interface {
	// MapVersion is the Version of the Map that made the decision.
	MapVersion() uint64
	isRoute()
}

// Direct sends the statement to one shard.
type Direct struct {
	Shard   int
	Version uint64
}

// Multi sends the statement to several shards (a key list that spans
// them); Shards is sorted, without duplicates, and has at least two.
type Multi struct {
	Shards  []int
	Version uint64
}

// All sends the statement to every shard: a read without a key, to be
// merged. It is never the result of a key lookup.
type All struct {
	Version uint64
}

func (r Direct) MapVersion() uint64 { return r.Version }
func (r Multi) MapVersion() uint64  { return r.Version }
func (r All) MapVersion() uint64    { return r.Version }

func (Direct) isRoute() {}
func (Multi) isRoute()  {}
func (All) isRoute()    {}

var (
	_ Route = Direct{}
	_ Route = Multi{}
	_ Route = All{}
)

// routes holds a map's preboxed Direct and All routes, so that the common
// decision (one key, one shard) costs no allocation.
type routes struct {
	version uint64
	direct  []Route
	all     Route
}

func newRoutes(shards int, version uint64) routes {
	r := routes{version: version, direct: make([]Route, shards), all: All{Version: version}}
	for i := range r.direct {
		r.direct[i] = Direct{Shard: i, Version: version}
	}
	return r
}

func (r *routes) Shards() int     { return len(r.direct) }
func (r *routes) Version() uint64 { return r.version }

func (r *routes) directRoute(i int) Route { return r.direct[i] }
func (r *routes) allRoute() Route         { return r.all }

// preboxed is implemented by this package's maps.
type preboxed interface {
	directRoute(int) Route
	allRoute() Route
}

// DirectTo is Direct{shard, m.Version()} as a Route; for the maps of this
// package it does not allocate. shard must be in [0, m.Shards()).
func DirectTo(m Map, shard int) Route {
	if p, ok := m.(preboxed); ok && shard >= 0 && shard < m.Shards() {
		return p.directRoute(shard)
	}
	return Direct{Shard: shard, Version: m.Version()}
}

// AllOf is All{m.Version()} as a Route.
func AllOf(m Map) Route {
	if p, ok := m.(preboxed); ok {
		return p.allRoute()
	}
	return All{Version: m.Version()}
}

// Collect turns the shards of a statement's keys (one per key, in any
// order, duplicates allowed) into a Route: Direct when they agree, Multi
// otherwise. It does not modify shards. No shards is ErrNoKey: a
// statement without a key is the caller's decision (AllOf for a read to
// scatter, an error for a write), not a lookup's.
func Collect(m Map, shards []int) (Route, error) {
	if len(shards) == 0 {
		return nil, ErrNoKey
	}
	first := shards[0]
	same := true
	for _, s := range shards[1:] {
		if s != first {
			same = false
			break
		}
	}
	if same {
		return DirectTo(m, first), nil
	}
	s := slices.Clone(shards)
	slices.Sort(s)
	return Multi{Shards: slices.Compact(s), Version: m.Version()}, nil
}

// Resolve looks up every key and collects the shards (see Collect). The
// first key that cannot be mapped is the error.
func Resolve(m Map, keys ...any) (Route, error) {
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	if len(keys) == 1 {
		s, err := m.ShardOf(keys[0])
		if err != nil {
			return nil, err
		}
		return DirectTo(m, s), nil
	}
	shards := make([]int, len(keys))
	for i, k := range keys {
		s, err := m.ShardOf(k)
		if err != nil {
			return nil, err
		}
		shards[i] = s
	}
	return Collect(m, shards)
}
