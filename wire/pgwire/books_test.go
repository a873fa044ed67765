package pgwire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// The proxy's books (what each server connection has prepared, what the
// server owes, which settings a client's session has) against what the
// server really did, each checked against a direct connection.

// directDSN is a DSN straight to the test primary.
func directDSN() string {
	return testcluster.PG.DSN(testcluster.PG.Primary, "app", "app", "app")
}

// msgType is the type byte of a backend message.
func msgType(m pgproto3.BackendMessage) byte {
	b, _ := m.Encode(nil)
	return b[0]
}

// receiveUntil reads messages until one of type stop (or ReadyForQuery)
// and returns their types; ErrorResponses are returned as well.
func receiveUntil(t *testing.T, c *pgconn.PgConn, stop byte) (string, []pgproto3.ErrorResponse) {
	t.Helper()
	_ = c.Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.Conn().SetReadDeadline(time.Time{})
	var types []byte
	var errs []pgproto3.ErrorResponse
	for {
		m, err := c.Frontend().Receive()
		if err != nil {
			t.Fatalf("after %q: %v", types, err)
		}
		typ := msgType(m)
		types = append(types, typ)
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			errs = append(errs, *e)
		}
		if typ == stop || typ == 'Z' {
			return string(types), errs
		}
	}
}

// nothingMore checks that nothing else arrives for a while.
func nothingMore(t *testing.T, c *pgconn.PgConn, what string) {
	t.Helper()
	_ = c.Conn().SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	defer c.Conn().SetReadDeadline(time.Time{})
	m, err := c.Frontend().Receive()
	var ne net.Error
	if err == nil {
		t.Fatalf("%s: unexpected %T", what, m)
	} else if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: %v", what, err)
	}
}

func send(t *testing.T, c *pgconn.PgConn, msgs ...pgproto3.FrontendMessage) {
	t.Helper()
	for _, m := range msgs {
		c.Frontend().Send(m)
	}
	if err := c.Frontend().Flush(); err != nil {
		t.Fatal(err)
	}
}

// poolIdle waits for every server connection of the proxy to be back in
// its pool.
func poolIdle(t *testing.T, p *testProxy, what string) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); activeServers(p.srv) != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d server connections still leased", what, activeServers(p.srv))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// COPY FROM STDIN in the extended protocol, as libpq's PQexecParams and
// tokio-postgres's copy_in send it: Parse, Bind, Describe, Execute, Sync,
// then the data, CopyDone or CopyFail, and another Sync. The server
// ignores the Sync it reads during the copy and sends one ReadyForQuery;
// the proxy must expect one, hand the connection back, and serve the next
// client (pool_size 1).
func TestExtendedCopyInTwoSyncs(t *testing.T) {
	p := startProxy(t, "pool_size = 1\nquery_wait_timeout = \"2s\"")
	mustExec(t, `DROP TABLE IF EXISTS books_copy; CREATE TABLE books_copy (id int)`)
	ctx := ctxT(t, 120*time.Second)
	cases := []struct {
		name      string
		firstSync bool // a Sync after Execute (else a Flush)
		data      string
		fail      bool // CopyFail instead of CopyDone
		inTx      bool
	}{
		{name: "sync-copydone", firstSync: true, data: "1\n2\n"},
		{name: "sync-copyfail", firstSync: true, data: "3\n", fail: true},
		{name: "sync-baddata", firstSync: true, data: "x\n"},
		{name: "flush-copydone", data: "4\n"},
		{name: "sync-copydone-in-transaction", firstSync: true, data: "5\n", inTx: true},
	}
	run := func(t *testing.T, dsn string, tc int) (string, string) {
		c, err := pgconn.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		k := cases[tc]
		var got []string
		if k.inTx {
			send(t, c, &pgproto3.Query{String: "BEGIN"})
			s, _ := receiveUntil(t, c, 'Z')
			got = append(got, s)
		}
		var first pgproto3.FrontendMessage = &pgproto3.Flush{}
		if k.firstSync {
			first = &pgproto3.Sync{}
		}
		send(t, c, &pgproto3.Parse{Query: "COPY books_copy FROM STDIN"}, &pgproto3.Bind{},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, first)
		s, _ := receiveUntil(t, c, 'G')
		got = append(got, s)
		var end pgproto3.FrontendMessage = &pgproto3.CopyDone{}
		if k.fail {
			end = &pgproto3.CopyFail{Message: "client gave up"}
		}
		send(t, c, &pgproto3.CopyData{Data: []byte(k.data)}, end, &pgproto3.Sync{})
		s, errs := receiveUntil(t, c, 'Z')
		got = append(got, s)
		for _, e := range errs {
			got = append(got, e.Code)
		}
		nothingMore(t, c, k.name)
		if k.inTx {
			send(t, c, &pgproto3.Query{String: "COMMIT"})
			s, _ := receiveUntil(t, c, 'Z')
			got = append(got, s)
		}
		if dsn != directDSN() {
			// The client is still connected; its server connection is not.
			poolIdle(t, p, k.name)
			other, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
				t.Fatalf("%s: next client: %v", k.name, err)
			}
			other.Close(ctx)
		}
		send(t, c, &pgproto3.Query{String: "SELECT count(*) FROM books_copy"})
		after, _ := receiveUntil(t, c, 'Z')
		return strings.Join(got, " "), after
	}
	for i, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			want, wantAfter := run(t, directDSN(), i)
			got, gotAfter := run(t, p.rawDSN("app", "app", "app"), i)
			if got != want || gotAfter != wantAfter {
				t.Fatalf("through the proxy %q then %q, directly %q then %q", got, gotAfter, want, wantAfter)
			}
			poolIdle(t, p, k.name+" (after)")
		})
	}
}

