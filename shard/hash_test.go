package shard

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
)

// The hash of a key decides where rows are stored: a change here strands
// every row already written. These values pin xxhash64 of the canonical
// bytes (the empty string's is the published XXH64 test vector).
var goldenHashes = []struct {
	key    any
	sum    uint64
	bucket int // of 1024
	shard  int // of 4
}{
	{int64(0), 0x633457081244afec, 1004, 3},
	{int64(1), 0xb7b41276360564d4, 212, 0},
	{int64(42), 0x6de6f5d076d742b9, 697, 2},
	{int64(-42), 0x38da21157f244677, 631, 2},
	{int64(1<<63 - 1), 0xd8afff7b1fb07eb3, 691, 2},
	{int64(-1 << 63), 0x9e606ab2dd272c10, 16, 0},
	{"", 0xef46db3751d8e999, 409, 1},
	{"alice", 0x73a3ea485f2e6049, 73, 0},
	{"bob@example.com", 0x99d51d92e864c38f, 911, 3},
	{"日本", 0x80c2e40b8486afab, 939, 3},
}

func TestHashGolden(t *testing.T) {
	h, err := NewHash(4, 1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldenHashes {
		sum, err := HashKey(g.key)
		if err != nil || sum != g.sum {
			t.Errorf("HashKey(%#v) = %#x, %v; want %#x", g.key, sum, err, g.sum)
		}
		if b, err := h.BucketOf(g.key); err != nil || b != g.bucket {
			t.Errorf("BucketOf(%#v) = %d, %v; want %d", g.key, b, err, g.bucket)
		}
		if s, err := h.ShardOf(g.key); err != nil || s != g.shard {
			t.Errorf("ShardOf(%#v) = %d, %v; want %d", g.key, s, err, g.shard)
		}
	}
}

// Every shape of the same key lands on the same shard.
func TestHashShapesAgree(t *testing.T) {
	h, _ := NewHash(7, 1000, 1)
	for _, n := range []int64{0, 1, -1, 42, -42, 1000000, 1<<63 - 1, -1 << 63, 123456789012} {
		text := strconv.FormatInt(n, 10)
		want, _ := h.ShardOfInt(n)
		for _, v := range []any{n, int(n), text, []byte(text)} {
			if s, err := h.ShardOf(v); err != nil || s != want {
				t.Errorf("ShardOf(%#v) = %d, %v; ShardOfInt(%d) = %d", v, s, err, n, want)
			}
		}
		if s, err := h.ShardOfBytes([]byte(text)); err != nil || s != want {
			t.Errorf("ShardOfBytes(%q) = %d, %v; want %d", text, s, err, want)
		}
	}
	// Integer text in any form a server reads as the integer is that
	// integer; text that is no number is its bytes; an inexact number is
	// refused.
	want, _ := HashKey(int64(42))
	for _, s := range []string{"042", "+42", " 42", "42 ", "\t+0042\n", "42.0", "4.2e1", "420e-1"} {
		if x, err := HashKey(s); err != nil || x != want {
			t.Errorf("HashKey(%q) = %x, %v; want HashKey(42) = %x", s, x, err, want)
		}
		if x, err := h.ShardOfBytes([]byte(s)); err != nil || x != mustInt(h.ShardOfInt(42)) {
			t.Errorf("ShardOfBytes(%q) = %d, %v", s, x, err)
		}
	}
	for _, s := range []string{"4_2", "0x2a", "42abc", "abc", "", "+", ".", "1e", "- 42"} {
		if x, err := HashKey(s); err != nil || x == want {
			t.Errorf("HashKey(%q) = %x, %v; want its bytes' hash", s, x, err)
		}
	}
	for _, s := range []string{"4.5", "1e30", "99999999999999999999", "-0.5"} {
		if _, err := HashKey(s); !errors.Is(err, ErrKeyType) {
			t.Errorf("HashKey(%q): %v; want ErrKeyType", s, err)
		}
	}
}

func mustInt(n int, err error) int {
	if err != nil {
		panic(err)
	}
	return n
}

func TestHashErrors(t *testing.T) {
	h, _ := NewHash(2, 16, 1)
	for _, c := range []struct {
		v   any
		err error
	}{
		{nil, ErrNullKey},
		{1.5, ErrKeyType},
		{uint64(1 << 63), ErrKeyType},
		{struct{}{}, ErrKeyType},
	} {
		_, err := h.ShardOf(c.v)
		var ke *KeyError
		if !errors.Is(err, c.err) || !errors.As(err, &ke) {
			t.Errorf("ShardOf(%#v) error = %v; want a *KeyError wrapping %v", c.v, err, c.err)
		}
	}
	if _, err := h.ShardOfBytes(nil); !errors.Is(err, ErrNullKey) {
		t.Errorf("ShardOfBytes(nil) = %v; want NULL", err)
	}
	if s, err := h.ShardOfBytes([]byte{}); err != nil {
		t.Errorf("ShardOfBytes(empty) = %d, %v; the empty string is a key", s, err)
	}
}

func TestNewHashErrors(t *testing.T) {
	for _, c := range []struct{ shards, buckets int }{
		{0, 1024}, {-1, 1024}, {3, 2}, {1, 0}, {1, MaxBuckets + 1},
	} {
		if _, err := NewHash(c.shards, c.buckets, 1); err == nil {
			t.Errorf("NewHash(%d, %d) accepted", c.shards, c.buckets)
		}
	}
	if _, err := NewHash(1, 1, 1); err != nil {
		t.Errorf("NewHash(1, 1): %v", err)
	}
}

func TestHashBucketAssignment(t *testing.T) {
	for _, c := range []struct{ shards, buckets int }{
		{1, 1}, {1, 1024}, {2, 1024}, {3, 1024}, {4, 1024}, {7, 1000}, {5, 5}, {16, 1024}, {3, 4},
	} {
		h, err := NewHash(c.shards, c.buckets, 1)
		if err != nil {
			t.Fatal(err)
		}
		a := h.Buckets()
		if len(a) != c.buckets || h.NumBuckets() != c.buckets {
			t.Fatalf("%d/%d: %d buckets", c.shards, c.buckets, len(a))
		}
		// Contiguous, in shard order, each shard non-empty, sizes within one.
		count := make([]int, c.shards)
		for b, s := range a {
			if b > 0 && s != a[b-1] && s != a[b-1]+1 {
				t.Fatalf("%d/%d: bucket %d → shard %d after %d", c.shards, c.buckets, b, s, a[b-1])
			}
			count[s]++
		}
		lo, hi := c.buckets, 0
		for _, n := range count {
			lo, hi = min(lo, n), max(hi, n)
		}
		if a[0] != 0 || a[len(a)-1] != c.shards-1 || lo == 0 || hi-lo > 1 {
			t.Errorf("%d/%d: counts %v", c.shards, c.buckets, count)
		}
	}
	// 1024 buckets over 2 shards: the halves.
	h, _ := NewHash(2, 1024, 1)
	a := h.Buckets()
	if a[511] != 0 || a[512] != 1 {
		t.Errorf("2 shards: bucket 511 → %d, 512 → %d", a[511], a[512])
	}
	a[0] = 99 // a copy
	if h.Buckets()[0] != 0 {
		t.Error("Buckets returned the map's own slice")
	}
}

// Resharding moves buckets, never single keys: a key's bucket does not
// depend on the number of shards, and a key moves exactly when its
// bucket does.
func TestHashReshardMovesBuckets(t *testing.T) {
	h2, _ := NewHash(2, 1024, 1)
	h3, _ := NewHash(3, 1024, 2)
	a2, a3 := h2.Buckets(), h3.Buckets()
	for i := range 10000 {
		k := fmt.Sprintf("key-%d", i)
		b2, _ := h2.BucketOf(k)
		b3, _ := h3.BucketOf(k)
		if b2 != b3 {
			t.Fatalf("%q: bucket %d with 2 shards, %d with 3", k, b2, b3)
		}
		s2, _ := h2.ShardOf(k)
		s3, _ := h3.ShardOf(k)
		if s2 != a2[b2] || s3 != a3[b3] {
			t.Fatalf("%q: shard disagrees with the bucket table", k)
		}
	}
}

// Keys spread over buckets and shards evenly enough for sequential ids,
// the common key.
func TestHashSpread(t *testing.T) {
	h, _ := NewHash(4, 1024, 1)
	const n = 100000
	perShard := make([]int, 4)
	perBucket := make([]int, 1024)
	for i := range int64(n) {
		b, _ := h.BucketOf(i)
		perBucket[b]++
		s, _ := h.ShardOfInt(i)
		perShard[s]++
	}
	for s, c := range perShard {
		if c < n/4*9/10 || c > n/4*11/10 {
			t.Errorf("shard %d has %d of %d sequential keys", s, c, n)
		}
	}
	empty := 0
	for _, c := range perBucket {
		if c == 0 {
			empty++
		}
	}
	if empty > 0 {
		t.Errorf("%d of 1024 buckets got none of %d sequential keys", empty, n)
	}
}

func TestHashVersionAndRoutes(t *testing.T) {
	h, _ := NewHash(3, 30, 17)
	if h.Version() != 17 || h.Shards() != 3 {
		t.Fatalf("Version %d, Shards %d", h.Version(), h.Shards())
	}
	r, err := Resolve(h, int64(42))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := h.ShardOf(int64(42))
	if d, ok := r.(Direct); !ok || d.Shard != s || d.Version != 17 || r.MapVersion() != 17 {
		t.Errorf("Resolve(42) = %#v; want Direct{%d, 17}", r, s)
	}
}
