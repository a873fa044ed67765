package router

import (
	"os"
	"strings"
	"testing"
)

func TestFastPathAnswers(t *testing.T) {
	for _, c := range []struct {
		d    Dialect
		sql  string
		want *Analysis
	}{
		{Postgres, "BEGIN", fastBegin},
		{Postgres, "  begin  work ; ", fastBegin},
		{Postgres, "Begin Transaction", fastBegin},
		{MySQL, "START\tTRANSACTION", fastBegin},
		{MySQL, "BEGIN WORK", fastBegin},
		{Postgres, "COMMIT", fastEnd},
		{Postgres, "end transaction", fastEnd},
		{Postgres, "ABORT", fastEnd},
		{MySQL, "rollback work;", fastEnd},
		{MySQL, "commit", fastEnd},
		{Postgres, "SELECT 1", fastRead},
		{Postgres, "select*from t", fastRead},
		{MySQL, "SELECT a, b FROM t WHERE c = ? AND d > ? ORDER BY a LIMIT 10", fastRead},
		{Postgres, "SELECT format_type, information_schema FROM forks", fastRead}, // for/into/lock only as whole words
		// pgbench's TPC-B-like statements: literals differ every time.
		{Postgres, "UPDATE pgbench_accounts SET abalance = abalance + -4211 WHERE aid = 734811;", fastUpdate},
		{Postgres, "update only t set a = default, b = 'x''y' where c::int8 >= 3 returning *", fastUpdate},
		{Postgres, "DELETE FROM t WHERE id = 42", fastDelete},
		{Postgres, "delete from t using u where t.id = u.id", fastDelete},
		{Postgres, "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 734811, -4211, CURRENT_TIMESTAMP);", fastInsert},
		{Postgres, "insert into s.t values(1,'a'),(2, 'b'), (3, $1) returning id", fastInsert},
		{Postgres, "INSERT INTO t(a) VALUES (1) ON CONFLICT DO NOTHING", fastInsert},
		{Postgres, "INSERT INTO t VALUES ('a), (b')", fastInsert},
		{Postgres, "UPDATE t SET a = 1 WHERE CURRENT OF c", fastUpdate}, // the cursor is the transaction's (WITH HOLD pins)
	} {
		if got := fastPath(c.d, c.sql); got != c.want {
			t.Errorf("%s %q: fast path gave %v, want %s", c.d, c.sql, describeOrNil(got), describe(c.want))
		}
		if full := NewAnalyzer(c.d, Options{}).analyze(c.sql); full.ParseError == "" && !fastAgrees(c.want, full) {
			t.Errorf("%s %q: the parser says %s", c.d, c.sql, describe(full))
		}
	}
}

// Everything not obviously a plain read or plain transaction control is
// left to the parser.
func TestFastPathDeclines(t *testing.T) {
	for _, c := range []struct {
		d   Dialect
		sql string
	}{
		{Postgres, "SELECT f(1)"},
		{Postgres, "SELECT * FROM t FOR UPDATE"},
		{Postgres, "select * from t for share"},
		{Postgres, "SELECT * INTO x FROM t"},
		{Postgres, "SELECT 1; SELECT 2"},
		{Postgres, "SELECT 1; DELETE FROM t"},
		{Postgres, "/* switchyard:replica */ SELECT 1"},
		{Postgres, "SELECT 1 -- switchyard:primary"},
		{Postgres, "SELECT 1 /* c */"},
		{Postgres, "SELECT 1\x00"},
		{Postgres, "SELECTx FROM t"},
		{Postgres, "select_all"},
		{Postgres, "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x"},
		{Postgres, "BEGIN READ ONLY"},
		{Postgres, "BEGIN ISOLATION LEVEL SERIALIZABLE"},
		{Postgres, "START TRANSACTION READ ONLY"},
		{Postgres, "ROLLBACK TO a"},
		{Postgres, "ROLLBACK TO SAVEPOINT a"},
		{Postgres, "PREPARE TRANSACTION 'x'"},
		{Postgres, "COMMIT PREPARED 'x'"},
		{Postgres, "COMMIT AND CHAIN"},
		{Postgres, "BEGINNING"},
		{Postgres, "COMMITTED"},
		{Postgres, "UPDATE t SET a = f(1)"},
		{Postgres, "UPDATE t SET a = (SELECT pg_advisory_lock(1))"},
		{Postgres, "UPDATE t SET a = 1 WHERE id IN (1, 2)"},
		{Postgres, "UPDATE t SET a = 1; SET work_mem = '1MB'"},
		{Postgres, "UPDATE t SET a = 1 /* switchyard:replica */"},
		{Postgres, "UPDATE t SET a = 1 -- x"},
		{Postgres, "UPDATE t SET a = b FROM u FOR UPDATE"},
		{Postgres, "update_log"},
		{Postgres, "DELETE FROM t WHERE id = 1 RETURNING lastval()"},
		{Postgres, "DELETEFROM t"},
		{Postgres, "INSERT INTO t VALUES (f(1))"},
		{Postgres, "INSERT INTO t VALUES ((SELECT 1))"},
		{Postgres, "INSERT INTO t VALUES ('x'), (nextval('s'))"},
		{Postgres, "INSERT INTO t VALUES ('a), f(b')"},
		{Postgres, "INSERT INTO t (a) SELECT f(1)"},
		{Postgres, "INSERT INTO t VALUES (1) ON CONFLICT (a) DO NOTHING"},
		{Postgres, "INSERT INTO t VALUES (1) RETURNING lastval()"},
		{Postgres, "INSERT INTO t VALUES (1); SELECT pg_advisory_lock(1)"},
		{Postgres, "INSERT INTO t VALUES (1) -- x"},
		{Postgres, "INSERT INTO t AS x VALUES (1)"},
		{Postgres, "INSERT INTO t (a VALUES (1)"},
		{Postgres, "INSERT INTO t VALUES (1"},
		{Postgres, "insertinto t values (1)"},
		{Postgres, "INSERT INTO\"t\" VALUES (1)"},
		{Postgres, "WITH x AS (SELECT 1) INSERT INTO t VALUES (1)"},
		{MySQL, "INSERT INTO t VALUES (1)"},
		{MySQL, "UPDATE t SET a = 1"},
		{MySQL, "DELETE FROM t"},
		{MySQL, "SELECT @x"},
		{MySQL, "SELECT SQL_CALC_FOUND_ROWS * FROM t"},
		{MySQL, "SELECT * FROM t LOCK IN SHARE MODE"},
		{MySQL, "SELECT NEXT VALUE FOR s"},
		{MySQL, "SELECT next 1 values from s"},
		{MySQL, "SELECT 1 # switchyard:primary"},
		{MySQL, "SELECT {fn NOW}"},
		{MySQL, "END"},
		{MySQL, "ABORT"},
		{MySQL, "COMMIT TRANSACTION"},
		{MySQL, "BEGIN TRANSACTION"},
		{MySQL, "START TRANSACTION READ ONLY"},
		{MySQL, "XA START 'x'"},
		{MySQL, ""},
		{MySQL, ";"},
	} {
		if got := fastPath(c.d, c.sql); got != nil {
			t.Errorf("%s %q: fast path answered %s, want the parser", c.d, c.sql, describe(got))
		}
	}
}

