package mysqlwire

import (
	"log/slog"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/testcluster"
)

// max_replica_lag = "0s" means only replicas that have replayed
// everything; it used to mean no limit, and a replica whose SQL thread was
// stopped kept getting reads.
func TestMaxReplicaLagZero(t *testing.T) {
	p := startSplitProxy(t, `max_replica_lag = "0s"`)
	ma := testcluster.Maria
	onNode(t, ma.Primary, "CREATE TABLE IF NOT EXISTS app.t_lag0 (id INT)")
	caughtUp(t)
	waitEligible(t, p, replicaNode().Addr())
	onNode(t, replicaNode(), "STOP SLAVE SQL_THREAD")
	defer onNode(t, replicaNode(), "START SLAVE SQL_THREAD")
	onNode(t, ma.Primary, "INSERT INTO app.t_lag0 VALUES (1)")
	time.Sleep(300 * time.Millisecond) // a few polls after the write
	c := conn(t, p.open(t, ""))
	for range 20 {
		if port := portOf(t, c, "SELECT @@port"); port != ma.Primary.Port {
			t.Fatalf("read on %d while the only replica is behind, want the primary %d", port, ma.Primary.Port)
		}
	}
}

// When the primary's position cannot be read (here: the monitor user
// exists on the replica only), the replica's lag is unknown, not zero:
// reads go to the primary, and the metrics say why.
func TestUnknownLagReadsFromPrimary(t *testing.T) {
	ma := testcluster.Maria
	onNode(t, replicaNode(), "SET SESSION sql_log_bin = 0; DROP USER IF EXISTS 'lagmon_t'@'%'; CREATE USER 'lagmon_t'@'%' IDENTIFIED BY 'lagmon_t'")
	defer onNode(t, replicaNode(), "SET SESSION sql_log_bin = 0; DROP USER IF EXISTS 'lagmon_t'@'%'")
	cfg := splitConfig(t, "", true)
	cfg.Clusters[0].MonitorUser, cfg.Clusters[0].MonitorPassword = "lagmon_t", "lagmon_t"
	unknown := metrics.Routed.WithLabelValues("mysql", "my", "primary", "lag_unknown")
	before := counterValue(unknown)
	p := serveProxy(t, cfg, slog.LevelError, true)
	rt := p.srv.Rts.Get("my")
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
	c := conn(t, p.open(t, ""))
	for range 20 {
		if port := portOf(t, c, "SELECT @@port"); port != ma.Primary.Port {
			t.Fatalf("read on %d with the replica's lag unknown, want the primary %d", port, ma.Primary.Port)
		}
	}
	if got := counterValue(unknown) - before; got < 20 {
		t.Fatalf("switchyard_routed_transactions_total{reason=lag_unknown} grew by %v, want 20", got)
	}
	t.Logf("primary probe error: %v", rt.Mon.PrimaryErr())
}
