package pgwire

import (
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/testcluster"
)

// causalMix is the read-your-writes checker of issue 14: clients each
// write a row and then read their own rows back nine times (a 90/10 mix of
// autocommit statements). Every read must count every row the client
// wrote (0 stale), and with healthy replicas most reads must still be
// served by replicas.
func causalMix(t testing.TB, p *testProxy, table string, clients, rounds int) (reads, stale, failed, onReplica int64) {
	t.Helper()
	mustExec(t, `DROP TABLE IF EXISTS `+table+`; CREATE TABLE `+table+` (id bigint PRIMARY KEY, client int)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	primary, _ := nodePorts()
	ctx := ctxT(t, 5*time.Minute)
	var nReads, nStale, nFailed, nReplica atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
			if err != nil {
				nFailed.Add(1)
				return
			}
			defer conn.Close(ctx)
			written := 0
			for i := range rounds {
				if _, err := conn.Exec(ctx, `INSERT INTO `+table+` VALUES ($1, $2)`, int64(c)*1_000_000+int64(i), c); err != nil {
					nFailed.Add(1)
					continue
				}
				written++
				for range 9 {
					var n, port int
					if err := conn.QueryRow(ctx, `SELECT count(*), inet_server_port() FROM `+table+` WHERE client = $1`, c).Scan(&n, &port); err != nil {
						nFailed.Add(1)
						continue
					}
					nReads.Add(1)
					if n != written {
						nStale.Add(1)
					}
					if port != primary {
						nReplica.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	return nReads.Load(), nStale.Load(), nFailed.Load(), nReplica.Load()
}

// With healthy replicas, read-your-writes keeps the replicas useful: a
// writer's reads go to a replica that has replayed its write (checked with
// fresh positions), not to the primary until the next poll. It used to
// send 0% of such reads to replicas on PostgreSQL.
func TestCausalReadsUseReplicas(t *testing.T) {
	p := startSplitProxy(t, `lag_poll_interval = "50ms"`)
	rounds := causalRounds(25)
	n0, sum0 := causalWaits(t)
	reads, stale, failed, onReplica := causalMix(t, p, "t_causal", 20, rounds)
	n1, sum1 := causalWaits(t)
	if n1 > n0 {
		t.Logf("reads that probed positions first: %d, mean wait %v", n1-n0, time.Duration((sum1-sum0)/float64(n1-n0)*float64(time.Second)).Round(time.Microsecond))
	}
	share := float64(onReplica) / float64(max(reads, 1))
	t.Logf("20 writers x %d rounds of 1 write + 9 reads: %d reads, %d stale, %d failed, %.1f%% served by replicas", rounds, reads, stale, failed, 100*share)
	if stale != 0 || failed != 0 {
		t.Fatalf("stale reads %d, failures %d", stale, failed)
	}
	if share < 0.5 {
		t.Fatalf("%.1f%% of reads served by replicas, want at least 50%%", 100*share)
	}
}

// causalRounds is the checker's rounds per writer: def in make test,
// SWITCHYARD_CAUSAL_ROUNDS for the full run whose figures are in the
// README.
func causalRounds(def int) int {
	if n, err := strconv.Atoi(os.Getenv("SWITCHYARD_CAUSAL_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return def
}

// causalWaits reads switchyard_causal_read_wait_seconds (all clusters):
// how many reads waited for fresh positions, and their total wait.
func causalWaits(t testing.TB) (n uint64, sum float64) {
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_causal_read_wait_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
			sum += m.GetHistogram().GetSampleSum()
		}
	}
	return n, sum
}
