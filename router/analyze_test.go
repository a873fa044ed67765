package router

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// analyzeCase is one row of the dialect tables. want is compared field by
// field with the verdict, with two conventions to keep rows short:
// Statements 0 means 1 (use none for an empty text), and ParseError "*"
// means "any non-empty message".
type analyzeCase struct {
	sql  string
	want Analysis
	opts *Options
}

const none = -1 // want.Statements for texts with no statement

// Shorthands for the common verdicts.
func read() Analysis { return Analysis{Class: Read} }

func write(reason string) Analysis {
	return Analysis{Class: Write, MustPrimary: true, Reason: reason}
}

func primaryRead(reason string) Analysis {
	return Analysis{Class: Read, MustPrimary: true, Reason: reason}
}

func parseErr() Analysis {
	return Analysis{Class: Write, MustPrimary: true, Reason: "parse error", ParseError: "*", Statements: none}
}

func runAnalyzeTable(t *testing.T, d Dialect, cases []analyzeCase) {
	t.Helper()
	shared := NewAnalyzer(d, Options{})
	seen := map[string]bool{}
	for _, tc := range cases {
		name := tc.sql
		if len(name) > 60 {
			name = name[:60]
		}
		if seen[name] {
			name += "#" // t.Run would uniquify anyway; keep names readable
		}
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			a := shared
			if tc.opts != nil {
				a = NewAnalyzer(d, *tc.opts)
			}
			want := tc.want
			switch want.Statements {
			case 0:
				want.Statements = 1
			case none:
				want.Statements = 0
			}
			got := a.Analyze(tc.sql)
			checkAnalysis(t, "Analyze", got, want)

			// A second call is served from the fast path or the cache:
			// the very same verdict.
			if again := a.Analyze(tc.sql); again != got {
				t.Errorf("second Analyze returned a different *Analysis")
			}
			// The parser alone must agree with whatever the fast path
			// said, except where Vitess rejects what MySQL accepts.
			if fastPath(d, tc.sql) != nil {
				full := a.analyze(tc.sql)
				if full.ParseError == "" {
					checkAnalysis(t, "parser behind fast path", full, want)
				}
			}
		})
	}
}

func checkAnalysis(t *testing.T, what string, got *Analysis, want Analysis) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil Analysis", what)
	}
	g := *got
	g.mysql = nil // the session effects have their own tests (effects_mysql_test.go)
	if want.ParseError == "*" {
		if g.ParseError == "" {
			t.Errorf("%s: ParseError empty, want an error", what)
		}
		g.ParseError = "*"
	}
	if len(g.Sets) == 0 {
		g.Sets = nil
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, describe(&g), describe(&want))
	}
}

func describe(a *Analysis) string {
	var b strings.Builder
	b.WriteString("{" + a.Class.String())
	if a.Statements != 1 {
		b.WriteString(" stmts=" + strconv.Itoa(a.Statements))
	}
	if a.MustPrimary {
		b.WriteString(" MustPrimary")
	}
	if a.Reason != "" {
		b.WriteString(" reason=" + quote(a.Reason))
	}
	if a.ReadOnlyBegin {
		b.WriteString(" ReadOnlyBegin")
	}
	if a.Hint != HintNone {
		b.WriteString(" hint=" + a.Hint.String())
	}
	for _, s := range a.Sets {
		b.WriteString(" set{" + quote(s.Name) + "=" + quote(s.Value))
		if s.Reset {
			b.WriteString(" reset")
		}
		if s.All {
			b.WriteString(" all")
		}
		if s.Local {
			b.WriteString(" local")
		}
		b.WriteString("}")
	}
	if a.Value != "" {
		b.WriteString(" value=" + quote(a.Value))
	}
	if d := a.Deallocate; d != nil {
		b.WriteString(" deallocate{" + quote(d.Name))
		if d.All {
			b.WriteString(" all")
		}
		b.WriteString("}")
	}
	if a.Pin != "" {
		b.WriteString(" pin=" + quote(a.Pin))
	}
	if a.ParseError != "" {
		b.WriteString(" error=" + quote(a.ParseError))
	}
	return b.String() + "}"
}

func quote(s string) string { return strconv.Quote(s) }

