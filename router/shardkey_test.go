package router

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// The key spec of the tables below: orders and most tables are keyed by
// customer_id, customers by id, and accounts in schema public by
// account_no.
var testKeySpec = KeySpec{
	Default: "customer_id",
	Tables:  map[string]string{"customers": "id", "public.accounts": "account_no"},
}

// keyCase is one row of a dialect's table. keys describes the key
// verdict (see keyDesc), merge the merge verdict (see mergeDesc; "" is
// not checked).
type keyCase struct {
	sql   string
	keys  string
	merge string
}

// keyDesc renders the key part of a verdict compactly:
//
//	select orders [42 $1]           keys, in order
//	insert orders rows[1 $2]        RowsPerKey
//	update orders none              None
//	... setskey hint=42 shard=1     SetsKey, Hint, ShardHint
//	other - none parse              a parse error
func keyDesc(sk *ShardKeys) string {
	var b strings.Builder
	table := sk.Table
	if table == "" {
		table = "-"
	}
	fmt.Fprintf(&b, "%s %s ", sk.Kind, table)
	switch {
	case sk.None:
		b.WriteString("none")
	default:
		if sk.RowsPerKey {
			b.WriteString("rows")
		}
		b.WriteString("[")
		for i, k := range sk.Keys {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(k.String())
		}
		b.WriteString("]")
	}
	if sk.MultiStatement {
		b.WriteString(" multi")
	}
	if sk.ParseError != "" {
		b.WriteString(" parse")
	}
	if sk.SetsKey {
		b.WriteString(" setskey")
	}
	if sk.Hint != nil {
		b.WriteString(" hint=" + sk.Hint.String())
	}
	if sk.ShardHint >= 0 {
		fmt.Fprintf(&b, " shard=%d", sk.ShardHint)
	}
	return b.String()
}

// mergeDesc renders the merge part:
//
//	no: <reason>
//	ok order=[1:total desc nf, -1:name asc] limit=10 offset=$2 aggs=[count@0 sum@1]
func mergeDesc(sk *ShardKeys) string {
	if !sk.Mergeable {
		return "no: " + sk.MergeReason
	}
	var b strings.Builder
	b.WriteString("ok")
	if len(sk.OrderBy) > 0 {
		b.WriteString(" order=[")
		for i, o := range sk.OrderBy {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%d:%s ", o.Index, o.Name)
			if o.Desc {
				b.WriteString("desc")
			} else {
				b.WriteString("asc")
			}
			if o.NullsFirst {
				b.WriteString(" nf")
			}
		}
		b.WriteString("]")
	}
	bound := func(name string, v *int64, p int) {
		switch {
		case v != nil:
			fmt.Fprintf(&b, " %s=%d", name, *v)
		case p > 0:
			fmt.Fprintf(&b, " %s=$%d", name, p)
		}
	}
	bound("limit", sk.Limit, sk.LimitParam)
	bound("offset", sk.Offset, sk.OffsetParam)
	if len(sk.Aggregates) > 0 {
		b.WriteString(" aggs=[")
		for i, a := range sk.Aggregates {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%s@%d", a.Func, a.Index)
		}
		b.WriteString("]")
	}
	return b.String()
}

func runKeyCases(t *testing.T, d Dialect, cases []keyCase) {
	t.Helper()
	x := NewKeyExtractor(d, testKeySpec)
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.sql] {
			t.Errorf("duplicate case %q", c.sql)
		}
		seen[c.sql] = true
		sk, err := ExtractShardKeys(d, c.sql, testKeySpec)
		if err != nil {
			t.Errorf("%s %q: %v", d, c.sql, err)
			continue
		}
		checkShardKeys(t, d, c.sql, sk)
		if got := keyDesc(sk); got != c.keys {
			t.Errorf("%s %q:\n  keys  %s\n  want  %s\n  (reason %q, parse error %q)", d, c.sql, got, c.keys, sk.NoKeyReason, sk.ParseError)
		}
		if c.merge != "" {
			if got := mergeDesc(sk); got != c.merge {
				t.Errorf("%s %q:\n  merge %s\n  want  %s", d, c.sql, got, c.merge)
			}
		}
		// The cached path gives the same verdict, twice.
		for range 2 {
			cached, err := x.Extract(c.sql)
			if err != nil || keyDesc(cached) != keyDesc(sk) || mergeDesc(cached) != mergeDesc(sk) {
				t.Errorf("%s %q: cached verdict %s / %s, uncached %s / %s (%v)", d, c.sql,
					keyDesc(cached), mergeDesc(cached), keyDesc(sk), mergeDesc(sk), err)
			}
		}
	}
}

