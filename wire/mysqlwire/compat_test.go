package mysqlwire

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// setGlobalMaxPacket sets the test server's max_allowed_packet until the
// test ends (other tests expect the default).
func setGlobalMaxPacket(t *testing.T, n int) {
	t.Helper()
	ma := testcluster.Maria
	old, err := ma.QueryString(ma.Primary, "SELECT @@GLOBAL.max_allowed_packet")
	if err != nil {
		t.Fatal(err)
	}
	rootExec(t, fmt.Sprintf("SET GLOBAL max_allowed_packet = %d", n))
	t.Cleanup(func() { rootExec(t, "SET GLOBAL max_allowed_packet = "+old) })
}

// Commands and results of several 16 MiB packets pass in both directions,
// in the text and the binary protocol, with go-sql-driver's TestLongData
// settings (maxAllowedPacket=0: the driver asks the server, through the
// proxy, and sends that much). Sizes straddle the packet boundary: a
// payload of exactly 0xffffff bytes is followed by an empty packet. The
// server allows 128 MiB, more than the proxy's own cap (MaxPacket): a
// command over the cap gets ER_NET_PACKET_TOO_LARGE, not a reset.
// Before the fix, the proxy refused any command over 16 MiB and closed
// while the client was still writing (connection reset by peer).
func TestLongPacketsMySQL(t *testing.T) {
	setGlobalMaxPacket(t, 128<<20)
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.tlong (id INT PRIMARY KEY, v LONGBLOB)")
	t.Cleanup(func() { rootExec(t, "DROP TABLE IF EXISTS app.tlong") })
	p := startProxy(t, "")
	// A bound against a hang, not a speed check, for each step (each
	// subtest, and the parts outside them): the whole test moves about
	// 400 MB through the proxy under -race, 85 s on a quiet 2-core
	// machine, up to 180 s at load 20 and over 360 s at load 40, where one
	// bound of 6 minutes for all of it ran out (context deadline exceeded
	// in the last steps, two census runs in two). Three minutes for each
	// of its ten steps bounds a hang as well.
	var ctx context.Context
	bound := func(t *testing.T) {
		c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		t.Cleanup(cancel)
		ctx = c
	}
	bound(t)

	// A text row is lenenc(len(v)) (4 bytes) + v; a binary row 0x00, a
	// null bitmap byte, lenenc + v; a COM_QUERY one byte + the statement.
	const insertText = "INSERT INTO tlong VALUES (1, '')"
	sizes := []struct {
		name         string
		n            int
		text, binary bool // insert with COM_QUERY, with COM_STMT_EXECUTE
	}{
		{"20MB", 20 << 20, true, true},
		{"text row of 0xffffff", mysqlproto.MaxChunk - 4, false, true},
		{"binary row of 0xffffff", mysqlproto.MaxChunk - 6, false, true},
		{"COM_QUERY of 0xffffff", mysqlproto.MaxChunk - 1 - len(insertText), true, false},
	}
	db := p.open(t, "maxAllowedPacket=0")
	db.SetMaxOpenConns(1)
	var mp int
	if err := db.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&mp); err != nil {
		t.Fatal(err)
	}
	if mp != 128<<20 {
		t.Fatalf("@@max_allowed_packet through the proxy: %d", mp)
	}
	// check reads v back with the text protocol and the binary one.
	check := func(t *testing.T, in []byte) {
		t.Helper()
		for _, q := range []string{"SELECT v FROM tlong", "SELECT v FROM tlong WHERE id = ?"} {
			var args []any
			if strings.Contains(q, "?") {
				args = append(args, 1)
			}
			var out []byte
			if err := db.QueryRowContext(ctx, q, args...).Scan(&out); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			if !bytes.Equal(in, out) {
				t.Fatalf("%s: %d bytes in, %d out", q, len(in), len(out))
			}
		}
	}
	for _, sz := range sizes {
		in := bytes.Repeat([]byte{'a'}, sz.n)
		copy(in, "start")
		copy(in[len(in)-3:], "end")
		t.Run("text/"+sz.name, func(t *testing.T) {
			bound(t)
			if !sz.text {
				t.Skip()
			}
			// COM_QUERY with the value as a literal (no escaping needed).
			q := strings.Replace(insertText, "''", "'"+string(in)+"'", 1)
			if _, err := db.ExecContext(ctx, "DELETE FROM tlong"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("COM_QUERY of %d bytes: %v", len(q)+1, err)
			}
			check(t, in)
		})
		t.Run("binary/"+sz.name, func(t *testing.T) {
			bound(t)
			if !sz.binary {
				t.Skip()
			}
			// COM_STMT_EXECUTE with the value as a parameter.
			if _, err := db.ExecContext(ctx, "DELETE FROM tlong"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, "INSERT INTO tlong VALUES (1, ?)", in); err != nil {
				t.Fatalf("COM_STMT_EXECUTE with %d bytes: %v", len(in), err)
			}
			check(t, in)
		})
	}
	t.Run("compressed", func(t *testing.T) {
		bound(t)
		// CLIENT_COMPRESS between the client and the proxy: a 17 MiB
		// literal, the same as a parameter, read back as text and binary rows.
		cdb := p.open(t, "maxAllowedPacket=0&compress=true")
		cdb.SetMaxOpenConns(1)
		before := counterValue(metricCompressed)
		in := bytes.Repeat([]byte("compressible "), (17<<20)/13) // > 16 MiB: several packets
		for _, q := range []string{strings.Replace(insertText, "''", "'"+string(in)+"'", 1), "INSERT INTO tlong VALUES (1, ?)"} {
			if _, err := cdb.ExecContext(ctx, "DELETE FROM tlong"); err != nil {
				t.Fatal(err)
			}
			var args []any
			if strings.Contains(q, "?") {
				args = append(args, in)
			}
			if _, err := cdb.ExecContext(ctx, q, args...); err != nil {
				t.Fatal(err)
			}
			for _, sel := range []string{"SELECT v FROM tlong", "SELECT v FROM tlong WHERE id = ?"} {
				var args []any
				if strings.Contains(sel, "?") {
					args = append(args, 1)
				}
				var out []byte
				if err := cdb.QueryRowContext(ctx, sel, args...).Scan(&out); err != nil {
					t.Fatalf("%s: %v", sel, err)
				}
				if !bytes.Equal(in, out) {
					t.Fatalf("%s: %d bytes in, %d out", sel, len(in), len(out))
				}
			}
		}
		if counterValue(metricCompressed) == before {
			t.Error("the client did not use the compressed protocol")
		}
	})
	t.Run("long data", func(t *testing.T) {
		bound(t)
		// 20 MB >= maxAllowedPacket/2: the driver sends it with
		// COM_STMT_SEND_LONG_DATA, in one packet of two chunks.
		ldb := p.open(t, "maxAllowedPacket=33554432")
		in := bytes.Repeat([]byte{'d'}, 20<<20)
		if _, err := ldb.ExecContext(ctx, "DELETE FROM tlong"); err != nil {
			t.Fatal(err)
		}
		before := counterValue(commandCounters[mysqlproto.ComStmtSendLongData])
		if _, err := ldb.ExecContext(ctx, "INSERT INTO tlong VALUES (1, ?)", in); err != nil {
			t.Fatal(err)
		}
		if counterValue(commandCounters[mysqlproto.ComStmtSendLongData]) == before {
			t.Error("no COM_STMT_SEND_LONG_DATA seen")
		}
		check(t, in)
	})

	// Over the proxy's cap (the server would take it): a clear error.
	bound(t)
	big := strings.Repeat("c", MaxPacket+10)
	db = p.open(t, "maxAllowedPacket=0")
	_, err := db.ExecContext(ctx, "INSERT INTO tlong VALUES (2, '"+big+"')")
	if mysqlErrNum(err) != mysqlproto.ERNetPacketTooLarge || !strings.Contains(err.Error(), "switchyard") {
		t.Fatalf("a command of %d bytes: %v; want error 1153 naming switchyard's limit", len(big), err)
	}
	// The proxy closed that client connection after the ERR, as a server
	// does (the driver may reuse it and get "invalid connection"); the
	// pool is fine for the next one.
	var one int
	if err := p.open(t, "").QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
}