func describeOrNil(a *Analysis) string {
	if a == nil {
		return "nil"
	}
	return describe(a)
}

// Every keyword of each grammar, in the positions a plain SELECT can hold
// a bare word: wherever the fast path answers and the parser accepts the
// text, they must agree. (This is how SYSTEM_USER and MySQL's CURRENT_DATE,
// which the grammars turn into function calls, were found.) The keyword
// lists are PostgreSQL's kwlist.h and Vitess's keywords.go.
func TestFastPathAgreesOnKeywords(t *testing.T) {
	templates := []string{
		"SELECT %", "SELECT a %", "SELECT % a", "SELECT % FROM t", "SELECT a FROM t %",
		"SELECT a FROM t % b", "SELECT a FROM t WHERE b = %", "SELECT a FROM t WHERE b %",
		"SELECT a FROM t WHERE b = % c", "SELECT a FROM t WHERE b = 1 %", "SELECT a % 1 FROM t",
		"SELECT a FROM t ORDER BY a %", "SELECT a FROM t GROUP BY a WITH %",
		"SELECT a FROM t LIMIT 1 %", "SELECT % 1", "SELECT % 'x'", "SELECT 'x' %", "SELECT % % FROM t",
		"UPDATE t SET a = %", "UPDATE t SET a = b % c", "UPDATE t SET a = 1 WHERE b = %", "UPDATE t SET a = 1 %",
		"UPDATE % SET a = 1", "UPDATE t % SET a = 1", "UPDATE t SET a = 1 FROM u %", "UPDATE t SET a = 1 RETURNING %",
		"DELETE FROM t WHERE a = %", "DELETE FROM t %", "DELETE FROM % WHERE a = 1", "DELETE FROM t WHERE a = 1 %",
		"DELETE FROM t USING u % WHERE a = 1", "DELETE FROM t RETURNING %",
		"INSERT INTO t VALUES (%)", "INSERT INTO t VALUES (1, %)", "INSERT INTO t VALUES (% 1)", "INSERT INTO t (a, %) VALUES (1)",
		"INSERT INTO t VALUES (1) %", "INSERT INTO t VALUES (1) RETURNING %", "INSERT INTO % VALUES (1)", "INSERT INTO t VALUES (1), (%)",
		"INSERT INTO t VALUES (1) ON CONFLICT %", "INSERT INTO t VALUES (1) ON CONFLICT DO %",
	}
	for _, d := range []Dialect{Postgres, MySQL} {
		raw, err := os.ReadFile("testdata/keywords_" + d.String() + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		a := NewAnalyzer(d, Options{})
		checked := 0
		for _, kw := range strings.Fields(string(raw)) {
			for _, tmpl := range templates {
				q := strings.ReplaceAll(tmpl, "%", kw)
				fast := fastPath(d, q)
				if fast == nil {
					continue
				}
				full := a.analyze(q)
				if full.ParseError != "" {
					continue
				}
				checked++
				if !fastAgrees(fast, full) {
					t.Errorf("%s %q: fast path says %s, parser says %s", d, q, describe(fast), describe(full))
				}
			}
		}
		if checked < 1000 {
			t.Errorf("%s: only %d keyword statements checked", d, checked)
		}
	}
}

// fastAgrees says whether the parser's verdict full is the fast path's
// verdict fast in everything the proxy acts on.
func fastAgrees(fast, full *Analysis) bool {
	if full.Class != fast.Class || full.MustPrimary != fast.MustPrimary || full.ReadOnlyBegin != fast.ReadOnlyBegin ||
		full.Pin != "" || full.Hint != HintNone || full.Statements != 1 || len(full.Sets) != 0 ||
		full.Deallocate != nil || len(full.StatementNames) != 0 || full.RollbackTo || full.Chain {
		return false
	}
	return full.Class != Write || full.Reason == fast.Reason
}
