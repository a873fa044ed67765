package frontend

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
)

// ClientState is where a client is, for the gauge
// switchyard_client_connections{state} and the admin views: one of a
// closed set, changed only through ClientStates.
type ClientState uint8

const (
	StateGone    ClientState = iota // not counted (logged out)
	StateIdle                       // between transactions, no server connection asked for
	StateWaiting                    // waiting for a server connection
	StateActive                     // holding one
)

var stateNames = [...]string{"", "idle", "waiting", "active"}

func (s ClientState) String() string { return stateNames[s] }

// ClientStates are one protocol's gauges of clients by state, resolved
// once: a change of state is on the path of every transaction.
type ClientStates [len(stateNames)]prometheus.Gauge

// NewClientStates returns the gauges of proto's clients.
func NewClientStates(proto config.Protocol) *ClientStates {
	var g ClientStates
	for s := StateIdle; int(s) < len(g); s++ {
		g[s] = metrics.ClientConnections.WithLabelValues(string(proto), s.String())
	}
	return &g
}

// Enter counts a client that logged in, idle.
func (g *ClientStates) Enter(cur *ClientState) {
	*cur = StateIdle
	g[StateIdle].Inc()
}

// Set moves a client from *cur to s; a client that left stays gone.
func (g *ClientStates) Set(cur *ClientState, s ClientState) {
	if *cur == s || *cur == StateGone {
		return
	}
	g[*cur].Dec()
	g[s].Inc()
	*cur = s
}

// Leave stops counting a client.
func (g *ClientStates) Leave(cur *ClientState) {
	if *cur != StateGone {
		g[*cur].Dec()
		*cur = StateGone
	}
}
