package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
)

// Changes is what a reload from one config to the next must do. Clusters
// and users are named by Name; look them up in the old config (removed) or
// the new one (added, changed).
type Changes struct {
	ClustersAdded   []string
	ClustersRemoved []string
	// ClustersChanged: a cluster of the same name whose protocol, database,
	// server database, addresses, settings, sharding or shards differ.
	ClustersChanged []string

	UsersAdded   []string
	UsersRemoved []string
	UsersChanged []string // any field differs, credentials included

	// ProxyChanged lists the [proxy] keys that changed and that a reload
	// applies in place (max_client_conns, shutdown_timeout, tls_cert,
	// tls_key). Certificates may change on disk under the same name, so a
	// reload should load them again regardless.
	ProxyChanged []string

	// RestartNeeded describes changes a reload cannot apply: a listener is
	// bound once, at start. Each entry reads like
	// `proxy.postgres_listen: "127.0.0.1:6432" -> "127.0.0.1:7432"`.
	RestartNeeded []string
}

// Empty reports whether the two configs mean the same.
func (c Changes) Empty() bool {
	return len(c.ClustersAdded)+len(c.ClustersRemoved)+len(c.ClustersChanged)+
		len(c.UsersAdded)+len(c.UsersRemoved)+len(c.UsersChanged)+
		len(c.ProxyChanged)+len(c.RestartNeeded) == 0
}

// Diff compares two configs. A nil old means everything in new is added
// (the first load). Lists follow the order of the files.
func Diff(old, new *Config) Changes {
	if old == nil {
		old = &Config{}
	}
	if new == nil {
		new = &Config{}
	}
	var ch Changes

	listens := []struct {
		key      string
		was, now string
	}{
		{"proxy.postgres_listen", old.Proxy.PostgresListen, new.Proxy.PostgresListen},
		{"proxy.mysql_listen", old.Proxy.MySQLListen, new.Proxy.MySQLListen},
		{"proxy.admin_listen", old.Proxy.AdminListen, new.Proxy.AdminListen},
	}
	for _, l := range listens {
		if l.was != l.now {
			ch.RestartNeeded = append(ch.RestartNeeded, fmt.Sprintf("%s: %q -> %q", l.key, l.was, l.now))
		}
	}
	if old.Proxy.MaxClientConns != new.Proxy.MaxClientConns {
		ch.ProxyChanged = append(ch.ProxyChanged, "max_client_conns")
	}
	if old.Proxy.ShutdownTimeout != new.Proxy.ShutdownTimeout {
		ch.ProxyChanged = append(ch.ProxyChanged, "shutdown_timeout")
	}
	if old.Proxy.TLSCert != new.Proxy.TLSCert {
		ch.ProxyChanged = append(ch.ProxyChanged, "tls_cert")
	}
	if old.Proxy.TLSKey != new.Proxy.TLSKey {
		ch.ProxyChanged = append(ch.ProxyChanged, "tls_key")
	}
	if old.Proxy.AdminToken != new.Proxy.AdminToken {
		ch.ProxyChanged = append(ch.ProxyChanged, "admin_token")
	}
	if old.Proxy.InstanceID != new.Proxy.InstanceID {
		// Keys and ids already given to clients carry the old one.
		ch.RestartNeeded = append(ch.RestartNeeded, fmt.Sprintf("proxy.instance_id: %d -> %d", old.Proxy.InstanceID, new.Proxy.InstanceID))
	}
	if !slices.Equal(old.Peers, new.Peers) {
		ch.ProxyChanged = append(ch.ProxyChanged, "peers")
	}
	if old.Proxy.AdminTLS != new.Proxy.AdminTLS {
		ch.RestartNeeded = append(ch.RestartNeeded, fmt.Sprintf("proxy.admin_tls: %v -> %v", old.Proxy.AdminTLS, new.Proxy.AdminTLS))
	}

	ch.ClustersAdded, ch.ClustersRemoved, ch.ClustersChanged = diffByName(old.Clusters, new.Clusters,
		func(c Cluster) string { return c.Name }, clusterEqual)
	ch.UsersAdded, ch.UsersRemoved, ch.UsersChanged = diffByName(old.Users, new.Users,
		func(u User) string { return u.Name }, userEqual)
	return ch
}

func diffByName[T any](old, new []T, name func(T) string, equal func(a, b *T) bool) (added, removed, changed []string) {
	was := make(map[string]int, len(old))
	for i := range old {
		was[name(old[i])] = i
	}
	is := make(map[string]bool, len(new))
	for i := range new {
		n := name(new[i])
		is[n] = true
		j, ok := was[n]
		switch {
		case !ok:
			added = append(added, n)
		case !equal(&old[j], &new[i]):
			changed = append(changed, n)
		}
	}
	for i := range old {
		if n := name(old[i]); !is[n] {
			removed = append(removed, n)
		}
	}
	return added, removed, changed
}

// The comparisons below treat nil and empty alike, so that a Config built
// by hand compares equal to the same one loaded from a file.

func clusterEqual(a, b *Cluster) bool {
	return a.Name == b.Name && a.Protocol == b.Protocol && a.Database == b.Database &&
		a.ServerDatabase == b.ServerDatabase && a.Primary == b.Primary &&
		slices.Equal(a.Replicas, b.Replicas) && a.Settings == b.Settings &&
		shardingEqual(a.Sharding, b.Sharding) && slices.EqualFunc(a.Shards, b.Shards, shardEqual)
}

func shardingEqual(a, b *Sharding) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Kind == b.Kind && a.Key == b.Key && a.Buckets == b.Buckets && maps.Equal(a.Tables, b.Tables)
}

func shardEqual(a, b Shard) bool {
	// Range elements are int64 or string; DeepEqual also survives a Config
	// built by hand with anything else in them.
	return a.Primary == b.Primary && a.Database == b.Database && slices.Equal(a.Replicas, b.Replicas) &&
		len(a.Range) == len(b.Range) && (len(a.Range) == 0 || reflect.DeepEqual(a.Range, b.Range))
}

func userEqual(a, b *User) bool {
	return a.Name == b.Name && a.Password == b.Password && a.Auth == b.Auth &&
		a.ServerUser == b.ServerUser && a.ServerPassword == b.ServerPassword &&
		a.PoolMode == b.PoolMode && a.Admin == b.Admin && slices.Equal(a.Databases, b.Databases)
}
