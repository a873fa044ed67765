package mysqlwire

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// activeLeases is how many server connections the proxy's pools lend out.
func activeLeases(p *testProxy) int {
	a, _, _ := poolCounts(p)
	return a
}

// TestProcedureStatePins: session state set inside a stored procedure or
// function, which the proxy cannot read in the SQL text, pins the session
// (the server reports it with SERVER_SESSION_STATE_CHANGED): the client
// keeps its variable, temporary table and lock, no other client sees them,
// and they are gone once it leaves. A procedure that only reads, a
// prepared SELECT, and the SETs and USE the proxy tracks do not pin.
func TestProcedureStatePins(t *testing.T) {
	p := startProxy(t, "pool_size = 3")
	rootExec(t, "CREATE OR REPLACE PROCEDURE app.ts_state() BEGIN SET @ts_secret = 'from-proc'; CREATE TEMPORARY TABLE ts_ptt (a INT); DO GET_LOCK('ts_lock', 0); END")
	rootExec(t, "CREATE OR REPLACE PROCEDURE app.ts_read() BEGIN DECLARE x INT; SELECT COUNT(*) INTO x FROM information_schema.schemata; SELECT x > 0 AS some; END")
	rootExec(t, "CREATE OR REPLACE FUNCTION app.ts_fn() RETURNS INT DETERMINISTIC BEGIN SET @ts_fn = 7; RETURN 1; END")
	root := rootDB(t)

	a := conn(t, p.open(t, ""))
	execSQL(t, a, "CALL ts_state()")
	if n := activeLeases(p); n != 1 {
		t.Errorf("after CALL of a procedure that sets a variable: %d server connections leased, want 1 (pinned)", n)
	}
	aID := queryString(t, a, "SELECT CONNECTION_ID()")

	b := conn(t, p.open(t, ""))
	if got := queryString(t, b, "SELECT @ts_secret"); got != "NULL" {
		t.Errorf("another client sees @ts_secret = %s", got)
	}
	wantSQLErr(t, b, "SELECT COUNT(*) FROM ts_ptt", 1146)
	if got := queryString(t, b, "SELECT CONNECTION_ID()"); got == aID {
		t.Errorf("another client was handed the pinned server connection %s", got)
	}
	// The client itself sees what it would see connected directly.
	if got := queryString(t, a, "SELECT @ts_secret"); got != "from-proc" {
		t.Errorf("the client lost its @ts_secret: %s", got)
	}
	if got := queryString(t, a, "SELECT COUNT(*) FROM ts_ptt"); got != "0" {
		t.Errorf("the client lost its temporary table: %s", got)
	}
	if got := queryString(t, a, "SELECT IS_USED_LOCK('ts_lock') = CONNECTION_ID()"); got != "1" {
		t.Errorf("the client does not hold its lock: %s", got)
	}
	quitConn(t, b)
	quitConn(t, a)
	waitActiveZero(t, p, 3*time.Second)
	waitServerQuiet(t, p, root)
	if got := rootValue(t, root, "SELECT IS_FREE_LOCK('ts_lock')"); got != "1" {
		t.Errorf("the lock taken in the procedure is still held after its client left")
	}
	for i := 0; i < 2; i++ { // both server connections a and b had
		c := conn(t, p.open(t, ""))
		execSQL(t, c, "BEGIN") // holds the lease: the next client gets the other
		if got := queryString(t, c, "SELECT @ts_secret"); got != "NULL" {
			t.Errorf("a later client sees @ts_secret = %s", got)
		}
		wantSQLErr(t, c, "SELECT COUNT(*) FROM ts_ptt", 1146)
		defer quitConn(t, c)
	}

	// A stored function called in a SELECT.
	f := conn(t, p.open(t, ""))
	if got := queryString(t, f, "SELECT ts_fn()"); got != "1" {
		t.Fatalf("ts_fn() = %s", got)
	}
	if n := activeLeases(p); n != 3 {
		t.Errorf("after a function that sets a variable: %d server connections leased, want 3 (2 in transactions, 1 pinned)", n)
	}
	if got := queryString(t, f, "SELECT @ts_fn"); got != "7" {
		t.Errorf("the client lost @ts_fn: %s", got)
	}
}

