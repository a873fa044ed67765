package router

import "testing"

func TestDecide(t *testing.T) {
	pg := NewAnalyzer(Postgres, Options{})
	cases := []struct {
		pref Preference
		sql  []string
		want Target
		why  string
	}{
		{Auto, []string{"SELECT 1"}, Replica{}, "read"},
		{Auto, []string{"SELECT * FROM t WHERE id = $1"}, Replica{}, "read"},
		{Auto, []string{"SELECT * FROM t FOR UPDATE"}, Primary{}, "must_primary"},
		{Auto, []string{"SELECT nextval('s')"}, Primary{}, ""},
		{Auto, []string{"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"}, Primary{}, ""},
		{Auto, []string{"INSERT INTO t VALUES (1)"}, Primary{}, "write"},
		{Auto, []string{"BEGIN"}, Primary{}, "transaction"},
		{Auto, []string{"BEGIN READ ONLY"}, Replica{}, "read_only_transaction"},
		{Auto, []string{"START TRANSACTION READ ONLY"}, Replica{}, "read_only_transaction"},
		{Auto, []string{"SELECT 1", "UPDATE t SET a = 1"}, Primary{}, "write"},
		{Auto, []string{"SET search_path TO a"}, Primary{}, "other"},
		{Auto, []string{"/* switchyard:primary */ SELECT 1"}, Primary{}, "hint"},
		{Auto, []string{"/* switchyard:replica */ SELECT now()"}, Replica{}, "hint"},
		{PreferPrimary, []string{"SELECT 1"}, Primary{}, "session"},
		{PreferReplica, []string{"SELECT count(*) FROM t"}, Replica{}, "session"},
		{Auto, nil, Primary{}, "other"},
	}
	for _, c := range cases {
		var as []*Analysis
		for _, s := range c.sql {
			as = append(as, pg.Analyze(s))
		}
		got, why := Decide(c.pref, as)
		if got != c.want || (c.why != "" && why != c.why) {
			t.Errorf("%v %q: got %T (%s), want %T (%s)", c.pref, c.sql, got, why, c.want, c.why)
		}
	}
	for _, s := range []string{"auto", "primary", "replica"} {
		p, ok := ParsePreference(s)
		if !ok || p.String() != s {
			t.Errorf("ParsePreference(%q) = %v %v", s, p, ok)
		}
	}
	if _, ok := ParsePreference("nope"); ok {
		t.Error("ParsePreference accepted nope")
	}
}
