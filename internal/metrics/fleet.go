package metrics

import "github.com/prometheus/client_golang/prometheus"

// FleetCancels counts the cancels (PostgreSQL CancelRequest, MySQL KILL)
// that concern another instance of a fleet, by protocol and result:
// "forwarded" (the key or id is a peer's: sent to it), "received" (a peer
// forwarded one of ours), "unknown" (the key or id names no configured
// peer, or a forwarded one is not ours: dropped), "failed" (the peer
// could not be reached).
var FleetCancels = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "switchyard_fleet_cancels_total",
	Help: "Cancel requests and KILLs between instances of a fleet, by protocol and result (forwarded, received, unknown, failed).",
}, []string{"protocol", "result"})

func init() { Registry.MustRegister(FleetCancels) }
