package router

import "testing"

// Key extraction reads statement text straight from clients. These
// targets check that no input panics (the parsers are recovered, the tree
// walks must not need it), that every verdict keeps the invariants of
// checkShardKeys, and that the cached verdict equals a fresh one. Seeds:
// every row of the dialect tables plus testdata/fuzz/FuzzShardKeys*.

func FuzzShardKeysPostgres(f *testing.F) {
	fuzzShardKeys(f, Postgres, pgKeyCases, pgMergeCases)
}

func FuzzShardKeysMySQL(f *testing.F) {
	fuzzShardKeys(f, MySQL, myKeyCases, myMergeCases)
}

func fuzzShardKeys(f *testing.F, d Dialect, seeds ...[]keyCase) {
	for _, cs := range seeds {
		for _, c := range cs {
			f.Add(c.sql)
		}
	}
	// A small cache, so that the fuzzer also exercises sweeping.
	x := newKeyExtractor(d, testKeySpec, 128, 1<<20)
	f.Fuzz(func(t *testing.T, sql string) {
		sk, err := x.Extract(sql)
		if err != nil {
			if sk != nil {
				t.Errorf("%q: a result with the error %v", sql, err)
			}
			return
		}
		checkShardKeys(t, d, sql, sk)
		fresh, err := ExtractShardKeys(d, sql, testKeySpec)
		if err != nil || keyDesc(fresh) != keyDesc(sk) || mergeDesc(fresh) != mergeDesc(sk) {
			t.Errorf("%q: cached %s / %s, fresh %s / %s (%v)", sql, keyDesc(sk), mergeDesc(sk), keyDesc(fresh), mergeDesc(fresh), err)
		}
	})
}