// checkShardKeys checks the invariants every verdict keeps.
func checkShardKeys(t *testing.T, d Dialect, sql string, sk *ShardKeys) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s %q: %s (verdict %s / %s)", d, sql, fmt.Sprintf(format, args...), keyDesc(sk), mergeDesc(sk))
	}
	if sk.Kind < StmtSelect || sk.Kind > StmtOther {
		fail("kind %d", sk.Kind)
	}
	if sk.None != (len(sk.Keys) == 0) {
		fail("None is %v with %d keys", sk.None, len(sk.Keys))
	}
	if sk.None && sk.NoKeyReason == "" || !sk.None && sk.NoKeyReason != "" {
		fail("NoKeyReason %q with None %v", sk.NoKeyReason, sk.None)
	}
	if sk.RowsPerKey && sk.Kind != StmtInsert {
		fail("RowsPerKey on a %s", sk.Kind)
	}
	if sk.Kind == StmtOther && !sk.None {
		fail("keys for a statement of kind other")
	}
	if sk.ParseError != "" && (sk.Kind != StmtOther || !sk.None) {
		fail("parse error with a verdict")
	}
	for _, k := range append(append([]KeyRef(nil), sk.Keys...), derefKey(sk.Hint)...) {
		switch v := k.Literal.(type) {
		case nil:
			if k.Param < 1 {
				fail("key %v has neither a literal nor a parameter", k)
			}
		case int64, string:
			if k.Param != 0 {
				fail("key %v has a literal and a parameter", k)
			}
		default:
			fail("key literal of type %T", v)
		}
	}
	if sk.ShardHint < -1 {
		fail("ShardHint %d", sk.ShardHint)
	}
	if sk.Kind != StmtSelect && (sk.Mergeable || len(sk.OrderBy) > 0 || len(sk.Aggregates) > 0) {
		fail("merge information on a %s", sk.Kind)
	}
	if sk.Mergeable && sk.MergeReason != "" || sk.Kind == StmtSelect && !sk.Mergeable && sk.MergeReason == "" {
		fail("Mergeable %v with reason %q", sk.Mergeable, sk.MergeReason)
	}
	if !sk.Mergeable && (len(sk.OrderBy) > 0 || len(sk.Aggregates) > 0) {
		fail("merge columns on an unmergeable SELECT")
	}
	if sk.Limit != nil && sk.LimitParam != 0 || sk.Offset != nil && sk.OffsetParam != 0 {
		fail("both a literal and a parameter bound")
	}
	if sk.Limit != nil && *sk.Limit < 0 || sk.Offset != nil && *sk.Offset < 0 {
		fail("negative bound")
	}
	for _, o := range sk.OrderBy {
		if o.Index < -1 || o.Index < 0 && o.Name == "" {
			fail("order column %+v", o)
		}
	}
}

func derefKey(k *KeyRef) []KeyRef {
	if k == nil {
		return nil
	}
	return []KeyRef{*k}
}