// proxyName returns the proxy's name for the statement text query.
func proxyName(t *testing.T, p *testProxy, query string) string {
	t.Helper()
	p.srv.stmts.mu.RLock()
	defer p.srv.stmts.mu.RUnlock()
	for k, g := range p.srv.stmts.m {
		if strings.HasPrefix(k.text, query+"\x00") {
			return g.name
		}
	}
	t.Fatalf("no proxy statement for %q", query)
	return ""
}

// DEALLOCATE and DISCARD that reach a server (in a transaction, through
// the extended protocol, pinned, in session mode) leave the books of what
// each server connection has prepared true, so another client's prepared
// statement on that connection (pool_size 1) still works; a client's own
// statement names behave as on a direct connection.
func TestStatementBooksAfterDeallocate(t *testing.T) {
	p := startProxy(t, "pool_size = 1\nquery_wait_timeout = \"3s\"")
	ctx := ctxT(t, 120*time.Second)
	a, err := pgx.Connect(ctx, p.rawDSN("app", "app", "app")) // pgx's statement cache
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	check := func(step string) {
		t.Helper()
		var n int
		if err := a.QueryRow(ctx, "SELECT $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
			t.Fatalf("after %s: another client's prepared statement: %v (%d)", step, err, n)
		}
		poolIdle(t, p, step)
	}
	check("start")

	b, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	simple := func(c *pgconn.PgConn, sql string) error {
		_, err := c.Exec(ctx, sql).ReadAll()
		return err
	}
	extended := func(c *pgconn.PgConn, sql string) error {
		return c.ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err
	}
	for _, s := range []struct {
		name  string
		steps []func(*pgconn.PgConn) error
	}{
		{"BEGIN; DEALLOCATE ALL; COMMIT", []func(*pgconn.PgConn) error{
			func(c *pgconn.PgConn) error { return simple(c, "BEGIN") },
			func(c *pgconn.PgConn) error { return simple(c, "DEALLOCATE ALL") },
			func(c *pgconn.PgConn) error { return simple(c, "COMMIT") },
		}},
		{"BEGIN; DEALLOCATE ALL (extended); COMMIT", []func(*pgconn.PgConn) error{
			func(c *pgconn.PgConn) error { return simple(c, "BEGIN") },
			func(c *pgconn.PgConn) error { return extended(c, "DEALLOCATE ALL") },
			func(c *pgconn.PgConn) error { return simple(c, "COMMIT") },
		}},
		{"DISCARD ALL (extended)", []func(*pgconn.PgConn) error{
			func(c *pgconn.PgConn) error { return extended(c, "DISCARD ALL") },
		}},
		{"BEGIN; DISCARD PLANS; COMMIT", []func(*pgconn.PgConn) error{
			func(c *pgconn.PgConn) error { return simple(c, "BEGIN") },
			func(c *pgconn.PgConn) error { return simple(c, "DISCARD PLANS") },
			func(c *pgconn.PgConn) error { return simple(c, "COMMIT") },
		}},
	} {
		// What PostgreSQL says, then the same through the proxy.
		d, err := pgconn.Connect(ctx, directDSN())
		if err != nil {
			t.Fatal(err)
		}
		for i, step := range s.steps {
			want, got := step(d), step(b)
			if sqlstate(want) != sqlstate(got) {
				t.Fatalf("%s, step %d: through the proxy %v, directly %v", s.name, i, got, want)
			}
		}
		d.Close(ctx)
		check(s.name)
	}

	// The client's own names: DEALLOCATE in a transaction, then Bind;
	// between runs something else on the same connection first (through
	// the proxy: another client drops every statement there).
	own := func(c *pgconn.PgConn, between func()) []string {
		var out []string
		note := func(err error) {
			out = append(out, sqlstate(err))
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				out = append(out, pe.Message)
			}
		}
		_, err := c.Prepare(ctx, "s1", "SELECT 7", nil)
		note(err)
		note(simple(c, "BEGIN"))
		note(simple(c, "DEALLOCATE s1"))
		res, err := c.Exec(ctx, "COMMIT").ReadAll()
		note(err)
		if err == nil {
			out = append(out, res[0].CommandTag.String())
		}
		note(c.ExecPrepared(ctx, "s1", nil, nil, nil).Read().Err)
		_, err = c.Prepare(ctx, "s1", "SELECT 7", nil)
		note(err)
		r := c.ExecPrepared(ctx, "s1", nil, nil, nil).Read()
		note(r.Err)
		if r.Err == nil {
			out = append(out, string(r.Rows[0][0]))
		}
		_, err = c.Prepare(ctx, "s2", "SELECT 8", nil)
		note(err)
		between()
		// Deallocated where the connection lacks it.
		note(simple(c, "BEGIN"))
		note(simple(c, "DEALLOCATE s2"))
		note(simple(c, "COMMIT"))
		note(c.ExecPrepared(ctx, "s2", nil, nil, nil).Read().Err)
		// In a failed transaction: refused as PostgreSQL does; s1 stays.
		note(simple(c, "BEGIN"))
		note(simple(c, "SELECT 1/0"))
		note(simple(c, "DEALLOCATE s1"))
		note(simple(c, "ROLLBACK"))
		r = c.ExecPrepared(ctx, "s1", nil, nil, nil).Read()
		note(r.Err)
		if r.Err == nil {
			out = append(out, string(r.Rows[0][0]))
		}
		return out
	}
	d, err := pgconn.Connect(ctx, directDSN())
	if err != nil {
		t.Fatal(err)
	}
	want := own(d, func() {})
	d.Close(ctx)
	got := own(b, func() {
		e, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(ctx)
		if _, err := e.Exec(ctx, "BEGIN; DEALLOCATE ALL; COMMIT").ReadAll(); err != nil {
			t.Fatal(err)
		}
	})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("a client's own names:\nthrough the proxy %q\ndirectly          %q", got, want)
	}
	check("the client's own DEALLOCATE")

	// Pinned (SQL PREPARE) and session mode: DEALLOCATE ALL and DISCARD
	// ALL reach the server outside a transaction.
	for _, s := range []struct{ name, user, pin, drop string }{
		{"pinned", "app", "PREPARE pinme AS SELECT 1", "DEALLOCATE ALL"},
		{"session mode", "app_session", "", "DISCARD ALL"},
	} {
		script := func(c *pgconn.PgConn) []string {
			var out []string
			note := func(err error) { out = append(out, sqlstate(err)) }
			if s.pin != "" {
				note(simple(c, s.pin))
			}
			_, err := c.Prepare(ctx, "s3", "SELECT 9", nil)
			note(err)
			note(simple(c, s.drop))
			note(c.ExecPrepared(ctx, "s3", nil, nil, nil).Read().Err)
			_, err = c.Prepare(ctx, "s3", "SELECT 9", nil)
			note(err)
			r := c.ExecPrepared(ctx, "s3", nil, nil, nil).Read()
			note(r.Err)
			if r.Err == nil {
				out = append(out, string(r.Rows[0][0]))
			}
			return out
		}
		d, err := pgconn.Connect(ctx, directDSN())
		if err != nil {
			t.Fatal(err)
		}
		want := script(d)
		d.Close(ctx)
		p2 := startProxy(t, "pool_size = 1\nquery_wait_timeout = \"3s\"")
		c, err := pgconn.Connect(ctx, p2.rawDSN(s.user, "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		got := script(c)
		c.Close(ctx)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s:\nthrough the proxy %q\ndirectly          %q", s.name, got, want)
		}
	}
}

