package lagmon

import "github.com/prometheus/client_golang/prometheus"

// The help texts of the collector's series. Each collector's descriptors
// carry its cluster as a constant label: a proxy registers one collector
// per replica runtime (every cluster and shard of both front ends) in one
// registry, which refuses a second collector whose descriptors are the
// same as the first's, so descriptors with cluster as a variable label let
// only the first runtime's series out.
const (
	helpLagSeconds = "How far a replica was behind its primary at its last successful probe, from replication positions and the times the primary was sampled at them."
	helpLagBytes   = "PostgreSQL replicas: WAL bytes between the primary's newest sampled LSN and the replica's replayed LSN."
	helpHealthy    = "1 if the replica's position was read successfully recently (fewer than fail_after consecutive probe failures), else 0."
	helpLagKnown   = "1 if the replica's lag is known (both it and the primary were read recently), else 0: a replica whose lag is unknown gets no reads."
)

// Collector returns a Prometheus collector of m's replicas, labelled with
// cluster: switchyard_replica_lag_seconds, switchyard_replica_lag_bytes
// (PostgreSQL only), switchyard_replica_healthy and
// switchyard_replica_lag_known. Values are read at scrape time; register
// one collector per Monitor (and unregister it when a reload replaces the
// Monitor). Collectors of different clusters register side by side in one
// registry; two of the same cluster do not.
func (m *Monitor) Collector(cluster string) prometheus.Collector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"replica"}, prometheus.Labels{"cluster": cluster})
	}
	return &collector{m: m,
		lagSeconds: desc("switchyard_replica_lag_seconds", helpLagSeconds),
		lagBytes:   desc("switchyard_replica_lag_bytes", helpLagBytes),
		healthy:    desc("switchyard_replica_healthy", helpHealthy),
		lagKnown:   desc("switchyard_replica_lag_known", helpLagKnown),
	}
}

type collector struct {
	m                                       *Monitor
	lagSeconds, lagBytes, healthy, lagKnown *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lagSeconds
	ch <- c.lagBytes
	ch <- c.healthy
	ch <- c.lagKnown
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range c.m.names {
		st := c.m.Replica(name)
		healthy := 0.0
		if st.Healthy {
			healthy = 1
		}
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, healthy, name)
		known := 0.0
		if st.LagKnown {
			known = 1
		}
		ch <- prometheus.MustNewConstMetric(c.lagKnown, prometheus.GaugeValue, known, name)
		if st.Position == nil || !st.LagKnown {
			continue // no lag to report
		}
		ch <- prometheus.MustNewConstMetric(c.lagSeconds, prometheus.GaugeValue, st.Lag.Seconds(), name)
		if st.LagBytes >= 0 {
			ch <- prometheus.MustNewConstMetric(c.lagBytes, prometheus.GaugeValue, float64(st.LagBytes), name)
		}
	}
}