func TestAnalysisInvariants(t *testing.T) {
	// Spot checks of the documented contract on every row of both tables.
	for _, d := range []Dialect{Postgres, MySQL} {
		a := NewAnalyzer(d, Options{})
		cases := postgresCases
		if d == MySQL {
			cases = mysqlCases
		}
		for _, tc := range cases {
			checkInvariants(t, d, tc.sql, a.Analyze(tc.sql))
		}
	}
}

// checkInvariants holds for every verdict, whatever the input.
func checkInvariants(t *testing.T, d Dialect, sql string, an *Analysis) {
	t.Helper()
	fail := func(msg string) { t.Errorf("%s %q: %s: %s", d, sql, msg, describe(an)) }
	if an == nil {
		t.Fatalf("%s %q: nil Analysis", d, sql)
	}
	if an.Class < Other || an.Class > Session {
		fail("class out of range")
	}
	if an.Class == Write && !an.MustPrimary {
		fail("Write without MustPrimary")
	}
	if an.ParseError != "" && (an.Class != Write || !an.MustPrimary || an.Statements != 0) {
		fail("ParseError must mean Write, MustPrimary, no statements")
	}
	if an.Pin != "" && !an.MustPrimary {
		fail("Pin without MustPrimary")
	}
	if an.MustPrimary && an.Reason == "" {
		fail("MustPrimary without Reason")
	}
	if an.Statements < 0 {
		fail("negative statement count")
	}
	if an.Hint > HintReplica {
		fail("hint out of range")
	}
}

func TestNewAnalyzerUnknownDialect(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewAnalyzer(0) did not panic")
		}
	}()
	NewAnalyzer(0, Options{})
}

func TestStringers(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Postgres.String(), "postgres"}, {MySQL.String(), "mysql"}, {Dialect(9).String(), "Dialect(9)"},
		{Read.String(), "read"}, {Write.String(), "write"}, {TxnBegin.String(), "begin"},
		{TxnEnd.String(), "end"}, {Session.String(), "session"}, {Other.String(), "other"},
		{Class(0).String(), "Class(0)"},
		{HintNone.String(), "none"}, {HintPrimary.String(), "primary"}, {HintReplica.String(), "replica"},
		{Hint(7).String(), "Hint(7)"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestOptionsNormalised(t *testing.T) {
	a := NewAnalyzer(Postgres, Options{ReadOnlyFunctions: []string{"  My_Func ", ""}})
	if an := a.Analyze("SELECT my_func(1)"); an.Class != Read || an.MustPrimary {
		t.Errorf("ReadOnlyFunctions entry not normalised: %s", describe(an))
	}
}

func TestAnalyzerFor(t *testing.T) {
	for _, d := range []Dialect{Postgres, MySQL} {
		a := AnalyzerFor(d, "upper", " My_Fn ,other", "")
		if a != AnalyzerFor(d, "upper", " My_Fn ,other", "") {
			t.Errorf("%v: the same lists gave two analyzers", d)
		}
		if an := a.Analyze("SELECT my_fn()"); an.Class != Read || an.MustPrimary {
			t.Errorf("%v: a listed read-only function: %+v", d, an)
		}
		if an := a.Analyze("SELECT upper('x')"); an.Class != Write {
			t.Errorf("%v: a listed writing function: %+v", d, an)
		}
		if an := AnalyzerFor(d, "", "", "").Analyze("SELECT my_fn()"); an.Class != Write || an.Pin != "" {
			t.Errorf("%v: an unlisted user function: %+v", d, an)
		}
		// session_functions: calling one pins (and writes), in any clause,
		// by CALL too; a listed read-only function listed here pins.
		s := AnalyzerFor(d, "", "my_fn", "set_tenant, app.set_role")
		for _, q := range []string{"SELECT set_tenant('a')", "SELECT * FROM t WHERE x = set_tenant('a')", "CALL set_tenant('a')", "SELECT app.set_role('r')"} {
			if an := s.Analyze(q); an.Class != Write || an.Pin == "" {
				t.Errorf("%v: %s with session_functions: %+v, want a pinning write", d, q, an)
			}
		}
		if an := s.Analyze("SELECT other.set_role('r'), my_fn()"); an.Pin != "" {
			t.Errorf("%v: other.set_role is not app.set_role: %+v", d, an)
		}
	}
}
