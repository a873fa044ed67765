package pgwire

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/faultnet"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/lagmon"
)

// startSplitProxy serves database "app" from the test primary and its
// two replicas, with read/write splitting.
func startSplitProxy(t testing.TB, defaults string) *testProxy {
	t.Helper()
	return splitProxy(t, testcluster.PG,
		withDefaults(defaults, "pool_size = 10", `max_replica_lag = "300ms"`, `lag_poll_interval = "20ms"`), "")
}

// splitProxy serves database "app" from pg's primary and two replicas,
// with [defaults] as given; more is TOML appended after the cluster.
func splitProxy(t testing.TB, pg *testcluster.Postgres, defaults, more string) *testProxy {
	t.Helper()
	return splitProxyAt(t, pg.Primary.Addr(), pg, defaults, more)
}

// splitProxyAt is splitProxy with the primary reached at primary (a
// faultnet.Forwarder in front of pg's, say).
func splitProxyAt(t testing.TB, primary string, pg *testcluster.Postgres, defaults, more string) *testProxy {
	t.Helper()
	src := fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
shutdown_timeout = "5s"
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
replicas = [%q, %q]
%s`, defaults, primary, pg.Replicas[0].Addr(), pg.Replicas[1].Addr(), more)
	return serveConfig(t, src)
}

// waitReplicasEligible waits until the replicas have replayed everything
// the primary wrote and the proxy's lag monitor has seen it: every replica
// of cluster "pg" takes reads again.
func waitReplicasEligible(t testing.TB, p *testProxy) {
	t.Helper()
	if err := testcluster.PG.WaitReplicasCaughtUp(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	rt := p.srv.Rts.Get("pg")
	for deadline := time.Now().Add(20 * time.Second); !allEligible(rt); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			for _, st := range rt.Set.Status() {
				t.Logf("replica %s: eligible %v healthy %v lag known %v lag %v (%d bytes) banned %v %s", st.Name, st.Eligible, st.Healthy, st.LagKnown, st.Lag, st.LagBytes, st.Banned, st.Err)
			}
			t.Fatal("replicas not eligible for reads 20s after catching up")
		}
	}
}

func nodePorts() (primary int, replicas []int) {
	pg := testcluster.PG
	for _, r := range pg.Replicas {
		replicas = append(replicas, r.Port)
	}
	return pg.Primary.Port, replicas
}

func superExec(t testing.TB, port int, sql string) {
	t.Helper()
	pg := testcluster.PG
	for _, n := range append([]testcluster.Node{pg.Primary}, pg.Replicas...) {
		if n.Port == port {
			if err := pg.Exec(n, "app", sql); err != nil {
				t.Fatalf("%s on %d: %v", sql, port, err)
			}
			return
		}
	}
	t.Fatalf("no node on port %d", port)
}

func serverPort(t testing.TB, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var port int
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&port); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return port
}

func TestReadsSpreadWritesOnPrimary(t *testing.T) {
	p := startSplitProxy(t, "")
	mustExec(t, `DROP TABLE IF EXISTS t_split; CREATE TABLE t_split (id serial PRIMARY KEY, v int); CREATE SEQUENCE IF NOT EXISTS s_split`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	ctx := ctxT(t, 60*time.Second)
	primary, replicas := nodePorts()
	counts := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close(ctx)
			for i := 0; i < 50; i++ {
				port := serverPort(t, conn, `SELECT inet_server_port()`)
				mu.Lock()
				counts[port]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if counts[primary] != 0 || counts[replicas[0]] == 0 || counts[replicas[1]] == 0 {
		t.Fatalf("reads per port: %v (primary %d, replicas %v): want all on replicas, both used", counts, primary, replicas)
	}
	t.Logf("reads per node: primary %d, replica1 %d, replica2 %d", counts[primary], counts[replicas[0]], counts[replicas[1]])

	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`INSERT INTO t_split (v) VALUES (1) RETURNING inet_server_port()`,
		`SELECT inet_server_port() FROM t_split FOR UPDATE`,
		`WITH d AS (DELETE FROM t_split WHERE v = -1 RETURNING *) SELECT inet_server_port()`,
		`SELECT inet_server_port() + 0 * nextval('s_split')`,
		`/* switchyard:primary */ SELECT inet_server_port()`,
	} {
		if port := serverPort(t, conn, q); port != primary {
			t.Errorf("%s ran on %d, want the primary %d", q, port, primary)
		}
	}
	// A transaction with a write runs whole on the primary, its reads too.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t_split (v) VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	var port int
	if err := tx.QueryRow(ctx, `SELECT inet_server_port()`).Scan(&port); err != nil || port != primary {
		t.Fatalf("read inside a write transaction ran on %d (%v)", port, err)
	}
	_ = tx.Commit(ctx)
	// A read-only transaction may use a replica (once a replica has this
	// client's own write).
	time.Sleep(200 * time.Millisecond)
	tx, err = conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SELECT inet_server_port()`).Scan(&port); err != nil || port == primary {
		t.Fatalf("read-only transaction ran on %d (%v), want a replica", port, err)
	}
	_ = tx.Commit(ctx)
}

