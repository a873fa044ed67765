package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/testcluster"
)

// fleetToken is the admin token every instance of the test fleet shares.
const fleetToken = "fleet-test-token-0123456789"

// testFleet is three instances of the proxy on loopback, each with its
// own ports and instance id and otherwise the same config, behind a TCP
// round-robin balancer per protocol.
type testFleet struct {
	pg    *testcluster.Postgres
	my    *testcluster.MariaDB
	dir   string
	ports [3]struct{ pg, my, admin int }
	paths [3]string
	procs [3]*proxy
	pgLB  *roundRobin
	myLB  *roundRobin
}

// fleetConfig is the config of instance i (0-based) with shard map
// buckets b: the same for all three but for the listeners.
func (f *testFleet) fleetConfig(i, buckets int) string {
	peers := ""
	for j, p := range f.ports {
		peers += fmt.Sprintf("\n[[peers]]\ninstance_id = %d\npostgres_listen = \"127.0.0.1:%d\"\nmysql_listen = \"127.0.0.1:%d\"\nadmin_listen = \"127.0.0.1:%d\"\n", j+1, p.pg, p.my, p.admin)
	}
	return fmt.Sprintf(`[proxy]
postgres_listen = "127.0.0.1:%d"
mysql_listen = "127.0.0.1:%d"
admin_listen = "127.0.0.1:%d"
admin_token = %q
shutdown_timeout = "2s"

[defaults]
pool_size = 6
query_wait_timeout = "20s"
# A paused replica stays eligible: only the token keeps a read off it.
max_replica_lag = "300s"

[[users]]
name = "app"
password = "app"

[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
replicas = [%q]

[[clusters]]
name = "orders"
protocol = "postgres"
database = "orders"
[clusters.sharding]
kind = "hash"
key = "id"
buckets = %d
[[clusters.shards]]
primary = %q
database = "orders_0"
[[clusters.shards]]
primary = %q
database = "orders_1"

[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q
replicas = [%q]
%s`, f.ports[i].pg, f.ports[i].my, f.ports[i].admin, fleetToken,
		f.pg.Primary.Addr(), f.pg.Replicas[0].Addr(), buckets, f.pg.Primary.Addr(), f.pg.Primary.Addr(),
		f.my.Primary.Addr(), f.my.Replicas[0].Addr(), peers)
}

