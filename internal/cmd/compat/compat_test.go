package main

import (
	"os"
	"strings"
	"testing"
)

// events builds a go test -json stream.
func events(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

const (
	pgconnPkg = `"Package":"github.com/jackc/pgx/v5/pgconn"`
	rootPkg   = `"Package":"github.com/jackc/pgx/v5"`
)

func ev(pkg, action, test, output string) string {
	s := `{"Action":"` + action + `",` + pkg
	if test != "" {
		s += `,"Test":"` + test + `"`
	}
	if output != "" {
		s += `,"Output":` + quote(output)
	}
	return s + `}`
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

func parse(t *testing.T, target, stream string) *runResult {
	t.Helper()
	r := newRunResult(target)
	if err := parseEvents(strings.NewReader(stream), r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseEvents(t *testing.T) {
	stream := events(
		`go: downloading nothing`, // not JSON: kept as output
		ev(pgconnPkg, "start", "", ""),
		ev(pgconnPkg, "run", "TestA", ""),
		ev(pgconnPkg, "pass", "TestA", ""),
		ev(pgconnPkg, "run", "TestB", ""),
		ev(pgconnPkg, "run", "TestB/one", ""),
		ev(pgconnPkg, "output", "TestB/one", "    b_test.go:10: boom\n"),
		ev(pgconnPkg, "fail", "TestB/one", ""),
		ev(pgconnPkg, "run", "TestB/two", ""),
		ev(pgconnPkg, "skip", "TestB/two", ""),
		ev(pgconnPkg, "fail", "TestB", ""),
		ev(pgconnPkg, "run", "TestC", ""),
		ev(pgconnPkg, "skip", "TestC", ""),
		ev(pgconnPkg, "fail", "", ""),
		ev(rootPkg, "run", "TestHang", ""),
		ev(rootPkg, "run", "TestWaiting", ""),
		ev(rootPkg, "output", "TestWaiting", "=== PAUSE TestWaiting\n"),
		ev(rootPkg, "pause", "TestWaiting", ""),
		ev(rootPkg, "run", "TestOK", ""),
		ev(rootPkg, "pass", "TestOK", ""),
		ev(rootPkg, "output", "TestHang", "panic: test timed out after 5m0s\n"),
		ev(rootPkg, "output", "TestHang", "\trunning tests:\n"),
		ev(rootPkg, "output", "TestHang", "\t\tTestHang (4m59s)\n"),
		ev(rootPkg, "output", "TestHang", "\n"),
		ev(rootPkg, "output", "TestHang", "goroutine 1 [running]:\n"),
		ev(rootPkg, "fail", "", ""),
	)
	r := parse(t, "x", stream)
	want := map[string]status{
		"pgconn.TestA": stPass, "pgconn.TestB": stFail, "pgconn.TestB/one": stFail,
		"pgconn.TestB/two": stSkip, "pgconn.TestC": stSkip, "pgx.TestHang": stUnfinished, "pgx.TestOK": stPass,
	}
	for k, st := range want {
		if got := r.status(k); got != st {
			t.Errorf("%s: %v, want %v", k, got, st)
		}
	}
	if len(r.Tests) != len(want) { // TestWaiting never ran
		t.Errorf("%d tests, want %d", len(r.Tests), len(want))
	}
	if got := r.PkgFail["pgx"]; !strings.HasPrefix(got, "timed out") {
		t.Errorf("pgx package: %q, want a timeout", got)
	}
	if got := r.PkgFail["pgconn"]; got != "failed" {
		t.Errorf("pgconn package: %q", got)
	}
	c := r.counts()
	if c.Pass != 2 || c.Fail != 2 || c.Skip != 1 || c.AllPass != 2 || c.AllFail != 3 || c.AllSkip != 2 {
		t.Errorf("counts: %+v", c)
	}
	if got := strings.Join(r.failedLeaves(), " "); got != "pgconn.TestB/one pgx.TestHang" {
		t.Errorf("failed leaves: %s", got)
	}
	if out := r.Tests["pgconn.TestB/one"].output; len(out) != 1 || !strings.Contains(out[0], "boom") {
		t.Errorf("output: %q", out)
	}
	if len(r.PkgOut[""]) != 1 {
		t.Errorf("non-JSON lines: %q", r.PkgOut[""])
	}
}

func TestParseEventsBuildFailure(t *testing.T) {
	stream := events(
		`{"ImportPath":"github.com/jackc/pgx/v5/pgtype [github.com/jackc/pgx/v5/pgtype.test]","Action":"build-output","Output":"x.go:1: syntax error\n"}`,
		`{"ImportPath":"github.com/jackc/pgx/v5/pgtype [github.com/jackc/pgx/v5/pgtype.test]","Action":"build-fail"}`,
		ev(`"Package":"github.com/jackc/pgx/v5/pgtype"`, "output", "", "FAIL\tgithub.com/jackc/pgx/v5/pgtype [build failed]\n"),
		ev(`"Package":"github.com/jackc/pgx/v5/pgtype"`, "fail", "", ""),
	)
	r := parse(t, "x", stream)
	if r.PkgFail["pgtype"] != "build failed" {
		t.Fatalf("PkgFail: %q", r.PkgFail)
	}
}

func TestParseKnown(t *testing.T) {
	good := "# comment\n\npgconn.TestConnLISTEN   LISTEN is a session feature\npgx.TestFoo/bar\tper-session SET\n"
	k, err := parseKnown(strings.NewReader(good), "f")
	if err != nil {
		t.Fatal(err)
	}
	if len(k) != 2 || k[0].Key != "pgconn.TestConnLISTEN" || k[0].Reason != "LISTEN is a session feature" || k[0].Line != 3 ||
		k[1].Key != "pgx.TestFoo/bar" || k[1].Reason != "per-session SET" {
		t.Fatalf("%+v", k)
	}
	for _, bad := range []struct{ text, want string }{
		{"pgconn.TestX\n", "f:1: pgconn.TestX has no reason"},
		{"TestX reason\n", `f:1: "TestX" is not <package>.<TestName>`},
		{"pgconn.X reason\n", `is not <package>.<TestName>`},
		{"pgx.TestA r\npgx.TestA r2\n", "f:2: pgx.TestA is listed already on line 1"},
	} {
		_, err := parseKnown(strings.NewReader(bad.text), "f")
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.text, err, bad.want)
		}
	}
}

// The file in the repository parses.
func TestKnownFailuresFile(t *testing.T) {
	f, err := os.Open("../../../testdata/compat/pgx-known-failures.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := parseKnown(f, f.Name()); err != nil {
		t.Fatal(err)
	}
}

func TestCompare(t *testing.T) {
	direct := parse(t, "direct", events(
		ev(pgconnPkg, "run", "TestA", ""), ev(pgconnPkg, "pass", "TestA", ""),
		ev(pgconnPkg, "run", "TestB", ""), ev(pgconnPkg, "run", "TestB/x", ""), ev(pgconnPkg, "pass", "TestB/x", ""),
		ev(pgconnPkg, "run", "TestB/y", ""), ev(pgconnPkg, "pass", "TestB/y", ""), ev(pgconnPkg, "pass", "TestB", ""),
		ev(pgconnPkg, "run", "TestEnv", ""), ev(pgconnPkg, "fail", "TestEnv", ""),
		ev(pgconnPkg, "run", "TestFlaky", ""), ev(pgconnPkg, "pass", "TestFlaky", ""),
		ev(rootPkg, "run", "TestLater", ""), ev(rootPkg, "pass", "TestLater", ""),
		ev(rootPkg, "run", "TestHang", ""), ev(rootPkg, "pass", "TestHang", ""),
		ev(rootPkg, "run", "TestFixed", ""), ev(rootPkg, "pass", "TestFixed", ""),
	))
	proxy := parse(t, "switchyard", events(
		ev(pgconnPkg, "run", "TestA", ""), ev(pgconnPkg, "fail", "TestA", ""),
		ev(pgconnPkg, "run", "TestB", ""), ev(pgconnPkg, "run", "TestB/x", ""), ev(pgconnPkg, "fail", "TestB/x", ""),
		ev(pgconnPkg, "run", "TestB/y", ""), ev(pgconnPkg, "fail", "TestB/y", ""), ev(pgconnPkg, "fail", "TestB", ""),
		ev(pgconnPkg, "run", "TestEnv", ""), ev(pgconnPkg, "fail", "TestEnv", ""),
		ev(pgconnPkg, "run", "TestFlaky", ""), ev(pgconnPkg, "fail", "TestFlaky", ""),
		ev(rootPkg, "run", "TestFixed", ""), ev(rootPkg, "pass", "TestFixed", ""),
		ev(rootPkg, "run", "TestHang", ""),
		ev(rootPkg, "output", "TestHang", "panic: test timed out after 1s\n"),
		ev(rootPkg, "output", "TestHang", "\trunning tests:\n"),
		ev(rootPkg, "output", "TestHang", "\t\tTestHang (1s)\n"),
	))
	known := []knownFailure{
		{Key: "pgconn.TestA", Reason: "session feature", Line: 1},
		{Key: "pgconn.TestB/x", Reason: "temp table", Line: 2},
		{Key: "pgx.TestFixed", Reason: "was broken", Line: 3},
		{Key: "pgx.TestHang", Reason: "listed, but a hang is never explained", Line: 4},
	}
	c := compare(direct, proxy, known)
	got := map[string]finding{}
	for _, f := range c.Findings {
		got[f.Key] = f
	}
	check := func(key string, cat category, knownLine int) {
		t.Helper()
		f, ok := got[key]
		if !ok {
			t.Fatalf("%s: no finding (%v)", key, c.Findings)
		}
		line := 0
		if f.Known != nil {
			line = f.Known.Line
		}
		if f.Category != cat || line != knownLine {
			t.Errorf("%s: category %v known line %d, want %v %d", key, f.Category, line, cat, knownLine)
		}
	}
	check("pgconn.TestA", catRegression, 1)
	check("pgconn.TestB/x", catRegression, 2)
	check("pgconn.TestB/y", catRegression, 0)
	check("pgconn.TestEnv", catBoth, 0)
	check("pgconn.TestFlaky", catRegression, 0)
	check("pgx.TestHang", catRegression, 4)
	if len(got) != 6 {
		t.Errorf("findings: %v", c.Findings)
	}
	if nr := c.NotRun["pgx"]; len(nr) != 1 || nr[0] != "pgx.TestLater" {
		t.Errorf("not run: %v", c.NotRun)
	}
	if len(c.Stale) != 1 || c.Stale[0].Key != "pgx.TestFixed" {
		t.Errorf("stale: %v", c.Stale)
	}
	retry := c.retryTargets()
	if got := strings.Join(retry["pgconn"], ","); got != "TestB,TestFlaky" || len(retry) != 1 {
		t.Errorf("retry: %v", retry)
	}
	c.applyRetry(parse(t, "retry", events(
		ev(pgconnPkg, "run", "TestB", ""), ev(pgconnPkg, "run", "TestB/x", ""), ev(pgconnPkg, "fail", "TestB/x", ""),
		ev(pgconnPkg, "run", "TestB/y", ""), ev(pgconnPkg, "fail", "TestB/y", ""), ev(pgconnPkg, "fail", "TestB", ""),
		ev(pgconnPkg, "run", "TestFlaky", ""), ev(pgconnPkg, "pass", "TestFlaky", ""),
	)))
	var unexplained []string
	for _, f := range c.unexplained() {
		unexplained = append(unexplained, f.Key)
	}
	if got := strings.Join(unexplained, " "); got != "pgconn.TestB/y pgx.TestHang" {
		t.Errorf("unexplained: %s", got)
	}
}

func TestSwitchyardConfigIsLoopback(t *testing.T) {
	for _, kv := range pgxEnv("127.0.0.1:5432") {
		if !strings.Contains(kv, "host=127.0.0.1 port=5432 ") {
			t.Errorf("%s does not point at 127.0.0.1", kv)
		}
	}
}

func TestSlowTests(t *testing.T) {
	mk := func(target string, elapsed map[string]string) *runResult {
		var lines []string
		for test, e := range elapsed {
			lines = append(lines, ev(pgconnPkg, "run", test, ""),
				`{"Action":"pass",`+pgconnPkg+`,"Test":"`+test+`","Elapsed":`+e+`}`)
		}
		return parse(t, target, events(lines...))
	}
	direct := mk("direct", map[string]string{"TestWait": "0.5", "TestSlowAnyway": "9", "TestFast": "0.1", "TestSlowish": "3"})
	proxy := mk("switchyard", map[string]string{"TestWait": "120", "TestSlowAnyway": "12", "TestFast": "0.2", "TestSlowish": "30"})
	got := slowTests(direct, proxy)
	if len(got) != 2 || got[0].key != "pgconn.TestWait" || got[1].key != "pgconn.TestSlowish" {
		t.Fatalf("%+v", got)
	}
}
