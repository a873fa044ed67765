package mysqlwire

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/faultnet"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// BenchmarkRelay measures the proxy's cost of one autocommit point select
// end to end on loopback, against a scripted server that answers from
// pre-encoded bytes, so that allocs/op and a CPU profile (-cpuprofile)
// show the relay's own work: reading the command, routing, the lease, the
// relay of the result set and the release. query: a COM_QUERY with the key
// as a literal; prepared: COM_STMT_EXECUTE of a statement prepared once,
// sysbench oltp_point_select's shape (the proxy prepares it lazily on the
// server connection). The client is the proxy's own server-side protocol
// code, pointed at the proxy. cpu-ns/op (the process's CPU time per
// command, the scripted server's and the client's included) is the figure
// to compare on a shared machine, as in pgwire's BenchmarkRelay.
func BenchmarkRelay(b *testing.B) {
	for _, mode := range []string{"query", "prepared"} {
		b.Run(mode, func(b *testing.B) { benchRelay(b, mode) })
	}
}

func benchRelay(b *testing.B, mode string) {
	addr := scriptedMyServer(b)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
[proxy]
postgres_listen = ""
mysql_listen = "127.0.0.1:0"
admin_listen = ""
shutdown_timeout = "5s"

[defaults]
pool_size = 2
server_tls = "disable"

[[users]]
name = "app"
password = "app"

[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q
`, addr)), "")
	if err != nil {
		b.Fatal(err)
	}
	p := serveProxy(b, cfg, slog.LevelWarn, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialBackend(ctx, dialParams{addr: p.addr, user: "app", password: "app", db: "app", collation: defaultCollation, noTrack: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var cmd []byte
	switch mode {
	case "prepared":
		if _, err := c.writePacket(0, append([]byte{mysqlproto.ComStmtPrepare}, "SELECT c FROM sbtest1 WHERE id=?"...)); err != nil {
			b.Fatal(err)
		}
		// OK with the id, one parameter definition and one column
		// definition, each list followed by an EOF.
		ok, err := peekPacket(c.br)
		if err != nil || len(ok) < 12 || ok[0] != mysqlproto.HeaderOK {
			b.Fatalf("prepare: %q %v", ok, err)
		}
		id := append([]byte(nil), ok[1:5]...)
		for i := 0; i < 4; i++ {
			if _, err = peekPacket(c.br); err != nil {
				b.Fatal(err)
			}
		}
		cmd = append([]byte{mysqlproto.ComStmtExecute}, id...)
		cmd = append(cmd, 0, 1, 0, 0, 0) // no cursor, one iteration
		cmd = append(cmd, 0, 1)          // null bitmap, new parameters bound
		cmd = append(cmd, 3, 0)          // MYSQL_TYPE_LONG, signed
		cmd = append(cmd, 0x67, 0x12, 0, 0)
	default:
		cmd = append([]byte{mysqlproto.ComQuery}, "SELECT c FROM sbtest1 WHERE id=4711"...)
	}
	round := func() {
		if _, err := c.writePacket(0, cmd); err != nil {
			b.Fatal(err)
		}
		// Column count, column definition, EOF, one row, EOF.
		for i := 0; i < 5; i++ {
			p, err := peekPacket(c.br)
			if err != nil {
				b.Fatal(err)
			}
			if len(p) > 0 && p[0] == mysqlproto.HeaderERR {
				b.Fatalf("error from the proxy: %q", p)
			}
		}
	}
	for i := 0; i < 100; i++ { // warm: the pool, buffers, the analysis cache
		round()
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		round()
	}
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU is the user plus system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peekPacket reads the next packet's payload, which must fit br's buffer,
// without a copy or an allocation; it is valid until br's next read.
func peekPacket(br *bufio.Reader) ([]byte, error) {
	hdr, err := br.Peek(4)
	if err != nil {
		return nil, err
	}
	n := 4 + (int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16)
	p, err := br.Peek(n)
	if err != nil {
		return nil, err
	}
	_, _ = br.Discard(n)
	return p[4:], nil
}

// scriptedMyServer is a MySQL server on loopback that logs anyone in and
// answers every query and every execution of a prepared statement with
// one row of one text column, from pre-encoded bytes (SELECT
// @@max_allowed_packet with its value), and anything else with OK. It
// stops when the benchmark ends.
func scriptedMyServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	const caps = proxyCaps &^ (mysqlproto.CapDeprecateEOF | mysqlproto.CapCompress | mysqlproto.CapSSL)
	const status = mysqlproto.StatusAutocommit
	colDef := func() []byte { // a CHAR(120) column, as sysbench's c
		d := mysqlproto.AppendLenEncString(nil, "def")
		for _, s := range []string{"app", "sbtest1", "sbtest1", "c", "c"} {
			d = mysqlproto.AppendLenEncString(d, s)
		}
		return append(d, 0x0c, defaultCollation, 0, 120, 0, 0, 0, 0xfe, 0, 0, 0, 0, 0)
	}
	// resultSet is a whole response: packets with sequence ids from 1.
	resultSet := func(row []byte) []byte {
		var out []byte
		seq := uint8(1)
		add := func(p []byte) {
			out = append(out, byte(len(p)), byte(len(p)>>8), byte(len(p)>>16), seq)
			out = append(out, p...)
			seq++
		}
		add([]byte{1})
		add(colDef())
		add(mysqlproto.AppendEOF(nil, status))
		add(row)
		add(mysqlproto.AppendEOF(nil, status))
		return out
	}
	value := "83868641912-28773972837-60736120486-75162659906-27563526494"
	textRows := resultSet(mysqlproto.AppendLenEncString(nil, value))
	binRows := resultSet(mysqlproto.AppendLenEncString([]byte{0, 0}, value)) // header, null bitmap
	maxPacket := resultSet(mysqlproto.AppendLenEncString(nil, "16777216"))
	prepareOK := func() []byte {
		var out []byte
		seq := uint8(1)
		add := func(p []byte) {
			out = append(out, byte(len(p)), byte(len(p)>>8), byte(len(p)>>16), seq)
			out = append(out, p...)
			seq++
		}
		add([]byte{0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0}) // id 1, one column, one parameter
		add(colDef())                                   // the parameter
		add(mysqlproto.AppendEOF(nil, status))
		add(colDef())
		add(mysqlproto.AppendEOF(nil, status))
		return out
	}()
	okPacket := func() []byte {
		p := mysqlproto.AppendOK(nil, caps, mysqlproto.HeaderOK, 0, 0, status, 0)
		return append([]byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), 1}, p...)
	}()
	serve := func(c net.Conn, id uint32) {
		defer c.Close()
		br := bufio.NewReaderSize(c, 16<<10)
		bw := bufio.NewWriterSize(c, 16<<10)
		hs := mysqlproto.Handshake{ServerVersion: "10.11.99-MariaDB-scripted", ConnectionID: id, Scramble: mysqlproto.NewScramble(),
			Capabilities: caps, Collation: defaultCollation, Status: status, AuthPlugin: mysqlproto.PluginNative}
		if _, err := mysqlproto.WritePacket(bw, 0, hs.Encode(nil)); err != nil || bw.Flush() != nil {
			return
		}
		if _, _, err := mysqlproto.ReadPacket(br, nil, 1<<20); err != nil {
			return
		}
		if _, err := mysqlproto.WritePacket(bw, 2, mysqlproto.AppendOK(nil, caps, mysqlproto.HeaderOK, 0, 0, status, 0)); err != nil || bw.Flush() != nil {
			return
		}
		for {
			p, err := peekPacket(br)
			if err != nil || len(p) == 0 || p[0] == mysqlproto.ComQuit {
				return
			}
			var out []byte
			switch p[0] {
			case mysqlproto.ComQuery:
				out = textRows
				switch {
				case bytes.Contains(p, []byte("max_allowed_packet")):
					out = maxPacket
				case bytes.HasPrefix(p[1:], []byte("SET ")):
					out = okPacket // session_track_state_change (tracking.go)
				}
			case mysqlproto.ComStmtExecute:
				out = binRows
			case mysqlproto.ComStmtPrepare:
				out = prepareOK
			case mysqlproto.ComStmtClose:
				continue // no reply
			default:
				out = okPacket
			}
			if _, err := bw.Write(out); err != nil || bw.Flush() != nil {
				return
			}
		}
	}
	b.Cleanup(faultnet.Serve(ln, serve))
	return ln.Addr().String()
}
