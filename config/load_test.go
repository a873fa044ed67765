package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(src), "cfg.toml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func TestLoadExample(t *testing.T) {
	cfg, err := Load("../testdata/config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path != "../testdata/config.example.toml" {
		t.Errorf("Path = %q", cfg.Path)
	}
	wantProxy := Proxy{
		PostgresListen:  "127.0.0.1:6432",
		MySQLListen:     "127.0.0.1:6033",
		AdminListen:     "127.0.0.1:9930",
		MaxClientConns:  10000,
		ShutdownTimeout: 30 * time.Second,

		ClientLoginTimeout:    DefaultClientLoginTimeout,
		AuthFailuresPerMinute: DefaultAuthFailuresPerMinute,

		StatementRegistrySize:       DefaultStatementRegistrySize,
		MaxClientPreparedStatements: DefaultMaxClientPreparedStatements,
	}
	if cfg.Proxy != wantProxy {
		t.Errorf("Proxy = %+v, want %+v", cfg.Proxy, wantProxy)
	}
	if cfg.Defaults != DefaultSettings() {
		t.Errorf("Defaults = %+v, want %+v", cfg.Defaults, DefaultSettings())
	}
	wantUser := User{Name: "app", Password: "app", Auth: AuthSCRAM, ServerUser: "app", ServerPassword: "app"}
	if u := cfg.User("app"); u == nil || !reflect.DeepEqual(*u, wantUser) {
		t.Errorf("User(app) = %+v, want %+v", u, wantUser)
	}
	if len(cfg.Clusters) != 3 {
		t.Fatalf("%d clusters, want 3", len(cfg.Clusters))
	}
	wantPG := Cluster{
		Name: "pg", Protocol: Postgres, Database: "app", ServerDatabase: "app",
		Primary: "127.0.0.1:15432", Replicas: []string{"127.0.0.1:15433", "127.0.0.1:15434"},
		Settings: DefaultSettings(),
	}
	if c := cfg.Cluster(Postgres, "app"); c == nil || !reflect.DeepEqual(*c, wantPG) {
		t.Errorf("Cluster(postgres, app) = %+v\nwant %+v", c, wantPG)
	}
	if c := cfg.Cluster(MySQL, "app"); c == nil || c.Name != "my" || c.Primary != "127.0.0.1:13306" {
		t.Errorf("Cluster(mysql, app) = %+v", c)
	}
	wantOrders := Cluster{
		Name: "orders", Protocol: Postgres, Database: "orders", ServerDatabase: "orders",
		Settings: DefaultSettings(),
		Sharding: &Sharding{Kind: ShardHash, Key: "customer_id", Tables: map[string]string{"customers": "id"}, Buckets: 1024},
		Shards: []Shard{
			{Primary: "127.0.0.1:15432", Replicas: []string{"127.0.0.1:15433"}, Database: "orders_0"},
			{Primary: "127.0.0.1:15432", Replicas: []string{"127.0.0.1:15434"}, Database: "orders_1"},
		},
	}
	if c := cfg.ClusterByName("orders"); c == nil || !reflect.DeepEqual(*c, wantOrders) {
		t.Errorf("ClusterByName(orders) = %+v\nwant %+v", c, wantOrders)
	}
	if c := cfg.Cluster(MySQL, "orders"); c != nil {
		t.Errorf("Cluster(mysql, orders) = %+v, want nil", c)
	}
	if u := cfg.User("nobody"); u != nil {
		t.Errorf("User(nobody) = %+v, want nil", u)
	}
}

const minimal = `
[proxy]
mysql_listen = ":6033"

[[users]]
name = "u"
password = "pw"

[[clusters]]
name = "c"
protocol = "mysql"
database = "db"
primary = "db.internal:3306"
`

func TestParseMinimalDefaults(t *testing.T) {
	cfg := mustParse(t, minimal)
	want := &Config{
		Proxy: Proxy{MySQLListen: ":6033", MaxClientConns: 10000, ShutdownTimeout: 30 * time.Second,
			ClientLoginTimeout: 15 * time.Second, AuthFailuresPerMinute: 20,
			StatementRegistrySize: 10000, MaxClientPreparedStatements: 10000},
		Defaults: DefaultSettings(),
		Users:    []User{{Name: "u", Password: "pw", Auth: AuthSCRAM, ServerUser: "u", ServerPassword: "pw"}},
		Clusters: []Cluster{{
			Name: "c", Protocol: MySQL, Database: "db", ServerDatabase: "db",
			Primary: "db.internal:3306", Settings: DefaultSettings(),
		}},
		Path: "cfg.toml",
	}
	cfg.idx = nil
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
	// The built-in defaults are the ones the example file documents.
	d := DefaultSettings()
	if d.PoolMode != PoolTransaction || d.PoolSize != 20 || d.MinPoolSize != 0 ||
		d.QueryWaitTimeout != 5*time.Second || d.IdleTimeout != 5*time.Minute ||
		d.ServerLifetime != time.Hour || d.ServerCheckDelay != 30*time.Second ||
		d.ConnectTimeout != 5*time.Second || d.MaxReplicaLag != time.Second || !d.ReadYourWrites {
		t.Errorf("DefaultSettings() = %+v", d)
	}
}

func TestClusterOverrides(t *testing.T) {
	cfg := mustParse(t, `
[proxy]
postgres_listen = "127.0.0.1:6432"
max_client_conns = 50
shutdown_timeout = "2s"

[defaults]
pool_mode = "session"
pool_size = 10
min_pool_size = 2
query_wait_timeout = "1s"
idle_timeout = "1m"
server_lifetime = "10m"
server_check_delay = "0s"
connect_timeout = "3s"
max_replica_lag = "250ms"
read_your_writes = false

[[clusters]]
name = "inherits"
protocol = "postgres"
database = "a"
primary = "127.0.0.1:5432"

[[clusters]]
name = "overrides"
protocol = "postgres"
database = "b"
server_database = "b_real"
primary = "127.0.0.1:5432"
pool_mode = "transaction"
pool_size = 40
min_pool_size = 5
query_wait_timeout = "2s"
idle_timeout = "2m"
server_lifetime = "20m"
server_check_delay = "5s"
connect_timeout = "1s"
max_replica_lag = "0s"
read_your_writes = true
max_db_client_conns = 100
max_wait_clients = 7
server_tls = "require"
max_scatter_bytes = "64KiB"

[[clusters]]
name = "some"
protocol = "mysql"
database = "a"
primary = "127.0.0.1:3306"
pool_size = 3
`)
	defaults := Settings{
		PoolMode: PoolSession, PoolSize: 10, MinPoolSize: 2,
		QueryWaitTimeout: time.Second, IdleTimeout: time.Minute, ServerLifetime: 10 * time.Minute,
		ServerCheckDelay: 0, ConnectTimeout: 3 * time.Second, MaxReplicaLag: 250 * time.Millisecond,
		ReadYourWrites: false, LagPollInterval: 50 * time.Millisecond, ServerTLS: TLSPrefer,
		AuthQuery: DefaultAuthQuery, AuthCacheTTL: time.Minute, MaxScatterBytes: 256 << 20,
	}
	if cfg.Defaults != defaults {
		t.Errorf("Defaults = %+v\nwant %+v", cfg.Defaults, defaults)
	}
	if cfg.Proxy.MaxClientConns != 50 || cfg.Proxy.ShutdownTimeout != 2*time.Second {
		t.Errorf("Proxy = %+v", cfg.Proxy)
	}
	some := defaults
	some.PoolSize = 3
	tests := []struct {
		name string
		want Settings
	}{
		{"inherits", defaults},
		{"overrides", Settings{
			PoolMode: PoolTransaction, PoolSize: 40, MinPoolSize: 5,
			QueryWaitTimeout: 2 * time.Second, IdleTimeout: 2 * time.Minute, ServerLifetime: 20 * time.Minute,
			ServerCheckDelay: 5 * time.Second, ConnectTimeout: time.Second, MaxReplicaLag: 0,
			ReadYourWrites: true, LagPollInterval: 50 * time.Millisecond,
			MaxDBClientConns: 100, MaxWaitClients: 7, ServerTLS: TLSRequire,
			AuthQuery: DefaultAuthQuery, AuthCacheTTL: time.Minute, MaxScatterBytes: 64 << 10,
		}},
		{"some", some},
	}
	for _, tt := range tests {
		c := cfg.ClusterByName(tt.name)
		if c == nil {
			t.Fatalf("no cluster %q", tt.name)
		}
		if c.Settings != tt.want {
			t.Errorf("%s: Settings = %+v\nwant %+v", tt.name, c.Settings, tt.want)
		}
	}
	if c := cfg.ClusterByName("overrides"); c.ServerDatabase != "b_real" || c.Database != "b" {
		t.Errorf("overrides: Database %q ServerDatabase %q", c.Database, c.ServerDatabase)
	}
}

const (
	zeroKey  = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	scramPW  = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$" + zeroKey + ":" + zeroKey
	md5PW    = "md5" + "0123456789abcdef0123456789abcdef"
	listenPG = "[proxy]\npostgres_listen = \"127.0.0.1:6432\"\n"
)

func TestUsers(t *testing.T) {
	cfg := mustParse(t, listenPG+`
[[clusters]]
name = "c"
protocol = "postgres"
database = "db"
primary = "127.0.0.1:5432"

[[users]]
name = "plain"
password = "pw"

[[users]]
name = "scram"
password = "`+scramPW+`"
server_password = "real"

[[users]]
name = "md5"
auth = "md5"
password = "`+md5PW+`"
server_user = "md5_on_server"
server_password = "real"

[[users]]
name = "trusted"
auth = "trust"
password = "`+scramPW+`"

[[users]]
name = "nopw"
auth = "trust"

[[users]]
name = "opts"
password = "pw"
pool_mode = "session"
admin = true
databases = ["db", "switchyard"]
`)
	want := []User{
		{Name: "plain", Password: "pw", Auth: AuthSCRAM, ServerUser: "plain", ServerPassword: "pw"},
		{Name: "scram", Password: scramPW, Auth: AuthSCRAM, ServerUser: "scram", ServerPassword: "real"},
		{Name: "md5", Password: md5PW, Auth: AuthMD5, ServerUser: "md5_on_server", ServerPassword: "real"},
		{Name: "trusted", Password: scramPW, Auth: AuthTrust, ServerUser: "trusted"},
		{Name: "nopw", Auth: AuthTrust, ServerUser: "nopw"},
		{Name: "opts", Password: "pw", Auth: AuthSCRAM, ServerUser: "opts", ServerPassword: "pw",
			PoolMode: PoolSession, Admin: true, Databases: []string{"db", "switchyard"}},
	}
	if !reflect.DeepEqual(cfg.Users, want) {
		t.Errorf("Users:\n got %+v\nwant %+v", cfg.Users, want)
	}
	for _, u := range want {
		if got := cfg.User(u.Name); got == nil || got.Name != u.Name {
			t.Errorf("User(%q) = %+v", u.Name, got)
		}
	}
	kinds := map[string]PasswordKind{
		"pw": PasswordPlain, scramPW: PasswordSCRAM, md5PW: PasswordMD5,
		"md5": PasswordPlain, "md5" + strings.Repeat("z", 32): PasswordPlain,
	}
	for pw, want := range kinds {
		if got := KindOfPassword(pw); got != want {
			t.Errorf("KindOfPassword(%q) = %v, want %v", pw, got, want)
		}
	}
}

func TestRangeSharding(t *testing.T) {
	cfg := mustParse(t, listenPG+`
[[clusters]]
name = "ints"
protocol = "postgres"
database = "ints"
server_database = "ints_server"
  [clusters.sharding]
  kind = "range"
  key = "id"
  [[clusters.shards]]
  primary = "127.0.0.1:5432"
  range = [1000, 2000]
  [[clusters.shards]]
  primary = "127.0.0.1:5433"
  database = "second"
  range = [0, 1000]
  [[clusters.shards]]
  primary = "127.0.0.1:5434"
  range = [2000, 9223372036854775807]

[[clusters]]
name = "strings"
protocol = "mysql"
database = "s"
  [clusters.sharding]
  kind = "range"
  key = "name"
  buckets = 7
  [[clusters.shards]]
  primary = "127.0.0.1:3306"
  range = ["a", "m"]
  [[clusters.shards]]
  primary = "127.0.0.1:3307"
  range = ["m", "zzzz"]
`)
	ints := cfg.ClusterByName("ints")
	wantShards := []Shard{
		{Primary: "127.0.0.1:5432", Database: "ints_server", Range: []any{int64(1000), int64(2000)}},
		{Primary: "127.0.0.1:5433", Database: "second", Range: []any{int64(0), int64(1000)}},
		{Primary: "127.0.0.1:5434", Database: "ints_server", Range: []any{int64(2000), int64(9223372036854775807)}},
	}
	if !reflect.DeepEqual(ints.Shards, wantShards) {
		t.Errorf("ints shards:\n got %+v\nwant %+v", ints.Shards, wantShards)
	}
	if ints.Sharding.Kind != ShardRange || ints.Sharding.Key != "id" || ints.Primary != "" {
		t.Errorf("ints = %+v %+v", ints, ints.Sharding)
	}
	s := cfg.Cluster(MySQL, "s")
	if s == nil || s.Sharding.Buckets != 7 || !reflect.DeepEqual(s.Shards[1].Range, []any{"m", "zzzz"}) {
		t.Errorf("strings = %+v", s)
	}
}

func TestErrorsAreJoinedErrors(t *testing.T) {
	_, err := Parse([]byte("[proxy]\npostgres_listen = \"x\"\nmax_client_conns = 0\n"), "cfg.toml")
	var e *Error
	if !errors.As(err, &e) || e.Line != 2 || e.Key != "proxy.postgres_listen" || e.File != "cfg.toml" {
		t.Fatalf("errors.As: %+v from %v", e, err)
	}
	if n := len(problems(err)); n != 2 {
		t.Errorf("%d problems, want 2: %v", n, err)
	}
	_, err = Load("does/not/exist.toml")
	if err == nil || !strings.Contains(err.Error(), "does/not/exist.toml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func problems(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
