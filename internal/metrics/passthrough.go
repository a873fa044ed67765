package metrics

import "github.com/prometheus/client_golang/prometheus"

// AuthQueries counts the look-ups of passthrough authentication
// (auth_user, auth_query) by result: "cached" (answered from the cache),
// "found", "not_found" (no such user, or one without a password) and
// "error" (the query or the connection for it failed).
var AuthQueries = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "switchyard_auth_query_lookups_total",
	Help: "Passthrough authentication look-ups (auth_query) by protocol, cluster and result (cached, found, not_found, error).",
}, []string{"protocol", "cluster", "result"})

func init() { Registry.MustRegister(AuthQueries) }
