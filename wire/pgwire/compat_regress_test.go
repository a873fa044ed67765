package pgwire

import (
	"context"
	"errors"
	"maps"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Regression tests for failures that pgx's own suite showed through the
// proxy (make compat).

// A Close of a prepared statement sent in the same write as a Flush
// (pgx's pipeline: SendDeallocate, SendFlushRequest, Flush) gets its
// CloseComplete. The proxy answers such a Close itself (the statement
// stays prepared on the servers for other clients) and sends the server a
// Close of a statement that never exists, to have a reply to send its own
// behind. That Close went out after the client's Flush, where the server
// does not flush its reply, and the client waited for good (pgx's
// TestPipelineFlushForSingleRequests hung until its 120 s deadline).
func TestPipelineCloseWithFlushIsAnswered(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	// Every reply must come within 5 s.
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pl := conn.StartPipeline(pctx)
	pl.SendPrepare("ps", "select $1::text as msg", nil)
	pl.SendFlushRequest()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	if res, err := pl.GetResults(); err != nil {
		t.Fatalf("prepare: %v", err)
	} else if _, ok := res.(*pgconn.StatementDescription); !ok {
		t.Fatalf("prepare: %T, want a statement description", res)
	}
	if res, err := pl.GetResults(); err != nil || res != nil {
		t.Fatalf("after the prepare: %T %v", res, err)
	}

	pl.SendDeallocate("ps")
	pl.SendFlushRequest()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	if res, err := pl.GetResults(); err != nil {
		t.Fatalf("close: %v (the CloseComplete never came)", err)
	} else if _, ok := res.(*pgconn.CloseComplete); !ok {
		t.Fatalf("close: %T, want CloseComplete", res)
	}
	if res, err := pl.GetResults(); err != nil || res != nil {
		t.Fatalf("after the close: %T %v", res, err)
	}

	pl.SendPipelineSync()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	if res, err := pl.GetResults(); err != nil {
		t.Fatalf("sync: %v", err)
	} else if _, ok := res.(*pgconn.PipelineSync); !ok {
		t.Fatalf("sync: %T", res)
	}
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}

	// The connection goes on, and its lease ended with the Sync.
	if _, err := conn.Exec(ctx, "select 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for activeServers(p.srv) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d server connections still leased", activeServers(p.srv))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A Parse under a statement name the client already uses is refused with
// 42P05, as PostgreSQL refuses it, and the name keeps its statement.
// Before, the proxy bound the name to the new text without a word (pgx's
// TestPrepareIdempotency: "Prepare statement with same name but
// different SQL should have failed but it didn't").
func TestParseOfANameInUseIsRefused(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Prepare(ctx, "test", "select 42::integer", nil); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"select 'fail'::varchar", "select 42::integer"} {
		_, err := conn.Prepare(ctx, "test", sql, nil)
		if got := sqlstate(err); got != "42P05" {
			t.Fatalf("second Parse of %q under the name test: %v (SQLSTATE %q), want 42P05 prepared statement already exists", sql, err, got)
		}
	}
	// The name still runs its first statement, and the session goes on.
	res := conn.ExecPrepared(ctx, "test", nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "42" {
		t.Fatalf("test after the refused Parse: %v %q", res.Err, res.Rows)
	}
	// Once closed, the name is free again.
	if err := conn.Deallocate(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Prepare(ctx, "test", "select 'ok'::varchar", nil); err != nil {
		t.Fatal(err)
	}
	res = conn.ExecPrepared(ctx, "test", nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "ok" {
		t.Fatalf("test after Deallocate and a new Parse: %v %q", res.Err, res.Rows)
	}
}

// A name whose Parse the server refused (or skipped after an earlier
// error in the same request) is free for the next Parse, as on the
// server: pgx prepares the same name again once the SQL is fixed.
func TestNameOfAFailedParseIsFree(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Prepare(ctx, "s1", "select nosuchcolumn", nil); sqlstate(err) != "42703" {
		t.Fatalf("Parse of a bad statement: %v", err)
	}
	// Prepared elsewhere first, so that the proxy answers the Parse of
	// "select 1" itself; it comes after a failing one in one request.
	if _, err := conn.Prepare(ctx, "warm", "select 1", nil); err != nil {
		t.Fatal(err)
	}
	batch := &pgconn.Batch{}
	batch.ExecParams("select 1/0", nil, nil, nil, nil)
	if _, err := conn.ExecBatch(ctx, batch).ReadAll(); sqlstate(err) != "22012" {
		t.Fatalf("batch: %v", err)
	}
	pl := conn.StartPipeline(ctx)
	pl.SendQueryParams("select 1/0", nil, nil, nil, nil)
	pl.SendPrepare("s2", "select 1", nil)
	pl.SendPipelineSync()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		res, err := pl.GetResults()
		if _, ok := res.(*pgconn.PipelineSync); ok {
			break
		}
		if err == nil && res == nil {
			t.Fatal("no PipelineSync")
		}
		if rr, ok := res.(*pgconn.ResultReader); ok {
			rr.Close()
		}
	}
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	for name, sql := range map[string]string{"s1": "select 'one'::text", "s2": "select 'two'::text"} {
		if _, err := conn.Prepare(ctx, name, sql, nil); err != nil {
			t.Fatalf("Parse of %s after its failed Parse: %v", name, err)
		}
		res := conn.ExecPrepared(ctx, name, nil, nil, nil).Read()
		if res.Err != nil || len(res.Rows) != 1 {
			t.Fatalf("%s: %v %q", name, res.Err, res.Rows)
		}
	}
}

// The process ID a client gets in BackendKeyData is a positive int32, as
// PostgreSQL's are: clients keep it in int4 (pg_cancel_backend($1), a
// comparison with pg_stat_activity.pid). Before, any uint32 came out, and
// pgx refused to send half of them as an int4 parameter ("4205240120 is
// greater than maximum value for int4", in pgx's TestFatalTxError).
func TestProcessIDFitsInt4(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 60*time.Second)
	for i := 0; i < 40; i++ {
		conn, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		pid := conn.PID()
		conn.Close(ctx)
		if pid == 0 || pid > math.MaxInt32 {
			t.Fatalf("client %d got process ID %d, not a positive int32", i, pid)
		}
	}
}

// After DDL through the proxy, a client that prepares a statement again
// gets it prepared anew, as PostgreSQL would, not the proxy's statement of
// the same text from before: with the old parameter types (pgx's
// TestStmtCacheInvalidationExec: "unable to encode true into binary
// format for int4"), "cached plan must not change result type"
// (TestStmtCacheInvalidationConn), or "cache lookup failed for type" for a
// type dropped and created again (pgtype's TestEnumCodecValues).
func TestPrepareAfterDDLSeesNewSchema(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	other, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	exec := func(c *pgconn.PgConn, sql string) {
		t.Helper()
		if _, err := c.Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(conn, "DROP TABLE IF EXISTS ddl_regress; DROP TYPE IF EXISTS ddl_regress_ty; CREATE TABLE ddl_regress (f1 int, f2 int); CREATE TYPE ddl_regress_ty AS ENUM ('a', 'b')")
	t.Cleanup(func() { mustExec(t, "DROP TABLE IF EXISTS ddl_regress; DROP TYPE IF EXISTS ddl_regress_ty") })

	insert := "INSERT INTO ddl_regress (f1, f2) VALUES ($1, $2)"
	enum := "SELECT $1::ddl_regress_ty"
	for _, c := range []*pgconn.PgConn{conn, other} {
		sd, err := c.Prepare(ctx, "ins", insert, nil)
		if err != nil || len(sd.ParamOIDs) != 2 || sd.ParamOIDs[0] != 23 {
			t.Fatalf("prepare before the DDL: %v %v", sd, err)
		}
		if _, err := c.Prepare(ctx, "enum", enum, nil); err != nil {
			t.Fatal(err)
		}
	}

	exec(conn, "ALTER TABLE ddl_regress ALTER COLUMN f1 TYPE boolean USING f1::boolean")
	exec(conn, "DROP TYPE ddl_regress_ty; CREATE TYPE ddl_regress_ty AS ENUM ('a', 'b', 'c')")

	for i, c := range []*pgconn.PgConn{conn, other} {
		for _, name := range []string{"ins", "enum"} {
			if err := c.Deallocate(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		sd, err := c.Prepare(ctx, "ins", insert, nil)
		if err != nil {
			t.Fatalf("client %d: prepare after ALTER TABLE: %v", i, err)
		}
		if len(sd.ParamOIDs) != 2 || sd.ParamOIDs[0] != 16 {
			t.Fatalf("client %d: parameter types after ALTER TABLE ... TYPE boolean: %v, want bool (16) first", i, sd.ParamOIDs)
		}
		if _, err := c.Prepare(ctx, "enum", enum, nil); err != nil {
			t.Fatalf("client %d: prepare after the type was created again: %v", i, err)
		}
		res := c.ExecPrepared(ctx, "enum", [][]byte{[]byte("c")}, nil, nil).Read()
		if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "c" {
			t.Fatalf("client %d: enum after the type was created again: %v %q", i, res.Err, res.Rows)
		}
		res = c.ExecPrepared(ctx, "ins", [][]byte{[]byte("t"), []byte("2")}, nil, nil).Read()
		if res.Err != nil {
			t.Fatalf("client %d: insert after ALTER TABLE: %v", i, res.Err)
		}
	}
}

// Regression tests for failures that lib/pq's own suite showed through
// the proxy (make compat-pq).

// A startup parameter the server does not know, or whose value it
// refuses, fails the login, as it does directly (FATAL, the server's
// SQLSTATE and words). Before, the proxy accepted the login and every
// request then failed; lib/pq checks a new connection with a ping and
// took that for a bad connection (its TestRuntimeParameters,
// "DOESNOTEXIST=foo"). A parameter the server accepts still works and is
// in force from the first request.
func TestStartupParameterRefusedAtLogin(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 60*time.Second)
	connect := func(k, v string) (*pgconn.PgConn, error) {
		cfg, err := pgconn.ParseConfig(p.rawDSN("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams[k] = v
		return pgconn.ConnectConfig(ctx, cfg)
	}
	for _, tc := range []struct{ k, v, code string }{
		{"doesnotexist", "foo", "42704"},
		{"statement_timeout", "not a duration", "22023"},
	} {
		conn, err := connect(tc.k, tc.v)
		if err == nil {
			_, qerr := conn.Exec(ctx, "select 1").ReadAll()
			conn.Close(ctx)
			t.Fatalf("%s=%q: login succeeded (first request: %v), want the server's refusal %s at login", tc.k, tc.v, qerr, tc.code)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != tc.code || pe.Severity != "FATAL" {
			t.Fatalf("%s=%q: login error %v, want FATAL %s", tc.k, tc.v, err, tc.code)
		}
	}

	conn, err := connect("statement_timeout", "1234")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	res, err := conn.Exec(ctx, "show statement_timeout").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res[0].Rows[0][0]); got != "1234ms" {
		t.Fatalf("statement_timeout = %q, want 1234ms", got)
	}
}

// Startup parameters the server reports (TimeZone, DateStyle,
// client_encoding, IntervalStyle) are checked at login too: a value the
// server refuses fails the login with its FATAL, as directly, where the
// login succeeded and every request then failed with 22023. A value the
// server takes is reported in its words in the greeting (DateStyle=german
// is "German, DMY"), also at the next login, which the proxy answers from
// what it learnt.
func TestReportedStartupParameterCheckedAtLogin(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 60*time.Second)
	connect := func(dsn string, params map[string]string) (*pgconn.PgConn, error) {
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(cfg.RuntimeParams, params)
		return pgconn.ConnectConfig(ctx, cfg)
	}
	for _, kv := range [][2]string{{"TimeZone", "Mars/Olympus"}, {"DateStyle", "nonsense"}, {"client_encoding", "klingon"}, {"IntervalStyle", "roman"}} {
		conn, err := connect(p.rawDSN("app", "app", "app"), map[string]string{kv[0]: kv[1]})
		if err == nil {
			_, qerr := conn.Exec(ctx, "select 1").ReadAll()
			conn.Close(ctx)
			t.Fatalf("%s=%q: login succeeded (first request: %v), want the server's refusal at login", kv[0], kv[1], qerr)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "22023" || pe.Severity != "FATAL" {
			t.Fatalf("%s=%q: login error %v, want FATAL 22023", kv[0], kv[1], err)
		}
	}
	params := map[string]string{"TimeZone": "europe/paris", "DateStyle": "german", "client_encoding": "utf8", "IntervalStyle": "ISO_8601"}
	greeting := func(dsn string) string {
		conn, err := connect(dsn, params)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var out []string
		for k := range params {
			out = append(out, k+"="+conn.ParameterStatus(k))
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	want := greeting(directDSN())
	for i := 0; i < 2; i++ {
		if got := greeting(p.rawDSN("app", "app", "app")); got != want {
			t.Fatalf("login %d: the greeting reports %s, directly %s", i+1, got, want)
		}
	}
}
