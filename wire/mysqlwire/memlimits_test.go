package mysqlwire

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// Bounded memory in the MySQL front end: the packets before
// authentication, the statements and SETs one client makes the proxy keep.

// A handshake response whose header claims more than maxPreAuthPacket is
// refused with ERR 1153 from the header alone, before its body: at once,
// not at the login timeout, and the connection is closed.
func TestPreAuthPacketCappedMySQL(t *testing.T) {
	p := startLimitProxy(t, `client_login_timeout = "10s"`, ``, ``)
	refusals := metricValue(t, "switchyard_client_limit_refusals_total")
	for _, claim := range []int{mysqlproto.MaxChunk, maxPreAuthPacket + 1} {
		nc, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := mysqlproto.ReadPacket(nc, nil, 64<<10); err != nil { // the server's greeting
			t.Fatal(err)
		}
		start := time.Now()
		// The header claims claim bytes; only a few follow.
		hdr := []byte{byte(claim), byte(claim >> 8), byte(claim >> 16), 1}
		if _, err := nc.Write(append(hdr, make([]byte, 32)...)); err != nil {
			t.Fatal(err)
		}
		pkt, seq, err := mysqlproto.ReadPacket(nc, nil, 64<<10)
		if err != nil || len(pkt) < 3 || pkt[0] != mysqlproto.HeaderERR || uint16(pkt[1])|uint16(pkt[2])<<8 != mysqlproto.ERNetPacketTooLarge {
			t.Fatalf("claim %d: want ERR 1153, got %q, %v", claim, pkt, err)
		}
		if seq != 2 {
			t.Errorf("claim %d: ERR has sequence id %d, want 2", claim, seq)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("claim %d: refusal took %v", claim, d)
		}
		if _, err := io.Copy(io.Discard, nc); err != nil && !quiet(err) {
			t.Errorf("claim %d: connection not closed after the ERR: %v", claim, err)
		}
		nc.Close()
	}
	if got := metricValue(t, "switchyard_client_limit_refusals_total") - refusals; got != 2 {
		t.Errorf("refusals counted: %v, want 2", got)
	}
	// A normal login still works.
	db, err := sql.Open("mysql", p.dsn("app", "app", "app", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
}

// A client at max_client_prepared_statements gets ERR 1461 for the next
// COM_STMT_PREPARE, as from MySQL at max_prepared_stmt_count; its session
// goes on, its statements still run, and one more fits once it closed one.
func TestClientPreparedStatementCapMySQL(t *testing.T) {
	p := startLimitProxy(t, `max_client_prepared_statements = 5`, ``, ``)
	refusals := metricValue(t, "switchyard_client_limit_refusals_total")
	db, err := sql.Open("mysql", p.dsn("app", "app", "app", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var stmts []*sql.Stmt
	for i := 0; i < 5; i++ {
		st, err := conn.PrepareContext(ctx, fmt.Sprintf("SELECT %d + ?", i))
		if err != nil {
			t.Fatalf("prepare %d: %v", i, err)
		}
		stmts = append(stmts, st)
	}
	_, err = conn.PrepareContext(ctx, "SELECT 5 + ?")
	if mysqlErrNum(err) != 1461 || !strings.Contains(err.Error(), "max_prepared_stmt_count") {
		t.Fatalf("sixth statement: got %v, want ERR 1461", err)
	}
	// In a transaction, too.
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err = conn.PrepareContext(ctx, "SELECT 5 + ?"); mysqlErrNum(err) != 1461 {
		t.Fatalf("sixth statement in a transaction: got %v, want ERR 1461", err)
	}
	var v int
	if err := stmts[3].QueryRowContext(ctx, 1).Scan(&v); err != nil || v != 4 {
		t.Fatalf("statement 3 after the refusal: %d, %v", v, err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := stmts[1].Close(); err != nil {
		t.Fatal(err)
	}
	st, err := conn.PrepareContext(ctx, "SELECT 5 + ?")
	if err != nil {
		t.Fatalf("prepare after a close: %v", err)
	}
	if err := st.QueryRowContext(ctx, 1).Scan(&v); err != nil || v != 6 {
		t.Fatalf("new statement: %d, %v", v, err)
	}
	if got := metricValue(t, "switchyard_client_limit_refusals_total") - refusals; got != 2 {
		t.Errorf("refusals counted: %v, want 2", got)
	}
}

// The SETs a session keeps to replay are bounded in number and bytes;
// beyond, the session is pinned and records nothing more (a pinned
// session, or one in session pooling, keeps its state on its own server
// connection). A client running distinct SETs in a loop does not grow the
// proxy's memory.
func TestSessionSetsBoundedMySQL(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		stmt func(i int) string
	}{
		{"count", 2000, func(i int) string { return fmt.Sprintf("SET @@session.sql_select_limit = %d", i) }},
		{"bytes", 300, func(i int) string {
			return fmt.Sprintf("SET @@session.sql_select_limit = %d /* %s */", i, strings.Repeat("x", 8<<10))
		}},
	} {
		s := &session{mode: config.PoolTransaction, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		for i := 0; i < tc.n; i++ {
			s.addSets([]string{tc.stmt(i)})
		}
		if s.pinned == "" {
			t.Errorf("%s: not pinned after %d distinct SETs", tc.name, tc.n)
		}
		size := 0
		for _, q := range s.sets {
			size += len(q)
		}
		if len(s.sets) > maxSets+1 || size > maxSetsBytes+16<<10 {
			t.Errorf("%s: session keeps %d SETs, %d bytes", tc.name, len(s.sets), size)
		}
	}
	s := &session{mode: config.PoolSession, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for i := 0; i < 1000; i++ {
		s.addSets([]string{fmt.Sprintf("SET @@session.sql_select_limit = %d", i)})
	}
	if len(s.sets) != 0 {
		t.Errorf("session pooling: %d SETs kept", len(s.sets))
	}
}

// Long data staged for several statements at once counts together against
// maxLongData: the statement whose long data crosses it gets its EXECUTE
// refused by the proxy (ERR 1153, counted), the session goes on.
func TestLongDataBoundedPerClientMySQL(t *testing.T) {
	p := startLimitProxy(t, ``, ``, ``)
	be := rawClientCaps(t, p, mysqlproto.PluginNative, mysqlproto.CapDeprecateEOF|mysqlproto.CapMultiResults|mysqlproto.CapPSMultiResults)
	_ = be.nc.SetDeadline(time.Now().Add(60 * time.Second))
	prepare := func() uint32 {
		if _, err := be.writePacket(0, append([]byte{mysqlproto.ComStmtPrepare}, "SELECT LENGTH(?)"...)); err != nil {
			t.Fatal(err)
		}
		first, _, err := be.readPacket()
		if err != nil || first[0] != mysqlproto.HeaderOK {
			t.Fatalf("prepare: %x %v", first, err)
		}
		id := binary.LittleEndian.Uint32(first[1:])
		for i := 0; i < 2; i++ { // 1 param def, 1 column def
			if _, _, err := be.readPacket(); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	a, b := prepare(), prepare()
	chunk := make([]byte, 1<<20)
	send := func(id uint32, mb int) {
		for i := 0; i < mb; i++ {
			pk := []byte{mysqlproto.ComStmtSendLongData, 0, 0, 0, 0, 0, 0}
			binary.LittleEndian.PutUint32(pk[1:], id)
			if _, err := be.writePacket(0, append(pk, chunk...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := metricValue(t, "switchyard_client_limit_refusals_total")
	send(a, 40) // each under the 64 MB per statement, together over it
	send(b, 30)
	pk := []byte{mysqlproto.ComStmtExecute, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0xfc, 0}
	binary.LittleEndian.PutUint32(pk[1:], b)
	if _, err := be.writePacket(0, pk); err != nil {
		t.Fatal(err)
	}
	_, errp := readRows(t, be)
	e, _ := mysqlproto.DecodeERR(errp)
	if errp == nil || e.Code != mysqlproto.ERNetPacketTooLarge || !strings.Contains(e.Message, "switchyard") {
		t.Fatalf("execute over the client's long data: got %+v, want the proxy's ERR 1153", e)
	}
	if got := metricValue(t, "switchyard_client_limit_refusals_total") - before; got < 1 {
		t.Errorf("refusal not counted")
	}
	if _, err := be.writePacket(0, append([]byte{mysqlproto.ComQuery}, "SELECT 7"...)); err != nil {
		t.Fatal(err)
	}
	if rows, errp := readRows(t, be); errp != nil || len(rows) != 1 {
		t.Fatalf("session after the refusal: %d rows, %q", len(rows), errp)
	}
}
