package config

import (
	"reflect"
	"testing"
	"time"
)

func TestDiff(t *testing.T) {
	old := mustParse(t, `
[proxy]
postgres_listen = "127.0.0.1:6432"
mysql_listen = "127.0.0.1:6033"
admin_listen = "127.0.0.1:9930"

[[users]]
name = "app"
password = "pw"
[[users]]
name = "ops"
password = "pw"

[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = "127.0.0.1:5432"
replicas = ["127.0.0.1:5433"]

[[clusters]]
name = "orders"
protocol = "postgres"
database = "orders"
  [clusters.sharding]
  kind = "range"
  key = "id"
  [[clusters.shards]]
  primary = "127.0.0.1:5432"
  range = [0, 100]
  [[clusters.shards]]
  primary = "127.0.0.1:5433"
  range = [100, 200]
`)
	edit := func(f func(c *Config)) *Config {
		// A deep enough copy: every edit below replaces what it changes.
		c := *old
		c.Users = append([]User(nil), old.Users...)
		c.Clusters = append([]Cluster(nil), old.Clusters...)
		f(&c)
		return &c
	}
	tests := []struct {
		name string
		new  *Config
		want Changes
	}{
		{"same", edit(func(*Config) {}), Changes{}},
		{"first load", nil, Changes{}}, // filled below
		{"listeners need a restart", edit(func(c *Config) {
			c.Proxy.PostgresListen = "127.0.0.1:7432"
			c.Proxy.AdminListen = ""
		}), Changes{RestartNeeded: []string{
			`proxy.postgres_listen: "127.0.0.1:6432" -> "127.0.0.1:7432"`,
			`proxy.admin_listen: "127.0.0.1:9930" -> ""`,
		}}},
		{"proxy keys apply in place", edit(func(c *Config) {
			c.Proxy.MaxClientConns = 5
			c.Proxy.ShutdownTimeout = time.Second
			c.Proxy.TLSCert, c.Proxy.TLSKey = "c", "k"
		}), Changes{ProxyChanged: []string{"max_client_conns", "shutdown_timeout", "tls_cert", "tls_key"}}},
		{"cluster added and removed", edit(func(c *Config) {
			c.Clusters = []Cluster{old.Clusters[0], {Name: "new", Protocol: MySQL, Database: "x", Primary: "h:1"}}
		}), Changes{ClustersAdded: []string{"new"}, ClustersRemoved: []string{"orders"}}},
		{"replica added", edit(func(c *Config) {
			c.Clusters[0].Replicas = []string{"127.0.0.1:5433", "127.0.0.1:5434"}
		}), Changes{ClustersChanged: []string{"pg"}}},
		{"settings changed", edit(func(c *Config) {
			c.Clusters[0].Settings.PoolSize = 99
		}), Changes{ClustersChanged: []string{"pg"}}},
		{"max_scatter_bytes changed", edit(func(c *Config) {
			c.Clusters[1].Settings.MaxScatterBytes = 64 << 10
		}), Changes{ClustersChanged: []string{"orders"}}},
		{"server database changed", edit(func(c *Config) {
			c.Clusters[0].ServerDatabase = "other"
		}), Changes{ClustersChanged: []string{"pg"}}},
		{"shard range moved", edit(func(c *Config) {
			shards := append([]Shard(nil), old.Clusters[1].Shards...)
			shards[1].Range = []any{int64(100), int64(300)}
			c.Clusters[1].Shards = shards
		}), Changes{ClustersChanged: []string{"orders"}}},
		{"sharding key changed", edit(func(c *Config) {
			s := *old.Clusters[1].Sharding
			s.Key = "other"
			c.Clusters[1].Sharding = &s
		}), Changes{ClustersChanged: []string{"orders"}}},
		{"nil and empty are the same", edit(func(c *Config) {
			c.Clusters[1].Replicas = []string{}
			s := *old.Clusters[1].Sharding
			s.Tables = map[string]string{}
			c.Clusters[1].Sharding = &s
		}), Changes{}},
		{"users", edit(func(c *Config) {
			c.Users = []User{old.Users[0], {Name: "new"}}
			c.Users[0].ServerPassword = "rotated"
		}), Changes{UsersAdded: []string{"new"}, UsersRemoved: []string{"ops"}, UsersChanged: []string{"app"}}},
	}
	tests[1].want = Changes{
		ClustersAdded: []string{"pg", "orders"},
		UsersAdded:    []string{"app", "ops"},
		RestartNeeded: []string{
			`proxy.postgres_listen: "" -> "127.0.0.1:6432"`,
			`proxy.mysql_listen: "" -> "127.0.0.1:6033"`,
			`proxy.admin_listen: "" -> "127.0.0.1:9930"`,
		},
		ProxyChanged: []string{"max_client_conns", "shutdown_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to := old, tt.new
			if to == nil {
				from, to = nil, old
			}
			got := Diff(from, to)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Diff:\n got %+v\nwant %+v", got, tt.want)
			}
			if got.Empty() != reflect.DeepEqual(tt.want, Changes{}) {
				t.Errorf("Empty() = %v", got.Empty())
			}
		})
	}
}

func TestLookupAfterEdit(t *testing.T) {
	cfg := mustParse(t, minimal)
	// A copy with other clusters must not answer from the original's index.
	c := *cfg
	c.Clusters = []Cluster{{Name: "other", Protocol: Postgres, Database: "db"}}
	if got := c.Cluster(MySQL, "db"); got != nil {
		t.Errorf("stale index answered %+v", got)
	}
	if got := c.Cluster(Postgres, "db"); got == nil || got.Name != "other" {
		t.Errorf("Cluster(postgres, db) = %+v", got)
	}
	var hand Config
	hand.Users = []User{{Name: "u"}}
	if hand.User("u") == nil || hand.ClusterByName("x") != nil {
		t.Errorf("lookups in a Config built by hand")
	}
}
