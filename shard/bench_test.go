package shard

import (
	"testing"
)

// Cost of one key lookup, the part of routing that runs for every keyed
// statement:
//
//	go test ./shard/ -run '^$' -bench . -benchmem -cpu 1
func BenchmarkShardOf(b *testing.B) {
	h, _ := NewHash(4, 1024, 1)
	ints := make([][2]any, 16)
	for i := range ints {
		ints[i] = [2]any{int64(i) * 1000000, int64(i+1) * 1000000}
	}
	ri, _ := NewRange(ints, 1)
	strs := make([][2]any, 16)
	for i := range strs {
		strs[i] = [2]any{string(rune('a' + i)), string(rune('a' + i + 1))}
	}
	rs, _ := NewRange(strs, 1)
	pgi, _ := NewPostgresHash(4, PostgresInteger, 1)
	pgt, _ := NewPostgresHash(4, PostgresText, 1)
	text := []byte("12345678")
	var key any = int64(12345678)
	for _, c := range []struct {
		name string
		f    func() (int, error)
	}{
		{"Hash/Int", func() (int, error) { return h.ShardOfInt(12345678) }},
		{"Hash/Bytes", func() (int, error) { return h.ShardOfBytes(text) }},
		{"Hash/Any", func() (int, error) { return h.ShardOf(key) }},
		{"Hash/String", func() (int, error) { return h.ShardOf("customer-12345678") }},
		{"RangeInt16/Int", func() (int, error) { return ri.ShardOfInt(12345678) }},
		{"RangeInt16/Bytes", func() (int, error) { return ri.ShardOfBytes(text) }},
		{"RangeStr16/String", func() (int, error) { return rs.ShardOf("kilo") }},
		{"PostgresInt/Int", func() (int, error) { return pgi.ShardOfInt(12345678) }},
		{"PostgresInt/Bytes", func() (int, error) { return pgi.ShardOfBytes(text) }},
		{"PostgresText/String", func() (int, error) { return pgt.ShardOf("customer-12345678") }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