func TestShardHints(t *testing.T) {
	for _, d := range []Dialect{Postgres, MySQL} {
		for _, c := range []struct {
			sql  string
			want string // hint=.. shard=.. or "error"
		}{
			{"/* switchyard:shard_key=42 */ SELECT 1", "hint=42"},
			{"/* switchyard:shard_key = 42 */ SELECT 1", "hint=42"},
			{"/* SWITCHYARD:SHARD_KEY=42 */ SELECT 1", "hint=42"},
			{"/* switchyard:shard_key=-7 */ SELECT 1", "hint=-7"},
			{"/* switchyard:shard_key=042 */ SELECT 1", `hint="042"`},
			{"/* switchyard:shard_key='42' */ SELECT 1", `hint="42"`},
			{`/* switchyard:shard_key="a b" */ SELECT 1`, `hint="a b"`},
			{"/* switchyard:shard_key=alice*/ SELECT 1", `hint="alice"`},
			{"/* switchyard:shard_key=alice, switchyard:shard=2 */ SELECT 1", `hint="alice" shard=2`},
			{"/* switchyard:shard=0 */ SELECT 1", "shard=0"},
			{"SELECT 1 /* switchyard:shard=3 */", "shard=3"},
			{"/* switchyard:shard=1 */ /* switchyard:shard=2 */ SELECT 1", "shard=1"},
			{"/* switchyard:shard_key=1 */ /* switchyard:shard_key=2 */ SELECT 1", "hint=1"},
			{"/* switchyard:primary */ SELECT 1", ""},
			{"/* switchyard:shard_keys=1 */ SELECT 1", ""},
			{"/* switchyard:shards=1 */ SELECT 1", ""},
			{"SELECT '/* switchyard:shard=1 */'", ""},
			{"SELECT 'switchyard:shard=1'", ""},
			{"-- switchyard:shard_key=5\nSELECT 1", "hint=5"},
			{"/* switchyard:shard=-1 */ SELECT 1", "error"},
			{"/* switchyard:shard=x */ SELECT 1", "error"},
			{"/* switchyard:shard='1' */ SELECT 1", "error"},
			{"/* switchyard:shard=99999999 */ SELECT 1", "error"},
			{"/* switchyard:shard */ SELECT 1", "error"},
			{"/* switchyard:shard_key= */ SELECT 1", "error"},
			{"/* switchyard:shard_key='open */ SELECT 1", "error"},
		} {
			sk, err := ExtractShardKeys(d, c.sql, testKeySpec)
			got := ""
			switch {
			case err != nil:
				got = "error"
				if !errors.Is(err, errBadHint) {
					t.Errorf("%s %q: error %v is not a hint error", d, c.sql, err)
				}
			default:
				var parts []string
				if sk.Hint != nil {
					parts = append(parts, "hint="+sk.Hint.String())
				}
				if sk.ShardHint >= 0 {
					parts = append(parts, fmt.Sprintf("shard=%d", sk.ShardHint))
				}
				got = strings.Join(parts, " ")
			}
			if got != c.want {
				t.Errorf("%s %q: %q; want %q", d, c.sql, got, c.want)
			}
		}
	}
	// A hint survives a text the parser rejects.
	sk, err := ExtractShardKeys(MySQL, "/* switchyard:shard_key=9 */ HANDLER t OPEN", testKeySpec)
	if err != nil || sk.ParseError == "" || sk.Hint == nil || sk.Hint.Literal != int64(9) {
		t.Errorf("hint on unparsable text: %+v, %v", sk, err)
	}
	// # comments are MySQL's.
	sk, err = ExtractShardKeys(MySQL, "SELECT 1 # switchyard:shard=4", testKeySpec)
	if err != nil || sk.ShardHint != 4 {
		t.Errorf("# comment hint: %+v, %v", sk, err)
	}
}

func TestSessionKey(t *testing.T) {
	for _, c := range []struct {
		in   string
		want any
	}{{"42", int64(42)}, {"-1", int64(-1)}, {"042", "042"}, {"abc", "abc"}, {"", ""}} {
		if got := SessionKey(c.in); got.Literal != c.want || got.Param != 0 {
			t.Errorf("SessionKey(%q) = %#v; want %#v", c.in, got, c.want)
		}
	}
	// The analyzer hands over the value of SET switchyard.shard_key.
	for _, d := range []Dialect{Postgres, MySQL} {
		an := NewAnalyzer(d, Options{}).Analyze("SET switchyard.shard_key = '42'")
		if len(an.Sets) != 1 || an.Sets[0].Name != "switchyard.shard_key" || SessionKey(an.Sets[0].Value).Literal != int64(42) {
			t.Errorf("%s: SET switchyard.shard_key: %+v", d, an.Sets)
		}
	}
}

