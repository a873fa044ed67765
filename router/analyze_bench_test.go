package router

import (
	"fmt"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// Cost of the analyzer per statement, on each path a statement can take:
//
//	go test ./router/ -run '^$' -bench Analyze -benchmem -cpu 1
//
// FastPath*: answered without parsing (BEGIN/COMMIT, plain SELECT).
// CacheHit: a statement seen before (prepared statements, ORM queries).
// UpdateLiterals, InsertLiterals: pgbench TPC-B-like statements whose
// literals differ (fast path in PostgreSQL).
// Parse*: a first sighting, parser and tree walk, no cache.
// ParserOnly: the bare parser on ParseSelect's text, for the walk's share.

var benchStatements = map[Dialect]struct{ fastSelect, hitSelect, parseSelect, parseUpdate string }{
	Postgres: {
		fastSelect:  "SELECT id, name, email FROM users WHERE id = $1",
		hitSelect:   "SELECT id, lower(name), email FROM users WHERE id = $1 AND deleted_at IS NULL",
		parseSelect: "SELECT id, name, email FROM users WHERE id = $1 AND deleted_at IS NULL",
		parseUpdate: "UPDATE users SET name = $1, updated_at = now() WHERE id = $2",
	},
	MySQL: {
		fastSelect:  "SELECT id, name, email FROM users WHERE id = ?",
		hitSelect:   "SELECT id, LOWER(name), email FROM users WHERE id = ? AND deleted_at IS NULL",
		parseSelect: "SELECT id, name, email FROM users WHERE id = ? AND deleted_at IS NULL",
		parseUpdate: "UPDATE users SET name = ?, updated_at = NOW() WHERE id = ?",
	},
}

func BenchmarkAnalyze(b *testing.B) {
	for _, d := range []Dialect{Postgres, MySQL} {
		s := benchStatements[d]
		a := NewAnalyzer(d, Options{})
		b.Run(d.String()+"/FastPathBegin", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.Analyze("BEGIN")
			}
		})
		b.Run(d.String()+"/FastPathSelect", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.Analyze(s.fastSelect)
			}
		})
		b.Run(d.String()+"/CacheHit", func(b *testing.B) {
			a.Analyze(s.hitSelect)
			b.ReportAllocs()
			for b.Loop() {
				a.Analyze(s.hitSelect)
			}
		})
		b.Run(d.String()+"/CacheHitParallel", func(b *testing.B) {
			a.Analyze(s.hitSelect)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					a.Analyze(s.hitSelect)
				}
			})
		})
		b.Run(d.String()+"/UpdateLiterals", func(b *testing.B) {
			// pgbench TPC-B-like: the literals differ at every execution,
			// so the verdict cache keyed by text does not help.
			qs := make([]string, 1<<16)
			for i := range qs {
				qs[i] = fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + %d WHERE aid = %d;", i%10000-5000, i*7919%1000000)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				a.Analyze(qs[i&(len(qs)-1)])
				i++
			}
		})
		b.Run(d.String()+"/InsertLiterals", func(b *testing.B) {
			qs := make([]string, 1<<16)
			for i := range qs {
				qs[i] = fmt.Sprintf("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (%d, %d, %d, %d, CURRENT_TIMESTAMP);", i%100, i%10, i*7919%1000000, i%10000-5000)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				a.Analyze(qs[i&(len(qs)-1)])
				i++
			}
		})
		b.Run(d.String()+"/ParseSelect", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.analyze(s.parseSelect)
			}
		})
		b.Run(d.String()+"/ParserOnlySelect", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d == Postgres {
					_, _ = pg.Parse(s.parseSelect)
				} else {
					_, _ = a.my.p.ParseMultiple(s.parseSelect)
				}
			}
		})
		b.Run(d.String()+"/ParseUpdate", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.analyze(s.parseUpdate)
			}
		})
	}
}
