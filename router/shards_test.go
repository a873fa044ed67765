package router

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/replica"
)

func shardConfig(t *testing.T, proto string, shards ...string) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("[proxy]\npostgres_listen = \"127.0.0.1:0\"\nmysql_listen = \"127.0.0.1:1\"\n[[users]]\nname = \"app\"\npassword = \"app\"\n")
	b.WriteString("[[clusters]]\nname = \"orders\"\nprotocol = \"" + proto + "\"\ndatabase = \"orders\"\n[clusters.sharding]\nkind = \"hash\"\nkey = \"customer_id\"\n")
	for _, db := range shards {
		b.WriteString("[[clusters.shards]]\nprimary = \"127.0.0.1:1\"\ndatabase = \"" + db + "\"\n")
	}
	cfg, err := config.Parse([]byte(b.String()), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A reload that keeps where keys live keeps the map (its version and the
// extractor's cache); one that moves them bumps the version. The same for
// both protocols, and a set holds only its own protocol's clusters.
func TestShardSetReload(t *testing.T) {
	for _, proto := range []config.Protocol{config.Postgres, config.MySQL} {
		var set ShardSet
		set.Protocol = proto
		var rts replica.Registry
		build := func(cfg *config.Config) ShardClusters {
			m, err := set.Build(cfg)
			if err != nil {
				t.Fatal(err)
			}
			set.Publish(m, &rts)
			return m
		}
		other := config.Postgres
		if proto == config.Postgres {
			other = config.MySQL
		}
		if m := build(shardConfig(t, string(other), "a", "b")); len(m) != 0 {
			t.Fatalf("%s: built the other protocol's cluster", proto)
		}
		first := build(shardConfig(t, string(proto), "a", "b"))["orders"]
		if first == nil || first.Map.Version() != 1 || first.Analyzer != nil || len(first.Replicas) != 2 {
			t.Fatalf("%s: first build: %+v", proto, first)
		}
		same := build(shardConfig(t, string(proto), "a", "b"))["orders"]
		if same.Map != first.Map || same.Keys != first.Keys {
			t.Errorf("%s: an unchanged reload built a new map or extractor", proto)
		}
		moved := build(shardConfig(t, string(proto), "a", "b", "c"))["orders"]
		if moved.Map.Version() != 2 || moved.Map.Shards() != 3 {
			t.Errorf("%s: a third shard: version %d, %d shards", proto, moved.Map.Version(), moved.Map.Shards())
		}
		if got := set.MapVersions(); got["orders"] != 2 || set.Get("orders") != moved {
			t.Errorf("%s: in force: %v", proto, got)
		}
		if moved.Database(2) != "c" || moved.Primary(0) != "127.0.0.1:1" {
			t.Errorf("%s: shard 2's database %q", proto, moved.Database(2))
		}
	}
}
