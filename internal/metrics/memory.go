package metrics

import "github.com/prometheus/client_golang/prometheus"

// Bounded memory: the structures clients make the proxy keep.
var (
	// StatementRegistrySize is the number of statements in the
	// PostgreSQL front end's proxy-wide statement registry (one entry per
	// distinct statement text and parameter types, bounded by
	// proxy.statement_registry_size).
	StatementRegistrySize = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchyard_statement_registry_size",
		Help: "Statements in the PostgreSQL proxy-wide prepared statement registry (bounded by proxy.statement_registry_size).",
	})
	// StatementRegistryEvictions counts statements dropped from the
	// registry to stay within its bound, and failed Parses forgotten.
	StatementRegistryEvictions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_statement_registry_evictions_total",
		Help: "Statements dropped from the PostgreSQL proxy-wide statement registry, by reason (capacity, parse_failed, schema_changed: DDL ran since it was prepared).",
	}, []string{"reason"})
)

func init() { Registry.MustRegister(StatementRegistrySize, StatementRegistryEvictions) }
