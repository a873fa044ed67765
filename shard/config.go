package shard

import (
	"fmt"
	"reflect"

	"github.com/switchyard/switchyard/config"
)

// MapFor builds the map of sharded cluster cl at a (re)load. old and
// oldMap are the cluster's config and map in force (nil at the first
// load): when old places every key as cl does (SamePlacement), oldMap is
// kept (kept is true), with its version; otherwise the new map's version
// is oldMap's plus one, so that a Route says which map decided it.
func MapFor(cl, old *config.Cluster, oldMap Map) (m Map, kept bool, err error) {
	version := uint64(1)
	if old != nil && oldMap != nil {
		if SamePlacement(old, cl) {
			return oldMap, true, nil
		}
		version = oldMap.Version() + 1
	}
	m, err = FromConfig(cl, version)
	return m, false, err
}

// SamePlacement says whether two configs of a sharded cluster put every
// key on the same shard, on the same primary and database: the same
// [clusters.sharding] and the same shards but for their replicas, which
// may come and go without a new map.
func SamePlacement(a, b *config.Cluster) bool {
	if !reflect.DeepEqual(a.Sharding, b.Sharding) || len(a.Shards) != len(b.Shards) {
		return false
	}
	for i := range a.Shards {
		x, y := a.Shards[i], b.Shards[i]
		x.Replicas, y.Replicas = nil, nil
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// FromConfig builds the map of a sharded cluster. The config has been
// validated already; the checks here repeat the ones a map depends on, so
// that a Config built by hand cannot produce a map that routes wrongly.
func FromConfig(c *config.Cluster, version uint64) (Map, error) {
	if c == nil || c.Sharding == nil {
		return nil, fmt.Errorf("shard: cluster is not sharded")
	}
	switch c.Sharding.Kind {
	case config.ShardHash:
		buckets := c.Sharding.Buckets
		if buckets == 0 {
			buckets = config.DefaultBuckets
		}
		h, err := NewHash(len(c.Shards), buckets, version)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", c.Name, err)
		}
		return h, nil
	case config.ShardRange:
		ranges := make([][2]any, len(c.Shards))
		for i, s := range c.Shards {
			if len(s.Range) != 2 {
				return nil, fmt.Errorf("cluster %q: shard: shards[%d] has no range = [low, high]", c.Name, i)
			}
			ranges[i] = [2]any{s.Range[0], s.Range[1]}
		}
		r, err := NewRange(ranges, version)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", c.Name, err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("cluster %q: shard: unknown sharding kind %q", c.Name, c.Sharding.Kind)
}

// Database is the database of shard i of cl on its servers: the shard's
// own, else the cluster's server_database, else the database clients
// name.
func Database(cl *config.Cluster, i int) string {
	if db := cl.Shards[i].Database; db != "" {
		return db
	}
	if cl.ServerDatabase != "" {
		return cl.ServerDatabase
	}
	return cl.Database
}
