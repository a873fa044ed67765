package frontend

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/metrics"
)

// Table is one answer of the admin console (pgwire's psql -d switchyard)
// and of the admin /status view: columns and rows of text.
type Table struct {
	Cols []string
	Rows [][]string
}

// Add appends a row of vals, formatted with fmt.Sprint.
func (t *Table) Add(vals ...any) {
	row := make([]string, len(vals))
	for i, v := range vals {
		row[i] = fmt.Sprint(v)
	}
	t.Rows = append(t.Rows, row)
}

// Maps is t as one column-name-to-value map per row (the JSON views).
func (t *Table) Maps() []map[string]string {
	out := make([]map[string]string, 0, len(t.Rows))
	for _, r := range t.Rows {
		m := make(map[string]string, len(r))
		for i, v := range r {
			m[t.Cols[i]] = v
		}
		out = append(out, m)
	}
	return out
}

// ConsoleTable builds the admin console's tables that know no protocol:
// SHOW HELP (clients saying what SHOW CLIENTS lists), POOLS, REPLICAS,
// SHARDS and STATS. ok is false for any other name; the wire package
// builds the tables of its own clients.
func (r *Runtime[V]) ConsoleTable(what, clients string) (t *Table, ok bool) {
	t = &Table{}
	switch what {
	case "HELP":
		t.Cols = []string{"command", "what"}
		t.Add("SHOW POOLS", "every pool: connections active, idle, dialing; clients waiting; refusals by wait timeout and by max_wait_clients")
		t.Add("SHOW CLIENTS", clients)
		t.Add("SHOW SERVERS", "server connections leased now, and by whom")
		t.Add("SHOW REPLICAS", "replicas with health, lag and load")
		t.Add("SHOW SHARDS", "shards of the sharded clusters")
		t.Add("SHOW STATS", "transactions, queries and routing per cluster")
		t.Add("RELOAD", "reload the config file")
		t.Add("PAUSE [cluster]", "stop handing out server connections; returns when the transactions in flight have ended (at most shutdown_timeout)")
		t.Add("RESUME [cluster]", "resume after PAUSE")
	case "POOLS":
		t.Cols = []string{"protocol", "cluster", "node", "user", "size", "active", "idle", "dialing", "waiting", "leases", "wait_timeouts", "queue_full", "max_wait"}
		for _, pi := range metrics.Pools() {
			st := pi.Pool.Stats()
			t.Add(pi.Protocol, pi.Cluster, pi.Node, pi.User, pi.Size, st.Active, st.Idle, st.Dialing, st.Waiting, st.Gets, st.WaitTimeouts, st.QueueFull, st.MaxWait)
		}
	case "REPLICAS":
		t.Cols = []string{"cluster", "replica", "healthy", "eligible", "lag", "lag_bytes", "outstanding", "banned", "ban_reason", "error"}
		rts := r.Rts.All()
		for _, n := range slices.Sorted(maps.Keys(rts)) {
			for _, st := range rts[n].Set.Status() {
				errText := ""
				if st.Err != nil {
					errText = st.Err.Error()
				}
				t.Add(n, st.Name, st.Healthy, st.Eligible, st.Lag.Round(time.Millisecond), st.LagBytes, st.Outstanding, st.Banned, st.BanReason, errText)
			}
		}
	case "SHARDS":
		t.Cols = []string{"cluster", "kind", "key", "shard", "primary", "replicas", "database", "range"}
		for _, cl := range r.Config().Clusters {
			if cl.Sharding == nil {
				continue
			}
			for i, sh := range cl.Shards {
				rg := ""
				if len(sh.Range) == 2 {
					rg = fmt.Sprintf("[%v, %v)", sh.Range[0], sh.Range[1])
				}
				t.Add(cl.Name, cl.Sharding.Kind, cl.Sharding.Key, i, sh.Primary, strings.Join(sh.Replicas, ","), sh.Database, rg)
			}
		}
	case "STATS":
		t.Cols = []string{"metric", "labels", "value"}
		mfs, err := metrics.Registry.Gather()
		if err != nil {
			return t, true
		}
		for _, mf := range mfs {
			name := mf.GetName()
			if !strings.HasPrefix(name, "switchyard_") || !strings.HasSuffix(name, "_total") {
				continue
			}
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, lp := range m.GetLabel() {
					labels = append(labels, lp.GetName()+"="+lp.GetValue())
				}
				t.Add(name, strings.Join(labels, ","), strconv.FormatFloat(m.GetCounter().GetValue(), 'f', -1, 64))
			}
		}
	default:
		return nil, false
	}
	return t, true
}

// paused is what PAUSE left in force: every cluster (all) or some, by
// name. A pool opened while its cluster is paused starts paused (Pools.Init
// asks ClusterPaused), so that a pool made on first use, for a user's
// first login or by a reload after PAUSE does not serve before RESUME.
var paused struct {
	sync.Mutex
	all      bool
	clusters map[string]bool
}

// ClusterPaused says whether PAUSE holds cluster's pools.
func ClusterPaused(cluster string) bool {
	paused.Lock()
	defer paused.Unlock()
	return paused.all || paused.clusters[cluster]
}

// PausePools pauses (pause) or resumes every pool of the process, of
// cluster only when it is not "", now and for the pools opened later, and
// returns how many open pools it concerned. RESUME without a cluster ends
// every pause; RESUME of one cluster leaves it paused while a PAUSE of
// every cluster holds.
func PausePools(cluster string, pause bool) int {
	paused.Lock()
	defer paused.Unlock()
	switch {
	case cluster == "":
		paused.all = pause
		if !pause {
			clear(paused.clusters)
		}
	case pause:
		if paused.clusters == nil {
			paused.clusters = map[string]bool{}
		}
		paused.clusters[cluster] = true
	default:
		delete(paused.clusters, cluster)
	}
	n := 0
	for _, pi := range metrics.Pools() {
		if cluster != "" && pi.Cluster != cluster {
			continue
		}
		if paused.all || paused.clusters[pi.Cluster] {
			pi.Pool.Pause()
		} else {
			pi.Pool.Resume()
		}
		n++
	}
	return n
}

// PoolsLeased counts the server connections of cluster's pools (every
// pool for "") that are leased or being dialed now: what a PAUSE waits
// for.
func PoolsLeased(cluster string) int {
	n := 0
	for _, pi := range metrics.Pools() {
		if cluster == "" || pi.Cluster == cluster {
			st := pi.Pool.Stats()
			n += st.Active + st.Dialing
		}
	}
	return n
}

// ShardStatus describes the shard maps in force for the admin /status
// view: per shard its cluster, kind, key, map version, primary, database,
// range and replicas with whether each takes reads now.
func (r *Runtime[V]) ShardStatus() []map[string]any {
	var shards []map[string]any
	for name, rt := range r.Shards.All() {
		for i, sh := range rt.Cluster.Shards {
			row := map[string]any{
				"cluster": name, "kind": rt.Cluster.Sharding.Kind, "key": rt.Cluster.Sharding.Key,
				"map_version": rt.Map.Version(), "shard": i, "primary": sh.Primary,
				"database": rt.Database(i),
			}
			if len(sh.Range) == 2 {
				row["range"] = fmt.Sprintf("[%v, %v)", sh.Range[0], sh.Range[1])
			}
			if crt := rt.Replicas[i]; crt != nil {
				var reps []map[string]any
				for _, st := range crt.Set.Status() {
					reps = append(reps, map[string]any{"replica": st.Name, "eligible": st.Eligible})
				}
				row["replicas"] = reps
			}
			shards = append(shards, row)
		}
	}
	return shards
}
