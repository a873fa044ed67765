package shard

import (
	"fmt"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// MaxBuckets bounds the number of virtual buckets of a hash map (the map
// holds one entry per bucket).
const MaxBuckets = 1 << 24

// Hash is a hash shard map: a key's bucket is xxhash64 of its canonical
// bytes modulo the number of buckets, and bucket b belongs to shard
// b*shards/buckets. Buckets are fixed for the life of the data (their
// number must not change once rows are stored); shards own contiguous runs
// of them, so going from n to n+1 shards moves whole buckets from each old
// shard to its neighbour, never single rows. With 1024 buckets and 2
// shards, shard 0 owns buckets 0-511 and shard 1 owns 512-1023.
type Hash struct {
	routes
	buckets uint64
	assign  []int32 // bucket → shard
}

var _ Map = (*Hash)(nil)

// NewHash builds a hash map of shards shards over buckets buckets (at
// least one per shard).
func NewHash(shards, buckets int, version uint64) (*Hash, error) {
	switch {
	case shards < 1:
		return nil, fmt.Errorf("shard: a hash map needs at least one shard, not %d", shards)
	case buckets < shards:
		return nil, fmt.Errorf("shard: %d buckets cannot cover %d shards", buckets, shards)
	case buckets > MaxBuckets:
		return nil, fmt.Errorf("shard: %d buckets is more than the limit of %d", buckets, MaxBuckets)
	}
	h := &Hash{routes: newRoutes(shards, version), buckets: uint64(buckets), assign: make([]int32, buckets)}
	for b := range h.assign {
		h.assign[b] = int32(uint64(b) * uint64(shards) / uint64(buckets))
	}
	return h, nil
}

// NumBuckets is the number of virtual buckets.
func (h *Hash) NumBuckets() int { return int(h.buckets) }

// Buckets returns the shard of every bucket, indexed by bucket (a copy,
// for admin views).
func (h *Hash) Buckets() []int {
	out := make([]int, len(h.assign))
	for b, s := range h.assign {
		out[b] = int(s)
	}
	return out
}

// BucketOf is the virtual bucket of key v (see Map.ShardOf for the values).
func (h *Hash) BucketOf(v any) (int, error) {
	sum, err := hashKey(v)
	if err != nil {
		return 0, err
	}
	return int(sum % h.buckets), nil
}

// ShardOf implements Map.
func (h *Hash) ShardOf(v any) (int, error) {
	sum, err := hashKey(v)
	if err != nil {
		return 0, err
	}
	return int(h.assign[sum%h.buckets]), nil
}

// ShardOfInt implements Map; it never fails.
func (h *Hash) ShardOfInt(n int64) (int, error) {
	return int(h.assign[hashInt(n)%h.buckets]), nil
}

// ShardOfBytes implements Map; b is a key written as text (a text-format
// bind parameter), read as IntText says. A nil b is NULL.
func (h *Hash) ShardOfBytes(b []byte) (int, error) {
	if b == nil {
		return 0, keyError(nil, ErrNullKey)
	}
	sum, err := hashText(b)
	if err != nil {
		return 0, err
	}
	return int(h.assign[sum%h.buckets]), nil
}

// HashKey is the 64-bit hash of a key's canonical bytes, the value the
// buckets are taken from.
func HashKey(v any) (uint64, error) { return hashKey(v) }

func hashKey(v any) (uint64, error) {
	switch v := v.(type) {
	case nil:
		return 0, keyError(nil, ErrNullKey)
	case int64:
		return hashInt(v), nil
	case string:
		return hashText(v)
	case []byte:
		return hashText(v)
	}
	if n, ok := asInt(v); ok {
		return hashInt(n), nil
	}
	return 0, keyError(v, ErrKeyType)
}

// hashText hashes a key written as text: an integer in any form a server
// reads as that integer hashes as the integer, other text as its bytes.
func hashText[T string | []byte](b T) (uint64, error) {
	switch n, kind := IntText(b); kind {
	case Integer:
		return hashInt(n), nil
	case Inexact:
		return 0, keyError(string(b), errInexact)
	}
	return xxhash.Sum64([]byte(b)), nil
}

func hashInt(n int64) uint64 {
	var buf [20]byte
	return xxhash.Sum64(strconv.AppendInt(buf[:0], n, 10))
}
