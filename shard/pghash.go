package shard

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
)

// PostgresHash is a hash map that agrees with PostgreSQL's own hash
// partitioning: shard i holds exactly the rows that a table
// PARTITION BY HASH (key) would put in its partition FOR VALUES WITH
// (MODULUS shards, REMAINDER i). It lets an operator move from
// declarative partitions on one server to one shard per partition (or
// check a shard's rows with satisfies_hash_partition()) without rehashing
// anything.
//
// PostgreSQL hashes by the column's type, so the map must know it:
// PostgresInteger for smallint, integer and bigint (they hash alike for
// equal values), PostgresText for text and varchar under a deterministic
// collation (the default; a nondeterministic ICU collation hashes a sort
// key instead, which this map cannot reproduce). Keys are read in the
// canonical form of the package documentation: on an integer map a string
// key must be a canonical decimal integer.
type PostgresHash struct {
	routes
	modulus uint64
	text    bool
}

var _ Map = (*PostgresHash)(nil)

// PostgresKeyType is the type of the partition key column.
type PostgresKeyType uint8

// Key column types of a PostgresHash.
const (
	PostgresInteger PostgresKeyType = iota + 1
	PostgresText
)

// NewPostgresHash builds a map of shards shards, shard i being remainder i
// of modulus shards.
func NewPostgresHash(shards int, t PostgresKeyType, version uint64) (*PostgresHash, error) {
	if shards < 1 {
		return nil, fmt.Errorf("shard: a hash map needs at least one shard, not %d", shards)
	}
	if t != PostgresInteger && t != PostgresText {
		return nil, fmt.Errorf("shard: unknown PostgreSQL key type %d", t)
	}
	return &PostgresHash{routes: newRoutes(shards, version), modulus: uint64(shards), text: t == PostgresText}, nil
}

// ShardOf implements Map.
func (h *PostgresHash) ShardOf(v any) (int, error) {
	switch v := v.(type) {
	case nil:
		return 0, keyError(nil, ErrNullKey)
	case string:
		if h.text {
			return h.shard(pgHashBytes([]byte(v), pgHashPartitionSeed)), nil
		}
		return h.intText(v)
	case []byte:
		return h.ShardOfBytes(v)
	}
	if n, ok := asInt(v); ok {
		return h.ShardOfInt(n)
	}
	return 0, keyError(v, ErrKeyType)
}

// ShardOfInt implements Map.
func (h *PostgresHash) ShardOfInt(n int64) (int, error) {
	if h.text {
		var buf [20]byte
		return h.shard(pgHashBytes(strconv.AppendInt(buf[:0], n, 10), pgHashPartitionSeed)), nil
	}
	return h.shard(pgHashInt8(n, pgHashPartitionSeed)), nil
}

// ShardOfBytes implements Map; b is canonical bytes. A nil b is NULL.
func (h *PostgresHash) ShardOfBytes(b []byte) (int, error) {
	if b == nil {
		return 0, keyError(nil, ErrNullKey)
	}
	if h.text {
		return h.shard(pgHashBytes(b, pgHashPartitionSeed)), nil
	}
	return h.intText(b)
}

// intText reads a key written as text on an integer partition key, as
// PostgreSQL's int8in does (blanks, sign, leading zeros).
func (h *PostgresHash) intText(v any) (int, error) {
	n, err := intTextKey(v, "the partition key is an integer")
	if err != nil {
		return 0, err
	}
	return h.ShardOfInt(n)
}

// shard is PostgreSQL's compute_partition_hash_value for a one-column key
// (hash_combine64 into 0), then the remainder.
func (h *PostgresHash) shard(hash uint64) int {
	row := hash + 0x49a0f4dd15e5a8e3
	return int(row % h.modulus)
}

// pgHashPartitionSeed is HASH_PARTITION_SEED of partition.h.
const pgHashPartitionSeed = 0x7A5B22367996DCFD

// pgHashInt8 is PostgreSQL's hashint8extended: fold the high half into
// the low one (so that int4 and int8 of equal value hash alike), then
// hash_bytes_uint32_extended.
func pgHashInt8(v int64, seed uint64) uint64 {
	lo := uint32(v)
	hi := uint32(v >> 32)
	if v >= 0 {
		lo ^= hi
	} else {
		lo ^= ^hi
	}
	a := uint32(0x9e3779b9 + 4 + 3923095)
	b, c := a, a
	if seed != 0 {
		a += uint32(seed >> 32)
		b += uint32(seed)
		a, b, c = pgMix(a, b, c)
	}
	a += lo
	_, b, c = pgFinal(a, b, c)
	return uint64(b)<<32 | uint64(c)
}

// pgHashBytes is PostgreSQL's hash_bytes_extended (Bob Jenkins' lookup3
// with a 64-bit seed) on a little-endian machine, which is what
// hashtextextended applies to a text value under a deterministic
// collation. (A big-endian server hashes differently; so does the server
// itself: partitions do not move between byte orders either.)
func pgHashBytes(k []byte, seed uint64) uint64 {
	a := uint32(0x9e3779b9) + uint32(len(k)) + 3923095
	b, c := a, a
	if seed != 0 {
		a += uint32(seed >> 32)
		b += uint32(seed)
		a, b, c = pgMix(a, b, c)
	}
	for len(k) >= 12 {
		a += binary.LittleEndian.Uint32(k)
		b += binary.LittleEndian.Uint32(k[4:])
		c += binary.LittleEndian.Uint32(k[8:])
		a, b, c = pgMix(a, b, c)
		k = k[12:]
	}
	// The last 0-11 bytes: a and b take little-endian words, c the bytes
	// above its lowest one (which lookup3 reserves for the length).
	for i, x := range k {
		switch {
		case i < 4:
			a += uint32(x) << (8 * i)
		case i < 8:
			b += uint32(x) << (8 * (i - 4))
		default:
			c += uint32(x) << (8 * (i - 7))
		}
	}
	_, b, c = pgFinal(a, b, c)
	return uint64(b)<<32 | uint64(c)
}

func pgMix(a, b, c uint32) (uint32, uint32, uint32) {
	a -= c
	a ^= bits.RotateLeft32(c, 4)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 6)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 8)
	b += a
	a -= c
	a ^= bits.RotateLeft32(c, 16)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 19)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 4)
	b += a
	return a, b, c
}

func pgFinal(a, b, c uint32) (uint32, uint32, uint32) {
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return a, b, c
}
