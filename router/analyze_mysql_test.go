package router

import "testing"

func TestAnalyzeMySQL(t *testing.T) { runAnalyzeTable(t, MySQL, mysqlCases) }

func userVar(c Class) Analysis {
	return Analysis{Class: c, MustPrimary: true, Reason: "user variable", Pin: "user variable"}
}

var mysqlCases = []analyzeCase{
	// Plain reads.
	{sql: "SELECT 1", want: read()},
	{sql: "SELECT * FROM t WHERE id = ?", want: read()},
	{sql: "select a from t where b = 'x';", want: read()},
	{sql: "SELECT * FROM t WHERE a = 'for'", want: read()},
	{sql: "SELECT COUNT(*), SUM(a), MAX(b), GROUP_CONCAT(c) FROM t", want: read()},
	{sql: "SELECT NOW(), UUID(), DATABASE(), CONCAT('a', b), IFNULL(a, 0) FROM t", want: read()},
	{sql: "SELECT JSON_EXTRACT(doc, '$.a') FROM t", want: read()},
	{sql: "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE a > ?)", want: read()},
	{sql: "WITH x AS (SELECT 1) SELECT * FROM x", want: read()},
	{sql: "SELECT SLEEP(1)", want: read()},
	{sql: "SELECT CURRENT_DATE, CURRENT_TIMESTAMP, UTC_TIME, LOCALTIME", want: read()}, // FuncExprs in Vitess
	{sql: "SELECT @@version, @@session.sql_mode", want: read()},
	{sql: "SHOW TABLES", want: read()},
	{sql: "SHOW WARNINGS", want: read()},
	{sql: "DESCRIBE t", want: read()},
	{sql: "EXPLAIN SELECT * FROM t", want: read()},
	{sql: "EXPLAIN DELETE FROM t", want: read()},

	// Reads that need the primary.
	{sql: "SELECT * FROM t FOR UPDATE", want: primaryRead("FOR UPDATE")},
	{sql: "SELECT * FROM t WHERE id = ? LOCK IN SHARE MODE", want: primaryRead("LOCK IN SHARE MODE")},
	{sql: "SELECT * FROM t FOR SHARE", want: primaryRead("FOR SHARE")},
	{sql: "SELECT * FROM t FOR UPDATE NOWAIT", want: primaryRead("FOR UPDATE")},
	{sql: "SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)", want: primaryRead("FOR UPDATE")},
	{sql: "SELECT 1 UNION (SELECT 2 FOR UPDATE)", want: primaryRead("FOR UPDATE")},
	{sql: "SELECT LAST_INSERT_ID()", want: primaryRead("last_insert_id()")},
	{sql: "SELECT ROW_COUNT()", want: primaryRead("row_count()")},
	{sql: "SELECT RELEASE_LOCK('a')", want: primaryRead("RELEASE_LOCK()")},
	{sql: "SELECT IS_FREE_LOCK('a')", want: primaryRead("named lock function")},
	{sql: "EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE", want: primaryRead("FOR UPDATE")},

	// Writes.
	{sql: "INSERT INTO t VALUES (1)", want: write("INSERT")},
	{sql: "INSERT INTO t (a, b) VALUES (?, ?)", want: write("INSERT")},
	{sql: "INSERT INTO t (a) VALUES (?) ON DUPLICATE KEY UPDATE a = VALUES(a)", want: write("INSERT ... ON DUPLICATE KEY UPDATE")},
	{sql: "INSERT INTO t SELECT * FROM u", want: write("INSERT")},
	{sql: "REPLACE INTO t VALUES (1)", want: write("REPLACE")},
	{sql: "UPDATE t SET a = ? WHERE id = ?", want: write("UPDATE")},
	{sql: "DELETE FROM t WHERE id = 1", want: write("DELETE")},
	{sql: "CALL proc()", want: write("CALL")},
	{sql: "CALL proc(?, @out)", want: Analysis{Class: Write, MustPrimary: true, Reason: "CALL", Pin: "user variable"}},
	{sql: "LOAD DATA INFILE '/tmp/x' INTO TABLE t", want: write("LOAD DATA")},
	{sql: "LOAD DATA LOCAL INFILE 'x' INTO TABLE t", want: write("LOAD DATA")},
	{sql: "SELECT 1 INTO OUTFILE '/tmp/x'", want: write("SELECT INTO OUTFILE")},
	{sql: "CREATE TABLE t (a int)", want: write("CREATE TABLE")},
	{sql: "CREATE TABLE t2 AS SELECT * FROM t", want: write("CREATE TABLE")},
	{sql: "ALTER TABLE t ADD COLUMN c int", want: write("ALTER TABLE")},
	{sql: "TRUNCATE TABLE t", want: write("TRUNCATE")},
	{sql: "DROP TABLE t", want: write("DROP TABLE")},
	{sql: "DO SLEEP(1)", want: write("admin statement")},
	{sql: "FLUSH TABLES", want: write("FLUSH")},
	{sql: "ANALYZE TABLE t", want: write("ANALYZE TABLE")},
	{sql: "CREATE VIEW v AS SELECT GET_LOCK('a', 1)", want: write("CreateView")}, // defines, does not run
	{sql: "SET GLOBAL max_connections = 10", want: write("SET GLOBAL")},
	{sql: "SET @@global.max_connections = 10", want: write("SET GLOBAL")},
	{sql: "EXPLAIN ANALYZE DELETE FROM t", want: write("DELETE")},
	{sql: "SELECT NEXTVAL(s)", want: write("nextval()")},
	{sql: "SELECT next 1 values FROM s", want: write("NEXT VALUE")},

	// Function calls.
	{sql: "SELECT my_func(1)", want: write("function my_func()")},
	{sql: "SELECT my_func(1)", opts: roMyFunc, want: read()},
	{sql: "SELECT mydb.my_func(1)", opts: roMyFunc, want: read()},
	{sql: "SELECT mydb.my_func(1)", opts: roOtherFunc, want: write("function mydb.my_func()")},
	{sql: "SELECT LOWER('A')", opts: writeLower, want: write("function lower()")},
	{sql: "UPDATE t SET a = my_func(1)", want: write("UPDATE")},

	// Transaction control.
	{sql: "BEGIN", want: Analysis{Class: TxnBegin, MustPrimary: true, Reason: rwTxn}},
	{sql: "BEGIN WORK", want: Analysis{Class: TxnBegin, MustPrimary: true, Reason: rwTxn}},
	{sql: "start transaction", want: Analysis{Class: TxnBegin, MustPrimary: true, Reason: rwTxn}},
	{sql: "START TRANSACTION READ ONLY", want: Analysis{Class: TxnBegin, ReadOnlyBegin: true}},
	{sql: "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", want: Analysis{Class: TxnBegin, ReadOnlyBegin: true}},
	{sql: "START TRANSACTION READ WRITE", want: Analysis{Class: TxnBegin, MustPrimary: true, Reason: rwTxn}},
	{sql: "START TRANSACTION WITH CONSISTENT SNAPSHOT", want: Analysis{Class: TxnBegin, MustPrimary: true, Reason: rwTxn}},
	{sql: "COMMIT", want: Analysis{Class: TxnEnd}},
	{sql: "COMMIT WORK", want: Analysis{Class: TxnEnd}},
	{sql: "rollback", want: Analysis{Class: TxnEnd}},
	{sql: "SAVEPOINT a", want: Analysis{Class: Other}},
	{sql: "ROLLBACK TO a", want: Analysis{Class: Other}},
	{sql: "RELEASE SAVEPOINT a", want: Analysis{Class: Other}},
	{sql: "BEGIN; UPDATE t SET a = 1; COMMIT", want: Analysis{Class: Write, Statements: 3, MustPrimary: true, Reason: "UPDATE"}},
	{sql: "START TRANSACTION READ ONLY; SELECT 1; COMMIT", want: Analysis{Class: Read, Statements: 3, ReadOnlyBegin: true}},
	{sql: "SELECT 1; SELECT 2", want: Analysis{Class: Read, Statements: 2}},

	// Session state.
	{sql: "SET NAMES utf8mb4", want: Analysis{Class: Session, Sets: []SetOp{{Name: "names", Value: "utf8mb4"}}, Value: "utf8mb4"}},
	{sql: "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_ci'", want: Analysis{Class: Session, Sets: []SetOp{{Name: "names", Value: "utf8mb4"}}, Value: "utf8mb4"}},
	{sql: "SET CHARACTER SET utf8", want: Analysis{Class: Session, Sets: []SetOp{{Name: "character_set", Value: "utf8"}}, Value: "utf8"}},
	{sql: "SET CHARSET utf8", want: Analysis{Class: Session, Sets: []SetOp{{Name: "character_set", Value: "utf8"}}, Value: "utf8"}},
	{sql: "SET SESSION sql_mode = 'STRICT_TRANS_TABLES'", want: Analysis{Class: Session, Sets: []SetOp{{Name: "sql_mode", Value: "STRICT_TRANS_TABLES"}}, Value: "STRICT_TRANS_TABLES"}},
	{sql: "SET sql_mode = TRADITIONAL", want: Analysis{Class: Session, Sets: []SetOp{{Name: "sql_mode", Value: "TRADITIONAL"}}, Value: "TRADITIONAL"}},
	{sql: "SET autocommit = 0", want: Analysis{Class: Session, Sets: []SetOp{{Name: "autocommit", Value: "0"}}, Value: "0"}},
	{sql: "SET @@session.wait_timeout = 10", want: Analysis{Class: Session, Sets: []SetOp{{Name: "wait_timeout", Value: "10"}}, Value: "10"}},
	{sql: "SET LOCAL sql_mode = ''", want: Analysis{Class: Session, Sets: []SetOp{{Name: "sql_mode"}}}},
	{sql: "SET sql_mode = CONCAT(@@sql_mode, ',NO_ZERO_DATE')", want: Analysis{Class: Session, Sets: []SetOp{{Name: "sql_mode"}}}},
	{sql: "SET sql_mode = DEFAULT", want: Analysis{Class: Session, Sets: []SetOp{{Name: "sql_mode", Reset: true}}}},
	{sql: "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", want: Analysis{Class: Session,
		Sets: []SetOp{{Name: "transaction_isolation", Value: "read-committed", Local: true}}, Value: "read-committed"}},
	{sql: "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", want: Analysis{Class: Session,
		Sets: []SetOp{{Name: "transaction_isolation", Value: "read-committed"}}, Value: "read-committed"}},
	{sql: "SET autocommit = 1, time_zone = '+00:00'", want: Analysis{Class: Session,
		Sets: []SetOp{{Name: "autocommit", Value: "1"}, {Name: "time_zone", Value: "+00:00"}}}},
	{sql: "USE db1", want: Analysis{Class: Session, Sets: []SetOp{{Name: "database", Value: "db1"}}, Value: "db1"}},
	{sql: "USE `my db`", want: Analysis{Class: Session, Sets: []SetOp{{Name: "database", Value: "my db"}}, Value: "my db"}},
	{sql: "DEALLOCATE PREPARE s", want: Analysis{Class: Session, Deallocate: &Deallocate{Name: "s"}}},
	{sql: "SET switchyard.target = replica", want: Analysis{Class: Session, Sets: []SetOp{{Name: "switchyard.target", Value: "replica"}}, Value: "replica"}},
	{sql: "set SWITCHYARD.Target = 'primary';", want: Analysis{Class: Session, Sets: []SetOp{{Name: "switchyard.target", Value: "primary"}}, Value: "primary"}},
	{sql: "SET switchyard.target = primary; DROP TABLE t", want: parseErr()},

	// Pins.
	{sql: "SET @x = 1", want: userVar(Session)},
	{sql: "SELECT @x", want: userVar(Read)},
	{sql: "SELECT * FROM t WHERE id = @id", want: userVar(Read)},
	{sql: "SELECT a INTO @x FROM t LIMIT 1", want: userVar(Read)},
	{sql: "SET autocommit = 1, @b = 2", want: Analysis{Class: Session, MustPrimary: true, Reason: "user variable", Pin: "user variable",
		Sets: []SetOp{{Name: "autocommit", Value: "1"}}, Value: "1"}},
	{sql: "LOCK TABLES t WRITE", want: Analysis{Class: Other, MustPrimary: true, Reason: "LOCK TABLES", Pin: "LOCK TABLES"}},
	{sql: "LOCK TABLES t READ, u WRITE", want: Analysis{Class: Other, MustPrimary: true, Reason: "LOCK TABLES", Pin: "LOCK TABLES"}},
	{sql: "UNLOCK TABLES", want: Analysis{Class: Other}},
	{sql: "SELECT GET_LOCK('a', 1)", want: Analysis{Class: Read, MustPrimary: true, Reason: "GET_LOCK()", Pin: "GET_LOCK()"}},
	{sql: "SELECT GET_LOCK(?, ?)", want: Analysis{Class: Read, MustPrimary: true, Reason: "GET_LOCK()", Pin: "GET_LOCK()"}},
	{sql: "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10", want: Analysis{Class: Read, MustPrimary: true, Reason: "SQL_CALC_FOUND_ROWS", Pin: "SQL_CALC_FOUND_ROWS"}},
	{sql: "SELECT FOUND_ROWS()", want: Analysis{Class: Read, MustPrimary: true, Reason: "FOUND_ROWS()", Pin: "FOUND_ROWS()"}},
	{sql: "CREATE TEMPORARY TABLE tt (a int)", want: Analysis{Class: Write, MustPrimary: true, Reason: "CREATE TABLE", Pin: "CREATE TEMPORARY TABLE"}},
	{sql: "PREPARE s FROM 'SELECT 1'", want: Analysis{Class: Session, MustPrimary: true, Reason: "PREPARE", Pin: "PREPARE"}},
	{sql: "EXECUTE s USING @a", want: Analysis{Class: Write, MustPrimary: true, Reason: "EXECUTE", Pin: "user variable"}},

	// Hints.
	{sql: "/* switchyard:replica */ SELECT * FROM t", want: Analysis{Class: Read, Hint: HintReplica}},
	{sql: "SELECT * FROM t # switchyard:primary", want: Analysis{Class: Read, Hint: HintPrimary}},
	{sql: "SELECT * FROM t -- switchyard:replica", want: Analysis{Class: Read, Hint: HintReplica}},
	{sql: "SELECT /* switchyard:primary */ * FROM t", want: Analysis{Class: Read, Hint: HintPrimary}},
	{sql: "SELECT '/* switchyard:replica */'", want: read()},
	{sql: "SELECT \"-- switchyard:primary\"", want: read()},
	{sql: "/* switchyard:primary */ INSERT INTO t VALUES (1)", want: Analysis{Class: Write, MustPrimary: true, Reason: "INSERT", Hint: HintPrimary}},

	// Garbage and edge cases.
	{sql: "SELEC 1", want: parseErr()},
	{sql: "XA START 'x'", want: parseErr()},
	{sql: "SELECT 1\x00; DROP TABLE t", want: parseErr()},
	{sql: "SET x := 1", want: parseErr()},
	{sql: "", want: Analysis{Class: Other, Statements: none}},
	{sql: "/* just a comment */", want: Analysis{Class: Other, Statements: none}},
	{sql: "KILL 5", want: Analysis{Class: Other}},
}
