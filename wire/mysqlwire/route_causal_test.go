package mysqlwire

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// The read-your-writes checker of issue 14 for MariaDB: clients each write
// a row and then read their own rows back nine times (a 90/10 mix of
// autocommit statements). Every read must count every row the client
// wrote (0 stale), and with a healthy replica most reads must still be
// served by it. It used to send 8% of such reads to the replica.
func TestCausalReadsUseReplicas(t *testing.T) {
	p := startSplitProxy(t, `lag_poll_interval = "50ms"`)
	ma := testcluster.Maria
	onNode(t, ma.Primary, "DROP TABLE IF EXISTS app.t_causal")
	onNode(t, ma.Primary, "CREATE TABLE app.t_causal (id BIGINT PRIMARY KEY, client INT)")
	caughtUp(t)
	waitEligible(t, p, replicaNode().Addr())
	const clients = 20
	rounds := 25
	if n, err := strconv.Atoi(os.Getenv("SWITCHYARD_CAUSAL_ROUNDS")); err == nil && n > 0 {
		rounds = n // the full run whose figures are in the README
	}
	ctx := context.Background()
	var reads, stale, failed, onReplica atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		params := "" // prepared statements (COM_STMT_EXECUTE)
		if c%2 == 0 {
			params = "interpolateParams=true" // text protocol
		}
		db := p.open(t, params)
		wg.Go(func() {
			cn, err := db.Conn(ctx)
			if err != nil {
				failed.Add(1)
				return
			}
			defer cn.Close()
			written := 0
			for i := range rounds {
				if _, err := cn.ExecContext(ctx, "INSERT INTO t_causal VALUES (?, ?)", int64(c)*1_000_000+int64(i), c); err != nil {
					failed.Add(1)
					continue
				}
				written++
				for range 9 {
					var n, port int
					if err := cn.QueryRowContext(ctx, "SELECT count(*), @@port FROM t_causal WHERE client = ?", c).Scan(&n, &port); err != nil {
						failed.Add(1)
						continue
					}
					reads.Add(1)
					if n != written {
						stale.Add(1)
					}
					if port != ma.Primary.Port {
						onReplica.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	share := float64(onReplica.Load()) / float64(max(reads.Load(), 1))
	t.Logf("%d writers x %d rounds of 1 write + 9 reads: %d reads, %d stale, %d failed, %.1f%% served by the replica",
		clients, rounds, reads.Load(), stale.Load(), failed.Load(), 100*share)
	if stale.Load() != 0 || failed.Load() != 0 {
		t.Fatalf("stale reads %d, failures %d", stale.Load(), failed.Load())
	}
	if share < 0.5 {
		t.Fatalf("%.1f%% of reads served by the replica, want at least 50%%", 100*share)
	}
}