// One pool per node and user, whatever the clients' collations and
// capabilities: pool_size caps the server connections. Each client still
// sees its own collation (SET NAMES on the lease), its own multi-statement
// setting (COM_SET_OPTION) and its own found-rows semantics (a connection
// opened with other handshake-only flags is re-opened in its slot).
// Before: one pool per capability set and collation (go-sql-driver's
// suite made 8 pools and 22 connections with pool_size = 20).
func TestOnePoolPerNodeAndUserMySQL(t *testing.T) {
	const size = 3
	p := startProxy(t, fmt.Sprintf("pool_size = %d", size))
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.tpool (id INT PRIMARY KEY, v INT)")
	rootExec(t, "REPLACE INTO app.tpool VALUES (1, 7)")
	t.Cleanup(func() { rootExec(t, "DROP TABLE IF EXISTS app.tpool") })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	type client struct {
		params    string
		charset   string
		collation string
		foundRows bool
		multi     bool
	}
	clients := []client{
		{params: "", charset: "utf8mb4", collation: "utf8mb4_general_ci"},
		{params: "collation=latin1_swedish_ci", charset: "latin1", collation: "latin1_swedish_ci"},
		{params: "collation=utf8mb4_unicode_ci&clientFoundRows=true", charset: "utf8mb4", collation: "utf8mb4_unicode_ci", foundRows: true},
		{params: "collation=utf8_general_ci&multiStatements=true", charset: "utf8mb3", collation: "utf8mb3_general_ci", multi: true},
		{params: "clientFoundRows=true&multiStatements=true", charset: "utf8mb4", collation: "utf8mb4_general_ci", foundRows: true, multi: true},
		{params: "charset=latin1", charset: "latin1", collation: "latin1_swedish_ci"},
	}
	dbs := make([]*sql.DB, len(clients))
	for i, c := range clients {
		dbs[i] = p.open(t, c.params)
		dbs[i].SetMaxOpenConns(1)
	}
	reopens := counterValue(metricReopens)
	for round := 0; round < 3; round++ {
		for i, c := range clients {
			db := dbs[i]
			var cs, coll string
			if err := db.QueryRowContext(ctx, "SELECT @@character_set_client, @@collation_connection").Scan(&cs, &coll); err != nil {
				t.Fatalf("client %q: %v", c.params, err)
			}
			if cs != c.charset || coll != c.collation {
				t.Errorf("round %d, client %q: character_set_client %s, collation_connection %s; want %s, %s", round, c.params, cs, coll, c.charset, c.collation)
			}
			// Found rows: an UPDATE that changes nothing matched one row.
			res, err := db.ExecContext(ctx, "UPDATE tpool SET v = v WHERE id = 1")
			if err != nil {
				t.Fatal(err)
			}
			n, _ := res.RowsAffected()
			if want := map[bool]int64{true: 1, false: 0}[c.foundRows]; n != want {
				t.Errorf("round %d, client %q: rows affected %d, want %d", round, c.params, n, want)
			}
			// Multi-statements: refused by the server unless asked for.
			_, err = db.ExecContext(ctx, "DO 1; DO 2")
			if c.multi && err != nil {
				t.Errorf("round %d, client %q: multi-statement refused: %v", round, c.params, err)
			}
			if !c.multi && mysqlErrNum(err) != 1064 {
				t.Errorf("round %d, client %q: multi-statement without multiStatements: %v; want error 1064", round, c.params, err)
			}
		}
	}
	t.Logf("server connections re-opened for handshake-only flags: %v", counterValue(metricReopens)-reopens)
	var mine []string
	for name, st := range p.srv.PoolStats() {
		if strings.HasPrefix(name, "mysql/my@") {
			mine = append(mine, name)
			if st.Open > size {
				t.Errorf("pool %s: %d connections open, pool_size %d", name, st.Open, size)
			}
		}
	}
	if len(mine) != 1 {
		t.Errorf("pools of cluster my: %q; want one", mine)
	}
	n, err := testcluster.Maria.QueryString(testcluster.Maria.Primary, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app' AND DB = 'app'")
	if err != nil || n > fmt.Sprint(size) {
		t.Errorf("server connections of user app: %s (%v); want at most %d", n, err, size)
	}
}

// connectAttrs returns the connection attributes the server has for the
// connection that runs the query.
func connectAttrs(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	rows, err := db.Query("SELECT ATTR_NAME, ATTR_VALUE FROM performance_schema.session_account_connect_attrs WHERE PROCESSLIST_ID = CONNECTION_ID()")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		m[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// A client's connection attributes reach the server connection that serves
// its session (session mode), with _proxy_name=switchyard added; under
// transaction pooling server connections carry the proxy's own. The
// server runs with performance_schema on (its own MariaDB: that costs
// about 100 MB, so the shared test cluster keeps it off). Before, server
// connections were opened with no attributes at all (go-sql-driver's
// TestConnectionAttributes found none).
func TestConnectionAttributesMySQL(t *testing.T) {
	ma, err := testcluster.StartMariaDB(testcluster.Options{Replicas: -1, ServerArgs: []string{"--performance-schema=ON"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ma.Stop)
	// Both users log in to the server as app: one pool, shared.
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
[proxy]
postgres_listen = ""
mysql_listen = "127.0.0.1:0"
admin_listen = ""
shutdown_timeout = "5s"

[defaults]
pool_size = 1
query_wait_timeout = "20s"

[[users]]
name = "app"
password = "app"
pool_mode = "session"

[[users]]
name = "tx"
password = "tx"
server_user = "app"
server_password = "app"

[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q
`, ma.Primary.Addr())), "")
	if err != nil {
		t.Fatal(err)
	}
	p := serveProxy(t, cfg, slog.LevelWarn, true)
	for _, v := range []string{"value1", "value2"} {
		db := openDB(t, p.dsn("app", "app", "app", "connectionAttributes=attr1:"+v+",fo%2Fo:bo%2Fo"))
		got := connectAttrs(t, db)
		want := map[string]string{"attr1": v, "fo/o": "bo/o", "_client_name": "Go-MySQL-Driver",
			"_pid": strconv.Itoa(os.Getpid()), "_proxy_name": "switchyard"}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("session mode, attr1=%s: attribute %s = %q, want %q (all: %v)", v, k, got[k], w, got)
			}
		}
		db.Close() // its server connection goes back to the pool of one
	}
	db := openDB(t, p.dsn("tx", "tx", "app", "connectionAttributes=attr1:value3"))
	got := connectAttrs(t, db)
	if got["attr1"] != "" || got["_client_name"] != "switchyard" || got["program_name"] != "switchyard" || got["_proxy_name"] != "switchyard" {
		t.Errorf("transaction mode: attributes %v; want the proxy's own, no client's", got)
	}
}

// openDB is sql.Open for the go-sql-driver, closed when the test ends.
func openDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
