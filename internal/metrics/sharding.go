package metrics

import "github.com/prometheus/client_golang/prometheus"

// Sharding metrics, for both protocols (label "protocol").
var (
	// ShardStatements counts transactions (requests that lease a shard)
	// routed to each shard.
	ShardStatements = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_shard_routed_total",
		Help: "Requests routed to one shard, by protocol, cluster and shard (0-based index of [[clusters.shards]]).",
	}, []string{"protocol", "cluster", "shard"})
	// ScatterQueries counts SELECTs without a shard key run on every shard.
	ScatterQueries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_shard_scatter_queries_total",
		Help: "SELECTs without a shard key run on every shard and merged, by protocol and cluster.",
	}, []string{"protocol", "cluster"})
	// AllShardWrites counts UPDATEs and DELETEs without a shard key run
	// on every shard (allow_all_shard_writes).
	AllShardWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_shard_all_shard_writes_total",
		Help: "UPDATEs and DELETEs without a shard key run on every shard (allow_all_shard_writes), by protocol and cluster.",
	}, []string{"protocol", "cluster"})
	// ShardRefused counts statements refused because they need more than
	// one shard or name none (writes without a key, cross-shard
	// transactions, unmergeable scatter SELECTs).
	ShardRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_shard_refused_total",
		Help: "Statements refused by shard routing (no key on a write, two shards in a transaction, unmergeable scatter), by protocol and cluster.",
	}, []string{"protocol", "cluster"})
	// ShardMapVersion is the version of the shard map in force: it grows
	// with every reload that changes a cluster's sharding, so a graph of
	// it marks when routing changed.
	ShardMapVersion = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchyard_shard_map_version",
		Help: "Version of the shard map in force, by protocol and cluster; bumped by each reload that changes the sharding.",
	}, []string{"protocol", "cluster"})
)

func init() {
	Registry.MustRegister(ShardStatements, ScatterQueries, AllShardWrites, ShardRefused, ShardMapVersion)
}
