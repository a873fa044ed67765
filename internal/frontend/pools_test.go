package frontend

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/pool"
)

// poolsConfig is a hand-built config: cluster "app" (a primary, a replica
// and two shards... of which only the primary and replica matter here),
// its user, and a MySQL cluster of the same name that must not count.
func poolsConfig(size int, replicas []string, users ...string) *config.Config {
	st := config.Settings{PoolSize: size, QueryWaitTimeout: time.Second, ServerLifetime: time.Hour, ConnectTimeout: time.Second}
	cfg := &config.Config{
		Proxy: config.Proxy{ShutdownTimeout: 5 * time.Second},
		Clusters: []config.Cluster{
			{Name: "app", Protocol: config.Postgres, Database: "app", Primary: "127.0.0.1:1", Replicas: replicas, Settings: st},
			{Name: "my", Protocol: config.MySQL, Database: "my", Primary: "127.0.0.1:3", Settings: st},
		},
	}
	for _, u := range users {
		cfg.Users = append(cfg.Users, config.User{Name: u, ServerPassword: "pw"})
	}
	return cfg
}

func creds(u *config.User) (string, string) { return u.Name, u.ServerPassword }

// get opens k's pool (its dial is never called: no MinSize, no lease).
func get(t *testing.T, ps *Pools[struct{}], cfg *config.Config, k PoolKey) *pool.Pool {
	t.Helper()
	cl := cfg.ClusterByName(k.Cluster)
	p, _, err := ps.Get(k, func() (*pool.Pool, struct{}, error) {
		o := PoolOptions(config.Postgres, k, PoolLimits(cl.Settings), k.Addr+"/"+k.User, func(context.Context) (pool.Conn, error) {
			return nil, errors.New("no server in this test")
		})
		return pool.New(o), struct{}{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// drained waits until p is closed (the drain runs in the background) and
// unlisted.
func drained(t *testing.T, p *pool.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := p.Get(t.Context())
		_, _, listed := listedSize(p)
		if errors.Is(err, pool.ErrClosed) && !listed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool %s not drained: Get says %v, listed %v", p.Name(), err, listed)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func listedSize(p *pool.Pool) (int, string, bool) {
	for _, pi := range metrics.Pools() {
		if pi.Pool == p {
			return pi.Size, pi.Protocol, true
		}
	}
	return 0, "", false
}

// A reload that changes pool_size keeps every pool, resized in place and
// listed with its new size; one that removes a replica, a user or
// auth_user drains those pools only; one that changes a connection
// setting replaces the pool.
func TestPoolsReload(t *testing.T) {
	var ps Pools[struct{}]
	ps.Init(config.Postgres, slog.New(slog.DiscardHandler), creds)
	defer ps.Close()
	cfg := poolsConfig(4, []string{"127.0.0.1:2"}, "alice", "bob")
	cfg.Clusters[0].Settings.AuthUser = "alice"
	cl := &cfg.Clusters[0]
	primary := NewPoolKey(cl, "127.0.0.1:1", "app", "alice", "pw")
	replica := NewPoolKey(cl, "127.0.0.1:2", "app", "alice", "pw")
	bob := NewPoolKey(cl, "127.0.0.1:1", "app", "bob", "pw")
	pass := NewPoolKey(cl, "127.0.0.1:1", "app", "carol", "")
	pass.Pass = true
	pools := map[string]*pool.Pool{}
	for name, k := range map[string]PoolKey{"primary": primary, "replica": replica, "bob": bob, "pass": pass} {
		pools[name] = get(t, &ps, cfg, k)
	}
	if size, proto, ok := listedSize(pools["primary"]); !ok || size != 4 || proto != "postgres" {
		t.Fatalf("listed %v, size %d, protocol %q; want size 4, postgres", ok, size, proto)
	}

	// pool_size 4 -> 9: all stay.
	cfg2 := poolsConfig(9, []string{"127.0.0.1:2"}, "alice", "bob")
	cfg2.Clusters[0].Settings.AuthUser = "alice"
	ps.Reload(cfg2)
	for name, k := range map[string]PoolKey{"primary": primary, "replica": replica, "bob": bob, "pass": pass} {
		p := get(t, &ps, cfg2, k)
		if p != pools[name] {
			t.Errorf("%s: a pool_size reload replaced the pool; want it resized in place", name)
		}
		if l := p.Limits(); l.Size != 9 {
			t.Errorf("%s: size %d after the reload, want 9", name, l.Size)
		}
		if size, _, _ := listedSize(p); size != 9 {
			t.Errorf("%s: listed with size %d after the reload, want 9", name, size)
		}
	}

	// The replica and bob go: their pools drain; alice's on the primary
	// and the passthrough pool (auth_user is still set) stay.
	cfg3 := poolsConfig(9, nil, "alice")
	cfg3.Clusters[0].Settings.AuthUser = "alice"
	ps.Reload(cfg3)
	for _, name := range []string{"primary", "pass"} {
		if get(t, &ps, cfg3, map[string]PoolKey{"primary": primary, "pass": pass}[name]) != pools[name] {
			t.Errorf("%s: the pool was replaced by a reload that kept it", name)
		}
	}
	for _, name := range []string{"replica", "bob"} {
		drained(t, pools[name])
	}

	// A connection setting changes: a new key, and the old pool drains.
	cfg4 := poolsConfig(9, nil, "alice")
	cfg4.Clusters[0].Settings.AuthUser = "alice"
	cfg4.Clusters[0].Settings.ServerLifetime = 2 * time.Hour
	ps.Reload(cfg4)
	drained(t, pools["primary"])
	k4 := NewPoolKey(&cfg4.Clusters[0], "127.0.0.1:1", "app", "alice", "pw")
	if k4 == primary || get(t, &ps, cfg4, k4) == pools["primary"] {
		t.Error("a changed connection setting kept the pool")
	}
}

func TestNodes(t *testing.T) {
	cl := &config.Cluster{Database: "orders", ServerDatabase: "o", Primary: "p:1", Replicas: []string{"r:1"},
		Shards: []config.Shard{{Primary: "s0:1", Replicas: []string{"s0r:1"}}, {Primary: "s1:1", Database: "o1"}}}
	want := []Node{{"p:1", "o"}, {"r:1", "o"}, {"s0:1", "o"}, {"s0r:1", "o"}, {"s1:1", "o1"}}
	if got := Nodes(cl); !slices.Equal(got, want) {
		t.Errorf("Nodes = %v, want %v", got, want)
	}
}

// A reload that changes only routing and merging knobs (max_scatter_bytes,
// max_replica_lag, read_only_functions, max_db_client_conns) keeps every
// pool and its server connections. Seen from outside before the fix: a
// reload that set max_scatter_bytes logged "draining pool after reload"
// for every pool of both front ends and dropped their connections.
func TestPoolsReloadRoutingKnobs(t *testing.T) {
	var ps Pools[struct{}]
	ps.Init(config.Postgres, slog.New(slog.DiscardHandler), creds)
	defer ps.Close()
	cfg := poolsConfig(4, []string{"127.0.0.1:2"}, "alice")
	k := NewPoolKey(&cfg.Clusters[0], "127.0.0.1:1", "app", "alice", "pw")
	p := get(t, &ps, cfg, k)
	for _, c := range []struct {
		name string
		edit func(*config.Settings)
	}{
		{"max_scatter_bytes", func(st *config.Settings) { st.MaxScatterBytes = 1 << 20 }},
		{"max_replica_lag", func(st *config.Settings) { st.MaxReplicaLag = 0 }},
		{"read_only_functions", func(st *config.Settings) { st.ReadOnlyFunctions = "f" }},
		{"max_db_client_conns", func(st *config.Settings) { st.MaxDBClientConns = 3 }},
	} {
		name, edit := c.name, c.edit
		cfg2 := poolsConfig(4, []string{"127.0.0.1:2"}, "alice")
		edit(&cfg2.Clusters[0].Settings)
		ps.Reload(cfg2)
		k2 := NewPoolKey(&cfg2.Clusters[0], "127.0.0.1:1", "app", "alice", "pw")
		if k2 != k || get(t, &ps, cfg2, k2) != p {
			t.Fatalf("a reload that changed only %s replaced the pool", name)
		}
		ps.Reload(cfg)
	}
}
