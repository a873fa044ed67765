package pgwire

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/lagmon"
)

// max_replica_lag = "0s" means only replicas that have replayed
// everything; it used to mean no limit, and a replica with its replay
// paused kept getting reads.
func TestMaxReplicaLagZero(t *testing.T) {
	p := splitProxy(t, testcluster.PG, withDefaults("", "pool_size = 4", `max_replica_lag = "0s"`, `lag_poll_interval = "20ms"`), "")
	mustExec(t, `DROP TABLE IF EXISTS t_lag0; CREATE TABLE t_lag0 (id int)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	primary, replicas := nodePorts()
	superExec(t, replicas[0], `SELECT pg_wal_replay_pause()`)
	defer superExec(t, replicas[0], `SELECT pg_wal_replay_resume()`)
	superExec(t, primary, `INSERT INTO t_lag0 VALUES (1)`)
	time.Sleep(300 * time.Millisecond) // the other replica replays it; a few polls sample both after the write
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	ports := map[int]int{}
	for range 40 {
		ports[serverPort(t, conn, `SELECT inet_server_port()`)]++
	}
	if ports[replicas[0]] != 0 || ports[replicas[1]] == 0 {
		t.Fatalf("reads per port %v: want none on the paused replica %d, some on the caught-up %d", ports, replicas[0], replicas[1])
	}
}

// When the primary's position cannot be read (here: the monitor user may
// not call pg_current_wal_insert_lsn()), the replicas' lag is unknown, not
// zero: reads go to the primary, and the metrics say why.
func TestUnknownLagReadsFromPrimary(t *testing.T) {
	primary, replicas := nodePorts()
	superExec(t, primary, `DROP ROLE IF EXISTS lagmon_t; CREATE ROLE lagmon_t LOGIN PASSWORD 'lagmon_t';
		REVOKE EXECUTE ON FUNCTION pg_catalog.pg_current_wal_insert_lsn() FROM PUBLIC;
		GRANT EXECUTE ON FUNCTION pg_catalog.pg_current_wal_insert_lsn() TO app`)
	defer superExec(t, primary, `GRANT EXECUTE ON FUNCTION pg_catalog.pg_current_wal_insert_lsn() TO PUBLIC; DROP ROLE IF EXISTS lagmon_t`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	unknown := metrics.Routed.WithLabelValues("postgres", "pg", "primary", "lag_unknown")
	before := counterOf(unknown)
	// The fallback counter says why, so that an alert on no_replica does
	// not fire for reads held on the primary for other reasons.
	fbUnknown := metrics.ReadFallbacks.WithLabelValues("postgres", "pg", "lag_unknown")
	fbNone := metrics.ReadFallbacks.WithLabelValues("postgres", "pg", "no_replica")
	fbBefore, noneBefore := counterOf(fbUnknown), counterOf(fbNone)
	p := splitProxy(t, testcluster.PG, withDefaults("", "pool_size = 4", `lag_poll_interval = "20ms"`),
		`monitor_user = "lagmon_t"
monitor_password = "lagmon_t"`)
	rt := p.srv.Rts.Get("pg")
	// The replicas' probes succeed (healthy) once the monitor has run; on
	// a loaded machine that may take more than a poll or two.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		healthy := true
		for _, st := range rt.Set.Status() {
			healthy = healthy && st.Healthy
		}
		if healthy {
			break
		}
	}
	for _, st := range rt.Set.Status() {
		if !st.Healthy || st.LagKnown || st.Eligible {
			t.Fatalf("replica %s: healthy %v, lag known %v, eligible %v (err %v); want healthy, lag unknown, not eligible",
				st.Name, st.Healthy, st.LagKnown, st.Eligible, st.Err)
		}
	}
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for range 20 {
		if port := serverPort(t, conn, `SELECT inet_server_port()`); port != primary {
			t.Fatalf("read on %d with the replicas' lag unknown, want the primary %d (replicas %v)", port, primary, replicas)
		}
	}
	if got := counterOf(unknown) - before; got < 20 {
		t.Fatalf("switchyard_routed_transactions_total{reason=lag_unknown} grew by %v, want 20", got)
	}
	if got, none := counterOf(fbUnknown)-fbBefore, counterOf(fbNone)-noneBefore; got < 20 || none != 0 {
		t.Fatalf("switchyard_read_fallbacks_total grew by %v with reason lag_unknown and %v with no_replica, want 20 and 0", got, none)
	}
	t.Logf("primary probe error: %v", rt.Mon.PrimaryErr())
}

func counterOf(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// Read-your-writes covers asynchronous commits: with synchronous_commit =
// off a commit is acknowledged before its WAL record is written, so the
// position remembered for the write must be the insert position sampled
// after the acknowledgment (pg_current_wal_lsn(), the write position, may
// not include the commit yet, and a replica at that position showed the
// row missing). Reads wait for a replica (causal_read_timeout), which
// widens the window the bug lived in: a replica at the write position.
func TestReadYourWritesAsyncCommit(t *testing.T) {
	primary, replicas := nodePorts()
	superExec(t, primary, `ALTER ROLE app SET synchronous_commit = off`)
	defer superExec(t, primary, `ALTER ROLE app RESET synchronous_commit`)
	// The WAL writer (every wal_writer_delay, 200ms) sends asynchronous
	// commits to the replicas; reads wait for a replica that has the
	// position rather than go to the primary at once.
	p := startSplitProxy(t, `max_replica_lag = "10s"
causal_read_timeout = "2s"`)
	mustExec(t, `DROP TABLE IF EXISTS t_ryw_async; CREATE TABLE t_ryw_async (id bigint PRIMARY KEY, client int)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	superExec(t, replicas[0], `SELECT pg_wal_replay_pause()`)
	defer superExec(t, replicas[0], `SELECT pg_wal_replay_resume()`)
	ctx := ctxT(t, 120*time.Second)
	// SWITCHYARD_RYW_PAIRS=500: the 10,000 pairs of issue 14's bar.
	const clients = 20
	pairs := 100
	if n, err := strconv.Atoi(os.Getenv("SWITCHYARD_RYW_PAIRS")); err == nil && n > 0 {
		pairs = n
	}
	var stale, failures, onReplica atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
			if err != nil {
				failures.Add(1)
				return
			}
			defer conn.Close(ctx)
			var async string
			if err := conn.QueryRow(ctx, `/* switchyard:primary */ SELECT current_setting('synchronous_commit')`).Scan(&async); err != nil || async != "off" {
				t.Errorf("synchronous_commit on the primary connection: %q (%v), want off", async, err)
			}
			for i := range pairs {
				id := int64(c)*1_000_000 + int64(i)
				if _, err := conn.Exec(ctx, `INSERT INTO t_ryw_async VALUES ($1, $2)`, id, c); err != nil {
					failures.Add(1)
					continue
				}
				var n, port int
				if err := conn.QueryRow(ctx, `SELECT count(*), inet_server_port() FROM t_ryw_async WHERE id = $1`, id).Scan(&n, &port); err != nil {
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
		})
	}
	wg.Wait()
	t.Logf("%d write-then-read pairs with synchronous_commit = off: %d stale, %d failed, %d reads served by a replica",
		clients*pairs, stale.Load(), failures.Load(), onReplica.Load())
	if stale.Load() != 0 || failures.Load() != 0 {
		t.Fatalf("stale reads %d, failures %d", stale.Load(), failures.Load())
	}
}

