package pgwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// heapInuse is the heap in use after a collection.
func heapInuse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// rawConnect logs in with pgconn and returns the connection; its socket is
// then driven by hand.
func rawConnect(t testing.TB, p *testProxy) *pgconn.PgConn {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	c, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Conn().Close() })
	return c
}

// receiveUntilClosed reads what the proxy sends until it closes, and
// returns the ErrorResponses.
func receiveUntilClosed(t testing.TB, c *pgconn.PgConn) []*pgproto3.ErrorResponse {
	t.Helper()
	_ = c.Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
	var errs []*pgproto3.ErrorResponse
	for {
		m, err := c.Frontend().Receive()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the proxy did not close the connection")
			}
			return errs
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			cp := *e
			errs = append(errs, &cp)
		}
	}
}

// A message claiming 1 GB gets FATAL 54000 and a close; many clients each
// claiming 200 MB (under the limit) and sending a little cost what they
// send, not what they claim; a startup packet claiming 1 GB gets 08P01.
// The neighbour sees nothing of it.
func TestOversizedMessages(t *testing.T) {
	p := startProxy(t, "")
	stop := neighbour(t, p)

	c := rawConnect(t, p)
	if _, err := c.Conn().Write([]byte{'Q', 0x40, 0, 0, 0, 'S', 'E', 'L'}); err != nil {
		t.Fatal(err)
	}
	errs := receiveUntilClosed(t, c)
	if len(errs) != 1 || errs[0].Code != "54000" || errs[0].Severity != "FATAL" || !strings.Contains(errs[0].Message, "message too large") {
		t.Fatalf("1 GB message: want FATAL 54000, got %+v", errs)
	}

	raw, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_, _ = raw.Write([]byte{0x40, 0, 0, 0, 0, 3, 0, 0})
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, _ := io.ReadAll(raw)
	if len(reply) < 6 || reply[0] != 'E' || !strings.Contains(string(reply), "C08P01") {
		t.Fatalf("1 GB startup packet: want an 08P01 ErrorResponse, got %q", reply)
	}

	const n = 20
	before := heapInuse()
	var clients []*pgconn.PgConn
	for i := 0; i < n; i++ {
		c := rawConnect(t, p)
		msg := binary.BigEndian.AppendUint32([]byte{'Q'}, 200<<20)
		if _, err := c.Conn().Write(append(msg, make([]byte, 8<<10)...)); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	time.Sleep(200 * time.Millisecond)
	grew := heapInuse() - before
	t.Logf("%d clients each sending 8 KiB of a 200 MB message: heap in use grew by %d KiB (%d KiB per client)", n, grew>>10, grew/n>>10)
	if grew > 32<<20 {
		t.Errorf("heap grew by %d MiB for %d clients announcing 200 MB each", grew>>20, n)
	}
	for _, c := range clients {
		c.Conn().Close()
	}
	checkNeighbour(t, stop)
}

// A client that sends a query with a big result and never reads holds its
// server connection, and the proxy holds no more than its buffers for it:
// the relay blocks on the client's socket. Others go on; when the slow
// client leaves, its query is stopped and the connection cleaned.
func TestSlowReaderBounded(t *testing.T) {
	p := startProxy(t, `pool_size = 2`)
	stop := neighbour(t, p)
	c := rawConnect(t, p)
	// Shrink the client's receive buffer so that the kernel holds little.
	if tc, ok := c.Conn().(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	const tag = "slow reader 7d1e"
	before := heapInuse()
	c.Frontend().Send(&pgproto3.Query{String: fmt.Sprintf(`SELECT /* %s */ repeat('x', 1000) FROM generate_series(1, 2000000)`, tag)})
	if err := c.Frontend().Flush(); err != nil {
		t.Fatal(err)
	}
	activity := func() string {
		out, err := testcluster.PG.QueryString(testcluster.PG.Primary, "app",
			fmt.Sprintf(`SELECT coalesce(string_agg(state || ':' || coalesce(wait_event, ''), ','), '') FROM pg_stat_activity WHERE query LIKE '%%%s%%' AND query NOT LIKE '%%pg_stat_activity%%' AND pid <> pg_backend_pid()`, tag))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	// The server ends up blocked writing to the proxy: 2 GB of result
	// is not buffered anywhere.
	var state string
	for deadline := time.Now().Add(10 * time.Second); ; {
		state = activity()
		if strings.Contains(state, "ClientWrite") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if state != "active:ClientWrite" {
		t.Fatalf("server session of the slow reader: %q, want active:ClientWrite", state)
	}
	time.Sleep(time.Second)
	grew := heapInuse() - before
	t.Logf("slow reader of a 2 GB result: heap in use grew by %d KiB; server session %s", grew>>10, state)
	if grew > 8<<20 {
		t.Errorf("heap grew by %d MiB for one slow reader", grew>>20)
	}
	n := checkNeighbour(t, stop)
	t.Logf("neighbour ran %d queries meanwhile", n)

	c.Conn().Close()
	for deadline := time.Now().Add(10 * time.Second); activity() != ""; {
		if time.Now().After(deadline) {
			t.Fatalf("the slow reader's query still runs after it left: %s", activity())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serverClean fails the test if a session of database app is left in a
// transaction or holds a lock on table.
func serverClean(t testing.TB, table string) {
	t.Helper()
	q := fmt.Sprintf(`SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND state LIKE 'idle in transaction%%')
		|| '/' || (SELECT count(*) FROM pg_locks WHERE relation = '%s'::regclass)`, table)
	var got string
	for deadline := time.Now().Add(5 * time.Second); ; {
		out, err := testcluster.PG.QueryString(testcluster.PG.Primary, "app", q)
		if err != nil {
			t.Fatal(err)
		}
		if got = strings.TrimSpace(out); got == "0/0" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got != "0/0" {
		t.Fatalf("sessions idle in transaction / locks on %s: %s, want 0/0", table, got)
	}
}

// nextClientClean checks, through the proxy with a pool of one, that the
// next client gets a connection outside any transaction, that the table
// is not locked and that the departed client's rows are not there.
func nextClientClean(t testing.TB, p *testProxy, table string) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	c, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	res, err := c.Exec(ctx, fmt.Sprintf(`SET lock_timeout = '2s'; SELECT count(*), pg_current_xact_id_if_assigned() IS NULL FROM %s; RESET lock_timeout`, table)).ReadAll()
	if err != nil {
		t.Fatalf("next client: %v", err)
	}
	if row := res[1].Rows[0]; string(row[0]) != "0" || string(row[1]) != "t" {
		t.Fatalf("next client sees count=%s, outside a transaction=%s; want 0, t", row[0], row[1])
	}
	if c.TxStatus() != 'I' {
		t.Fatalf("next client's status %q", c.TxStatus())
	}
}

// A client that leaves in the middle of COPY FROM STDIN, inside a
// transaction holding a lock, leaves no transaction and no lock.
func TestClientGoneMidCopy(t *testing.T) {
	p := startProxy(t, `pool_size = 1`)
	mustExec(t, `DROP TABLE IF EXISTS t_midcopy; CREATE TABLE t_midcopy (id int, v text)`)
	stop := neighbour(t, p) // shares the one server connection between transactions
	ctx := ctxT(t, 30*time.Second)
	for _, inTx := range []bool{false, true} {
		c := rawConnect(t, p)
		if inTx {
			if _, err := c.Exec(ctx, `BEGIN; LOCK TABLE t_midcopy IN ACCESS EXCLUSIVE MODE`).ReadAll(); err != nil {
				t.Fatal(err)
			}
		}
		c.Frontend().Send(&pgproto3.Query{String: `COPY t_midcopy FROM STDIN`})
		_ = c.Frontend().Flush()
		for {
			m, err := c.Frontend().Receive()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.(*pgproto3.CopyInResponse); ok {
				break
			}
		}
		c.Frontend().Send(&pgproto3.CopyData{Data: []byte("1\tone\n2\ttwo\n")})
		_ = c.Frontend().Flush()
		time.Sleep(50 * time.Millisecond)
		c.Conn().Close()
		serverClean(t, "t_midcopy")
	}
	checkNeighbour(t, stop)
	nextClientClean(t, p, "t_midcopy")
}

// A client that leaves in the middle of an extended-protocol pipeline
// (BEGIN, LOCK, INSERT sent, no Sync yet) leaves no transaction, lock or
// row behind.
func TestClientGonePipeline(t *testing.T) {
	p := startProxy(t, `pool_size = 1`)
	mustExec(t, `DROP TABLE IF EXISTS t_midpipe; CREATE TABLE t_midpipe (id int)`)
	stop := neighbour(t, p)
	for _, flush := range []bool{true, false} {
		c := rawConnect(t, p)
		fe := c.Frontend()
		for _, q := range []string{`BEGIN`, `LOCK TABLE t_midpipe IN ACCESS EXCLUSIVE MODE`, `INSERT INTO t_midpipe VALUES (1)`} {
			fe.Send(&pgproto3.Parse{Query: q})
			fe.Send(&pgproto3.Bind{})
			fe.Send(&pgproto3.Execute{})
		}
		if flush {
			// The server runs the pipeline and answers; the client leaves
			// without a Sync, holding the lock.
			fe.Send(&pgproto3.Flush{})
			_ = fe.Flush()
			completes := 0
			_ = c.Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
			for completes < 3 {
				m, err := fe.Receive()
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := m.(*pgproto3.CommandComplete); ok {
					completes++
				}
			}
		} else {
			_ = fe.Flush()
			time.Sleep(50 * time.Millisecond)
		}
		c.Conn().Close()
		serverClean(t, "t_midpipe")
	}
	checkNeighbour(t, stop)
	nextClientClean(t, p, "t_midpipe")
}

// idleClients logs n clients in (trust auth, a raw startup packet) over
// workers concurrent dialers and keeps them. Refusals with 53300 are
// counted; any other failure is returned.
func idleClients(addr string, n, workers int) (conns []net.Conn, refused int, errs []error) {
	var mu sync.Mutex
	next := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		next <- struct{}{}
	}
	close(next)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				c, code, err := rawLogin(addr)
				mu.Lock()
				switch {
				case err == nil:
					conns = append(conns, c)
				case code == "53300":
					refused++
				default:
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return conns, refused, errs
}

// rawLogin is the smallest PostgreSQL login: a startup packet for the
// trust user, then read up to ReadyForQuery. code is the SQLSTATE of an
// ErrorResponse.
func rawLogin(addr string) (net.Conn, string, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, "", err
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write(startupPacket("user", "app_trust", "database", "app")); err != nil {
		c.Close()
		return nil, "", err
	}
	code, err := readUntilReady(c, nil)
	if err != nil {
		c.Close()
		return nil, code, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, "", nil
}

// readUntilReady reads messages up to ReadyForQuery; DataRow bodies go to
// rows. An ErrorResponse ends it with its SQLSTATE.
func readUntilReady(c net.Conn, rows *[]string) (string, error) {
	var hdr [5]byte
	buf := make([]byte, 512)
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return "", err
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n > len(buf) {
			buf = make([]byte, n)
		}
		body := buf[:n]
		if _, err := io.ReadFull(c, body); err != nil {
			return "", err
		}
		switch hdr[0] {
		case 'Z':
			return "", nil
		case 'D':
			if rows != nil && len(body) > 6 {
				*rows = append(*rows, string(body[6:]))
			}
		case 'E':
			var code string
			for _, f := range strings.Split(string(body), "\x00") {
				if strings.HasPrefix(f, "C") {
					code = f[1:]
				}
			}
			return code, fmt.Errorf("error response %q", strings.ReplaceAll(string(body), "\x00", " "))
		}
	}
}

// rawQuery runs SELECT i on a raw client and checks the answer.
func rawQuery(c net.Conn, i int) error {
	q := fmt.Sprintf("SELECT %d\x00", i)
	msg := binary.BigEndian.AppendUint32([]byte{'Q'}, uint32(len(q)+4))
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(append(msg, q...)); err != nil {
		return err
	}
	var rows []string
	if _, err := readUntilReady(c, &rows); err != nil {
		return err
	}
	if len(rows) != 1 || rows[0] != fmt.Sprint(i) {
		return fmt.Errorf("SELECT %d returned %q", i, rows)
	}
	return nil
}

// manyClients connects n idle clients at once, runs a query on some, and
// reports the time and the proxy's heap per idle client. The test process
// holds the clients' sockets too (a few hundred bytes each).
func manyClients(t *testing.T, n int) {
	p := serveConfig(t, limitsConfig(fmt.Sprintf(`max_client_conns = %d`, n+10), `pool_size = 4`, ``))
	stop := neighbour(t, p)
	// The first login learns the server's parameters; the rest is logins.
	if c, _, err := rawLogin(p.addr); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	conns, refused, errs := idleClients(p.addr, n, 64)
	elapsed := time.Since(start)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if len(errs) > 0 {
		t.Fatalf("%d logins failed (first: %v)", len(errs), errs[0])
	}
	if refused > 0 {
		t.Fatalf("%d logins refused under max_client_conns = %d", refused, n+10)
	}
	time.Sleep(100 * time.Millisecond) // the last sessions settle into their read
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	heap := (int64(m1.HeapInuse) - int64(m0.HeapInuse)) / int64(n)
	stack := (int64(m1.StackInuse) - int64(m0.StackInuse)) / int64(n)
	t.Logf("%d clients logged in in %v (%.0f/s); per idle client: heap in use %d B, goroutine stacks %d B",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), heap, stack)
	// Idle clients hold no read or write buffers (idle.go): 24 KiB of
	// them each before.
	if !raceOn && heap > 12<<10 {
		t.Errorf("heap in use per idle client %d B, want under 12 KiB", heap)
	}
	for i := 0; i < len(conns); i += len(conns) / 50 {
		if err := rawQuery(conns[i], i); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	// Fill the cap (the neighbour holds one place), then one more is
	// refused clearly.
	extra, refused, errs := idleClients(p.addr, 9, 1)
	defer func() {
		for _, c := range extra {
			c.Close()
		}
	}()
	if len(extra) != 9 || refused != 0 || len(errs) != 0 {
		t.Fatalf("filling the cap: %d in, %d refused, %v", len(extra), refused, errs)
	}
	if c, code, err := rawLogin(p.addr); err == nil || code != "53300" {
		if c != nil {
			c.Close()
		}
		t.Errorf("login over max_client_conns: code %q, err %v; want 53300", code, err)
	}
	checkNeighbour(t, stop)
}

// TestManyIdleClients is the small version of TestDrillTenThousandClients
// (build tag drill), sized for make test.
func TestManyIdleClients(t *testing.T) {
	n := 2000
	if raceOn {
		n = 400
	}
	manyClients(t, n)
}