// DEALLOCATE of the client's own statement name sent through the extended
// protocol (psycopg 3 with libpq before 17 evicts its prepared statements
// this way: Parse/Bind/Execute of "DEALLOCATE _pg3_0") drops the
// statement as on a direct connection: outside and inside a transaction,
// on a connection that has it prepared and on one that lacks it (another
// client dropped everything there; pool_size 1), and the name can be
// prepared again. It went to the server as the client wrote it, naming a
// statement the server only knows by the proxy's name: 26000 "prepared
// statement does not exist", and the name stayed taken (42P05 on the next
// Parse of it).
func TestDeallocateOwnNameExtended(t *testing.T) {
	p := startProxy(t, "pool_size = 1\nquery_wait_timeout = \"3s\"")
	ctx := ctxT(t, 120*time.Second)
	script := func(c *pgconn.PgConn, between func()) []string {
		var out []string
		note := func(err error) { out = append(out, sqlstate(err)) }
		simple := func(sql string) { _, err := c.Exec(ctx, sql).ReadAll(); note(err) }
		extended := func(sql string) {
			r := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
			note(r.Err)
			if r.Err == nil {
				out = append(out, r.CommandTag.String())
			}
		}
		run := func(name string) {
			r := c.ExecPrepared(ctx, name, nil, nil, nil).Read()
			note(r.Err)
			if r.Err == nil {
				out = append(out, string(r.Rows[0][0]))
			}
		}
		prepare := func(name, sql string) { _, err := c.Prepare(ctx, name, sql, nil); note(err) }

		prepare("e1", "SELECT 11")
		extended("DEALLOCATE e1")
		run("e1")
		prepare("e1", "SELECT 12")
		run("e1")

		simple("BEGIN")
		extended("DEALLOCATE PREPARE e1")
		simple("COMMIT")
		run("e1")

		prepare("e2", "SELECT 13")
		between()
		extended("DEALLOCATE e2") // where the connection lacks it
		run("e2")
		prepare("e2", "SELECT 14")
		run("e2")

		extended("DEALLOCATE nosuch")

		// Through a named portal, in a transaction.
		prepare("e3", "SELECT 15")
		simple("BEGIN")
		send(t, c, &pgproto3.Parse{Query: "DEALLOCATE e3"}, &pgproto3.Bind{DestinationPortal: "pd"},
			&pgproto3.Execute{Portal: "pd"}, &pgproto3.Sync{})
		types, errs := receiveUntil(t, c, 'Z')
		out = append(out, types, fmt.Sprint(len(errs)))
		simple("COMMIT")
		run("e3")
		prepare("e3", "SELECT 16")
		run("e3")
		return out
	}
	d, err := pgconn.Connect(ctx, directDSN())
	if err != nil {
		t.Fatal(err)
	}
	want := script(d, func() {})
	d.Close(ctx)
	c, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	got := script(c, func() {
		e, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(ctx)
		if _, err := e.Exec(ctx, "BEGIN; DEALLOCATE ALL; COMMIT").ReadAll(); err != nil {
			t.Fatal(err)
		}
	})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("through the proxy %q\ndirectly          %q", got, want)
	}
	// The server connection's books saw the statements go: another
	// client preparing the same texts gets them prepared again.
	a, err := pgx.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	for _, q := range []string{"SELECT 11", "SELECT 13", "SELECT 15"} {
		var n int
		if err := a.QueryRow(ctx, q+" WHERE $1::int = 1", 1).Scan(&n); err != nil {
			t.Fatalf("another client's %s: %v", q, err)
		}
		if _, err := a.Prepare(ctx, "", q); err != nil {
			t.Fatalf("another client's %s: %v", q, err)
		}
		if err := a.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("another client's %s: %v", q, err)
		}
	}
	poolIdle(t, p, "the end")
}