func (f *testFleet) writeConfigs(t *testing.T, buckets int) {
	t.Helper()
	for i := range f.paths {
		f.paths[i] = filepath.Join(f.dir, fmt.Sprintf("switchyard-%d.toml", i+1))
		if err := os.WriteFile(f.paths[i], []byte(f.fleetConfig(i, buckets)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func startFleet(t *testing.T) *testFleet {
	t.Helper()
	f := &testFleet{dir: t.TempDir()}
	var wg sync.WaitGroup
	var pgErr, myErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		f.pg, pgErr = testcluster.StartPostgres(testcluster.Options{Replicas: 1})
	}()
	go func() {
		defer wg.Done()
		f.my, myErr = testcluster.StartMariaDB(testcluster.Options{Replicas: 1})
	}()
	wg.Wait()
	if f.pg != nil {
		t.Cleanup(f.pg.Stop)
	}
	if f.my != nil {
		t.Cleanup(f.my.Stop)
	}
	if pgErr != nil || myErr != nil {
		t.Fatal(pgErr, myErr)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// A port freePort found free can be taken by another process before
	// the instance binds it (packages' tests run at once): then the
	// fleet starts again on other ports.
	for attempt := 1; ; attempt++ {
		for i := range f.ports {
			f.ports[i].pg, f.ports[i].my, f.ports[i].admin = freePort(t), freePort(t), freePort(t)
		}
		f.writeConfigs(t, 16)
		var err error
		for i := range f.procs {
			// One file per instance for its ports; the instance id comes
			// from the command line, as with one file shared by the fleet.
			cfg, lerr := loadConfig(f.paths[i], strconv.Itoa(i+1))
			if lerr != nil {
				t.Fatal(lerr)
			}
			f.procs[i], err = start(cfg, f.paths[i], log.With("instance", i+1))
			if err != nil {
				break
			}
		}
		if err == nil {
			break
		}
		for i := range f.procs {
			if f.procs[i] != nil {
				f.procs[i].close()
				f.procs[i] = nil
			}
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 5 {
			t.Fatal(err)
		}
		t.Logf("starting the fleet again on other ports: %v", err)
	}
	for _, p := range f.procs {
		t.Cleanup(p.close)
	}
	for _, p := range f.ports {
		waitListening(t, p.pg)
		waitListening(t, p.my)
		waitListening(t, p.admin)
	}
	var pgs, mys []string
	for _, p := range f.ports {
		pgs = append(pgs, fmt.Sprintf("127.0.0.1:%d", p.pg))
		mys = append(mys, fmt.Sprintf("127.0.0.1:%d", p.my))
	}
	f.pgLB = newRoundRobin(t, pgs)
	f.myLB = newRoundRobin(t, mys)
	return f
}

// roundRobin is the test's TCP load balancer: each new connection goes
// to the next backend.
type roundRobin struct {
	ln       net.Listener
	backends []string
	next     atomic.Uint64
	last     atomic.Int64 // index of the backend of the last connection
}

func newRoundRobin(t *testing.T, backends []string) *roundRobin {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb := &roundRobin{ln: ln, backends: backends}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			i := int((lb.next.Add(1) - 1) % uint64(len(backends)))
			lb.last.Store(int64(i))
			go func() {
				defer c.Close()
				b, err := net.DialTimeout("tcp", backends[i], 5*time.Second)
				if err != nil {
					return
				}
				defer b.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return lb
}

func (lb *roundRobin) addr() string { return lb.ln.Addr().String() }

func counter(protocol, result string) float64 {
	var m dto.Metric
	_ = metrics.FleetCancels.WithLabelValues(protocol, result).Write(&m)
	return m.GetCounter().GetValue()
}

// sendCancel sends a CancelRequest to addr and waits for the far end to
// close, as libpq does.
func sendCancelTo(t *testing.T, addr string, pid uint32, secret []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := binary.BigEndian.AppendUint32(nil, uint32(12+len(secret)))
	msg = binary.BigEndian.AppendUint32(msg, 80877102)
	msg = binary.BigEndian.AppendUint32(msg, pid)
	msg = append(msg, secret...)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	_, _ = c.Read(b[:])
}

// TestFleet runs three instances behind a round-robin balancer: cancels
// and KILLs reach the instance of the client whichever instance takes
// them, a wrong or foreign key cancels nothing, a read-your-writes token
// from one instance is honoured by another, and reload --all reaches
// every instance and reports one that is down.
func TestFleet(t *testing.T) {
	f := startFleet(t)
	t.Run("PostgresCancel", func(t *testing.T) { testFleetPGCancel(t, f) })
	t.Run("PostgresWrongKey", func(t *testing.T) { testFleetPGWrongKey(t, f) })
	t.Run("MySQLKill", func(t *testing.T) { testFleetMySQLKill(t, f) })
	t.Run("ReadYourWrites", func(t *testing.T) { testFleetReadYourWrites(t, f) })
	t.Run("ReloadAll", func(t *testing.T) { testFleetReloadAll(t, f) })
}

func pgConnect(t *testing.T, ctx context.Context, port int, db string) *pgconn.PgConn {
	t.Helper()
	c, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://app:app@127.0.0.1:%d/%s?sslmode=disable", port, db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// waitRunningPG waits until a server (the primary or the replica: a read
// goes to either) runs a statement with marker in its text.
func waitRunningPG(t *testing.T, f *testFleet, marker string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range []testcluster.Node{f.pg.Primary, f.pg.Replicas[0]} {
			c, err := f.pg.QueryString(n, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%%%s%%' AND pid <> pg_backend_pid()", marker))
			if err == nil && c == "1" {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s is not running on a server after 10s", marker)
}

func testFleetPGCancel(t *testing.T, f *testFleet) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fwd, recv := counter("postgres", "forwarded"), counter("postgres", "received")
	hit := map[int64]bool{}
	// The query runs through instance A (1); each cancel goes through the
	// balancer, to the next instance in turn: A itself, or a peer.
	for round := 0; round < 3; round++ {
		conn := pgConnect(t, ctx, f.ports[0].pg, "app")
		if fleet.Owner(uint64(conn.PID())) != 1 {
			t.Fatalf("instance 1 gave process id %#x, which carries instance %d", conn.PID(), fleet.Owner(uint64(conn.PID())))
		}
		marker := fmt.Sprintf("fleet_cancel_%d", round)
		done := make(chan error, 1)
		go func() {
			_, err := conn.Exec(ctx, "SELECT pg_sleep(30) AS "+marker).ReadAll()
			done <- err
		}()
		waitRunningPG(t, f, marker)
		start := time.Now()
		sendCancelTo(t, f.pgLB.addr(), conn.PID(), conn.SecretKey())
		via := f.pgLB.last.Load()
		hit[via] = true
		select {
		case err := <-done:
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "57014" {
				t.Fatalf("round %d: the query ended with %v, want a cancel (57014)", round, err)
			}
			took := time.Since(start)
			t.Logf("cancel through instance %d: the query ended %v after the cancel was sent", via+1, took.Round(time.Millisecond))
			if took > time.Second {
				t.Errorf("round %d (via instance %d): the cancel took %v", round, via+1, took)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the cancel received by instance %d did not stop the query", round, via+1)
		}
	}
	if len(hit) != 3 {
		t.Fatalf("the cancels reached instances %v, want all three", hit)
	}
	if d := counter("postgres", "forwarded") - fwd; d != 2 {
		t.Errorf("forwarded cancels: %v, want 2", d)
	}
	if d := counter("postgres", "received") - recv; d != 2 {
		t.Errorf("received cancels: %v, want 2", d)
	}
}

func testFleetPGWrongKey(t *testing.T, f *testFleet) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	unknown := counter("postgres", "unknown")
	conn := pgConnect(t, ctx, f.ports[0].pg, "app")
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(2) AS fleet_wrong_key").ReadAll()
		done <- err
	}()
	waitRunningPG(t, f, "fleet_wrong_key")
	pid, key := conn.PID(), conn.SecretKey()
	bad := append([]byte(nil), key...)
	bad[0] ^= 0xff
	for i := 0; i < 3; i++ { // one of each to every instance
		sendCancelTo(t, f.pgLB.addr(), pid, bad)               // wrong secret
		sendCancelTo(t, f.pgLB.addr(), fleet.ID(7, pid), key)  // an instance that is no peer
		sendCancelTo(t, f.pgLB.addr(), fleet.ID(2, pid), key)  // a peer that has no such client
		sendCancelTo(t, f.pgLB.addr(), pid&fleet.LowMask, key) // no instance at all
	}
	if err := <-done; err != nil {
		t.Fatalf("the query was cancelled by a wrong or foreign key: %v", err)
	}
	if d := counter("postgres", "unknown") - unknown; d < 3 {
		t.Errorf("unknown cancels: %v, want at least 3", d)
	}
}

// idDialer records the connection id the proxy sends in its handshake.
type idDialer struct {
	mu sync.Mutex
	id uint32
}

func (d *idDialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &idConn{Conn: c, d: d}, nil
}

type idConn struct {
	net.Conn
	d    *idDialer
	seen bool
	buf  []byte
}

func (c *idConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.seen && n > 0 {
		c.buf = append(c.buf, p[:n]...)
		// 4-byte header, protocol 10, server version NUL-terminated,
		// then the connection id (little endian).
		if len(c.buf) > 5 {
			if i := bytes.IndexByte(c.buf[5:], 0); i >= 0 && len(c.buf) >= 5+i+1+4 {
				c.d.mu.Lock()
				c.d.id = binary.LittleEndian.Uint32(c.buf[5+i+1:])
				c.d.mu.Unlock()
				c.seen, c.buf = true, nil
			}
		}
	}
	return n, err
}

func waitRunningMy(t *testing.T, f *testFleet, marker string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range []testcluster.Node{f.my.Primary, f.my.Replicas[0]} {
			c, err := f.my.QueryString(n, fmt.Sprintf("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%%%s%%' AND ID <> CONNECTION_ID()", marker))
			if err == nil && c == "1" {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s is not running on a server after 10s", marker)
}

func testFleetMySQLKill(t *testing.T, f *testFleet) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := &idDialer{}
	mysql.RegisterDialContext("fleetA", d.dial)
	victimDB, err := sql.Open("mysql", fmt.Sprintf("app:app@fleetA(127.0.0.1:%d)/app", f.ports[0].my))
	if err != nil {
		t.Fatal(err)
	}
	defer victimDB.Close()
	victimDB.SetMaxOpenConns(1)
	victim, err := victimDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	d.mu.Lock()
	id := d.id
	d.mu.Unlock()
	if fleet.Owner(uint64(id)) != 1 {
		t.Fatalf("instance 1 gave connection id %#x, which carries instance %d", id, fleet.Owner(uint64(id)))
	}
	fwd := counter("mysql", "forwarded")
	lbDSN := fmt.Sprintf("app:app@tcp(%s)/app", f.myLB.addr())
	hit := map[int64]bool{}
	for round := 0; round < 3; round++ {
		marker := fmt.Sprintf("fleet_kill_%d", round)
		done := make(chan error, 1)
		go func() {
			_, err := victim.ExecContext(ctx, "SELECT SLEEP(30) AS "+marker)
			done <- err
		}()
		waitRunningMy(t, f, marker)
		killer, err := sql.Open("mysql", lbDSN)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = killer.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", id))
		via := f.myLB.last.Load()
		killer.Close()
		if err != nil {
			t.Fatalf("round %d: KILL QUERY through instance %d: %v", round, via+1, err)
		}
		hit[via] = true
		select {
		case err := <-done:
			took := time.Since(start)
			t.Logf("KILL QUERY through instance %d: the query ended (%v) %v after the KILL was sent", via+1, err, took.Round(time.Millisecond))
			if took > time.Second {
				t.Errorf("round %d (via instance %d): the KILL took %v", round, via+1, took)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the KILL through instance %d did not stop the query", round, via+1)
		}
		// The victim's session goes on.
		var v int
		if err := victim.QueryRowContext(ctx, "SELECT 7").Scan(&v); err != nil || v != 7 {
			t.Fatalf("the victim's session after the KILL: %v %v", v, err)
		}
	}
	if len(hit) != 3 {
		t.Fatalf("the KILLs reached instances %v, want all three", hit)
	}
	if n := counter("mysql", "forwarded") - fwd; n != 2 {
		t.Errorf("forwarded KILLs: %v, want 2", n)
	}
	// Unknown ids, on a peer and on an instance that is no peer.
	other, err := sql.Open("mysql", lbDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, bad := range []uint32{fleet.ID(2, id), fleet.ID(9, id)} {
		_, err := other.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", bad))
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1094 {
			t.Errorf("KILL QUERY %#x: %v, want Unknown thread id (1094)", bad, err)
		}
	}
}

func testFleetReadYourWrites(t *testing.T, f *testFleet) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := pgConnect(t, ctx, f.ports[0].pg, "app")
	b := pgConnect(t, ctx, f.ports[1].pg, "app")
	exec := func(c *pgconn.PgConn, q string) []*pgconn.Result {
		t.Helper()
		rs, err := c.Exec(ctx, q).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return rs
	}
	exec(a, "DROP TABLE IF EXISTS fleet_ryw; CREATE TABLE fleet_ryw (id int PRIMARY KEY)")
	if err := f.pg.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.pg.Exec(f.pg.Replicas[0], "postgres", "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.pg.Exec(f.pg.Replicas[0], "postgres", "SELECT pg_wal_replay_resume()") }()
	stale := 0
	for i := 0; i < 20; i++ {
		exec(a, fmt.Sprintf("INSERT INTO fleet_ryw VALUES (%d)", i))
		tok := string(exec(a, "SHOW switchyard.write_position")[0].Rows[0][0])
		if tok == "" {
			t.Fatal("no write position after a write")
		}
		// Without the token B reads from the paused replica: the test can
		// tell a stale read.
		if rs := exec(b, fmt.Sprintf("SELECT count(*) FROM fleet_ryw WHERE id = %d", i)); string(rs[0].Rows[0][0]) != "1" {
			stale++
		}
		exec(b, "SET switchyard.read_after = '"+tok+"'")
		if rs := exec(b, fmt.Sprintf("SELECT count(*) FROM fleet_ryw WHERE id = %d", i)); string(rs[0].Rows[0][0]) != "1" {
			t.Fatalf("write %d: instance 2 read stale data with instance 1's token %q", i, tok)
		}
		exec(b, "SET switchyard.read_after = ''")
	}
	if stale == 0 {
		t.Fatal("no read without the token was stale: the replica is not paused, the test proves nothing")
	}
	t.Logf("PostgreSQL: %d of 20 reads without the token were stale; none with it", stale)
	// A token names its cluster: another cluster's, or one this proxy
	// does not serve, is refused with the reason.
	tok := string(exec(a, "SHOW switchyard.write_position")[0].Rows[0][0])
	if !strings.HasPrefix(tok, "pg@") {
		t.Fatalf("token %q does not name cluster pg", tok)
	}
	pos := strings.TrimPrefix(tok, "pg@")
	for bad, want := range map[string]string{
		"elsewhere@" + pos: `cluster "elsewhere", which this proxy does not serve`,
		"orders@" + pos:    `a position of cluster "orders", and this connection's database is served by cluster "pg"`,
	} {
		_, err := b.Exec(ctx, "SET switchyard.read_after = '"+bad+"'").ReadAll()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "22023" || !strings.Contains(pe.Message, want) {
			t.Errorf("SET switchyard.read_after = %q: %v, want 22023 saying %q", bad, err, want)
		}
	}

	// MySQL: the same across instances, with the replica's SQL thread
	// stopped.
	myA, err := sql.Open("mysql", fmt.Sprintf("app:app@tcp(127.0.0.1:%d)/app", f.ports[0].my))
	if err != nil {
		t.Fatal(err)
	}
	defer myA.Close()
	myA.SetMaxOpenConns(1)
	myB, err := sql.Open("mysql", fmt.Sprintf("app:app@tcp(127.0.0.1:%d)/app", f.ports[1].my))
	if err != nil {
		t.Fatal(err)
	}
	defer myB.Close()
	myB.SetMaxOpenConns(1)
	for _, q := range []string{"DROP TABLE IF EXISTS fleet_ryw", "CREATE TABLE fleet_ryw (id int PRIMARY KEY)"} {
		if _, err := myA.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.my.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.my.Exec(f.my.Replicas[0], "STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.my.Exec(f.my.Replicas[0], "START SLAVE SQL_THREAD") }()
	stale = 0
	for i := 0; i < 20; i++ {
		if _, err := myA.ExecContext(ctx, fmt.Sprintf("INSERT INTO fleet_ryw VALUES (%d)", i)); err != nil {
			t.Fatal(err)
		}
		var tok string
		if err := myA.QueryRowContext(ctx, "SHOW switchyard.write_position").Scan(&tok); err != nil || !strings.HasPrefix(tok, "my@") {
			t.Fatalf("MySQL token %q: %v", tok, err)
		}
		var n int
		if err := myB.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM fleet_ryw WHERE id = %d", i)).Scan(&n); err != nil {
			t.Fatal(err)
		} else if n != 1 {
			stale++
		}
		if _, err := myB.ExecContext(ctx, "SET switchyard.read_after = '"+tok+"'"); err != nil {
			t.Fatal(err)
		}
		if err := myB.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM fleet_ryw WHERE id = %d", i)).Scan(&n); err != nil || n != 1 {
			t.Fatalf("write %d: instance 2 read %d rows (%v) with instance 1's token %q", i, n, err, tok)
		}
		if _, err := myB.ExecContext(ctx, "SET switchyard.read_after = ''"); err != nil {
			t.Fatal(err)
		}
	}
	if stale == 0 {
		t.Fatal("MySQL: no read without the token was stale: the replica is not stopped, the test proves nothing")
	}
	t.Logf("MySQL: %d of 20 reads without the token were stale; none with it", stale)
	_, err = myB.ExecContext(ctx, "SET switchyard.read_after = 'elsewhere@0-1-1'")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1231 || !strings.Contains(me.Message, "elsewhere") {
		t.Errorf("MySQL token of another cluster: %v", err)
	}
}

func testFleetReloadAll(t *testing.T, f *testFleet) {
	// Instance 3 goes down; the shard map of every file changes.
	f.procs[2].close()
	f.writeConfigs(t, 32)
	var out, errb bytes.Buffer
	code := run([]string{"reload", "-config", f.paths[0], "--all"}, &out, &errb)
	t.Logf("reload --all: exit %d\n%s%s", code, out.String(), errb.String())
	if code != 1 {
		t.Errorf("exit %d with an instance down, want 1", code)
	}
	all := out.String() + errb.String()
	for _, want := range []string{
		"instance 1, config version 2, shard maps orders=v2",
		"instance 2, config version 2, shard maps orders=v2",
		fmt.Sprintf("peer 3 at 127.0.0.1:%d: DOWN", f.ports[2].admin),
	} {
		if !strings.Contains(all, want) {
			t.Errorf("reload --all did not say %q", want)
		}
	}
	for i := 0; i < 2; i++ {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", f.ports[i].admin))
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			InstanceID    int               `json:"instance_id"`
			ConfigVersion uint64            `json:"config_version"`
			MapVersions   map[string]uint64 `json:"map_versions"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || st.InstanceID != i+1 || st.ConfigVersion != 2 || st.MapVersions["orders"] != 2 {
			t.Errorf("instance %d /status: %+v %v", i+1, st, err)
		}
	}
}
