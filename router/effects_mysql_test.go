package router

import (
	"reflect"
	"testing"
	"unsafe"
)

// TestScanMySQL: the session effects of MySQL texts, by the scanner and
// through an analysis (the same verdict).
func TestScanMySQL(t *testing.T) {
	cases := []struct {
		q      string
		pin    string
		sets   []string
		use    string
		txNext bool
		kill   *Kill
		count  int
		lastID string
	}{
		{q: "SELECT 1", count: 1},
		{q: "select * from t where a = '@x' and b = \"GET_LOCK(\" -- @y\n", count: 1},
		{q: "SELECT @x", count: 1},
		{q: "SELECT @x := 1", pin: "user variable @x", count: 1},
		{q: "SELECT a, b INTO @x, @y FROM t", pin: "user variable @x", count: 1},
		{q: "SELECT 1 FROM t INTO @y", pin: "user variable @y", count: 1},
		{q: "SELECT * FROM t WHERE a = @x", count: 1},
		{q: "SET @a := 1", pin: "user variable @a", count: 1},
		{q: "SELECT @@session.autocommit, @@version", count: 1},
		{q: "SET NAMES utf8mb4", sets: []string{"SET NAMES utf8mb4"}, count: 1},
		{q: "  set session time_zone = '+00:00' ; ", sets: []string{"set session time_zone = '+00:00'"}, count: 1},
		{q: "SET @@SESSION.sql_mode = 'ANSI'", sets: []string{"SET @@SESSION.sql_mode = 'ANSI'"}, count: 1},
		{q: "SET GLOBAL max_connections = 10", count: 1},
		{q: "SET session_track_state_change = OFF", pin: "SET session_track_state_change", count: 1},
		{q: "SET @@session.session_track_state_change = 0, time_zone = '+00:00'", pin: "SET session_track_state_change", count: 1},
		{q: "SET @@global.max_connections = 10", count: 1},
		{q: "SET insert_id = 1000", pin: "SET insert_id", count: 1},
		{q: "SET @@session.rand_seed1 = 1, rand_seed2 = 2", pin: "SET rand_seed1", count: 1},
		{q: "SET time_zone = '+00:00', @@INSERT_ID := 5", pin: "SET insert_id", count: 1},
		{q: "SET sql_mode = 'insert_id'", sets: []string{"SET sql_mode = 'insert_id'"}, count: 1},
		{q: "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", txNext: true, count: 1},
		{q: "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE", sets: []string{"SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE"}, count: 1},
		{q: "SET sql_mode = @old", pin: "user variable @old", count: 1},
		{q: "USE `my db`", use: "my db", count: 1},
		{q: "use Orders_0", use: "Orders_0", count: 1},
		{q: "LOCK TABLES t WRITE", pin: "LOCK TABLES", count: 1},
		{q: "SELECT GET_LOCK('a', 1)", pin: "GET_LOCK()", count: 1},
		{q: "SELECT get_lock ('a', 1)", pin: "GET_LOCK()", count: 1},
		{q: "SELECT SQL_CALC_FOUND_ROWS * FROM t", pin: "SQL_CALC_FOUND_ROWS", count: 1},
		{q: "CREATE TEMPORARY TABLE x (a int)", pin: "temporary table", count: 1},
		{q: "create or replace temporary table x (a int)", pin: "temporary table", count: 1},
		{q: "FLUSH TABLES WITH READ LOCK", pin: "FLUSH ... WITH READ LOCK", count: 1},
		{q: "PREPARE s FROM 'SELECT 1'", pin: "SQL PREPARE", count: 1},
		{q: "XA START 'x'", pin: "XA transaction", count: 1},
		{q: "/*!40101 SET NAMES utf8 */", sets: []string{"/*!40101 SET NAMES utf8 */"}, count: 1},
		{q: "/* SET @x = 1 */ SELECT 1", count: 1},
		{q: "# comment\nSELECT 1", count: 1},
		{q: "GRANT ALL ON *.* TO 'u'@'localhost'", count: 1},
		{q: "CREATE DEFINER=`root`@`localhost` VIEW v AS SELECT 1", count: 1},
		{q: "SET NAMES latin1; SELECT 1; USE other", sets: []string{"SET NAMES latin1"}, use: "other", count: 3},
		{q: "SELECT 'a;b'; SELECT 2", count: 2},
		{q: "KILL QUERY 42", kill: &Kill{Query: true, ID: 42}, count: 1},
		{q: "kill 7", kill: &Kill{ID: 7}, count: 1},
		{q: "KILL CONNECTION 7", kill: &Kill{ID: 7}, count: 1},
		{q: "KILL HARD QUERY 9", kill: &Kill{Query: true, ID: 9}, count: 1},
		{q: "KILL QUERY ID 9", kill: &Kill{}, count: 1},
		{q: "KILL USER app", kill: &Kill{}, count: 1},
		{q: "SELECT 'it''s', \"a\\\"b\", `we``ird` FROM t", count: 1},
		{q: "", count: 0},
		{q: "select last_insert_id()", lastID: "LAST_INSERT_ID()", count: 1},
		{q: "SELECT LAST_INSERT_ID() AS id;", lastID: "id", count: 1},
		{q: "SELECT LAST_INSERT_ID() + 1", count: 1},
		{q: "SELECT LAST_INSERT_ID(5)", count: 1},
		{q: ";;", count: 0},
		{q: "SELECT 'unterminated", count: 1},
	}
	an := NewAnalyzer(MySQL, Options{})
	for _, c := range cases {
		ea, ok := an.Analyze(c.q).MySQLEffects()
		if !ok {
			ea = ScanMySQL(c.q) // a verdict of the fast path
		}
		for _, e := range []MySQLEffects{ScanMySQL(c.q), ea} {
			if e.Pin != c.pin || !reflect.DeepEqual(e.Sets, c.sets) || e.Use != c.use || e.TxNext != c.txNext ||
				!reflect.DeepEqual(e.Kill, c.kill) || e.Count != c.count || e.Alias != c.lastID {
				t.Errorf("%q: got pin=%q sets=%q use=%q txNext=%v kill=%+v count=%d", c.q, e.Pin, e.Sets, e.Use, e.TxNext, e.Kill, e.Count)
			}
		}
	}
}

