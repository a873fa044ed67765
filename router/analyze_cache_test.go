package router

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

func TestCacheBoundedByEntries(t *testing.T) {
	a := newAnalyzer(Postgres, Options{}, 100, 1<<20)
	for i := range 1000 {
		a.Analyze(fmt.Sprintf("SELECT lower(a) FROM t WHERE id = %d", i))
		if n := a.cache.len(); n > 100 {
			t.Fatalf("after %d texts the cache holds %d entries, limit 100", i+1, n)
		}
	}
	if n := a.cache.len(); n < 50 {
		t.Errorf("cache holds %d entries after 1000 texts; a sweep should leave about 7/8 of 100", n)
	}
}

func TestCacheBoundedByBytes(t *testing.T) {
	a := newAnalyzer(MySQL, Options{}, 10000, 4096)
	pad := strings.Repeat("x", 180)
	for i := range 500 {
		a.Analyze(fmt.Sprintf("SELECT lower('%s') FROM t WHERE id = %d", pad, i))
		if b := a.cache.bytes.Load(); b > 4096 {
			t.Fatalf("after %d texts the cache holds %d bytes of text, limit 4096", i+1, b)
		}
	}
}

func TestCacheKeepsStatementsInUse(t *testing.T) {
	a := newAnalyzer(Postgres, Options{}, 64, 1<<20)
	hot := "SELECT lower(name) FROM users WHERE id = $1"
	want := a.Analyze(hot)
	// A sweep frees 8 of the 64 slots, so one comes every 8 misses; the
	// hot statement is used between any two of them.
	for round := range 200 {
		for i := range 5 {
			a.Analyze(fmt.Sprintf("SELECT upper(name) FROM users WHERE id = %d", round*5+i))
		}
		if got, _ := a.cache.get(hot); got != want {
			t.Fatalf("round %d: the statement in use was evicted by one-off texts", round)
		}
	}
}

func TestCacheSkipsHugeTexts(t *testing.T) {
	a := NewAnalyzer(Postgres, Options{})
	huge := "SELECT lower('a') /* " + strings.Repeat("x", maxCachedText) + " */"
	first, second := a.Analyze(huge), a.Analyze(huge)
	if first == second {
		t.Error("a text longer than maxCachedText was cached")
	}
	if first.Class != Read || first.MustPrimary {
		t.Errorf("huge text misjudged: %s", describe(first))
	}
	if n := a.cache.len(); n != 0 {
		t.Errorf("cache holds %d entries, want 0", n)
	}
}

// The wire packages may hand over strings that alias a reused read buffer.
// The cache must keep its own copy of the key.
func TestCacheKeyDoesNotAliasCallerBuffer(t *testing.T) {
	a := NewAnalyzer(Postgres, Options{})
	const readSQL, writeSQL = "SELECT lower('a')", "DELETE FROM tt99;"
	if len(readSQL) != len(writeSQL) {
		t.Fatal("test texts must have the same length")
	}
	buf := []byte(readSQL)
	aliased := unsafe.String(&buf[0], len(buf))
	if an := a.Analyze(aliased); an.Class != Read {
		t.Fatalf("read misjudged: %s", describe(an))
	}
	copy(buf, writeSQL) // the connection reads its next message into the buffer
	if an := a.Analyze(readSQL); an.Class != Read || an.MustPrimary {
		t.Errorf("cached read changed after the caller's buffer was reused: %s", describe(an))
	}
	if an := a.Analyze(writeSQL); an.Class != Write {
		t.Errorf("write served a stale verdict: %s", describe(an))
	}
}

// Many goroutines hitting, missing and sweeping a small cache at once (run
// with -race). Every verdict must be the one a fresh analyzer gives.
func TestCacheConcurrent(t *testing.T) {
	for _, d := range []Dialect{Postgres, MySQL} {
		t.Run(d.String(), func(t *testing.T) {
			var texts []string
			for i := range 150 {
				texts = append(texts,
					fmt.Sprintf("SELECT lower(a) FROM t WHERE id = %d", i),
					fmt.Sprintf("UPDATE t SET a = %d WHERE id = 1", i))
			}
			want := map[string]Class{}
			fresh := NewAnalyzer(d, Options{})
			for _, s := range texts {
				want[s] = fresh.analyze(s).Class
			}
			a := newAnalyzer(d, Options{}, 64, 1<<20)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 1500 {
						s := texts[(i*7+g*31)%len(texts)]
						if got := a.Analyze(s).Class; got != want[s] {
							t.Errorf("%q: class %s, want %s", s, got, want[s])
							return
						}
					}
				}()
			}
			wg.Wait()
			if n := a.cache.len(); n > 64 || n < 0 {
				t.Errorf("cache holds %d entries after the run, limit 64", n)
			}
		})
	}
}

func TestNoAllocsOnHotPath(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	for _, d := range []Dialect{Postgres, MySQL} {
		a := NewAnalyzer(d, Options{})
		for _, s := range []string{
			"BEGIN", "COMMIT", "SELECT id, name FROM users WHERE id = " + placeholder(d, 1), // fast path
			"SELECT lower(name) FROM users WHERE id = " + placeholder(d, 1), // cache hit
		} {
			a.Analyze(s)
			if n := testing.AllocsPerRun(100, func() { a.Analyze(s) }); n != 0 {
				t.Errorf("%s %q: %v allocs per Analyze, want 0", d, s, n)
			}
		}
	}
}

func placeholder(d Dialect, n int) string {
	if d == Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}
