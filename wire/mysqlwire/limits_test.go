package mysqlwire

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// startLimitProxy is startProxy with [proxy] keys and extra users; the
// cluster "orders0" (database "orders") gets ordersKeys.
func startLimitProxy(t testing.TB, proxy, ordersKeys, users string) *testProxy {
	t.Helper()
	ma := testcluster.Maria
	src := fmt.Sprintf(`
[proxy]
postgres_listen = ""
mysql_listen = "127.0.0.1:0"
admin_listen = ""
shutdown_timeout = "5s"
%s

[defaults]
query_wait_timeout = "20s"
pool_size = 4

[[users]]
name = "app"
password = "app"

%s

[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q

[[clusters]]
name = "orders0"
protocol = "mysql"
database = "orders"
server_database = "orders_0"
primary = %q
%s
`, proxy, users, ma.Primary.Addr(), ma.Primary.Addr(), ordersKeys)
	cfg, err := config.Parse([]byte(src), "")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return serveProxy(t, cfg, slog.LevelWarn, false)
}

// myNeighbour is a well-behaved client querying next to a misbehaving
// one; stop returns how many queries it ran and what went wrong.
func myNeighbour(t testing.TB, p *testProxy) (stop func() (int, []error)) {
	t.Helper()
	db, err := sql.Open("mysql", p.dsn("app", "app", "app", ""))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	quit, done := make(chan struct{}), make(chan struct{})
	var n int
	var errs []error
	go func() {
		defer close(done)
		defer db.Close()
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			var got int
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := db.QueryRowContext(ctx, "SELECT ? + 1", i).Scan(&got)
			cancel()
			if err == nil && got != i+1 {
				err = fmt.Errorf("SELECT %d + 1 returned %d", i, got)
			}
			if err != nil {
				if errs = append(errs, err); len(errs) > 10 {
					return
				}
			}
			n++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return func() (int, []error) {
		close(quit)
		<-done
		return n, errs
	}
}

func checkMyNeighbour(t testing.TB, stop func() (int, []error)) int {
	t.Helper()
	n, errs := stop()
	if len(errs) > 0 {
		t.Errorf("the well-behaved neighbour saw %d errors in %d queries: %v", len(errs), n, errs)
	}
	if n == 0 {
		t.Error("the well-behaved neighbour ran no query")
	}
	return n
}

func metricValue(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func waitMyCounts(t testing.TB, p *testProxy, total int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); p.srv.Limits.Clients.Counts().Total != total; {
		if time.Now().After(deadline) {
			t.Fatalf("client count %+v, want total %d", p.srv.Limits.Clients.Counts(), total)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holdConn opens one client connection and keeps it until the test ends.
func holdConn(t testing.TB, p *testProxy, user, pw, db string) (*sql.Conn, error) {
	t.Helper()
	pool, err := sql.Open("mysql", p.dsn(user, pw, db, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	c, err := pool.Conn(context.Background())
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, c.PingContext(context.Background())
}

func wantMyErr(t testing.TB, err error, num uint16, text string) {
	t.Helper()
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != num || !strings.Contains(me.Message, text) {
		t.Fatalf("want error %d naming %q, got %v", num, text, err)
	}
}

// Caps on clients in all, per user and per database: ER_CON_COUNT_ERROR
// naming what is full; nothing stays counted after failed logins; users
// reach only their databases.
func TestLimitClientConnsMySQL(t *testing.T) {
	p := startLimitProxy(t, `max_client_conns = 4`, `max_db_client_conns = 1`, `
[[users]]
name = "capped"
password = "capped"
server_user = "app"
server_password = "app"
max_client_conns = 1
databases = ["app"]`)
	stop := myNeighbour(t, p) // client 1
	if _, err := holdConn(t, p, "capped", "capped", "app"); err != nil {
		t.Fatal(err)
	}
	_, err := holdConn(t, p, "capped", "capped", "app")
	wantMyErr(t, err, 1040, `too many connections for user "capped" (max_client_conns = 1)`)
	_, err = holdConn(t, p, "capped", "capped", "orders")
	wantMyErr(t, err, 1044, `Access denied for user 'capped' to database 'orders'`)
	waitMyCounts(t, p, 2) // refused clients are uncounted as they leave
	if _, err := holdConn(t, p, "app", "app", "orders"); err != nil {
		t.Fatal(err)
	}
	_, err = holdConn(t, p, "app", "app", "orders")
	wantMyErr(t, err, 1040, `too many connections for database "orders" (max_db_client_conns = 1)`)
	waitMyCounts(t, p, 3)
	// Back to back at one below the cap: each failed login's place is
	// free by the time its client reads why, so each fails for its own
	// reason, not 1040.
	for _, u := range [][2]string{{"app", "wrong"}, {"nobody", "x"}, {"app", "wrong"}} {
		_, err := holdConn(t, p, u[0], u[1], "app")
		wantMyErr(t, err, 1045, "Access denied")
	}
	waitMyCounts(t, p, 3)
	if _, err := holdConn(t, p, "app", "app", "app"); err != nil { // client 4
		t.Fatal(err)
	}
	_, err = holdConn(t, p, "app", "app", "app")
	wantMyErr(t, err, 1040, `no more connections allowed (max_client_conns = 4)`)
	waitMyCounts(t, p, 4)
	checkMyNeighbour(t, stop)
	waitMyCounts(t, p, 3)
}

// After auth_failures_per_minute failures from one address, a login is
// refused at once with ER_HOST_IS_BLOCKED, even with the right password.
func TestAuthFailureRateLimitMySQL(t *testing.T) {
	p := startLimitProxy(t, `auth_failures_per_minute = 2`, ``, ``)
	stop := myNeighbour(t, p)
	failures := metricValue(t, "switchyard_auth_failures_total")
	refusals := metricValue(t, "switchyard_auth_refusals_total")
	for _, u := range [][2]string{{"app", "wrong"}, {"nobody", "x"}} {
		_, err := holdConn(t, p, u[0], u[1], "app")
		wantMyErr(t, err, 1045, "Access denied")
	}
	_, err := holdConn(t, p, "app", "app", "app")
	wantMyErr(t, err, 1129, "Host '127.0.0.1' is blocked because of too many failed logins (auth_failures_per_minute = 2)")
	if d := metricValue(t, "switchyard_auth_failures_total") - failures; d != 2 {
		t.Errorf("auth failures metric grew by %v, want 2", d)
	}
	if d := metricValue(t, "switchyard_auth_refusals_total") - refusals; d != 1 {
		t.Errorf("auth refusals metric grew by %v, want 1", d)
	}
	checkMyNeighbour(t, stop)
}

// Clients that say nothing after the greeting, or stop half-way through
// their handshake response, are closed after client_login_timeout.
func TestLoginTimeoutMySQL(t *testing.T) {
	p := startLimitProxy(t, `client_login_timeout = "300ms"`, ``, ``)
	stop := myNeighbour(t, p)
	before := metricValue(t, "switchyard_client_login_timeouts_total")
	for _, send := range [][]byte{nil, {50, 0, 0, 1, 0x85, 0xa6}} {
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if send != nil {
			_, _ = conn.Write(send)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.Copy(io.Discard, conn)
		conn.Close()
		if d := time.Since(start); err != nil || d < 250*time.Millisecond || d > 3*time.Second {
			t.Errorf("sent %d bytes: closed after %v (err %v), want about 300ms", len(send), d, err)
		}
	}
	if d := metricValue(t, "switchyard_client_login_timeouts_total") - before; d != 2 {
		t.Errorf("login timeouts metric grew by %v, want 2", d)
	}
	checkMyNeighbour(t, stop)
	waitMyCounts(t, p, 0)
}

// A packet header claiming 16 MB costs the proxy what arrives, not what
// is claimed; a command over max_allowed_packet gets
// ER_NET_PACKET_TOO_LARGE and the connection is closed; the neighbour
// sees nothing.
func TestOversizedPacketMySQL(t *testing.T) {
	p := startLimitProxy(t, ``, ``, ``)
	stop := myNeighbour(t, p)
	// Many clients announce a 16 MB command and send 1 KB of it.
	const n = 50
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	var held []*backend
	for i := 0; i < n; i++ {
		be := rawClientCaps(t, p, mysqlproto.PluginNative, 0)
		held = append(held, be)
		hdr := []byte{0xff, 0xff, 0xff, 0, mysqlproto.ComQuery}
		if _, err := be.nc.Write(append(hdr, make([]byte, 1023)...)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	runtime.ReadMemStats(&m1)
	grew := int64(m1.HeapInuse) - int64(m0.HeapInuse)
	t.Logf("%d clients each announcing a 16 MB packet: heap in use grew by %d KiB (%d KiB per client)", n, grew>>10, grew/n>>10)
	if grew > n*(1<<20) {
		t.Errorf("heap grew by %d MiB for %d clients announcing 16 MB each", grew>>20, n)
	}
	for _, be := range held {
		be.nc.Close()
	}

	// A logical packet over the limit: a full 16 MB chunk and more to come.
	be := rawClientCaps(t, p, mysqlproto.PluginNative, 0)
	go func() {
		chunk := make([]byte, 4+mysqlproto.MaxChunk)
		chunk[0], chunk[1], chunk[2], chunk[4] = 0xff, 0xff, 0xff, mysqlproto.ComQuery
		_, _ = be.nc.Write(chunk)
		_, _ = be.nc.Write([]byte{10, 0, 0, 1, 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'})
	}()
	_ = be.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	pkt, _, err := be.readPacket()
	if err != nil || len(pkt) < 3 || pkt[0] != mysqlproto.HeaderERR || uint16(pkt[1])|uint16(pkt[2])<<8 != mysqlproto.ERNetPacketTooLarge {
		t.Fatalf("want ERR 1153, got %q, %v", pkt, err)
	}
	if _, err := io.Copy(io.Discard, be.br); err != nil && !quiet(err) {
		t.Fatalf("connection not closed after the ERR: %v", err)
	}
	checkMyNeighbour(t, stop)
}

// A client that sends a query with a big result and never reads holds its
// server connection, and the proxy no more than its buffers: the relay
// blocks on the client's socket. The neighbour goes on; when the slow
// client leaves, its query stops on the server.
func TestSlowReaderBoundedMySQL(t *testing.T) {
	p := startLimitProxy(t, ``, ``, ``)
	stop := myNeighbour(t, p)
	be := rawClientCaps(t, p, mysqlproto.PluginNative, 0)
	if tc, ok := be.nc.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	const tag = "slow reader 5c2a"
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	q := fmt.Sprintf("SELECT /* %s */ REPEAT('x', 1000) FROM seq_1_to_2000000", tag)
	if _, err := mysqlproto.WritePacket(be.bw, 0, append([]byte{mysqlproto.ComQuery}, q...)); err != nil {
		t.Fatal(err)
	}
	if err := be.bw.Flush(); err != nil {
		t.Fatal(err)
	}
	running := func() string {
		out, err := testcluster.Maria.QueryString(testcluster.Maria.Primary,
			fmt.Sprintf("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%%%s%%' AND ID <> CONNECTION_ID()", tag))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	time.Sleep(2 * time.Second)
	if got := running(); got != "1" {
		t.Fatalf("the slow reader's query runs %s times on the server, want 1 (blocked on the proxy)", got)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	grew := int64(m1.HeapInuse) - int64(m0.HeapInuse)
	t.Logf("slow reader of a 2 GB result: heap in use grew by %d KiB", grew>>10)
	if grew > 8<<20 {
		t.Errorf("heap grew by %d MiB for one slow reader", grew>>20)
	}
	checkMyNeighbour(t, stop)
	be.nc.Close()
	for deadline := time.Now().Add(10 * time.Second); running() != "0"; {
		if time.Now().After(deadline) {
			t.Fatal("the slow reader's query still runs after it left")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// max_wait_clients: a statement that would wait beyond the cap gets 1040
// at once naming the pool; the client stays connected and the one in
// line is served.
func TestLimitWaitQueueMySQL(t *testing.T) {
	p := startProxy(t, "pool_size = 1\nmax_wait_clients = 1")
	db := p.open(t, "")
	ctx := context.Background()
	conns := make([]*sql.Conn, 3)
	for i := range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	tx, err := conns[0].BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		var n int
		err := conns[1].QueryRowContext(ctx, "SELECT 42").Scan(&n)
		if err == nil && n != 42 {
			err = fmt.Errorf("got %d", n)
		}
		waited <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); metricValue(t, "switchyard_pool_waiting_clients") < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the second client never queued")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	_, err = conns[2].ExecContext(ctx, "SELECT 1")
	wantMyErr(t, err, 1040, "max_wait_clients")
	wantMyErr(t, err, 1040, `pool "mysql/my@`)
	if d := time.Since(start); d > time.Second {
		t.Errorf("refused after %v, want at once", d)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("the client in line: %v", err)
	}
	if _, err := conns[2].ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatalf("the refused client afterwards: %v", err)
	}
}