// A primary that answers only to say it is shutting down, crashed or
// starting up is down for the lag monitor (the replicas then keep the
// reads); one that refuses for any other reason, or times out, is not.
func TestProbeErrorShutdownIsUnreachable(t *testing.T) {
	for _, c := range []struct {
		err  error
		down bool
	}{
		{&pgconn.PgError{Code: "57P03", Message: "the database system is shutting down"}, true},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, true},
		{&pgconn.PgError{Code: "57P02"}, true},
		{&pgconn.PgError{Code: "28P01", Message: "password authentication failed"}, false},
		{&pgconn.PgError{Code: "42501", Message: "permission denied"}, false},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{context.DeadlineExceeded, false},
	} {
		if got := errors.Is(probeError(c.err), lagmon.ErrUnreachable); got != c.down {
			t.Errorf("probeError(%v) unreachable = %v, want %v", c.err, got, c.down)
		}
	}
}

// A proxy that starts (or reloads its lag settings, which starts a new
// monitor) while a replica is far behind gives it no reads: its position
// is behind the monitor's first primary sample, so its lag is unknown,
// not that sample's age. Before, the replica, seconds behind, served
// reads that missed rows committed before the proxy started, for about
// max_replica_lag (a tester saw 94 of them in the first second).
func TestReplicaBehindAtStartGetsNoReads(t *testing.T) {
	mustExec(t, `DROP TABLE IF EXISTS t_lagstart; CREATE TABLE t_lagstart (id int)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	primary, replicas := nodePorts()
	superExec(t, replicas[0], `SELECT pg_wal_replay_pause()`)
	defer superExec(t, replicas[0], `SELECT pg_wal_replay_resume()`)
	superExec(t, primary, `INSERT INTO t_lagstart VALUES (1)`)
	time.Sleep(1500 * time.Millisecond) // the paused replica is now 1.5 s behind
	p := splitProxy(t, testcluster.PG, withDefaults("", "pool_size = 4", `max_replica_lag = "1s"`, `lag_poll_interval = "20ms"`), "")
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	stale, ports := 0, map[int]int{}
	for range 60 {
		var port, n int
		if err := conn.QueryRow(ctx, `SELECT inet_server_port(), count(*) FROM t_lagstart`).Scan(&port, &n); err != nil {
			t.Fatal(err)
		}
		ports[port]++
		if n != 1 {
			stale++
		}
	}
	if ports[replicas[0]] != 0 || stale != 0 {
		t.Fatalf("reads per port %v, %d missing the row committed before the start: want none on the paused replica %d", ports, stale, replicas[0])
	}
}
