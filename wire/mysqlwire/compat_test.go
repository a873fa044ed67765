package mysqlwire

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testcluster"
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A text row is lenenc(len(v)) (4 bytes) + v; a binary row 0x00, a
	// null bitmap byte, lenenc + v; a COM_QUERY one byte + the statement.
	const insertText = "INSERT INTO tlong VALUES (1, '')"
	sizes := []struct {
		name         string
		n            int
		text, binary bool // insert with COM_QUERY, with COM_STMT_EXECUTE
	}{
		{"20MB", 20 << 20, true, true},
		{"text row of 0xffffff", maxChunk - 4, false, true},
		{"binary row of 0xffffff", maxChunk - 6, false, true},
		{"COM_QUERY of 0xffffff", maxChunk - 1 - len(insertText), true, false},
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
	t.Run("long data", func(t *testing.T) {
		// 20 MB >= maxAllowedPacket/2: the driver sends it with
		// COM_STMT_SEND_LONG_DATA, in one packet of two chunks.
		ldb := p.open(t, "maxAllowedPacket=33554432")
		in := bytes.Repeat([]byte{'d'}, 20<<20)
		if _, err := ldb.ExecContext(ctx, "DELETE FROM tlong"); err != nil {
			t.Fatal(err)
		}
		before := counterValue(commandCounters[comStmtSendLongData])
		if _, err := ldb.ExecContext(ctx, "INSERT INTO tlong VALUES (1, ?)", in); err != nil {
			t.Fatal(err)
		}
		if counterValue(commandCounters[comStmtSendLongData]) == before {
			t.Error("no COM_STMT_SEND_LONG_DATA seen")
		}
		check(t, in)
	})

	// Over the proxy's cap (the server would take it): a clear error.
	big := strings.Repeat("c", MaxPacket+10)
	_, err := db.ExecContext(ctx, "INSERT INTO tlong VALUES (2, '"+big+"')")
	if mysqlErrNum(err) != erNetPacketTooLarg || !strings.Contains(err.Error(), "switchyard") {
		t.Fatalf("a command of %d bytes: %v; want error 1153 naming switchyard's limit", len(big), err)
	}
	// The pool is fine afterwards.
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
}