func TestKeyExtractorSpec(t *testing.T) {
	// A KeyExtractor copies its spec: changing the map afterwards does
	// nothing.
	tables := map[string]string{"customers": "id"}
	x := NewKeyExtractor(Postgres, KeySpec{Default: "customer_id", Tables: tables})
	tables["customers"] = "customer_id"
	sk, _ := x.Extract("SELECT * FROM customers WHERE id = 1")
	if sk.None {
		t.Error("spec not copied")
	}
	// No key column for a table without a default: no key.
	sk, _ = ExtractShardKeys(Postgres, "SELECT * FROM t WHERE customer_id = 1", KeySpec{Tables: tables})
	if !sk.None || !strings.Contains(sk.NoKeyReason, "no shard key column") {
		t.Errorf("no default key: %s (%s)", keyDesc(sk), sk.NoKeyReason)
	}
	sk, _ = ExtractShardKeys(Postgres, "INSERT INTO t (customer_id) VALUES (1)", KeySpec{})
	if !sk.None {
		t.Errorf("insert without a key column: %s", keyDesc(sk))
	}
	// A NULL key is named as such (no shard holds it), not as an expression.
	sk, _ = ExtractShardKeys(MySQL, "INSERT INTO orders (customer_id, id) VALUES (1, 1), (NULL, 2)", testKeySpec)
	if !sk.None || !strings.Contains(sk.NoKeyReason, "row 2: the key is NULL") {
		t.Errorf("NULL key: %s (%q)", keyDesc(sk), sk.NoKeyReason)
	}
	if _, err := ExtractShardKeys(Dialect(9), "SELECT 1", testKeySpec); err == nil {
		t.Error("unknown dialect accepted")
	}
	defer func() {
		if recover() == nil {
			t.Error("NewKeyExtractor accepted an unknown dialect")
		}
	}()
	NewKeyExtractor(Dialect(9), testKeySpec)
}

func TestKeyCacheBound(t *testing.T) {
	x := newKeyExtractor(Postgres, testKeySpec, 64, 1<<20)
	hot := "SELECT * FROM orders WHERE customer_id = $1"
	for i := range 1000 {
		if _, err := x.Extract(hot); err != nil {
			t.Fatal(err)
		}
		if _, err := x.Extract(fmt.Sprintf("SELECT * FROM orders WHERE customer_id = %d", i)); err != nil {
			t.Fatal(err)
		}
		if n := x.cache.len(); n > 64 {
			t.Fatalf("cache holds %d entries, limit 64", n)
		}
	}
	if _, ok := x.cache.get(hot); !ok {
		t.Error("the statement in constant use was evicted")
	}
	// Byte bound.
	x = newKeyExtractor(MySQL, testKeySpec, 1000, 4096)
	for i := range 200 {
		_, _ = x.Extract(fmt.Sprintf("SELECT * FROM orders WHERE customer_id = %d /* %s */", i, strings.Repeat("x", 100)))
	}
	if b := x.cache.bytes.Load(); b > 4096 {
		t.Errorf("cache holds %d bytes, limit 4096", b)
	}
	// Texts over the size limit are not cached.
	long := "SELECT * FROM orders WHERE customer_id = 1 /*" + strings.Repeat("x", keyCacheMaxText) + "*/"
	_, _ = x.Extract(long)
	if _, ok := x.cache.get(long); ok {
		t.Error("a text over the size limit was cached")
	}
}

func TestKeyCacheConcurrent(t *testing.T) {
	x := newKeyExtractor(MySQL, testKeySpec, 32, 1<<20)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				sql := fmt.Sprintf("SELECT * FROM orders WHERE customer_id = %d", (i*7+g)%50)
				sk, err := x.Extract(sql)
				if err != nil || sk.None || len(sk.Keys) != 1 || sk.Keys[0].Literal != int64((i*7+g)%50) {
					t.Errorf("%q: %v %v", sql, sk, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// The caller's buffer may be reused after Extract returns: nothing in
// the result or the cache may alias it.
func TestExtractCopiesText(t *testing.T) {
	for _, d := range []Dialect{Postgres, MySQL} {
		x := NewKeyExtractor(d, testKeySpec)
		buf := []byte("SELECT * FROM orders WHERE customer_id = 'abc'")
		sk, err := x.Extract(unsafe.String(&buf[0], len(buf)))
		if err != nil {
			t.Fatal(err)
		}
		for i := range buf {
			buf[i] = 'z'
		}
		if sk.Keys[0].Literal != "abc" || sk.Table != "orders" {
			t.Errorf("%s: result changed with the caller's buffer: %s", d, keyDesc(sk))
		}
	}
}
