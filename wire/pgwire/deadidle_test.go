package pgwire

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// The pool hands out a connection returned less than AliveDelay ago without
// looking at its socket. These tests make that window as wide as the test
// so that the connection whose server process they end is always handed
// out unlooked-at, as one returned moments before is under load.
func wideAliveDelay(t *testing.T) {
	testAliveDelay.Store(int64(time.Hour))
	t.Cleanup(func() { testAliveDelay.Store(0) })
}

// killBackend ends the server process pid on node n from a connection of
// its own, and waits until it is gone.
func killBackend(t *testing.T, killer *pgx.Conn, pid int) {
	t.Helper()
	var ok bool
	if err := killer.QueryRow(context.Background(), `SELECT pg_terminate_backend($1, 10000)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d): %v, %v", pid, ok, err)
	}
}

func directConn(t *testing.T, n testcluster.Node) *pgx.Conn {
	t.Helper()
	ctx := ctxT(t, 60*time.Second)
	c, err := pgx.Connect(ctx, testcluster.PG.DSN(n, "app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// Regression: an idle server connection whose server process ended while
// it sat in the pool (pg_terminate_backend, a restart, idle_session_timeout)
// and that was returned too recently for the pool's look failed the next
// request on it: the client got FATAL 08006 (or the server's 57P01) and
// lost its connection, although nothing of its request had run. PgBouncer
// users expect the request to run on another connection. It now does, on
// a connection alive now, exactly once; and a statement the server read
// before its process ended (here: one that ends its own process) is not
// sent again.
func TestDeadIdleConnectionRetried(t *testing.T) {
	wideAliveDelay(t)
	// The retry dials a new server connection: at load 35 that took more
	// than the default 5s of query_wait_timeout (2 runs in 10), which is
	// not what these tests are about.
	p := startProxy(t, `pool_size = 1
query_wait_timeout = "30s"`)
	mustExec(t, `DROP TABLE IF EXISTS t_deadidle; CREATE TABLE t_deadidle (i int); DROP SEQUENCE IF EXISTS s_deadidle; CREATE SEQUENCE s_deadidle`)
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	killer := directConn(t, testcluster.PG.Primary)
	const rounds = 3
	for i := 0; i < rounds; i++ {
		var pid int
		if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		killBackend(t, killer, pid)
		// Simple protocol, then extended (Parse/Bind/Execute/Sync).
		if _, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO t_deadidle VALUES (%d)`, i)); err != nil {
			t.Fatalf("round %d: a write on a connection that died idle failed: %v", i, err)
		}
		if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		killBackend(t, killer, pid)
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM t_deadidle WHERE i = $1`, i).Scan(&n); err != nil || n != 1 {
			t.Fatalf("round %d: the write ran %d times (want once), or the read after a dead idle connection failed: %v", i, n, err)
		}
	}

	// The server reads the statement, runs it, and its process ends: not
	// sent again (nextval is not undone by the end of the transaction).
	var last int64
	if err := conn.QueryRow(ctx, `SELECT nextval('s_deadidle')`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `SELECT nextval('s_deadidle'), pg_terminate_backend(pg_backend_pid())`)
	if err == nil || !strings.Contains(err.Error(), "57P01") && !strings.Contains(err.Error(), "08006") {
		t.Fatalf("a statement that ended its own server process: %v; want the server's 57P01 or the proxy's 08006", err)
	}
	got, err := testcluster.PG.QueryString(testcluster.PG.Primary, "app", `SELECT last_value FROM s_deadidle`)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint(last + 1); got != want {
		t.Errorf("the sequence is at %s after a statement the server had read failed; want %s (it ran once)", got, want)
	}
}

// As TestDeadIdleConnectionRetried, for reads on a replica: the read runs on
// a connection alive now, and the replica is not banned for a connection
// that died idle, whether the death shows at the request or while the
// connection is brought in line with a client whose parameters differ
// (set_config before the request).
func TestDeadIdleReplicaConnectionRetried(t *testing.T) {
	wideAliveDelay(t)
	pg := testcluster.PG
	rep := pg.Replicas[0]
	p := oneReplicaProxy(t, pg.Primary.Addr(), rep.Addr(), `pool_size = 1
query_wait_timeout = "30s"
max_replica_lag = "5s"
lag_poll_interval = "20ms"`)
	ctx := ctxT(t, 60*time.Second)
	connect := func(app string) *pgx.Conn { return connectApp(t, ctx, p, app) }
	read := func(c *pgx.Conn) (port int, err error) {
		err = c.QueryRow(ctx, `SELECT inet_server_port()`).Scan(&port)
		return
	}
	a, b := connect("deadidle_a"), connect("deadidle_b")
	onReplica := false
	var port int
	var err error
	for i := 0; i < 300 && !onReplica; i++ {
		if port, err = read(a); err != nil {
			t.Fatal(err)
		}
		onReplica = port == rep.Port
		time.Sleep(10 * time.Millisecond)
	}
	if !onReplica {
		t.Fatal("no read reached the replica")
	}
	killer := directConn(t, rep)
	banned := func() string {
		for _, st := range p.srv.Rts.Get("pg").Set.Status() {
			if st.Banned {
				return st.BanReason
			}
		}
		return ""
	}
	// The replica's one pooled connection, by the application_name the
	// proxy set on it for its last client (pg_backend_pid() would send
	// the read to the primary).
	pooled := func(app string) int {
		t.Helper()
		var pid int
		if err := killer.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&pid); err != nil {
			t.Fatalf("the replica's pooled connection of %s: %v", app, err)
		}
		return pid
	}
	last := "deadidle_a"
	for i, c := range []*pgx.Conn{a, b, b} {
		killBackend(t, killer, pooled(last))
		last = c.Config().RuntimeParams["application_name"]
		// a, and b the second time: the request meets the dead
		// connection; b the first time: its set_config does.
		if port, err = read(c); err != nil {
			t.Fatalf("round %d: a read on a replica connection that died idle failed: %v", i, err)
		}
		if why := banned(); why != "" {
			t.Fatalf("round %d: replica banned for a connection that died idle: %s", i, why)
		}
		if port != rep.Port {
			t.Fatalf("round %d: read served by port %d, want the replica's %d", i, port, rep.Port)
		}
	}
}

// oneReplicaProxy serves database "app" from primary and one replica,
// with [defaults] as given.
func oneReplicaProxy(t testing.TB, primary, replica, defaults string) *testProxy {
	t.Helper()
	return serveConfig(t, fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
shutdown_timeout = "2s"
[defaults]
%s
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
replicas = [%q]
`, defaults, primary, replica))
}

// connectApp connects to p as app with application_name app, closed when
// the test ends.
func connectApp(t testing.TB, ctx context.Context, p *testProxy, app string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = app
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}
