package router

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/shard"
)

// Routing cost of a keyed statement, on each path:
//
//	go test ./router/ -run '^$' -bench ShardKey -benchmem -cpu 1
//
// Route*: a statement seen before (the cached extraction), then the key's
// shard from its bind parameter or literal, then the Route: what the wire
// layer pays per execution of a prepared statement.
// Extract*: a first sighting: parse, convert, analyze, no cache.

var shardKeyBench = map[Dialect]struct{ param, literal, insert, update, scatter string }{
	Postgres: {
		param:   "SELECT id, total, status FROM orders WHERE customer_id = $1 AND status = $2",
		literal: "SELECT id, total, status FROM orders WHERE customer_id = 12345 AND status = 'open'",
		insert:  "INSERT INTO orders (id, customer_id, total) VALUES " + rows(10, "($%d, $%d, $%d)"),
		update:  "UPDATE orders SET total = $1, updated_at = now() WHERE customer_id = $2 AND id = $3",
		scatter: "SELECT id, total FROM orders WHERE status = $1 ORDER BY total DESC LIMIT 10",
	},
	MySQL: {
		param:   "SELECT id, total, status FROM orders WHERE customer_id = ? AND status = ?",
		literal: "SELECT id, total, status FROM orders WHERE customer_id = 12345 AND status = 'open'",
		insert:  "INSERT INTO orders (id, customer_id, total) VALUES " + rows(10, "(?, ?, ?)"),
		update:  "UPDATE orders SET total = ?, updated_at = NOW() WHERE customer_id = ? AND id = ?",
		scatter: "SELECT id, total FROM orders WHERE status = ? ORDER BY total DESC LIMIT 10",
	},
}

// rows writes n VALUES rows; with %d verbs they get PostgreSQL numbers.
func rows(n int, row string) string {
	parts := make([]string, n)
	for i := range parts {
		if strings.Contains(row, "%d") {
			parts[i] = fmt.Sprintf(row, 3*i+1, 3*i+2, 3*i+3)
		} else {
			parts[i] = row
		}
	}
	return strings.Join(parts, ", ")
}

// routeKeys is what a wire layer does per execution: look each key up,
// from the literal or the text-format parameter, and collect the shards.
func routeKeys(m shard.Map, sk *ShardKeys, params [][]byte, buf []int) (shard.Route, error) {
	if len(sk.Keys) == 1 {
		s, err := shardOfRef(m, sk.Keys[0], params)
		if err != nil {
			return nil, err
		}
		return shard.DirectTo(m, s), nil
	}
	buf = buf[:0]
	for _, k := range sk.Keys {
		s, err := shardOfRef(m, k, params)
		if err != nil {
			return nil, err
		}
		buf = append(buf, s)
	}
	return shard.Collect(m, buf)
}

func shardOfRef(m shard.Map, k KeyRef, params [][]byte) (int, error) {
	if k.Param > 0 {
		return m.ShardOfBytes(params[k.Param-1])
	}
	if n, ok := k.Literal.(int64); ok {
		return m.ShardOfInt(n)
	}
	return m.ShardOf(k.Literal)
}

func BenchmarkShardKeyRoute(b *testing.B) {
	m, err := shard.NewHash(4, 1024, 1)
	if err != nil {
		b.Fatal(err)
	}
	params := make([][]byte, 30)
	for i := range params {
		params[i] = []byte(fmt.Sprint(100000 + i*7919))
	}
	for _, d := range []Dialect{Postgres, MySQL} {
		s := shardKeyBench[d]
		x := NewKeyExtractor(d, testKeySpec)
		for _, c := range []struct{ name, sql string }{
			{"Param", s.param},
			{"Literal", s.literal},
			{"Update", s.update},
			{"Insert10Rows", s.insert},
		} {
			b.Run(d.String()+"/"+c.name, func(b *testing.B) {
				buf := make([]int, 0, 16)
				if _, err := x.Extract(c.sql); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					sk, err := x.Extract(c.sql)
					if err != nil || sk.None {
						b.Fatal(err, sk)
					}
					if _, err := routeKeys(m, sk, params, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkShardKeyExtract(b *testing.B) {
	for _, d := range []Dialect{Postgres, MySQL} {
		s := shardKeyBench[d]
		for _, c := range []struct{ name, sql string }{
			{"Param", s.param},
			{"Literal", s.literal},
			{"Update", s.update},
			{"Insert10Rows", s.insert},
			{"ScatterOrderLimit", s.scatter},
		} {
			b.Run(d.String()+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := ExtractShardKeys(d, c.sql, testKeySpec); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
