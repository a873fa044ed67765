package shard

import (
	"fmt"

	"github.com/switchyard/switchyard/config"
)

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