// The proxy's own statement names cannot be described, bound, executed or
// deallocated by a client that did not prepare them: it gets PostgreSQL's
// 26000, the transaction fails as it would, and the other client's
// statement keeps working.
func TestProxyStatementNamesRefused(t *testing.T) {
	p := startProxy(t, "pool_size = 1\nquery_wait_timeout = \"3s\"")
	ctx := ctxT(t, 120*time.Second)
	a, err := pgx.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	check := func(step string) {
		t.Helper()
		var n int
		if err := a.QueryRow(ctx, "SELECT $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
			t.Fatalf("after %s: another client's prepared statement: %v (%d)", step, err, n)
		}
		poolIdle(t, p, step)
	}
	check("start")
	name := proxyName(t, p, "SELECT $1::int + 1")

	type step struct {
		what string
		msgs []pgproto3.FrontendMessage
	}
	q := func(sql string) step { return step{sql, []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}} }
	steps := [][]step{
		{q("DEALLOCATE " + name)},
		{q("DEALLOCATE PREPARE " + strings.ToUpper(name))},
		{q("EXECUTE " + name + "(1)")},
		{{"extended EXECUTE", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "EXECUTE " + name + "(1)"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}}},
		{{"Describe", []pgproto3.FrontendMessage{&pgproto3.Describe{ObjectType: 'S', Name: name}, &pgproto3.Sync{}}}},
		{{"Bind", []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: name, Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{}, &pgproto3.Sync{}}}},
		{{"Close", []pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S', Name: name}, &pgproto3.Sync{}}}},
		{q("BEGIN"), {"Bind in a transaction", []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{}}}, q("SELECT 1"), q("COMMIT")},
		{q("BEGIN"), q("DEALLOCATE " + name), q("COMMIT")},
	}
	run := func(dsn string, seq []step) string {
		c, err := pgconn.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var out []string
		for _, s := range seq {
			send(t, c, s.msgs...)
			types, errs := receiveUntil(t, c, 'Z')
			out = append(out, types)
			for _, e := range errs {
				out = append(out, e.Code+" "+e.Message)
			}
			out = append(out, string(c.TxStatus()))
		}
		return strings.Join(out, " | ")
	}
	// PREPARE of a proxy name: refused as reserved (directly it would
	// succeed), and it pins nothing.
	pins := counterSum(t, "switchyard_session_pins_total")
	for _, seq := range [][]step{
		{q("PREPARE " + name + " AS SELECT 1")},
		{{"extended PREPARE", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "PREPARE " + name + " AS SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}}},
	} {
		got := run(p.rawDSN("app", "app", "app"), seq)
		if want := `EZ | 42939 prepared statement name "` + name + `" is reserved | I`; got != want {
			t.Fatalf("%s: %s, want %s", seq[0].what, got, want)
		}
		check(seq[0].what)
	}
	if n := counterSum(t, "switchyard_session_pins_total") - pins; n != 0 {
		t.Fatalf("a refused PREPARE pinned %v sessions", n)
	}
	for _, seq := range steps {
		want := run(directDSN(), seq) // the name does not exist on a direct connection
		if seq[0].what == "extended EXECUTE" {
			// The proxy refuses SQL naming its statements at Parse, where
			// PostgreSQL gets as far as Execute: same error, earlier.
			want = strings.Replace(want, "12EZ", "EZ", 1)
		}
		got := run(p.rawDSN("app", "app", "app"), seq)
		if got != want {
			t.Fatalf("%s:\nthrough the proxy %s\ndirectly          %s", seq[0].what, got, want)
		}
		check(seq[0].what)
	}
}

// A SET undone by ROLLBACK TO SAVEPOINT (also after a failed statement)
// is not carried to the client's next server connection; one kept by
// RELEASE and COMMIT is. What the client then sees on another server
// connection equals what a direct connection sees after the same script,
// sent as simple queries and through the extended protocol.
func TestRollbackToSavepointSettings(t *testing.T) {
	for _, extended := range []bool{false, true} {
		t.Run(fmt.Sprintf("extended=%v", extended), func(t *testing.T) { testRollbackToSavepointSettings(t, extended) })
	}
}

func testRollbackToSavepointSettings(t *testing.T, extended bool) {
	p := startProxy(t, "pool_size = 2")
	ctx := ctxT(t, 120*time.Second)
	script := []string{
		"SET work_mem = '2MB'",
		"BEGIN",
		"SAVEPOINT a",
		"SET work_mem = '7MB'",
		"SET lock_timeout = '3s'",
		"ROLLBACK TO SAVEPOINT a",
		"SET statement_timeout = '5s'",
		"SAVEPOINT b",
		"SET search_path = pg_catalog, public",
		"RELEASE SAVEPOINT b",
		"SAVEPOINT c",
		"SET idle_in_transaction_session_timeout = '9s'",
		"SELECT 1/0",
		"ROLLBACK TO SAVEPOINT c",
		"SAVEPOINT d; SET TimeZone = 'Asia/Tokyo'; SET lock_timeout = '4s'; SELECT 1/0", // one statement each when extended
		"ROLLBACK TO d",
		"SAVEPOINT e",
		"SET application_name = 'books'",
		"RELEASE e",
		"SELECT pg_backend_pid()",
		"COMMIT",
		"BEGIN",
		"SAVEPOINT f",
		"SET work_mem = '9MB'",
		"RELEASE f",
		"ROLLBACK",
	}
	const show = `SELECT current_setting('work_mem'), current_setting('lock_timeout'), current_setting('statement_timeout'),
		current_setting('search_path'), current_setting('idle_in_transaction_session_timeout'), current_setting('TimeZone'),
		current_setting('application_name'), pg_backend_pid()`
	run := func(c *pgconn.PgConn) (errs []string, pid string) {
		for _, sql := range script {
			if !extended {
				res, err := c.Exec(ctx, sql).ReadAll()
				errs = append(errs, sqlstate(err))
				if sql == "SELECT pg_backend_pid()" && err == nil {
					pid = string(res[0].Rows[0][0])
				}
				continue
			}
			for _, one := range strings.Split(sql, "; ") {
				r := c.ExecParams(ctx, one, nil, nil, nil, nil).Read()
				errs = append(errs, sqlstate(r.Err))
				if one == "SELECT pg_backend_pid()" && r.Err == nil {
					pid = string(r.Rows[0][0])
				}
			}
		}
		return errs, pid
	}
	settings := func(c *pgconn.PgConn) (string, string) {
		res, err := c.Exec(ctx, show).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		row := res[0].Rows[0]
		var vals []string
		for _, v := range row[:len(row)-1] {
			vals = append(vals, string(v))
		}
		return strings.Join(vals, " | "), string(row[len(row)-1])
	}
	d, err := pgconn.Connect(ctx, directDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	wantErrs, _ := run(d)
	want, _ := settings(d)

	c, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	gotErrs, txPid := run(c)
	if fmt.Sprint(gotErrs) != fmt.Sprint(wantErrs) {
		t.Fatalf("script errors through the proxy %q, directly %q", gotErrs, wantErrs)
	}
	// Another client takes the server connection the transaction ran on
	// (the pool hands out the most recently returned one), so the client
	// lands on another, where the proxy applies its books.
	holder, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	res, err := holder.Exec(ctx, "BEGIN; SELECT pg_backend_pid()").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res[1].Rows[0][0]); got != txPid {
		t.Fatalf("the other client got server pid %s, not %s where the transaction ran", got, txPid)
	}
	got, pid := settings(c)
	if pid == txPid {
		t.Fatalf("the client stayed on server pid %s", pid)
	}
	if got != want {
		t.Fatalf("settings on another server connection:\nthrough the proxy %s\ndirectly          %s", got, want)
	}
	if _, err := holder.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
		t.Fatal(err)
	}
	// And on the connection the transaction ran on.
	if got, _ = settings(c); got != want {
		t.Fatalf("settings on the same server connection:\nthrough the proxy %s\ndirectly          %s", got, want)
	}
}

