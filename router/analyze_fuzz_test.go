package router

import (
	"testing"
)

// The analyzer reads statement text straight from clients. These targets
// check that no input panics, that every verdict keeps the documented
// invariants, and that the parser agrees with every answer the fast path
// gives (the fast path must never call a write a read). Seeds: every row
// of the dialect tables plus testdata/fuzz/Fuzz*.

func FuzzAnalyzePostgres(f *testing.F) { fuzzAnalyze(f, Postgres, postgresCases) }

func FuzzAnalyzeMySQL(f *testing.F) { fuzzAnalyze(f, MySQL, mysqlCases) }

func fuzzAnalyze(f *testing.F, d Dialect, seeds []analyzeCase) {
	for _, c := range seeds {
		f.Add(c.sql)
	}
	// A small cache, so that the fuzzer also exercises sweeping.
	a := newAnalyzer(d, Options{ReadOnlyFunctions: []string{"my_func"}}, 256, 1<<20)
	f.Fuzz(func(t *testing.T, sql string) {
		an := a.Analyze(sql)
		checkInvariants(t, d, sql, an)
		if again := a.Analyze(sql); again.Class != an.Class || again.MustPrimary != an.MustPrimary || again.Pin != an.Pin {
			t.Errorf("%q: second verdict differs: %s vs %s", sql, describe(an), describe(again))
		}
		fast := fastPath(d, sql)
		if fast == nil {
			return
		}
		full := a.analyze(sql)
		if full.ParseError != "" {
			return // the server will say what is wrong; the fast path's guess is harmless
		}
		if !fastAgrees(fast, full) {
			t.Errorf("%s %q: fast path says %s, parser says %s", d, sql, describe(fast), describe(full))
		}
	})
}