func TestScanMySQLHugeStatement(t *testing.T) {
	q := "INSERT INTO t VALUES "
	for i := 0; i < 10000; i++ {
		q += "(1, 'x'),"
	}
	q += "(@v, GET_LOCK('a', 1))"
	e := ScanMySQL(q)
	if e.Pin == "" {
		t.Fatal("marker past the token limit missed")
	}
}

func BenchmarkScanMySQL(b *testing.B) {
	q := "SELECT id, name, email FROM users WHERE id = 42 AND status = 'active' ORDER BY created_at DESC LIMIT 10"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ScanMySQL(q)
	}
}

// A caller that scans its reusable buffer keeps, after Clone, effects
// whose strings survive the buffer's next use.
func TestMySQLEffectsCloneOwnsStrings(t *testing.T) {
	for _, q := range []string{"SET @@session.sql_mode = 'ANSI'; SET NAMES utf8mb4", "USE shop", "SELECT LAST_INSERT_ID() AS `id`", "SET @a := 1"} {
		buf := []byte(q)
		want := ScanMySQL(q)
		got := ScanMySQL(unsafe.String(&buf[0], len(buf))).Clone()
		for i := range buf {
			buf[i] = 'x'
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: after the buffer changed, %+v; want %+v", q, got, want)
		}
	}
}

// Statements that read the previous statement's diagnostics or
// LAST_INSERT_ID are marked, in any spelling; others are not.
func TestScanMySQLDiagnostics(t *testing.T) {
	type flags struct{ warn, rows, reads, sets, rowCount, foundRows bool }
	cases := []struct {
		q    string
		want flags
	}{
		{"SHOW WARNINGS", flags{warn: true}},
		{"show errors limit 1", flags{warn: true}},
		{"SHOW COUNT(*) WARNINGS", flags{warn: true}},
		{"SHOW COUNT(*) ERRORS", flags{warn: true}},
		{"SELECT @@warning_count", flags{warn: true}},
		{"SELECT @@session.error_count", flags{warn: true}},
		{"GET DIAGNOSTICS @n = NUMBER", flags{warn: true}},
		{"SELECT ROW_COUNT()", flags{rows: true, rowCount: true}},
		{"SELECT row_count() AS n", flags{rows: true, rowCount: true}},
		{"SELECT ROW_COUNT() + 0", flags{rows: true}},
		{"SELECT FOUND_ROWS()", flags{rows: true, foundRows: true}},
		{"SELECT last_insert_id()+0", flags{reads: true}},
		{"SELECT @@last_insert_id", flags{reads: true}},
		{"SELECT @@identity", flags{reads: true}},
		{"SELECT LAST_INSERT_ID(12345)", flags{reads: true, sets: true}},
		{"UPDATE seq SET id = LAST_INSERT_ID(id + 1)", flags{reads: true, sets: true}},
		{"SHOW TABLES", flags{}},
		{"SELECT row_count FROM stats", flags{}},
		{"SELECT 'SHOW WARNINGS', '@@identity'", flags{}},
		{"SELECT @@GLOBAL.warning_count", flags{}},
	}
	for _, c := range cases {
		e := ScanMySQL(c.q)
		got := flags{e.DiagWarn, e.DiagRows, e.ReadsID, e.SetsID, e.RowCount, e.FoundRows}
		if got != c.want {
			t.Errorf("%q: got %+v, want %+v", c.q, got, c.want)
		}
	}
}
