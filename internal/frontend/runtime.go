package frontend

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lagmon"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
)

// Runtime is what one front end routes with, the same for both
// protocols: the config in force and its client TLS, the replica runtimes
// of the node sets with replicas (lag monitor, bans, positions), the
// analyzers of its clusters, its sharded clusters and its server
// connection pools, with V kept beside each pool. A wire package's Server
// embeds one and supplies only what speaks its protocol (the lag
// monitor's prober, RuntimeOptions). Init before use.
type Runtime[V any] struct {
	Rts    replica.Registry // runtimes of the node sets with replicas, by name
	Ans    router.Analyzers // analyzers of the clusters in force
	Shards router.ShardSet  // the sharded clusters in force
	Pools  Pools[V]

	opt RuntimeOptions
	mu  sync.Mutex // serializes reloads
	cfg atomic.Pointer[config.Config]
	tls atomic.Pointer[tls.Config]
}

// RuntimeOptions are a protocol's part of a Runtime.
type RuntimeOptions struct {
	Protocol config.Protocol
	Log      *slog.Logger
	// NewProbe is the lag monitor's prober of a node of cl (it speaks the
	// protocol); see replica.Specs.
	NewProbe func(cl *config.Cluster, addr string, primary bool, user, password string) lagmon.Prober
	// SplitOnly: only unsharded clusters with replicas get an analyzer
	// (router.Analyzers.Publish); the others route without a verdict.
	SplitOnly bool
	// LenientTLS: a client certificate that cannot be loaded disables
	// client TLS (logged) instead of refusing the config.
	LenientTLS bool
	// RefusedPrefix starts the error of a refused reload.
	RefusedPrefix string
	// Closing says whether the front end is shutting down: a reload then
	// starts no lag monitor.
	Closing func() bool
}

// Init sets the protocol's part; the pools log to o.Log.
func (r *Runtime[V]) Init(o RuntimeOptions) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	r.opt = o
	r.Shards.Protocol = o.Protocol
	r.Pools.Init(o.Protocol, o.Log, (*config.User).ServerCreds)
}

// Config returns the configuration in force.
func (r *Runtime[V]) Config() *config.Config { return r.cfg.Load() }

// ClientTLS returns the TLS clients may ask for, nil when none.
func (r *Runtime[V]) ClientTLS() *tls.Config { return r.tls.Load() }

// CheckReload says whether Reload would accept cfg, changing nothing, so
// that a caller reloading several front ends can refuse a file before any
// of them has taken it.
func (r *Runtime[V]) CheckReload(cfg *config.Config) error {
	if _, err := r.Shards.Build(cfg); err != nil {
		return r.refused(err)
	}
	return nil
}

// Reload makes cfg the configuration for everything that starts from now
// on: new logins and new leases. It builds what can fail first (the shard
// maps, the client TLS), then publishes it all: lag monitors are kept for
// node sets whose nodes and settings did not change, built for new ones
// and stopped for the rest; shard maps keep their version unless the
// placement of keys changed; pools whose connections cfg describes alike
// stay with its limits (pool_size and the like) taken in place, the others
// drain in the background. Transactions in flight finish on what they
// started with. A refused config changes nothing.
func (r *Runtime[V]) Reload(cfg *config.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	shards, tc, err := r.build(cfg)
	if err != nil {
		return r.refused(err)
	}
	r.publish(cfg, shards, tc)
	return nil
}

// Load is the first Reload of a front end that serves even when a shard
// map cannot be built: its sharded clusters are then unusable (logged).
func (r *Runtime[V]) Load(cfg *config.Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tc, err := r.clientTLS(cfg)
	if err != nil {
		r.opt.Log.Error("client TLS disabled", "err", err)
	}
	shards, err := r.Shards.Build(cfg)
	if err != nil {
		r.opt.Log.Error("sharded clusters are unusable: their shard maps cannot be built", "err", err)
	}
	r.publish(cfg, shards, tc)
}

func (r *Runtime[V]) refused(err error) error {
	if r.opt.RefusedPrefix == "" {
		return err
	}
	return fmt.Errorf("%s%w", r.opt.RefusedPrefix, err)
}

// build makes what a config needs and may fail: the client TLS and the
// shard maps (nothing is published).
func (r *Runtime[V]) build(cfg *config.Config) (router.ShardClusters, *tls.Config, error) {
	tc, err := r.clientTLS(cfg)
	if err != nil && !r.opt.LenientTLS {
		return nil, nil, err
	} else if err != nil {
		r.opt.Log.Error("client TLS disabled", "err", err)
	}
	shards, err := r.Shards.Build(cfg)
	if err != nil {
		return nil, nil, err
	}
	return shards, tc, nil
}

func (r *Runtime[V]) clientTLS(cfg *config.Config) (*tls.Config, error) {
	tc, err := ClientTLS(cfg.Proxy)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate %s: %w", cfg.Proxy.TLSCert, err)
	}
	return tc, nil
}

func (r *Runtime[V]) publish(cfg *config.Config, shards router.ShardClusters, tc *tls.Config) {
	// The runtimes first: a session that sees the new config takes the
	// runtimes of its clusters then (pgwire's repool keeps them).
	if r.opt.Closing == nil || !r.opt.Closing() {
		r.Rts.Reload(replica.Specs(cfg, r.opt.Protocol, (*config.User).ServerCreds, r.opt.NewProbe))
		for name, rt := range r.Rts.All() {
			if err := rt.Mon.PrimaryErr(); err != nil {
				r.opt.Log.Warn("lag monitor cannot read the primary's position; reads go to the primary", "cluster", name, "err", err)
			}
		}
	}
	r.tls.Store(tc)
	r.Ans.Publish(cfg, r.opt.Protocol, r.opt.SplitOnly)
	r.cfg.Store(cfg)
	r.Shards.Publish(shards, &r.Rts)
	r.Pools.Reload(cfg)
}

// MapVersions returns the version of each sharded cluster's shard map in
// force, by cluster name (router.ShardSet.MapVersions).
func (r *Runtime[V]) MapVersions() map[string]uint64 { return r.Shards.MapVersions() }

// Close stops the lag monitors and closes every pool.
func (r *Runtime[V]) Close() {
	r.Rts.Close()
	r.Pools.Close()
}
