package router

import "testing"

func TestAnalyzePostgres(t *testing.T) { runAnalyzeTable(t, Postgres, postgresCases) }

var (
	roMyFunc     = &Options{ReadOnlyFunctions: []string{"my_func"}}
	roOtherFunc  = &Options{ReadOnlyFunctions: []string{"other.my_func"}}
	writeLower   = &Options{WriteFunctions: []string{"lower"}}
	writeAuditFn = &Options{WriteFunctions: []string{"audit_read"}, ReadOnlyFunctions: []string{"audit_read"}}
	rwTxn        = "read-write transaction"
)

var postgresCases = []analyzeCase{
	// Plain reads: the fast path, then the parser.
	{sql: "SELECT 1", want: read()},
	{sql: "select * from users where id = $1", want: read()},
	{sql: "  SELECT a, b FROM t WHERE c = 'x'  ;  ", want: read()},
	{sql: "SELECT * FROM t t1 JOIN u ON t1.id = u.id WHERE t1.a > 5 ORDER BY 1 LIMIT 10", want: read()},
	{sql: "SELECT x FROM t WHERE name = 'into'", want: read()},
	{sql: "SELECT * FROM t WHERE a = $1 AND b = ANY($2)", want: read()},
	{sql: "SELECT count(*) FROM t", want: read()},
	{sql: "SELECT lower(name), coalesce(a, 0), greatest(a, b), nullif(a, 1), now() FROM t", want: read()},
	{sql: "SELECT extract(year FROM now()), trim(x), substring(y FROM 2), position('a' IN y), x AT TIME ZONE 'UTC' FROM t", want: read()},
	{sql: "SELECT * FROM generate_series(1, 10)", want: read()},
	{sql: "SELECT inet_server_port()", want: read()},
	{sql: "SELECT CURRENT_DATE, LOCALTIME, CURRENT_USER, SYSTEM_USER", want: read()}, // SYSTEM_USER is a FuncCall
	{sql: "WITH x AS (SELECT 1) SELECT * FROM x", want: read()},
	{sql: "VALUES (1), (2)", want: read()},
	{sql: "TABLE t", want: read()},
	{sql: "SHOW search_path", want: read()},

	// Reads that need the primary.
	{sql: "SELECT * FROM t FOR UPDATE", want: primaryRead("FOR UPDATE")},
	{sql: "SELECT * FROM t WHERE id = $1 FOR SHARE", want: primaryRead("FOR SHARE")},
	{sql: "SELECT * FROM t FOR NO KEY UPDATE NOWAIT", want: primaryRead("FOR NO KEY UPDATE")},
	{sql: "SELECT * FROM t FOR KEY SHARE SKIP LOCKED", want: primaryRead("FOR KEY SHARE")},
	{sql: "SELECT * FROM (SELECT * FROM t FOR UPDATE) s", want: primaryRead("FOR UPDATE")},
	{sql: "SELECT currval('s')", want: seqState(primaryRead("currval()"))},
	{sql: "SELECT lastval()", want: seqState(primaryRead("lastval()"))},
	{sql: "SELECT pg_advisory_xact_lock(1)", want: primaryRead("pg_advisory_xact_lock()")},
	{sql: "SELECT pg_try_advisory_xact_lock_shared(1, 2)", want: primaryRead("pg_try_advisory_xact_lock_shared()")},
	{sql: "SELECT pg_advisory_unlock(1)", want: primaryRead("pg_advisory_unlock()")},
	{sql: "LOCK TABLE t IN ACCESS EXCLUSIVE MODE", want: primaryRead("LOCK TABLE")},
	{sql: "COPY t TO '/tmp/t.csv'", want: primaryRead("COPY TO file or program")},

	// Writes hiding in reads.
	{sql: "WITH x AS (DELETE FROM t WHERE a < 0 RETURNING *) SELECT * FROM x", want: write("data-modifying CTE")},
	{sql: "WITH x AS (UPDATE t SET a = 1 RETURNING a) INSERT INTO log SELECT * FROM x", want: write("INSERT")},
	{sql: "SELECT nextval('s')", want: write("nextval()")},
	{sql: "SELECT pg_catalog.nextval('s'), currval('s')", want: seqState(write("nextval()"))},
	{sql: "SELECT setval('s', 10)", want: write("setval()")},
	{sql: "SELECT * INTO t2 FROM t", want: write("SELECT INTO")},
	{sql: "SELECT pg_notify('ch', 'x')", want: write("pg_notify()")},

	// Function calls: unknown ones are writes unless declared read-only.
	{sql: "SELECT my_func(1)", want: write("function my_func()")},
	{sql: "SELECT my_func(1)", opts: roMyFunc, want: read()},
	{sql: "SELECT public.my_func(1)", opts: roMyFunc, want: read()},
	{sql: "SELECT public.my_func(1)", opts: roOtherFunc, want: write("function public.my_func()")},
	{sql: "SELECT other.my_func(1)", opts: roOtherFunc, want: read()},
	{sql: "SELECT public.lower('A')", want: write("function public.lower()")},
	{sql: "SELECT lower('A')", opts: writeLower, want: write("function lower()")},
	{sql: "SELECT audit_read(1)", opts: writeAuditFn, want: write("function audit_read()")},
	{sql: "SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE f(b))", want: write("function f()")},
	{sql: "SELECT txid_current()", want: write("function txid_current()")},

	// Plain writes and DDL.
	{sql: "INSERT INTO t VALUES ($1, $2)", want: write("INSERT")},
	{sql: "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = excluded.a RETURNING id", want: write("INSERT")},
	{sql: "INSERT INTO t (id) VALUES (nextval('s'))", want: write("INSERT")},
	{sql: "UPDATE t SET a = $1 WHERE id = $2", want: write("UPDATE")},
	{sql: "DELETE FROM t WHERE id = 1", want: write("DELETE")},
	{sql: "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a", want: write("MERGE")},
	{sql: "CREATE TABLE t (id int)", want: write("CREATE TABLE")},
	{sql: "ALTER TABLE t ADD COLUMN b int", want: write("ALTER TABLE")},
	{sql: "DROP TABLE t", want: write("DROP")},
	{sql: "TRUNCATE t", want: write("TRUNCATE")},
	{sql: "VACUUM t", want: write("VACUUM/ANALYZE")},
	{sql: "GRANT SELECT ON t TO u", want: write("GRANT")},
	{sql: "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql", want: write("CREATE FUNCTION")},
	{sql: "CREATE VIEW v AS SELECT pg_advisory_lock(1)", want: write("CREATE VIEW")}, // defines, does not run
	{sql: "COMMENT ON TABLE t IS 'x'", want: write("CommentStmt")},
	{sql: "COPY t FROM STDIN", want: Analysis{Class: Write, MustPrimary: true, Reason: "COPY FROM", CopyFrom: true}},
	{sql: "COPY t TO STDOUT", want: read()},
	{sql: "COPY (SELECT * FROM t) TO STDOUT (FORMAT csv)", want: read()},
	{sql: "CALL proc(1)", want: write("CALL")},
	{sql: "DO $$ BEGIN PERFORM 1; END $$", want: Analysis{Class: Write, MustPrimary: true, Reason: "DO", Pin: "DO block"}},
	{sql: "NOTIFY ch, 'x'", want: write("NOTIFY")},
	{sql: "EXECUTE p(1)", want: Analysis{Class: Write, MustPrimary: true, Reason: "EXECUTE", StatementNames: []string{"p"}}},
	{sql: "EXPLAIN EXECUTE Sy_3(1)", want: Analysis{Class: Read, StatementNames: []string{"sy_3"}}},
	{sql: "COMMIT PREPARED 'x'", want: write("COMMIT PREPARED")},

	// EXPLAIN runs its statement only with ANALYZE.
	{sql: "EXPLAIN SELECT * FROM t", want: read()},
	{sql: "EXPLAIN DELETE FROM t", want: read()},
	{sql: "EXPLAIN ANALYZE DELETE FROM t", want: write("DELETE")},
	{sql: "EXPLAIN (ANALYZE false) DELETE FROM t", want: read()},
	{sql: "EXPLAIN (ANALYZE, BUFFERS) SELECT nextval('s')", want: write("nextval()")},
	{sql: "EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE", want: primaryRead("FOR UPDATE")},

	// Transaction control.
	{sql: "BEGIN", want: Analysis{Class: TxnBegin, MustPrimary: true, Reason: rwTxn}},
	{sql: "begin transaction;", want: Analysis{Class: TxnBegin, MustPrimary: true, Reason: rwTxn}},
	{sql: "START TRANSACTION", want: Analysis{Class: TxnBegin, MustPrimary: true, Reason: rwTxn}},
	{sql: "BEGIN READ ONLY", want: Analysis{Class: TxnBegin, ReadOnlyBegin: true}},
	{sql: "START TRANSACTION READ ONLY", want: Analysis{Class: TxnBegin, ReadOnlyBegin: true}},
	// A hot standby refuses SERIALIZABLE ("cannot use serializable mode
	// in a hot standby"), read-only or not.
	{sql: "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE", want: Analysis{Class: TxnBegin, MustPrimary: true, Reason: "serializable transaction"}},
	{sql: "BEGIN ISOLATION LEVEL SERIALIZABLE", want: Analysis{Class: TxnBegin, MustPrimary: true, Reason: "serializable transaction"}},
	{sql: "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ", want: Analysis{Class: TxnBegin, ReadOnlyBegin: true}},
	{sql: "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY, ISOLATION LEVEL READ COMMITTED", want: Analysis{Class: TxnBegin, ReadOnlyBegin: true}},
	{sql: "BEGIN READ ONLY, READ WRITE", want: Analysis{Class: TxnBegin, MustPrimary: true, Reason: rwTxn}},
	{sql: "BEGIN READ WRITE", want: Analysis{Class: TxnBegin, MustPrimary: true, Reason: rwTxn}},
	{sql: "BEGIN ISOLATION LEVEL REPEATABLE READ", want: Analysis{Class: TxnBegin, MustPrimary: true, Reason: rwTxn}},
	{sql: "COMMIT", want: Analysis{Class: TxnEnd}},
	{sql: "end", want: Analysis{Class: TxnEnd}},
	{sql: "ROLLBACK", want: Analysis{Class: TxnEnd}},
	{sql: "abort work", want: Analysis{Class: TxnEnd}},
	{sql: "COMMIT AND CHAIN", want: Analysis{Class: TxnEnd, Chain: true}},
	{sql: "ROLLBACK AND CHAIN", want: Analysis{Class: TxnEnd, Chain: true}},
	{sql: "ROLLBACK TO SAVEPOINT a", want: Analysis{Class: Other, RollbackTo: true}},
	{sql: "ROLLBACK TO a", want: Analysis{Class: Other, RollbackTo: true}},
	{sql: "SAVEPOINT a", want: Analysis{Class: Other}},
	{sql: "RELEASE SAVEPOINT a", want: Analysis{Class: Other}},
	{sql: "PREPARE TRANSACTION 'x'", want: Analysis{Class: TxnEnd, MustPrimary: true, Reason: "PREPARE TRANSACTION"}},

	// Several statements in one Query message.
	{sql: "BEGIN; UPDATE t SET a = 1; COMMIT", want: Analysis{Class: Write, Statements: 3, MustPrimary: true, Reason: "UPDATE"}},
	{sql: "BEGIN; SELECT 1; COMMIT", want: Analysis{Class: Read, Statements: 3, MustPrimary: true, Reason: rwTxn}},
	{sql: "BEGIN READ ONLY; SELECT 1; COMMIT;", want: Analysis{Class: Read, Statements: 3, ReadOnlyBegin: true}},
	{sql: "SELECT 1; SELECT 2", want: Analysis{Class: Read, Statements: 2}},
	{sql: "SET search_path = a; SELECT * FROM t", want: Analysis{Class: Read, Statements: 2,
		Sets: []SetOp{{Name: "search_path", Value: "a"}}, Value: "a"}},

	// Session state: SET / RESET / DISCARD / DEALLOCATE.
	{sql: "SET search_path TO a, b", want: Analysis{Class: Session, Sets: []SetOp{{Name: "search_path"}}}},
	{sql: "SET statement_timeout = 5000", want: Analysis{Class: Session, Sets: []SetOp{{Name: "statement_timeout", Value: "5000"}}, Value: "5000"}},
	{sql: "SET application_name = 'my app'", want: Analysis{Class: Session, Sets: []SetOp{{Name: "application_name", Value: "my app"}}, Value: "my app"}},
	{sql: "SET extra_float_digits = 1.5", want: Analysis{Class: Session, Sets: []SetOp{{Name: "extra_float_digits", Value: "1.5"}}, Value: "1.5"}},
	{sql: "SET LOCAL lock_timeout = '1s'", want: Analysis{Class: Session, Sets: []SetOp{{Name: "lock_timeout", Value: "1s", Local: true}}, Value: "1s"}},
	{sql: "SET SESSION TimeZone TO 'UTC'", want: Analysis{Class: Session, Sets: []SetOp{{Name: "timezone", Value: "UTC"}}, Value: "UTC"}},
	{sql: "SET TIME ZONE 'Europe/Paris'", want: Analysis{Class: Session, Sets: []SetOp{{Name: "timezone", Value: "Europe/Paris"}}, Value: "Europe/Paris"}},
	{sql: "SET search_path TO DEFAULT", want: Analysis{Class: Session, Sets: []SetOp{{Name: "search_path", Reset: true}}}},
	{sql: "SET search_path FROM CURRENT", want: Analysis{Class: Session, Sets: []SetOp{{Name: "search_path"}}}},
	{sql: "RESET search_path", want: Analysis{Class: Session, Sets: []SetOp{{Name: "search_path", Reset: true}}}},
	{sql: "RESET ALL", want: Analysis{Class: Session, Sets: []SetOp{{Reset: true, All: true}}}},
	{sql: "DISCARD ALL", want: Analysis{Class: Session, Sets: []SetOp{{Reset: true, All: true, Auth: true}}, Deallocate: &Deallocate{All: true}}},
	{sql: "DISCARD PLANS", want: Analysis{Class: Session}},
	{sql: "DEALLOCATE ALL", want: Analysis{Class: Session, Deallocate: &Deallocate{All: true}}},
	{sql: "DEALLOCATE PREPARE stmt1", want: Analysis{Class: Session, Deallocate: &Deallocate{Name: "stmt1"}, StatementNames: []string{"stmt1"}}},
	{sql: "DEALLOCATE stmt1; DEALLOCATE ALL; DEALLOCATE stmt2", want: Analysis{Class: Session, Statements: 3, Deallocate: &Deallocate{All: true}, StatementNames: []string{"stmt1", "stmt2"}}},
	{sql: "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", want: Analysis{Class: Session,
		Sets: []SetOp{{Name: "transaction_isolation", Value: "serializable", Local: true}}, Value: "serializable"}},
	{sql: "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", want: Analysis{Class: Session,
		Sets: []SetOp{{Name: "default_transaction_read_only", Value: "1"}}, Value: "1"}},
	{sql: "SET switchyard.target = 'replica'", want: Analysis{Class: Session, Sets: []SetOp{{Name: "switchyard.target", Value: "replica"}}, Value: "replica"}},
	{sql: "SET a.b = 1; SET a.c = 2", want: Analysis{Class: Session, Statements: 2, Sets: []SetOp{{Name: "a.b", Value: "1"}, {Name: "a.c", Value: "2"}}}},
	{sql: "SELECT set_config('request.jwt', 'x', true)", want: read()},
	{sql: "UNLISTEN *", want: Analysis{Class: Session}},

	// State a transaction pooler cannot carry: pins.
	{sql: "LISTEN ch", want: Analysis{Class: Session, MustPrimary: true, Reason: "LISTEN", Pin: "LISTEN"}},
	{sql: "CREATE TEMP TABLE tt (id int)", want: Analysis{Class: Write, MustPrimary: true, Reason: "CREATE TABLE", Pin: "CREATE TEMP TABLE"}},
	{sql: "CREATE TEMPORARY TABLE tt (id int) ON COMMIT DROP", want: write("CREATE TABLE")},
	{sql: "CREATE TEMP TABLE tt AS SELECT 1", want: Analysis{Class: Write, MustPrimary: true, Reason: "CREATE TABLE AS", Pin: "CREATE TEMP TABLE AS"}},
	{sql: "CREATE TEMP VIEW v AS SELECT 1", want: Analysis{Class: Write, MustPrimary: true, Reason: "CREATE VIEW", Pin: "CREATE TEMP VIEW"}},
	{sql: "SELECT * INTO TEMP t2 FROM t", want: Analysis{Class: Write, MustPrimary: true, Reason: "SELECT INTO", Pin: "SELECT INTO TEMP"}},
	{sql: "SELECT pg_advisory_lock(1)", want: Analysis{Class: Read, MustPrimary: true, Reason: "pg_advisory_lock()", Pin: "pg_advisory_lock()"}},
	{sql: "SELECT pg_advisory_lock_shared($1)", want: Analysis{Class: Read, MustPrimary: true, Reason: "pg_advisory_lock_shared()", Pin: "pg_advisory_lock_shared()"}},
	{sql: "SELECT pg_try_advisory_lock(1)", want: Analysis{Class: Read, MustPrimary: true, Reason: "pg_try_advisory_lock()", Pin: "pg_try_advisory_lock()"}},
	{sql: "SELECT set_config('search_path', 'x', false)", want: Analysis{Class: Read, MustPrimary: true, Reason: "set_config()", Pin: "set_config()"}},
	{sql: "DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t", want: Analysis{Class: Read, MustPrimary: true, Reason: "DECLARE ... WITH HOLD", Pin: "DECLARE ... WITH HOLD"}},
	{sql: "DECLARE c CURSOR FOR SELECT * FROM t", want: read()},
	{sql: "FETCH 10 FROM c", want: Analysis{Class: Other}},
	{sql: "CLOSE c", want: Analysis{Class: Other}},
	{sql: "PREPARE p (int) AS SELECT * FROM t WHERE id = $1", want: Analysis{Class: Session, MustPrimary: true, Reason: "PREPARE", Pin: "PREPARE", StatementNames: []string{"p"}}},
	{sql: "LOAD 'auto_explain'", want: Analysis{Class: Other, MustPrimary: true, Reason: "LOAD", Pin: "LOAD"}},

	// Hints.
	{sql: "/* switchyard:replica */ SELECT * FROM t", want: Analysis{Class: Read, Hint: HintReplica}},
	{sql: "SELECT * FROM t -- switchyard:primary", want: Analysis{Class: Read, Hint: HintPrimary}},
	{sql: "SELECT '/* switchyard:replica */' FROM t", want: read()},
	{sql: "SELECT $$ -- switchyard:primary $$", want: read()},
	{sql: "/* SWITCHYARD:PRIMARY */ UPDATE t SET a = 1", want: Analysis{Class: Write, MustPrimary: true, Reason: "UPDATE", Hint: HintPrimary}},
	{sql: "/* switchyard:replica */ /* switchyard:primary */ SELECT 1", want: Analysis{Class: Read, Hint: HintPrimary}},
	{sql: "/* app=web switchyard:replica */ SELECT 1", want: Analysis{Class: Read, Hint: HintReplica}},
	{sql: "/* switchyard:replica */ SELEC 1", want: Analysis{Class: Write, MustPrimary: true, Reason: "parse error", ParseError: "*", Statements: none, Hint: HintReplica}},

	// Garbage and edge cases.
	{sql: "SELEC * FROM t", want: parseErr()},
	{sql: "SELECT * FROM", want: read()}, // fast path: the server reports the error
	{sql: "SELECT * FROM t WHERE", want: read()},
	{sql: "SELECT * FROM t WHERE (", want: parseErr()},
	{sql: "SELECT 1\x00; DROP TABLE t", want: parseErr()},
	{sql: "\xff\xfe", want: parseErr()},
	{sql: "", want: Analysis{Class: Other, Statements: none}},
	{sql: " ; ", want: Analysis{Class: Other, Statements: none}},
	{sql: "-- just a comment", want: Analysis{Class: Other, Statements: none}},
}

// CopyFrom marks the statements after which the server may read copy data
// (pgwire sends nothing of its own behind them).
func TestAnalyzeCopyFrom(t *testing.T) {
	a := NewAnalyzer(Postgres, Options{})
	for sql, want := range map[string]bool{
		"COPY t FROM STDIN":        true,
		"COPY t (a, b) FROM STDIN": true,
		"COPY t TO STDOUT":         false,
		"SELECT 1":                 false,
		"INSERT INTO t VALUES (1)": false,
	} {
		if got := a.Analyze(sql).CopyFrom; got != want {
			t.Errorf("%s: CopyFrom %v, want %v", sql, got, want)
		}
	}
}

// seqState marks a verdict as reading sequence state (currval, lastval).
func seqState(a Analysis) Analysis {
	a.SequenceState = true
	return a
}
