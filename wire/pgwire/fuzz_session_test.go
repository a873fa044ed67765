package pgwire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/pool"
)

var (
	fuzzLiveOnce sync.Once
	fuzzLive     *Server
	fuzzLiveAddr string

	fuzzNeighbourMu sync.Mutex
	fuzzNeighbourC  *pgx.Conn
)

// fuzzNeighbour is a well-behaved client of the fuzzed proxy, kept across
// iterations (reconnected if a fuzz input managed to break it).
func fuzzNeighbour(t testing.TB, addr string) *pgx.Conn {
	fuzzNeighbourMu.Lock()
	defer fuzzNeighbourMu.Unlock()
	if fuzzNeighbourC == nil || fuzzNeighbourC.IsClosed() {
		ctx := ctxT(t, 10*time.Second)
		c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app:app@%s/app?sslmode=disable", addr))
		if err != nil {
			t.Fatalf("another client: %v", err)
		}
		fuzzNeighbourC = c
	}
	return fuzzNeighbourC
}

// fuzzLiveServer is a proxy in front of the test cluster's primary, for
// fuzzing every state after login against a real server.
func fuzzLiveServer(t testing.TB) (*Server, string) {
	fuzzLiveOnce.Do(func() {
		cfg, err := config.Parse([]byte(fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
[defaults]
pool_size = 4
query_wait_timeout = "3s"
server_tls = "disable" # many server connections are dialed: keep each cheap
[[users]]
name = "app_trust"
auth = "trust"
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
`, testcluster.PG.Primary.Addr())), "fuzz.toml")
		if err != nil {
			t.Fatal(err)
		}
		fuzzLive, err = NewServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fuzzLiveAddr = ln.Addr().String()
		go fuzzLive.Serve(ln)
	})
	return fuzzLive, fuzzLiveAddr
}

// activeServers counts the server connections leased in s's pools.
func activeServers(s *Server) int {
	n := 0
	s.Pools.Each(func(_ frontend.PoolKey, p *pool.Pool, _ *poolEntry) { n += p.Stats().Active })
	return n
}

// frames joins frontend messages.
func frames(ms ...[]byte) []byte { return bytes.Join(ms, nil) }

func cstr(s string) []byte { return append([]byte(s), 0) }

func u16(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func u32(v int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

// FuzzSession drives everything after a trust login from arbitrary bytes
// against a real PostgreSQL server: simple and extended queries, pipelines,
// COPY, malformed, truncated and oversized frames, and an end of input at
// any point (a client gone mid-statement). The proxy must answer or close,
// never panic or hang, and afterwards serve another client correctly.
func FuzzSession(f *testing.F) {
	f.Add(frames(msg('Q', cstr("SELECT 1"))))
	f.Add(frames(msg('Q', cstr("BEGIN")), msg('Q', cstr("SELECT 1/0")), msg('Q', cstr("SELECT 1"))))
	f.Add(frames(
		msg('P', cstr("s1"), cstr("SELECT $1::int + 1"), u16(1), u32(23)),
		msg('B', cstr(""), cstr("s1"), u16(0), u16(1), u32(1), []byte("7"), u16(0)),
		msg('D', []byte{'P'}, cstr("")),
		msg('E', cstr(""), u32(0)),
		msg('S')))
	f.Add(frames(
		msg('P', cstr(""), cstr("SELECT generate_series(1, $1::int)"), u16(0)),
		msg('B', cstr(""), cstr(""), u16(0), u16(1), u32(4), []byte("1000"), u16(0)),
		msg('E', cstr(""), u32(10)),
		msg('H')))
	f.Add(frames(msg('Q', cstr("CREATE TEMP TABLE f(x int); COPY f FROM STDIN")), msg('d', []byte("1\n2\n")), msg('c'), msg('Q', cstr("SELECT count(*) FROM f"))))
	f.Add(frames(msg('Q', cstr("COPY (SELECT 1) TO STDOUT")), msg('d', []byte("x")), msg('f', cstr("gone"))))
	f.Add(frames(msg('Q', cstr("COPY pg_catalog.pg_class FROM STDIN")), msg('d', []byte("junk"))))
	f.Add(frames(msg('S'), msg('S'), msg('X')))
	f.Add([]byte{'Q', 0x7f, 0xff, 0xff, 0xff, 'S', 'E', 'L'})
	f.Add([]byte{'B', 0, 0, 0, 9, 0, 0, 0xff, 0xff})
	f.Add(frames(msg('F', u32(1598), u16(0), u16(0), u16(0))))
	s, addr := fuzzLiveServer(f)
	login := startupPacket("user", "app_trust", "database", "app")
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.handle(&bytesConn{r: bytes.NewReader(append(login[:len(login):len(login)], data...))})
		}()
		select {
		case <-done:
		case <-time.After(4 * time.Second): // the fuzzing engine calls 10s a hang
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("session did not end; goroutines:\n%s", buf)
		}
		// The departed client's server connection is back in its pool or
		// closed: a leak would starve every later client.
		for deadline := time.Now().Add(2 * time.Second); activeServers(s) > 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%d server connections still leased after the client left", activeServers(s))
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Whatever that client did, another client is served.
		ctx := ctxT(t, 4*time.Second)
		var n int
		if err := fuzzNeighbour(t, addr).QueryRow(ctx, "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
			t.Fatalf("another client: %d, %v", n, err)
		}
	})
}
