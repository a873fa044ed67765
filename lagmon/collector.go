package lagmon

import "github.com/prometheus/client_golang/prometheus"

var (
	descLagSeconds = prometheus.NewDesc("switchyard_replica_lag_seconds",
		"How far a replica was behind its primary at its last successful probe, from replication positions and the times the primary was sampled at them.",
		[]string{"cluster", "replica"}, nil)
	descLagBytes = prometheus.NewDesc("switchyard_replica_lag_bytes",
		"PostgreSQL replicas: WAL bytes between the primary's newest sampled LSN and the replica's replayed LSN.",
		[]string{"cluster", "replica"}, nil)
	descHealthy = prometheus.NewDesc("switchyard_replica_healthy",
		"1 if the replica's position was read successfully recently (fewer than fail_after consecutive probe failures), else 0.",
		[]string{"cluster", "replica"}, nil)
	descLagKnown = prometheus.NewDesc("switchyard_replica_lag_known",
		"1 if the replica's lag is known (both it and the primary were read recently), else 0: a replica whose lag is unknown gets no reads.",
		[]string{"cluster", "replica"}, nil)
)

// Collector returns a Prometheus collector of m's replicas, labelled with
// cluster: switchyard_replica_lag_seconds, switchyard_replica_lag_bytes
// (PostgreSQL only) and switchyard_replica_healthy. Values are read at
// scrape time; register one collector per Monitor (and unregister it when a
// reload replaces the Monitor).
func (m *Monitor) Collector(cluster string) prometheus.Collector {
	return collector{m, cluster}
}

type collector struct {
	m       *Monitor
	cluster string
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLagSeconds
	ch <- descLagBytes
	ch <- descHealthy
	ch <- descLagKnown
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range c.m.names {
		st := c.m.Replica(name)
		healthy := 0.0
		if st.Healthy {
			healthy = 1
		}
		ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, healthy, c.cluster, name)
		known := 0.0
		if st.LagKnown {
			known = 1
		}
		ch <- prometheus.MustNewConstMetric(descLagKnown, prometheus.GaugeValue, known, c.cluster, name)
		if st.Position == nil || !st.LagKnown {
			continue // no lag to report
		}
		ch <- prometheus.MustNewConstMetric(descLagSeconds, prometheus.GaugeValue, st.Lag.Seconds(), c.cluster, name)
		if st.LagBytes >= 0 {
			ch <- prometheus.MustNewConstMetric(descLagBytes, prometheus.GaugeValue, float64(st.LagBytes), c.cluster, name)
		}
	}
}
