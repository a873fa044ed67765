package router

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/shard"
)

// The sharded clusters of one front end, built from the config at each
// (re)load and published as one snapshot, the same for both protocols:
// the map of each cluster (kept, with its version and the key
// extractor's cache, when the reload did not change where keys live),
// its plan step, the replica runtimes of its shards and its metrics.

// ShardCluster is what a sharded cluster routes with; immutable once
// published, but for its cache of key column types.
type ShardCluster struct {
	Cluster *config.Cluster
	*ShardRouting
	// Analyzer judges read versus write for the shards' replicas; nil
	// when no shard has replicas (routing then needs no analysis).
	Analyzer *Analyzer
	// Replicas are the runtimes of the shards with replicas, by shard
	// (nil for a shard without), from the registry given to Publish.
	Replicas []*replica.Runtime

	protocol config.Protocol
	routed   []prometheus.Counter // statements routed, by shard
	refused  prometheus.Counter

	// keyTypes caches the wire layer's KeyTypes answers for this map:
	// [2]string{table, column} → numeric. Built anew at each reload, so
	// a key column whose type an operator changes is looked up again
	// after the next reload.
	keyTypes sync.Map
}

// KeyType returns the cached KeyTypes answer for table's key column;
// ok is false when there is none yet.
func (sc *ShardCluster) KeyType(table, column string) (numeric, ok bool) {
	v, ok := sc.keyTypes.Load([2]string{table, column})
	if !ok {
		return false, false
	}
	return v.(bool), true
}

// SetKeyType caches a KeyTypes answer.
func (sc *ShardCluster) SetKeyType(table, column string, numeric bool) {
	sc.keyTypes.Store([2]string{table, column}, numeric)
}

// ShardClusters are sharded clusters by name.
type ShardClusters map[string]*ShardCluster

// ShardSet holds the sharded clusters of one protocol in force; lookups
// are lock-free. Its zero value holds none; set Protocol before use.
type ShardSet struct {
	Protocol config.Protocol
	cur      atomic.Pointer[ShardClusters]
}

// Build builds the sharded clusters of s's protocol in cfg, keeping the
// map (and version) of a cluster whose placement of keys did not change
// (shard.MapFor) and bumping it otherwise. Nothing is published; an
// error leaves everything as it was.
func (s *ShardSet) Build(cfg *config.Config) (ShardClusters, error) {
	old := s.All()
	d := Postgres
	if s.Protocol == config.MySQL {
		d = MySQL
	}
	out := make(ShardClusters)
	for i := range cfg.Clusters {
		cl := &cfg.Clusters[i]
		if cl.Protocol != s.Protocol || cl.Sharding == nil {
			continue
		}
		if len(cl.Shards) == 0 {
			return nil, fmt.Errorf("cluster %q: sharded but no shards", cl.Name)
		}
		o := old[cl.Name]
		var ocl *config.Cluster
		var om shard.Map
		if o != nil {
			ocl, om = o.Cluster, o.Map
		}
		m, kept, err := shard.MapFor(cl, ocl, om)
		if err != nil {
			return nil, err
		}
		var x *KeyExtractor
		if kept {
			x = o.Keys // its cache stays valid
		}
		sc := &ShardCluster{
			Cluster:      cl,
			ShardRouting: NewShardRouting(d, m, KeySpec{Default: cl.Sharding.Key, Tables: cl.Sharding.Tables}, cl.Sharding.AllowAllShardWrites, x),
			protocol:     s.Protocol,
			refused:      metrics.ShardRefused.WithLabelValues(string(s.Protocol), cl.Name),
		}
		sc.ShardRouting.Database = cl.Database
		sc.ShardRouting.ShardDatabase = cl.Shards[0].Database
		for _, sh := range cl.Shards {
			if sh.Database != cl.Shards[0].Database {
				sc.ShardRouting.ShardDatabase = ""
			}
		}
		for j, sh := range cl.Shards {
			if len(sh.Replicas) > 0 && sc.Analyzer == nil {
				sc.Analyzer = SettingsAnalyzer(d, cl.Settings)
			}
			sc.routed = append(sc.routed, metrics.ShardStatements.WithLabelValues(string(s.Protocol), cl.Name, strconv.Itoa(j)))
		}
		out[cl.Name] = sc
	}
	return out, nil
}

// Publish makes m the sharded clusters in force, each with the replica
// runtimes of its shards in rts (reloaded for the same config before).
func (s *ShardSet) Publish(m ShardClusters, rts *replica.Registry) {
	for name, sc := range m {
		sc.Replicas = make([]*replica.Runtime, len(sc.Cluster.Shards))
		for i := range sc.Replicas {
			sc.Replicas[i] = rts.Get(replica.ShardName(name, i))
		}
		metrics.ShardMapVersion.WithLabelValues(string(s.Protocol), name).Set(float64(sc.Map.Version()))
	}
	s.cur.Store(&m)
}

// Get returns the sharded cluster named name in force, or nil.
func (s *ShardSet) Get(name string) *ShardCluster {
	if p := s.cur.Load(); p != nil {
		return (*p)[name]
	}
	return nil
}

// All returns the sharded clusters in force (not to be changed).
func (s *ShardSet) All() ShardClusters {
	if p := s.cur.Load(); p != nil {
		return *p
	}
	return nil
}

// MapVersions returns the version of each sharded cluster's shard map in
// force, by cluster name, for the admin /status view and reload answers
// (a fleet's operator compares them across instances).
func (s *ShardSet) MapVersions() map[string]uint64 {
	out := map[string]uint64{}
	for name, sc := range s.All() {
		out[name] = sc.Map.Version()
	}
	return out
}

// Database is the database of shard i on its servers.
func (sc *ShardCluster) Database(i int) string { return shard.Database(sc.Cluster, i) }

// Primary is the address of shard i's primary: the key of the client's
// writes there for read-your-writes (replica.WritesByPrimary).
func (sc *ShardCluster) Primary(i int) string { return sc.Cluster.Shards[i].Primary }

// SameServer says whether shard i of o is on the primary and database of
// shard i of sc: work planned on one can run on the other's pool for that
// shard (a reload in between changed something else, or nothing).
func (sc *ShardCluster) SameServer(o *ShardCluster, i int) bool {
	return i < len(sc.Cluster.Shards) && i < len(o.Cluster.Shards) &&
		sc.Primary(i) == o.Primary(i) && sc.Database(i) == o.Database(i)
}

// Routed counts a statement routed to shard i.
func (sc *ShardCluster) Routed(i int) { sc.routed[i].Inc() }

// Refused counts a statement refused by the plan of the cluster.
func (sc *ShardCluster) Refused() { sc.refused.Inc() }

// Refused counts a statement refused by the plan of the sharded cluster
// named cluster in force (none: a reload made it unsharded).
func (s *ShardSet) Refused(cluster string) {
	if sc := s.Get(cluster); sc != nil {
		sc.Refused()
	}
}