// The same through pgx's nested transactions (savepoints), as
// applications write them (pgx sends statements without arguments as
// simple queries).
func TestRollbackToSavepointSettingsPgx(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	ctx := ctxT(t, 120*time.Second)
	script := func(conn *pgx.Conn) (pid string) {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, sql := range []string{"SET work_mem = '3MB'", "SET statement_timeout = '4s'"} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
		sp, err := tx.Begin(ctx) // SAVEPOINT
		if err != nil {
			t.Fatal(err)
		}
		for _, sql := range []string{"SET work_mem = '8MB'", "SET lock_timeout = '6s'"} {
			if _, err := sp.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
		if err := sp.Rollback(ctx); err != nil { // ROLLBACK TO SAVEPOINT
			t.Fatal(err)
		}
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()::text").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	const show = `SELECT current_setting('work_mem') || ' ' || current_setting('statement_timeout') || ' ' || current_setting('lock_timeout'), pg_backend_pid()::text`
	d, err := pgx.Connect(ctx, directDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	script(d)
	var want, pid string
	if err := d.QueryRow(ctx, show).Scan(&want, &pid); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	txPid := script(c)
	holder, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	res, err := holder.Exec(ctx, "BEGIN; SELECT pg_backend_pid()").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res[1].Rows[0][0]); got != txPid {
		t.Fatalf("the other client got server pid %s, not %s where the transaction ran", got, txPid)
	}
	var got string
	if err := c.QueryRow(ctx, show).Scan(&got, &pid); err != nil {
		t.Fatal(err)
	}
	if pid == txPid {
		t.Fatalf("the client stayed on server pid %s", pid)
	}
	if got != want {
		t.Fatalf("settings on another server connection: through the proxy %q, directly %q", got, want)
	}
}

// COMMIT AND CHAIN and ROLLBACK AND CHAIN end a transaction while the
// status stays 'T': the SETs of the one committed are carried to the
// client's next server connection, those of the one rolled back are not.
func TestChainedTransactionSettings(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	ctx := ctxT(t, 120*time.Second)
	script := []string{
		"BEGIN",
		"SET work_mem = '5MB'",
		"ROLLBACK AND CHAIN",
		"SET lock_timeout = '7s'",
		"COMMIT AND CHAIN",
		"SET statement_timeout = '8s'",
		"SELECT pg_backend_pid()",
		"ROLLBACK",
	}
	const show = `SELECT current_setting('work_mem') || ' ' || current_setting('lock_timeout') || ' ' || current_setting('statement_timeout'), pg_backend_pid()`
	for _, extended := range []bool{false, true} {
		exec := func(c *pgconn.PgConn, sql string) (string, error) {
			if extended {
				r := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
				if r.Err != nil || len(r.Rows) == 0 {
					return "", r.Err
				}
				return string(r.Rows[0][0]), nil
			}
			res, err := c.Exec(ctx, sql).ReadAll()
			if err != nil || len(res[0].Rows) == 0 {
				return "", err
			}
			return string(res[0].Rows[0][0]), nil
		}
		run := func(c *pgconn.PgConn) (pid string) {
			for _, sql := range script {
				v, err := exec(c, sql)
				if err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
				if strings.HasPrefix(sql, "SELECT") {
					pid = v
				}
			}
			return pid
		}
		d, err := pgconn.Connect(ctx, directDSN())
		if err != nil {
			t.Fatal(err)
		}
		run(d)
		want, _ := exec(d, show)
		d.Close(ctx)

		c, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		txPid := run(c)
		holder, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		res, err := holder.Exec(ctx, "BEGIN; SELECT pg_backend_pid()").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(res[1].Rows[0][0]); got != txPid {
			t.Fatalf("the other client got server pid %s, not %s where the transaction ran", got, txPid)
		}
		r := c.ExecParams(ctx, show, nil, nil, nil, nil).Read()
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if pid := string(r.Rows[0][1]); pid == txPid {
			t.Fatalf("the client stayed on server pid %s", pid)
		}
		if got := string(r.Rows[0][0]); got != want {
			t.Fatalf("extended=%v: settings on another server connection: through the proxy %q, directly %q", extended, got, want)
		}
		holder.Close(ctx)
		c.Close(ctx)
	}
}

// Schema-per-tenant with named statements: the same text under another
// search_path (or role) is another statement. Two pgx clients (statement
// cache on) share one server connection (pool of one); tenant b's table t
// has another shape than tenant a's. Before the registry keyed statements
// by scope too, b got "cached plan must not change result type" (0A000):
// the server connection had prepared the text under a's search_path.
func TestStatementsPerSearchPath(t *testing.T) {
	p := startProxy(t, "pool_size = 1\nquery_wait_timeout = \"3s\"")
	ctx := ctxT(t, 60*time.Second)
	setup := `DROP SCHEMA IF EXISTS sp_a CASCADE; DROP SCHEMA IF EXISTS sp_b CASCADE;
		CREATE SCHEMA sp_a; CREATE SCHEMA sp_b;
		CREATE TABLE sp_a.t (a int); INSERT INTO sp_a.t VALUES (1);
		CREATE TABLE sp_b.t (b text, c text); INSERT INTO sp_b.t VALUES ('two', 'three');
		GRANT USAGE ON SCHEMA sp_a, sp_b TO app; GRANT SELECT ON sp_a.t, sp_b.t TO app;
		SELECT 1`
	if _, err := testcluster.PG.QueryString(testcluster.PG.Primary, "app", setup); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testcluster.PG.QueryString(testcluster.PG.Primary, "app", "DROP SCHEMA IF EXISTS sp_a CASCADE; DROP SCHEMA IF EXISTS sp_b CASCADE")
	})
	tenant := func(schema string) *pgx.Conn {
		c, err := pgx.Connect(ctx, p.rawDSN("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		if _, err := c.Exec(ctx, "SET search_path = "+schema); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := tenant("sp_a"), tenant("sp_b")
	for round := 0; round < 3; round++ {
		var n int
		if err := a.QueryRow(ctx, "SELECT * FROM t").Scan(&n); err != nil || n != 1 {
			t.Fatalf("round %d: tenant a: %v (%d), want 1", round, err, n)
		}
		var x, y string
		if err := b.QueryRow(ctx, "SELECT * FROM t").Scan(&x, &y); err != nil || x != "two" || y != "three" {
			t.Fatalf("round %d: tenant b: %v (%q %q), want two three", round, err, x, y)
		}
	}
	// The same shape in both schemas: each tenant still reads its own.
	var s string
	if err := a.QueryRow(ctx, "SELECT current_schema() || ':' || count(*) FROM t").Scan(&s); err != nil || s != "sp_a:1" {
		t.Fatalf("tenant a: %v (%q)", err, s)
	}
	if err := b.QueryRow(ctx, "SELECT current_schema() || ':' || count(*) FROM t").Scan(&s); err != nil || s != "sp_b:1" {
		t.Fatalf("tenant b: %v (%q)", err, s)
	}
	poolIdle(t, p, "end")
}

// SET SESSION AUTHORIZATION resets the role on the server; the proxy's
// books must follow, or it re-applies the old role on the client's next
// server connection. Another client runs between the statements (pool of
// one), so each of them gets the connection re-synced from the books.
func TestSessionAuthorizationResetsRole(t *testing.T) {
	p := startProxy(t, "pool_size = 1\nquery_wait_timeout = \"3s\"")
	ctx := ctxT(t, 60*time.Second)
	if err := testcluster.PG.Exec(testcluster.PG.Primary, "app", `DO $$ BEGIN
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sy_role_r') THEN CREATE ROLE sy_role_r; END IF; END $$;
		GRANT sy_role_r TO app`); err != nil {
		t.Fatal(err)
	}
	a, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	other, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	for _, step := range []struct{ sql, want string }{
		{"SET ROLE sy_role_r", ""},
		{"SELECT current_user", "sy_role_r"},
		{"SET SESSION AUTHORIZATION DEFAULT", ""},
		{"SELECT current_user || ' ' || current_setting('role')", "app none"},
		{"SET ROLE sy_role_r", ""},
		{"RESET SESSION AUTHORIZATION", ""},
		{"SELECT current_user || ' ' || current_setting('role')", "app none"},
	} {
		got, err := execOne(ctx, a, step.sql)
		if err != nil || got != step.want {
			t.Fatalf("%s: %v (%q), want %q", step.sql, err, got, step.want)
		}
		if got, err := execOne(ctx, other, "SELECT current_user"); err != nil || got != "app" {
			t.Fatalf("the other client after %s: %v (%q)", step.sql, err, got)
		}
	}
}

// RESET ALL leaves role and session_authorization as they are (PostgreSQL
// marks them GUC_NO_RESET_ALL); DISCARD ALL resets them. The books once
// took RESET ALL for a reset of the role too: the connection, still in
// the role on the server, was booked as clean, and the next client of the
// pool ran its statements as that role. Pool of one, another client
// between the statements, as above.
func TestResetAllKeepsRole(t *testing.T) {
	p := startProxy(t, "pool_size = 1\nquery_wait_timeout = \"3s\"")
	ctx := ctxT(t, 60*time.Second)
	if err := testcluster.PG.Exec(testcluster.PG.Primary, "app", `DO $$ BEGIN
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sy_role_r') THEN CREATE ROLE sy_role_r; END IF; END $$;
		GRANT sy_role_r TO app`); err != nil {
		t.Fatal(err)
	}
	a, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	other, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	for _, step := range []struct{ sql, want string }{
		{"SET ROLE sy_role_r", ""},
		{"RESET ALL", ""},
		{"SELECT current_user", "sy_role_r"},
		{"BEGIN; RESET ALL; COMMIT", ""},
		{"SELECT current_user", "sy_role_r"},
		{"DISCARD ALL", ""},
		{"SELECT current_user || ' ' || current_setting('role')", "app none"},
	} {
		got, err := execOne(ctx, a, step.sql)
		if err != nil || got != step.want {
			t.Fatalf("%s: %v (%q), want %q", step.sql, err, got, step.want)
		}
		if got, err := execOne(ctx, other, "SELECT current_user"); err != nil || got != "app" {
			t.Fatalf("the other client after %s: %v (%q), want app", step.sql, err, got)
		}
	}
}

// currval() and lastval() read the sequence state of the session's
// connection: under transaction pooling, another client's. A client reads
// its own values (its last lease's, when nobody used the connection
// since, as on a direct connection), or PostgreSQL's 55000 "not yet
// defined in this session", never a number another client drew. Pool of
// one: every client gets the same server connection.
func TestSequenceStateNotShared(t *testing.T) {
	p := startProxy(t, "pool_size = 1\nquery_wait_timeout = \"3s\"")
	ctx := ctxT(t, 60*time.Second)
	if err := testcluster.PG.Exec(testcluster.PG.Primary, "app", `DROP SEQUENCE IF EXISTS sy_seq; CREATE SEQUENCE sy_seq; GRANT ALL ON SEQUENCE sy_seq TO app`); err != nil {
		t.Fatal(err)
	}
	connect := func() *pgconn.PgConn {
		c, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	a, b := connect(), connect()
	if got, err := execOne(ctx, a, "SELECT setval('sy_seq', 4242)"); err != nil || got != "4242" {
		t.Fatalf("setval: %v (%q)", err, got)
	}
	// Its own: nobody used the connection since.
	if got, err := execOne(ctx, a, "SELECT currval('sy_seq')"); err != nil || got != "4242" {
		t.Fatalf("a's own currval: %v (%q), want 4242", err, got)
	}
	// Another client, simple and extended protocol: not a's value.
	for _, f := range []func() (string, error){
		func() (string, error) { return execOne(ctx, b, "SELECT currval('sy_seq')") },
		func() (string, error) { return execOne(ctx, b, "SELECT lastval()") },
		func() (string, error) {
			r := b.ExecParams(ctx, "SELECT currval('sy_seq')", nil, nil, nil, nil).Read()
			if len(r.Rows) > 0 {
				return string(r.Rows[0][0]), r.Err
			}
			return "", r.Err
		},
	} {
		got, err := f()
		if err == nil {
			t.Fatalf("another client read %q, want 55000", got)
		}
		wantSQLState(t, err, "55000", "not yet defined in this session")
	}
	// a's value is gone from the connection b used: a gets 55000 too.
	if got, err := execOne(ctx, a, "SELECT currval('sy_seq')"); err == nil {
		t.Fatalf("a after b: %q, want 55000", got)
	}
	// nextval and currval in one request, or in one transaction, work.
	if got, err := execOne(ctx, b, "SELECT nextval('sy_seq'); SELECT currval('sy_seq')"); err != nil || got != "4243" {
		t.Fatalf("nextval; currval: %v (%q)", err, got)
	}
	for _, sql := range []string{"BEGIN", "SELECT nextval('sy_seq')"} {
		if _, err := execOne(ctx, a, sql); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := execOne(ctx, a, "SELECT currval('sy_seq')"); err != nil || got != "4244" {
		t.Fatalf("currval in the transaction: %v (%q)", err, got)
	}
	if _, err := execOne(ctx, a, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	poolIdle(t, p, "end")
}
