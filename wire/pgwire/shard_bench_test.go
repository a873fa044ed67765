package pgwire

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/router"
)

// BenchmarkShardRoute measures the routing of one keyed statement of a
// sharded cluster on the path every request takes (requestShard: the
// statements of the request, key extraction, the map lookup, the bind
// value read):
//
//   - simple-cached: a Query whose text was seen before (extraction from
//     the cache by text);
//   - simple-uncached: a Query whose text was not (distinct literals: a
//     parse by PostgreSQL's grammar each time);
//   - bind-text, bind-binary: the Bind of a prepared statement, with the
//     key as a text or a binary int8 parameter (the extraction of the
//     statement text from the cache, the value from the Bind).
func BenchmarkShardRoute(b *testing.B) {
	cfg, err := config.Parse([]byte(`
[proxy]
postgres_listen = "127.0.0.1:0"
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "orders"
protocol = "postgres"
database = "orders"
[clusters.sharding]
kind = "hash"
key = "aid"
[[clusters.shards]]
primary = "127.0.0.1:5432"
database = "orders_0"
[[clusters.shards]]
primary = "127.0.0.1:5432"
database = "orders_1"
`), "bench.toml")
	if err != nil {
		b.Fatal(err)
	}
	s := &Server{}
	s.Shards.Protocol = config.Postgres
	shards, err := s.Shards.Build(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rt := shards["orders"]
	c := &clientConn{srv: s, sh: &clientShard{rt: rt, cur: -1}, stmts: map[string]*gstmt{}}
	const sql = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
	parse, _ := (&pgproto3.Parse{Name: "s1", Query: sql, ParameterOIDs: []uint32{20}}).Encode(nil)
	c.stmts["s1"] = s.stmts.get(parse[5+len("s1")+1:], "", 0)
	route := func(b *testing.B, typ byte, raw []byte) {
		t, _, _, err := c.requestPlan(rt, c.requestStmts(typ, raw), c.shardSession(false))
		if _, one := t.(router.OneShard); err != nil || !one {
			b.Fatalf("routed to %#v: %v", t, err)
		}
	}

	b.Run("simple-cached", func(b *testing.B) {
		q, _ := (&pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 42"}).Encode(nil)
		route(b, 'Q', q)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			route(b, 'Q', q)
		}
	})
	b.Run("simple-uncached", func(b *testing.B) {
		// More distinct texts than the extraction cache holds, so that
		// every one is a miss.
		qs := make([][]byte, 3*keyCacheEntriesForBench)
		for i := range qs {
			qs[i], _ = (&pgproto3.Query{String: fmt.Sprintf("SELECT abalance FROM pgbench_accounts WHERE aid = %d", 1_000_000+i)}).Encode(nil)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			route(b, 'Q', qs[i%len(qs)])
		}
	})
	b.Run("bind-text", func(b *testing.B) {
		bind, _ := (&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("42")}}).Encode(nil)
		route(b, 'B', bind)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			route(b, 'B', bind)
		}
	})
	b.Run("bind-binary", func(b *testing.B) {
		bind, _ := (&pgproto3.Bind{PreparedStatement: "s1", ParameterFormatCodes: []int16{1},
			Parameters: [][]byte{{0, 0, 0, 0, 0, 0, 0, 42}}}).Encode(nil)
		route(b, 'B', bind)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			route(b, 'B', bind)
		}
	})
}

// keyCacheEntriesForBench is the number of texts router's extraction
// cache keeps (router.keyCacheEntries).
const keyCacheEntriesForBench = 10000
