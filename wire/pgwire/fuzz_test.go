package pgwire

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
)

func startupPacket(params ...string) []byte {
	b := []byte{0, 0, 0, 0, 0, 3, 0, 0}
	for _, p := range params {
		b = append(append(b, p...), 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func msg(typ byte, body ...[]byte) []byte {
	var b []byte
	for _, x := range body {
		b = append(b, x...)
	}
	out := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)+4))
	return append(out, b...)
}

var (
	fuzzSrvOnce sync.Once
	fuzzSrv     *Server
)

// fuzzServer is a proxy whose cluster's primary refuses connections: the
// startup path runs to its end without a database server.
func fuzzServer(t testing.TB) *Server {
	fuzzSrvOnce.Do(func() {
		cfg, err := config.Parse([]byte(`
[proxy]
postgres_listen = "127.0.0.1:0"
[defaults]
connect_timeout = "100ms"
query_wait_timeout = "100ms"
[[users]]
name = "scram"
password = "pw"
[[users]]
name = "md5"
password = "pw"
auth = "md5"
[[users]]
name = "trust"
auth = "trust"
[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = "127.0.0.1:1"
`), "fuzz.toml")
		if err != nil {
			t.Fatal(err)
		}
		fuzzSrv, err = NewServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		fuzzSrv.StartupTimeout = time.Second
	})
	return fuzzSrv
}

// FuzzClientStartup drives a whole client session from arbitrary bytes:
// SSL/GSS requests, cancel requests, startup messages, password and SASL
// messages, and whatever follows. The proxy must answer or close, never
// panic or hang.
func FuzzClientStartup(f *testing.F) {
	f.Add(startupPacket("user", "trust", "database", "app"))
	f.Add(append(startupPacket("user", "md5", "database", "app"), msg('p', []byte("md5ffffffffffffffffffffffffffffffff\x00"))...))
	f.Add(append(startupPacket("user", "scram", "database", "app"), msg('p', []byte("SCRAM-SHA-256\x00"), []byte{0, 0, 0, 20}, []byte("n,,n=,r=abcdefghijkl"))...))
	f.Add(append([]byte{0, 0, 0, 8, 4, 210, 22, 47}, startupPacket("user", "trust")...))
	f.Add([]byte{0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2})
	f.Add(startupPacket("user", "x", "options", "-c a=b", "_pq_.foo", "1"))
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.handle(&bytesConn{r: bytes.NewReader(data)})
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("session did not end")
		}
	})
}

// bytesConn is a client that sends fixed bytes, then EOF, and reads
// nothing back.
type bytesConn struct{ r *bytes.Reader }

func (c *bytesConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *bytesConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *bytesConn) Close() error                { return nil }
func (c *bytesConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6432} }
func (c *bytesConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
}
func (c *bytesConn) SetDeadline(time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }
