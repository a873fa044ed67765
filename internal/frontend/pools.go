package frontend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/pool"
)

// PoolKey identifies a pool by everything that makes its server
// connections interchangeable: one node (address and server database),
// one server user and password, the cluster's connection settings
// (config.Settings.PoolIdentity). A reload that changes any part gets a
// fresh pool; the pool's limits and the settings of routing are not part
// of it, so a reload that changes only those keeps the pool (PoolLimits).
// A client's own wishes (capabilities, collation, attributes) are not
// part of it either: a lease brings its connection in line with the client.
type PoolKey struct {
	Cluster, Addr, DB, User, Password string
	Settings                          config.Settings
	// Pass marks a pool of a user logged in by auth_query (passthrough),
	// who is not in the config: it holds while the cluster has auth_user.
	Pass bool
}

// NewPoolKey is the key of a pool of cl's node addr (database db) as the
// server user user with password.
func NewPoolKey(cl *config.Cluster, addr, db, user, password string) PoolKey {
	return PoolKey{Cluster: cl.Name, Addr: addr, DB: db, User: user, Password: password, Settings: cl.Settings.PoolIdentity()}
}

// PoolLimits are the settings of a pool that a reload changes in place.
func PoolLimits(st config.Settings) pool.Limits {
	return pool.Limits{Size: max(1, st.PoolSize), MinSize: st.MinPoolSize, MaxWaiting: st.MaxWaitClients, WaitTimeout: st.QueryWaitTimeout}
}

// Node is one server of a cluster as a pool sees it: its address and the
// database the proxy uses there.
type Node struct{ Addr, DB string }

// Nodes are cl's servers: the primary and the replicas, then each
// shard's, with the database of each.
func Nodes(cl *config.Cluster) []Node {
	db := cl.ServerDatabase
	if db == "" {
		db = cl.Database
	}
	var out []Node
	if cl.Primary != "" {
		out = append(out, Node{cl.Primary, db})
		for _, r := range cl.Replicas {
			out = append(out, Node{r, db})
		}
	}
	for _, sh := range cl.Shards {
		sdb := sh.Database
		if sdb == "" {
			sdb = db
		}
		out = append(out, Node{sh.Primary, sdb})
		for _, r := range sh.Replicas {
			out = append(out, Node{r, sdb})
		}
	}
	return out
}

// Pools are the server connection pools of one front end, keyed by
// PoolKey, with V kept beside each (pool.Set). Init before use.
type Pools[V any] struct {
	pool.Set[PoolKey, V]
	proto config.Protocol
	creds func(*config.User) (user, password string)
}

// Init names the protocol (the metrics label) and how a configured user
// logs in to the servers, and registers the pools for metrics and the
// admin views as they come and go.
func (ps *Pools[V]) Init(proto config.Protocol, log *slog.Logger, creds func(*config.User) (user, password string)) {
	ps.proto, ps.creds = proto, creds
	ps.Log = log
	// A pool opened while PAUSE holds its cluster starts paused: asked
	// under the set's lock, before any client can lease from it, and once
	// more after it is listed, for a PAUSE that came in between (it found
	// the flag set, or this pool among those listed).
	ps.Paused = func(k PoolKey) bool { return ClusterPaused(k.Cluster) }
	ps.Listed = func(k PoolKey, p *pool.Pool, l pool.Limits) {
		metrics.AddPool(metrics.PoolInfo{Protocol: string(proto), Cluster: k.Cluster, Node: k.Addr + "/" + k.DB, User: k.User, Size: l.Size, Pool: p})
		if ClusterPaused(k.Cluster) {
			p.Pause()
		}
	}
	ps.Unlisted = metrics.RemovePool
}

// Reload applies cfg: a pool stays while one of the protocol's clusters
// of cfg still has its node, settings and user (or auth_user, for a
// passthrough pool), taking the cluster's limits in place; the others
// drain within the shutdown timeout (pool.Set.Reload).
func (ps *Pools[V]) Reload(cfg *config.Config) {
	type nodeKey struct {
		cluster, addr, db string
		settings          config.Settings
	}
	nodes := make(map[nodeKey]pool.Limits)
	authUser := make(map[string]bool)
	for i := range cfg.Clusters {
		cl := &cfg.Clusters[i]
		if cl.Protocol != ps.proto {
			continue
		}
		authUser[cl.Name] = cl.Settings.AuthUser != ""
		for _, n := range Nodes(cl) {
			nodes[nodeKey{cl.Name, n.Addr, n.DB, cl.Settings.PoolIdentity()}] = PoolLimits(cl.Settings)
		}
	}
	users := make(map[[2]string]bool)
	for i := range cfg.Users {
		u, pw := ps.creds(&cfg.Users[i])
		users[[2]string{u, pw}] = true
	}
	ps.Set.Reload(func(k PoolKey) (pool.Limits, bool) {
		l, ok := nodes[nodeKey{k.Cluster, k.Addr, k.DB, k.Settings}]
		if k.Pass {
			return l, ok && authUser[k.Cluster]
		}
		return l, ok && users[[2]string{k.User, k.Password}]
	}, cfg.Proxy.ShutdownTimeout)
}

// defaultConnectTimeout bounds a dial when the settings give no
// connect_timeout (a config built by hand; a parsed one always has one).
const defaultConnectTimeout = 5 * time.Second

// PoolOptions are the options of the pool of k with limits l: the
// timeouts of k's settings, the wait histogram, and dial bounded by
// connect_timeout, its failures counted as server errors. A dial that runs
// out of connect_timeout says so by the setting's name. The caller adds
// Ping, Alive and the like.
func PoolOptions(proto config.Protocol, k PoolKey, l pool.Limits, name string, dial func(context.Context) (pool.Conn, error)) pool.Options {
	st := k.Settings
	timeout := st.ConnectTimeout
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	addr, cluster := k.Addr, k.Cluster
	serverErrs := metrics.ServerErrors.WithLabelValues(string(proto), cluster)
	wait := metrics.WaitSeconds.WithLabelValues(string(proto), cluster)
	return pool.Options{
		Name:        name,
		Size:        l.Size,
		MinSize:     l.MinSize,
		MaxWaiting:  l.MaxWaiting,
		WaitTimeout: l.WaitTimeout,
		IdleTimeout: st.IdleTimeout,
		Lifetime:    st.ServerLifetime,
		CheckDelay:  st.ServerCheckDelay,
		AliveDelay:  pool.DefaultAliveDelay,
		OnWait:      func(d time.Duration) { wait.Observe(d.Seconds()) },
		Dial: func(ctx context.Context) (pool.Conn, error) {
			dctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			c, err := dial(dctx)
			if err != nil {
				serverErrs.Inc()
				// A server that accepts and says nothing: name the setting
				// that gave up, not the read error. (A socket deadline may
				// fire a hair before the context reports it.)
				if ctx.Err() == nil && (dctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)) {
					err = fmt.Errorf("server %s did not finish connecting within connect_timeout (%v): %w", addr, timeout, context.DeadlineExceeded)
				}
				return nil, err
			}
			return c, nil
		},
	}
}

// AuthQueryTarget is where auth_query runs for cluster cl (passthrough
// authentication): as its auth_user, on its primary (the first shard's
// for a sharded cluster), within twice its connect_timeout.
func AuthQueryTarget(cfg *config.Config, cl *config.Cluster) (au *config.User, n Node, timeout time.Duration, err error) {
	if au = cfg.User(cl.Settings.AuthUser); au == nil {
		return nil, n, 0, fmt.Errorf("auth_user %q is not in [[users]]", cl.Settings.AuthUser)
	}
	nodes := Nodes(cl)
	if len(nodes) == 0 || nodes[0].Addr == "" {
		return nil, n, 0, errors.New("the cluster has no primary")
	}
	timeout = cl.Settings.ConnectTimeout
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	return au, nodes[0], 2 * timeout, nil
}
