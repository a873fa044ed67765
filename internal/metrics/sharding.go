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
	// ScatterRefused counts SELECTs run on several shards that were
	// refused: reason "max_scatter_bytes" (their rows exceeded the
	// budget) or "merge" (the rows cannot be merged as one database
	// would).
	ScatterRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_scatter_refused_total",
		Help: "SELECTs run on several shards and refused, by protocol and reason (max_scatter_bytes: the rows exceeded the budget; merge: they cannot be merged as one database would).",
	}, []string{"protocol", "reason"})
	// ScatterBytes is what the rows of each merged scatter took (as
	// charged to max_scatter_bytes).
	ScatterBytes = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchyard_scatter_bytes",
		Help:    "Bytes of rows held to merge one SELECT run on several shards (as charged to max_scatter_bytes), by protocol.",
		Buckets: prometheus.ExponentialBuckets(1024, 8, 9), // 1 KiB .. 16 GiB
	}, []string{"protocol"})
	// ShardMapVersion is the version of the shard map in force: it grows
	// with every reload that changes a cluster's sharding, so a graph of
	// it marks when routing changed.
	ShardMapVersion = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchyard_shard_map_version",
		Help: "Version of the shard map in force, by protocol and cluster; bumped by each reload that changes the sharding.",
	}, []string{"protocol", "cluster"})
)

func init() {
	Registry.MustRegister(ShardStatements, ScatterQueries, AllShardWrites, ShardRefused, ShardMapVersion, ScatterRefused, ScatterBytes)
}
