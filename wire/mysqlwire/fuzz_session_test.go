package mysqlwire

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

var (
	fuzzLiveOnce sync.Once
	fuzzLive     *Server
	fuzzLiveDB   *sql.DB
)

// fuzzLiveServer is a proxy in front of the test MariaDB primary, and a
// well-behaved client of it, for fuzzing every command against a real
// server.
func fuzzLiveServer(t testing.TB) (*Server, *sql.DB) {
	fuzzLiveOnce.Do(func() {
		cfg, err := config.Parse([]byte(fmt.Sprintf(`
[proxy]
mysql_listen = "127.0.0.1:0"
[defaults]
pool_size = 4
query_wait_timeout = "5s"
[[users]]
name = "app_trust"
auth = "trust"
server_user = "app"
server_password = "app"
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q
`, testcluster.Maria.Primary.Addr())), "fuzz.toml")
		if err != nil {
			t.Fatal(err)
		}
		fuzzLive = NewServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go fuzzLive.Serve(ln)
		fuzzLiveDB, err = sql.Open("mysql", fmt.Sprintf("app:app@tcp(%s)/app?timeout=5s&readTimeout=10s", ln.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		fuzzLiveDB.SetMaxOpenConns(1)
	})
	return fuzzLive, fuzzLiveDB
}

// packets frames payloads as client packets, sequence numbers from seq.
func packets(seq uint8, payloads ...[]byte) []byte {
	var out []byte
	for _, p := range payloads {
		out = append(out, byte(len(p)), byte(len(p)>>8), byte(len(p)>>16), seq)
		out = append(out, p...)
		seq++
	}
	return out
}

func cmd(c byte, body ...byte) []byte { return append([]byte{c}, body...) }

// FuzzSession drives everything after a trust login from arbitrary bytes
// against a real MariaDB server: text and binary protocol, multi-statements,
// transactions, malformed, truncated and oversized packets, and an end of
// input at any point. The proxy must answer or close, never panic or
// hang, and afterwards serve another client correctly.
func FuzzSession(f *testing.F) {
	q := func(s string) []byte { return packets(0, cmd(mysqlproto.ComQuery, []byte(s)...)) }
	f.Add(q("SELECT 1"))
	f.Add(bytes.Join([][]byte{q("BEGIN"), q("SELECT 1/0, x"), q("SELECT 2"), q("COMMIT")}, nil))
	f.Add(q("SELECT 1; SELECT 2; SET @a = 1"))
	f.Add(bytes.Join([][]byte{
		packets(0, cmd(mysqlproto.ComStmtPrepare, []byte("SELECT ? + 1")...)),
		packets(0, []byte{mysqlproto.ComStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0x08, 0, 7, 0, 0, 0, 0, 0, 0, 0}),
		packets(0, []byte{mysqlproto.ComStmtClose, 1, 0, 0, 0}),
	}, nil))
	f.Add(packets(0, []byte{mysqlproto.ComStmtExecute, 9, 0, 0, 0, 0, 1, 0, 0, 0}))
	f.Add(packets(0, cmd(mysqlproto.ComInitDB, []byte("nosuchdb")...)))
	f.Add(packets(0, cmd(mysqlproto.ComPing), cmd(mysqlproto.ComResetConnection)))
	f.Add(q("SELECT SLEEP(0.01), REPEAT('x', 100000)"))
	f.Add([]byte{0xff, 0xff, 0xff, 0, mysqlproto.ComQuery, 'S'})
	f.Add(packets(0, cmd(mysqlproto.ComFieldList, []byte("t\x00")...)))
	f.Add(packets(0, cmd(mysqlproto.ComQuit)))
	s, db := fuzzLiveServer(f)
	login := packets(1, (&mysqlproto.HandshakeResponse{
		Capabilities: proxyCaps &^ mysqlproto.CapSSL, MaxPacket: 1 << 24, Collation: 45,
		User: "app_trust", Database: "app", AuthPlugin: mysqlproto.PluginNative,
	}).Encode(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.serveConn(&bytesConn{r: bytes.NewReader(append(login[:len(login):len(login)], data...))})
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end")
		}
		var n int
		if err := db.QueryRow("SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
			t.Fatalf("another client: %d, %v", n, err)
		}
	})
}

// bytesConn is a client that sends fixed bytes, then EOF, and reads
// nothing back.
type bytesConn struct{ r *bytes.Reader }

func (c *bytesConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *bytesConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *bytesConn) Close() error                { return nil }
func (c *bytesConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3306} }
func (c *bytesConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
}
func (c *bytesConn) SetDeadline(time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }
