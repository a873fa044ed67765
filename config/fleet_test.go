package config

import (
	"strings"
	"testing"
)

func TestFleetConfig(t *testing.T) {
	src := `[proxy]
postgres_listen = "127.0.0.1:6432"
instance_id = 2
[[users]]
name = "app"
password = "pw"
[[peers]]
instance_id = 1
postgres_listen = "10.0.0.1:6432"
mysql_listen = "10.0.0.1:6033"
admin_listen = "10.0.0.1:9930"
[[peers]]
instance_id = 2
postgres_listen = "10.0.0.2:6432"
[[peers]]
instance_id = 3
admin_listen = "sy-2.sy-peers.default.svc.cluster.local:9930"
`
	cfg, err := Parse([]byte(src), "cfg.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Proxy.InstanceID != 2 || len(cfg.Peers) != 3 {
		t.Fatalf("instance %d, %d peers", cfg.Proxy.InstanceID, len(cfg.Peers))
	}
	if _, ok := cfg.Peer(2); ok {
		t.Fatal("the entry of this instance's own id is a peer")
	}
	if p, ok := cfg.Peer(1); !ok || p.MySQLListen != "10.0.0.1:6033" || p.AdminListen != "10.0.0.1:9930" {
		t.Fatalf("peer 1: %+v %v", p, ok)
	}
	if _, ok := cfg.Peer(4); ok {
		t.Fatal("an unconfigured id is a peer")
	}
	if got := cfg.OtherPeers(); len(got) != 2 || got[0].InstanceID != 1 || got[1].InstanceID != 3 {
		t.Fatalf("other peers: %+v", got)
	}
	// Without instance_id: no fleet, and no instance is a peer of id 0.
	cfg, err = Parse([]byte(strings.Replace(src, "instance_id = 2\n[[users]]", "[[users]]", 1)), "cfg.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Proxy.InstanceID != 0 {
		t.Fatalf("instance_id %d", cfg.Proxy.InstanceID)
	}
	if _, ok := cfg.Peer(0); ok {
		t.Fatal("id 0 is a peer")
	}
}

func TestFleetConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"instance_id too large", "[proxy]\npostgres_listen = \":1\"\ninstance_id = 1024\n", []string{
			`cfg.toml:3: proxy.instance_id: must be from 1 to 1023 (0 or absent: no fleet), not 1024`,
		}},
		{"instance_id negative", "[proxy]\npostgres_listen = \":1\"\ninstance_id = -1\n", []string{
			`cfg.toml:3: proxy.instance_id: must be from 1 to 1023`,
		}},
		{"peers", base + "[[peers]]\ninstance_id = 2\npostgres_listen = \"10.0.0.2:6432\"\n" +
			"[[peers]]\ninstance_id = 2\npostgres_listen = \"10.0.0.3:6432\"\n" +
			"[[peers]]\ninstance_id = 0\n" +
			"[[peers]]\npostgres_listen = \"10.0.0.4:6432\"\n" +
			"[[peers]]\ninstance_id = 5\npostgres_listen = \"10.0.0.5\"\n" +
			"[[peers]]\ninstance_id = 6\n" +
			"[[peers]]\ninstance_id = \"7\"\n" +
			"[[peers]]\ninstance_id = 8\nadmin_listen = \"10.0.0.8:9930\"\nport = 1\n",
			[]string{
				`cfg.toml:10: peers[1].instance_id: 2 is also the instance_id of peers[0]`,
				`cfg.toml:13: peers[2].instance_id: must be from 1 to 1023, not 0`,
				`cfg.toml:14: peers[3]: instance_id is missing`,
				`cfg.toml:18: peers[4].postgres_listen: "10.0.0.5" is not host:port`,
				`cfg.toml:19: peers[5]: a peer needs at least one of postgres_listen, mysql_listen, admin_listen`,
				`cfg.toml:22: peers[6].instance_id: must be an integer`,
				`cfg.toml:26: peers[7].port: unknown key`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "cfg.toml")
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("missing %q in:\n%s", w, msg)
				}
			}
		})
	}
}
