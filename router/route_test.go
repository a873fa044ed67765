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

// A replica hint or SET switchyard.target = replica applies to reads only:
// whatever must run on the primary still goes there, in both dialects.
func TestReplicaOverrideReadsOnly(t *testing.T) {
	pg := NewAnalyzer(Postgres, Options{})
	my := NewAnalyzer(MySQL, Options{})
	primary := []string{
		"INSERT INTO t VALUES (1)",
		"UPDATE t SET a = 1",
		"DELETE FROM t",
		"CREATE TABLE x (a int)",
		"SELECT * FROM t FOR UPDATE",
		"SELECT * FROM t FOR SHARE",
		"SELECT * FROM t FOR NO KEY UPDATE",
		"SELECT nextval('s')",
		"SELECT setval('s', 10)",
		"SELECT currval('s')",
		"BEGIN",
		"BEGIN ISOLATION LEVEL SERIALIZABLE",
		"BEGIN READ WRITE",
		"START TRANSACTION",
		"SELECT pg_advisory_lock(1)",
		"SELECT pg_advisory_xact_lock(1)",
		"SELECT pg_try_advisory_lock(1)",
		"SELECT pg_advisory_unlock(1)",
		"SELECT my_func(1)",
		"SELECT lo_creat(-1)",
		"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
		"SELECT * INTO t2 FROM t",
		"LOCK TABLE t",
		"COPY t FROM STDIN",
		"CALL p()",
		"DO $$ BEGIN END $$",
		"SELECT 1; INSERT INTO t VALUES (1)",
		"not sql at all",
	}
	replica := []string{
		"SELECT 1",
		"SELECT count(*) FROM t",
		"SELECT inet_server_port(), pg_is_in_recovery()",
		"BEGIN READ ONLY",
		"START TRANSACTION READ ONLY",
	}
	myPrimary := []string{
		"INSERT INTO t VALUES (1)",
		"SELECT * FROM t FOR UPDATE",
		"SELECT * FROM t LOCK IN SHARE MODE",
		"SELECT GET_LOCK('a', 1)",
		"SELECT LAST_INSERT_ID()",
		"START TRANSACTION",
		"BEGIN",
	}
	check := func(an *Analyzer, sql string, wantPrimary bool) {
		t.Helper()
		for _, c := range []struct {
			pref Preference
			text string
		}{
			{PreferReplica, sql},
			{Auto, "/* switchyard:replica */ " + sql},
			{PreferPrimary, "/* switchyard:replica */ " + sql},
		} {
			as := []*Analysis{an.Analyze(c.text)}
			got, why := Decide(c.pref, as)
			must, _ := MustPrimary(as)
			if _, isPrimary := got.(Primary); isPrimary != wantPrimary || must != wantPrimary {
				t.Errorf("%v %q: Decide %T (%s), MustPrimary %v; want primary %v", c.pref, c.text, got, why, must, wantPrimary)
			}
			if wantPrimary && why != "write" && why != "must_primary" {
				t.Errorf("%v %q: reason %q, want write or must_primary", c.pref, c.text, why)
			}
		}
	}
	for _, s := range primary {
		check(pg, s, true)
	}
	for _, s := range replica {
		check(pg, s, false)
	}
	for _, s := range myPrimary {
		check(my, s, true)
	}
	check(my, "SELECT 1", false)
	// In a request of several statements, one that must run on the
	// primary takes the override's reads with it; a primary hint anywhere
	// wins over a replica hint.
	as := []*Analysis{pg.Analyze("/* switchyard:replica */ SELECT 1"), pg.Analyze("INSERT INTO t VALUES (1)")}
	if got, why := Decide(PreferReplica, as); got != (Primary{}) || why != "write" {
		t.Errorf("replica hint + write: %T %s", got, why)
	}
	as = []*Analysis{pg.Analyze("/* switchyard:replica */ SELECT 1"), pg.Analyze("/* switchyard:primary */ SELECT 1")}
	if got, why := Decide(Auto, as); got != (Primary{}) || why != "hint" {
		t.Errorf("replica hint then primary hint: %T %s", got, why)
	}
	if must, why := MustPrimary([]*Analysis{pg.Analyze("SELECT 1 FROM t FOR UPDATE"), pg.Analyze("SELECT 1")}); !must || why != "must_primary" {
		t.Errorf("MustPrimary(FOR UPDATE, SELECT) = %v %q", must, why)
	}
	if must, _ := MustPrimary(nil); must {
		t.Error("MustPrimary(nil) = true")
	}
}

// PlanRead without replicas: only a transaction the plan sends to the
// primary for what it does is a read-your-writes lease.
func TestPlanReadWithoutReplicas(t *testing.T) {
	pg := NewAnalyzer(Postgres, Options{})
	for _, c := range []struct {
		pref    Preference
		sql     string
		primary bool
	}{
		{Auto, "SELECT 1", false},
		{Auto, "UPDATE t SET a = 1", true},
		{Auto, "BEGIN", true},
		{PreferPrimary, "SELECT 1", true},
		{PreferReplica, "SELECT 1 FOR UPDATE", true},
		{Auto, "/* switchyard:replica */ SELECT 1", false},
	} {
		if _, toReplica := PlanRead(nil, c.pref, []*Analysis{pg.Analyze(c.sql)}); toReplica == c.primary {
			t.Errorf("%v %q: to a replica %v; want %v", c.pref, c.sql, toReplica, !c.primary)
		}
	}
}
