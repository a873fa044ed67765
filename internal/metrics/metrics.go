// Package metrics holds the Prometheus collectors that the wire packages
// update on the path of a query and the admin listener serves. Counters are
// resolved to their label values once per client session, so the hot path
// costs an atomic add. Pool gauges are read from the pools at scrape time,
// never maintained on the hot path.
package metrics

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchyard/switchyard/pool"
)

// Registry is the one registry the admin endpoint serves.
var Registry = prometheus.NewRegistry()

var (
	// ClientConnections counts client connections by protocol and state:
	// "idle" (no server), "waiting" (for a server), "active" (holds one).
	ClientConnections = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchyard_client_connections",
		Help: "Client connections by protocol and state (idle, waiting, active).",
	}, []string{"protocol", "state"})

	ClientLogins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_client_logins_total",
		Help: "Client login attempts by protocol and result (ok, auth_failed, rejected).",
	}, []string{"protocol", "result"})

	Transactions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_transactions_total",
		Help: "Transactions completed (autocommit statements count one each), by protocol and cluster.",
	}, []string{"protocol", "cluster"})

	Queries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_queries_total",
		Help: "Queries completed (simple queries and extended-protocol syncs), by protocol and cluster.",
	}, []string{"protocol", "cluster"})

	WaitSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchyard_pool_wait_seconds",
		Help:    "Time clients waited for a server connection.",
		Buckets: []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5},
	}, []string{"protocol", "cluster"})

	ServerErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_server_connection_errors_total",
		Help: "Server connections lost or refused, by protocol and cluster.",
	}, []string{"protocol", "cluster"})
)

func init() {
	Registry.MustRegister(ClientConnections, ClientLogins, Transactions, Queries, WaitSeconds, ServerErrors, pools,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// PoolInfo names one pool for the metrics and the admin views.
type PoolInfo struct {
	Protocol, Cluster, Node, User string
	Size                          int
	Pool                          *pool.Pool
}

type poolSet struct {
	mu sync.Mutex
	m  map[*pool.Pool]PoolInfo
}

var pools = &poolSet{m: map[*pool.Pool]PoolInfo{}}

// AddPool makes a pool visible to scrapes and admin views until RemovePool.
func AddPool(pi PoolInfo) {
	pools.mu.Lock()
	pools.m[pi.Pool] = pi
	pools.mu.Unlock()
}

// RemovePool forgets a pool (after it was drained).
func RemovePool(p *pool.Pool) {
	pools.mu.Lock()
	delete(pools.m, p)
	pools.mu.Unlock()
}

// Pools lists the known pools, sorted for stable output.
func Pools() []PoolInfo {
	pools.mu.Lock()
	out := make([]PoolInfo, 0, len(pools.m))
	for _, pi := range pools.m {
		out = append(out, pi)
	}
	pools.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Cluster != b.Cluster {
			return a.Cluster < b.Cluster
		}
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		return a.User < b.User
	})
	return out
}

var (
	labels         = []string{"protocol", "cluster", "node", "user"}
	serverConnDesc = prometheus.NewDesc("switchyard_server_connections",
		"Server connections per pool by state (active, idle, dialing).", append(labels, "state"), nil)
	waitingDesc = prometheus.NewDesc("switchyard_pool_waiting_clients",
		"Clients waiting for a server connection of the pool.", labels, nil)
	sizeDesc = prometheus.NewDesc("switchyard_pool_size",
		"Configured maximum server connections of the pool.", labels, nil)
	waitTimeoutsDesc = prometheus.NewDesc("switchyard_pool_wait_timeouts_total",
		"Clients that gave up waiting for a server connection.", labels, nil)
	dialErrorsDesc = prometheus.NewDesc("switchyard_pool_dial_errors_total",
		"Failed attempts to open a server connection.", labels, nil)
)

func (*poolSet) Describe(ch chan<- *prometheus.Desc) {
	ch <- serverConnDesc
	ch <- waitingDesc
	ch <- sizeDesc
	ch <- waitTimeoutsDesc
	ch <- dialErrorsDesc
}

func (ps *poolSet) Collect(ch chan<- prometheus.Metric) {
	for _, pi := range Pools() {
		st := pi.Pool.Stats()
		lv := []string{pi.Protocol, pi.Cluster, pi.Node, pi.User}
		g := prometheus.GaugeValue
		ch <- prometheus.MustNewConstMetric(serverConnDesc, g, float64(st.Active), append(lv, "active")...)
		ch <- prometheus.MustNewConstMetric(serverConnDesc, g, float64(st.Idle), append(lv, "idle")...)
		ch <- prometheus.MustNewConstMetric(serverConnDesc, g, float64(st.Dialing), append(lv, "dialing")...)
		ch <- prometheus.MustNewConstMetric(waitingDesc, g, float64(st.Waiting), lv...)
		ch <- prometheus.MustNewConstMetric(sizeDesc, g, float64(pi.Size), lv...)
		ch <- prometheus.MustNewConstMetric(waitTimeoutsDesc, prometheus.CounterValue, float64(st.WaitTimeouts), lv...)
		ch <- prometheus.MustNewConstMetric(dialErrorsDesc, prometheus.CounterValue, float64(st.DialErrors), lv...)
	}
}

var (
	// PinnedSessions counts client sessions pinned to one server
	// connection because they hold state a transaction pooler cannot
	// carry (LISTEN, temporary tables, session advisory locks, ...).
	PinnedSessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchyard_pinned_sessions",
		Help: "Client sessions currently pinned to their server connection, by protocol.",
	}, []string{"protocol"})
	Pins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_session_pins_total",
		Help: "Sessions pinned to their server connection, by protocol and reason.",
	}, []string{"protocol", "reason"})
)

func init() { Registry.MustRegister(PinnedSessions, Pins) }

var (
	// Routed counts where transactions went and why.
	Routed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_routed_transactions_total",
		Help: "Transactions routed, by protocol, cluster, target (primary, replica) and reason.",
	}, []string{"protocol", "cluster", "target", "reason"})
	// ReadFallbacks counts reads that went to the primary because no
	// replica was eligible, by reason: no_replica (all lagging, down or
	// banned), lag_unknown (the primary's position cannot be read),
	// read_your_writes (none has replayed the client's write yet: normal
	// for a client that reads right after writing).
	ReadFallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_read_fallbacks_total",
		Help: "Reads sent to the primary because no replica could serve them, by protocol, cluster and reason (no_replica: all lagging, down or banned; lag_unknown; read_your_writes: none has the client's write yet).",
	}, []string{"protocol", "cluster", "reason"})
)

func init() { Registry.MustRegister(Routed, ReadFallbacks) }