// TestProcedureStateNoPin: what changes no session state, or only what the
// proxy tracks and replays, keeps transaction pooling.
func TestProcedureStateNoPin(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	rootExec(t, "CREATE OR REPLACE PROCEDURE app.ts_read() BEGIN DECLARE x INT; SELECT COUNT(*) INTO x FROM information_schema.schemata; SELECT x > 0 AS some; END")
	ctx := context.Background()
	c := conn(t, p.open(t, "interpolateParams=false"))
	released := func(what string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for activeLeases(p) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("after %s the session still holds its server connection (pinned)", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	rows, err := c.QueryContext(ctx, "CALL ts_read()")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	released("CALL of a procedure that only reads")
	for _, q := range []string{"SET time_zone = '+05:00'", "SET NAMES utf8mb4", "SET autocommit = 1", "USE app", "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"} {
		execSQL(t, c, q)
		released(q)
	}
	// Prepared on whichever connection serves (COM_STMT_PREPARE and
	// EXECUTE), twice: on the first the proxy prepares it lazily.
	for i := 0; i < 2; i++ {
		var v int
		if err := c.QueryRowContext(ctx, "SELECT ? + 1", i).Scan(&v); err != nil || v != i+1 {
			t.Fatalf("SELECT ? + 1: %d, %v", v, err)
		}
		execSQL(t, c, "DO ?", i)
		released("a prepared statement")
	}
	if got := queryString(t, c, "SELECT @@time_zone"); got != "+05:00" {
		t.Errorf("the tracked SET was lost: time_zone %s", got)
	}
}

func TestStripSessionState(t *testing.T) {
	ok := func(status uint16, tail ...byte) []byte {
		p := []byte{mysqlproto.HeaderOK, 1, 0, byte(status), byte(status >> 8), 0, 0}
		return append(p, tail...)
	}
	state := []byte{5, 3, 3, 2, 'o', 'k'} // lenenc of one state-change entry
	for _, tc := range []struct {
		name string
		in   []byte
		want []byte
	}{
		{"no flag", ok(0x0002), ok(0x0002)},
		{"no flag, info", ok(0x0002, 3, 'a', 'b', 'c'), ok(0x0002, 3, 'a', 'b', 'c')},
		{"empty info, state", ok(0x4002, append([]byte{0}, state...)...), ok(0x0002)},
		{"info, state", ok(0x4003, append([]byte{2, 'h', 'i'}, state...)...), ok(0x0003, 2, 'h', 'i')},
		{"flag, nothing after", ok(0x4002), ok(0x0002)},
	} {
		in := append([]byte(nil), tc.in...)
		n, good := mysqlproto.StripSessionState(in)
		if !good || !bytes.Equal(in[:n], tc.want) {
			t.Errorf("%s: got %x (%v), want %x", tc.name, in[:n], good, tc.want)
		}
	}
	if _, good := mysqlproto.StripSessionState([]byte{mysqlproto.HeaderOK, 0, 0, 0}); good {
		t.Error("a short packet was taken for an OK")
	}
	bad := ok(0x4002, 9) // info length past the end
	if _, good := mysqlproto.StripSessionState(bad); good || bad[3] != 0x02 || bad[4] != 0x40 {
		t.Errorf("a malformed OK was changed or accepted: %x", bad)
	}
}

// TestSessionTrackOKLayout: the OK packet of a CALL that sets a variable,
// as clients see it through the proxy. A client with CLIENT_SESSION_TRACK
// (and tracking on) gets the flag and the session-state information, and
// its stream stays in step; a client without it gets the very bytes the
// server sends such a client directly.
func TestSessionTrackOKLayout(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	rootExec(t, "CREATE OR REPLACE PROCEDURE app.ts_var() SET @ts_v = 1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	callOK := func(addr string, caps uint32, noTrack bool) (*backend, []byte) {
		t.Helper()
		dp := dialParams{addr: addr, user: "app", password: "app", db: "app", caps: caps, collation: defaultCollation, noTrack: noTrack}
		b, err := dialBackend(ctx, dp)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if _, err := b.writePacket(0, append([]byte{mysqlproto.ComQuery}, "CALL ts_var()"...)); err != nil {
			t.Fatal(err)
		}
		pkt, _, err := b.readPacket()
		if err != nil {
			t.Fatal(err)
		}
		pkt = append([]byte(nil), pkt...) // readPacket's buffer is reused
		if v, _, err := b.queryValue(ctx, "SELECT @ts_v"); err != nil || v != "1" {
			t.Errorf("after the CALL: SELECT @ts_v = %q, %v (stream out of step?)", v, err)
		}
		return b, pkt
	}

	b, pkt := callOK(p.addr, mysqlproto.CapSessionTrack|mysqlproto.CapMultiResults, false)
	ok, err := mysqlproto.DecodeOK(pkt, b.caps)
	if err != nil || ok.Status&mysqlproto.StatusSessionStateChange == 0 || len(ok.SessionState) == 0 {
		t.Errorf("tracking client: OK %x (%+v, %v), want the state-changed flag and session-state information", pkt, ok, err)
	}

	_, direct := callOK(testcluster.Maria.Primary.Addr(), mysqlproto.CapMultiResults, true)
	_, proxied := callOK(p.addr, mysqlproto.CapMultiResults, true)
	if !bytes.Equal(direct, proxied) {
		t.Errorf("client without CLIENT_SESSION_TRACK: OK through the proxy %x, directly %x", proxied, direct)
	}
}

// OKs with an info string (UPDATE's "Rows matched", a multi-row INSERT's
// "Records") and no state change reach a client without
// CLIENT_SESSION_TRACK as the server sends them to it directly, though the
// proxy's server connections negotiate it.
func TestSessionTrackOKInfo(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rootExec(t, "CREATE OR REPLACE TABLE app.ts_info (id INT PRIMARY KEY, v INT)")
	okOf := func(addr, sql string) []byte {
		t.Helper()
		dp := dialParams{addr: addr, user: "app", password: "app", db: "app", caps: mysqlproto.CapMultiResults, collation: defaultCollation, noTrack: true}
		b, err := dialBackend(ctx, dp)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := b.writePacket(0, append([]byte{mysqlproto.ComQuery}, sql...)); err != nil {
			t.Fatal(err)
		}
		pkt, _, err := b.readPacket()
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), pkt...)
	}
	for _, pair := range [][2]string{
		{"INSERT INTO ts_info VALUES (1, 1), (2, 2)", "INSERT INTO ts_info VALUES (3, 3), (4, 4)"},
		{"UPDATE ts_info SET v = v + 1 WHERE id = 1", "UPDATE ts_info SET v = v + 1 WHERE id = 3"},
	} {
		direct, proxied := okOf(testcluster.Maria.Primary.Addr(), pair[0]), okOf(p.addr, pair[1])
		if !bytes.Equal(direct, proxied) {
			t.Errorf("client without CLIENT_SESSION_TRACK, %s: OK through the proxy %x (%q), directly %x (%q)", pair[1], proxied, proxied, direct, direct)
		}
	}
}