// With one replica's replay paused, clients that write and read back at
// once always see their own rows; clients that only read keep being
// served by the replica that is up to date.
func TestReadYourWritesWithPausedReplica(t *testing.T) {
	p := startSplitProxy(t, "")
	mustExec(t, `DROP TABLE IF EXISTS t_ryw; CREATE TABLE t_ryw (id bigint PRIMARY KEY, client int)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	primary, replicas := nodePorts()
	superExec(t, replicas[0], `SELECT pg_wal_replay_pause()`)
	defer superExec(t, replicas[0], `SELECT pg_wal_replay_resume()`)
	ctx := ctxT(t, 120*time.Second)

	// At most pairs per client, for at most busy: the count says nothing
	// of its own, and a loaded machine (-race, other packages' tests
	// alongside) ran 10000 pairs in more than the context's 120 s, which
	// the pairs left then counted as failures.
	const clients, pairs, busy = 20, 500, 30 * time.Second
	stopAt := time.Now().Add(busy)
	var done, stale, failures, onReplica atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
			if err != nil {
				failures.Add(1)
				return
			}
			defer conn.Close(ctx)
			for i := 0; i < pairs && time.Now().Before(stopAt); i++ {
				done.Add(1)
				id := int64(c)*1_000_000 + int64(i)
				if _, err := conn.Exec(ctx, `INSERT INTO t_ryw VALUES ($1, $2)`, id, c); err != nil {
					failures.Add(1)
					continue
				}
				var n, port int
				if err := conn.QueryRow(ctx, `SELECT count(*), inet_server_port() FROM t_ryw WHERE id = $1`, id).Scan(&n, &port); err != nil {
					failures.Add(1)
					continue
				}
				if n != 1 {
					stale.Add(1)
				}
				if port != primary {
					onReplica.Add(1)
				}
			}
		}(c)
	}
	// Meanwhile a client that never writes reads, and must not be served
	// by the paused replica once it lags past max_replica_lag.
	waitIneligible(t, p, fmt.Sprintf("127.0.0.1:%d", replicas[0]))
	reader, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(ctx)
	readerPorts := map[int]int{}
	for i := 0; i < 100; i++ {
		readerPorts[serverPort(t, reader, `SELECT inet_server_port()`)]++
	}
	wg.Wait()
	t.Logf("%d write-then-read pairs: %d stale, %d failed, %d reads served by a replica (%.1f%%); reader: %v",
		done.Load(), stale.Load(), failures.Load(), onReplica.Load(), 100*float64(onReplica.Load())/float64(done.Load()), readerPorts)
	if stale.Load() != 0 || failures.Load() != 0 {
		t.Fatalf("stale reads %d, failures %d", stale.Load(), failures.Load())
	}
	if readerPorts[replicas[0]] != 0 || readerPorts[replicas[1]] == 0 {
		t.Fatalf("reader's reads per port %v: want none on the paused replica %d, some on %d", readerPorts, replicas[0], replicas[1])
	}
}

// A replica past max_replica_lag gets no reads, and gets them again soon
// after it catches up.
func TestLaggingReplicaRejoins(t *testing.T) {
	p := startSplitProxy(t, "")
	mustExec(t, `DROP TABLE IF EXISTS t_lag; CREATE TABLE t_lag (v int)`)
	_, replicas := nodePorts()
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	superExec(t, replicas[1], `SELECT pg_wal_replay_pause()`)
	resumed := false
	defer func() {
		if !resumed {
			superExec(t, replicas[1], `SELECT pg_wal_replay_resume()`)
		}
	}()
	mustExec(t, `INSERT INTO t_lag VALUES (1)`)
	waitIneligible(t, p, fmt.Sprintf("127.0.0.1:%d", replicas[1]))
	reader, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(ctx)
	for i := 0; i < 50; i++ {
		if port := serverPort(t, reader, `SELECT inet_server_port()`); port == replicas[1] {
			t.Fatalf("read %d went to the lagging replica", i)
		}
	}
	superExec(t, replicas[1], `SELECT pg_wal_replay_resume()`)
	resumed = true
	start := time.Now()
	for {
		if serverPort(t, reader, `SELECT inet_server_port()`) == replicas[1] {
			t.Logf("lagging replica back in %v", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the replica got no reads 5s after catching up")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A stopped replica: reads go on elsewhere with no client error.
func TestStoppedReplicaNoErrors(t *testing.T) {
	p := startSplitProxy(t, "")
	_, replicas := nodePorts()
	ctx := ctxT(t, 60*time.Second)
	var conns []*pgx.Conn
	for i := 0; i < 4; i++ {
		conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		conns = append(conns, conn)
	}
	var victim testcluster.Node
	for _, r := range testcluster.PG.Replicas {
		if r.Port == replicas[0] {
			victim = r
		}
	}
	if err := testcluster.PG.StopNode(victim); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := testcluster.PG.StartNode(victim); err != nil {
			t.Error(err)
		}
	}()
	errs := 0
	for i := 0; i < 200; i++ {
		var port int
		if err := conns[i%len(conns)].QueryRow(ctx, `SELECT inet_server_port()`).Scan(&port); err != nil {
			errs++
			t.Logf("read %d: %v", i, err)
		} else if port == replicas[0] {
			t.Fatalf("read %d served by the stopped replica", i)
		}
	}
	if errs != 0 {
		t.Fatalf("%d reads failed while a replica was down", errs)
	}
}

func TestSessionTargetAndToken(t *testing.T) {
	p := startSplitProxy(t, "")
	primary, _ := nodePorts()
	ctx := ctxT(t, 30*time.Second)
	cfg, _ := pgx.ParseConfig(p.rawDSN("app", "app", "app"))
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SET switchyard.target = primary`); err != nil {
		t.Fatal(err)
	}
	if port := serverPort(t, conn, `SELECT inet_server_port()`); port != primary {
		t.Fatalf("target primary: read on %d", port)
	}
	if _, err := conn.Exec(ctx, `SET switchyard.target = auto`); err != nil {
		t.Fatal(err)
	}
	mustExec(t, `CREATE TABLE IF NOT EXISTS t_tok (v int)`)
	if _, err := conn.Exec(ctx, `INSERT INTO t_tok VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	var tok string
	if err := conn.QueryRow(ctx, `SHOW switchyard.write_position`).Scan(&tok); err != nil || tok == "" {
		t.Fatalf("write position: %q %v", tok, err)
	}
	// Another connection carrying the token reads only where the write is.
	other, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if _, err := other.Exec(ctx, `SET switchyard.read_after = '`+tok+`'`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := other.QueryRow(ctx, `SELECT count(*) FROM t_tok`).Scan(&n); err != nil || n < 1 {
		t.Fatalf("read after the token: %d %v", n, err)
	}
	if _, err := other.Exec(ctx, `SET switchyard.target = sideways`); err == nil {
		t.Fatal("bad target accepted")
	}
	_ = strconv.Itoa
}

// waitIneligible waits until the proxy's replica set says a replica gets no
// reads (it lags past max_replica_lag while the primary keeps writing).
func waitIneligible(t testing.TB, p *testProxy, name string) {
	t.Helper()
	rt := p.srv.Rts.Get("pg")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mustExec(t, `SELECT txid_current()`) // keep the primary's position moving
		for _, st := range rt.Set.Status() {
			if st.Name == name && !st.Eligible {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("replica %s still eligible after 10s", name)
}

// A primary the lag monitor cannot probe in time is not a primary that is
// down: it may only be busy. While its probes time out no replica's lag is
// known, and a replica paused past max_replica_lag must not get reads
// (before, three timed-out probes counted as "primary down" and handed
// reads to every healthy replica, the paused one included). Once the
// primary really cannot be reached (connections refused), reads stay on
// the replicas, but only on those that hold the newest data: not the
// paused one.
func TestSilentPrimaryLaggingReplica(t *testing.T) {
	pg := testcluster.PG
	fw, err := faultnet.NewForwarder(pg.Primary.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	p := splitProxyAt(t, fw.Addr(), pg, withDefaults("", "pool_size = 10", `max_replica_lag = "300ms"`, `lag_poll_interval = "20ms"`,
		`connect_timeout = "500ms"`, `query_wait_timeout = "500ms"`), "")
	waitReplicasEligible(t, p)
	_, replicas := nodePorts()
	paused := fmt.Sprintf("127.0.0.1:%d", replicas[0])
	superExec(t, replicas[0], `SELECT pg_wal_replay_pause()`)
	defer superExec(t, replicas[0], `SELECT pg_wal_replay_resume()`)
	waitIneligible(t, p, paused)

	rt := p.srv.Rts.Get("pg")
	// read makes one read on a connection of its own and returns the port
	// that served it, 0 when it failed (a primary that does not answer).
	read := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
		if err != nil {
			return 0
		}
		defer conn.Close(context.Background())
		qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer qcancel()
		var port int
		if conn.QueryRow(qctx, `SELECT inet_server_port()`).Scan(&port) != nil {
			return 0
		}
		return port
	}
	waitMon := func(what string, cond func(lagmon.ReplicaStatus) bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !cond(rt.Mon.Replica(paused)); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within 15s: %s; paused replica %+v", what, rt.Mon.Replica(paused))
			}
		}
	}

	fw.Stall()
	waitMon("the primary's probes failing", func(st lagmon.ReplicaStatus) bool { return !st.LagKnown })
	got := map[int]int{}
	for range 10 {
		got[read()]++
	}
	t.Logf("primary silent: reads per port %v (0: failed)", got)
	if st := rt.Mon.Replica(paused); st.PrimaryDown {
		t.Errorf("a primary whose probes time out counts as down: %+v", st)
	}
	if got[replicas[0]] != 0 {
		t.Fatalf("reads per port %v while the primary was silent: the paused replica %d served some", got, replicas[0])
	}

	fw.Close() // refused from now on
	waitMon("the primary known to be down", func(st lagmon.ReplicaStatus) bool { return st.PrimaryDown })
	got = map[int]int{}
	for range 10 {
		got[read()]++
	}
	t.Logf("primary down: reads per port %v (0: failed)", got)
	if got[replicas[0]] != 0 || got[replicas[1]] != 10 {
		t.Fatalf("reads per port %v while the primary was down: want all on the replica that is not behind (%d)", got, replicas[1])
	}
}
