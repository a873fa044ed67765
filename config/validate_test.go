package config

import (
	"strings"
	"testing"
)

// base is five valid lines; case bodies appended to it start at line 6.
const base = `[proxy]
postgres_listen = "127.0.0.1:6432"
[[users]]
name = "app"
password = "pw"
`

// cluster is a valid unsharded cluster of five lines.
const cluster = `[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = "127.0.0.1:5432"
`

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // each names file, line, key and problem
	}{
		{"syntax error keeps its line", base + "[[clusters]]\nname = \"pg\n", []string{
			`cfg.toml:7: `,
		}},
		{"duplicate key is a syntax error", base + cluster + "name = \"again\"\n", []string{
			`cfg.toml:11: `,
		}},
		{"listen not host:port", "[proxy]\npostgres_listen = \"127.0.0.1\"\n", []string{
			`cfg.toml:2: proxy.postgres_listen: "127.0.0.1" is not host:port`,
		}},
		{"listen port out of range", "[proxy]\nmysql_listen = \"127.0.0.1:70000\"\n", []string{
			`cfg.toml:2: proxy.mysql_listen: "127.0.0.1:70000" is not host:port`,
		}},
		{"admin listen is checked too", base + "[proxy]\n", []string{
			`cfg.toml:6: `, // [proxy] twice is a syntax error
		}},
		{"two listeners on one address", "[proxy]\npostgres_listen = \":6432\"\nmysql_listen = \":6433\"\nadmin_listen = \":6432\"\n", []string{
			`cfg.toml:4: proxy.admin_listen: ":6432" is also proxy.postgres_listen`,
		}},
		{"no listener", "[proxy]\nadmin_listen = \"127.0.0.1:9930\"\n", []string{
			`cfg.toml:1: proxy: no listener`,
		}},
		{"no proxy table at all", "[[users]]\nname = \"u\"\npassword = \"p\"\n", []string{
			`cfg.toml: proxy: no listener`,
		}},
		{"max_client_conns", "[proxy]\npostgres_listen = \":1\"\nmax_client_conns = 0\n", []string{
			`cfg.toml:3: proxy.max_client_conns: must be at least 1, not 0`,
		}},
		{"shutdown_timeout zero", "[proxy]\npostgres_listen = \":1\"\nshutdown_timeout = \"0s\"\n", []string{
			`cfg.toml:3: proxy.shutdown_timeout: must be more than zero`,
		}},
		{"wrong types", base + "[defaults]\npool_size = \"20\"\nread_your_writes = \"yes\"\nidle_timeout = 300\n", []string{
			`cfg.toml:7: defaults.pool_size: must be an integer, not a string ("20")`,
			`cfg.toml:8: defaults.read_your_writes: must be true or false, not a string ("yes")`,
			`cfg.toml:9: defaults.idle_timeout: must be a duration string such as "5s", not an integer (300)`,
		}},
		{"limits and TLS", base + "[defaults]\nmax_db_client_conns = -1\nmax_wait_clients = -2\nserver_tls = \"on\"\nserver_tls_ca = \"/nonexistent/ca.pem\"\n", []string{
			`cfg.toml:7: defaults.max_db_client_conns: must not be negative, not -1 (0: no limit)`,
			`cfg.toml:8: defaults.max_wait_clients: must not be negative, not -2 (0: no limit)`,
			`cfg.toml:9: defaults.server_tls: "on" is not a TLS mode (disable, prefer, require, verify-ca or verify-full)`,
			`cfg.toml:10: defaults.server_tls_ca: stat /nonexistent/ca.pem: no such file or directory`,
		}},
		{"max_scatter_bytes", base + "[defaults]\nmax_scatter_bytes = 0\n" + cluster + "max_scatter_bytes = \"64 KB\"\n" + strings.NewReplacer(`"pg"`, `"pg2"`, `"app"`, `"app2"`).Replace(cluster) + "max_scatter_bytes = true\n", []string{
			`cfg.toml:7: defaults.max_scatter_bytes: must be more than zero, not 0`,
			`cfg.toml:13: clusters[0].max_scatter_bytes: "64 KB" is not a size (such as 65536, "64KiB", "256MiB", "1GiB")`,
			`cfg.toml:19: clusters[1].max_scatter_bytes: must be a size such as "256MiB" or a number of bytes, not a boolean (true)`,
		}},
		{"server auth keys", base + "[defaults]\nserver_allow_cleartext_password = \"yes\"\nserver_public_key_path = \"/nonexistent/key.pem\"\nauth_query = \"SELECT 1\"\nauth_user = \"nobody\"\n", []string{
			`cfg.toml:7: defaults.server_allow_cleartext_password: must be true or false, not a string ("yes")`,
			`cfg.toml:8: defaults.server_public_key_path: stat /nonexistent/key.pem: no such file or directory`,
			`cfg.toml:9: defaults.auth_query: must take the user name as $1`,
			`cfg.toml:10: defaults.auth_user: "nobody" is not a [[users]] name`,
		}},
		{"auth_user in a mysql cluster", base + "[[clusters]]\nname = \"my\"\nprotocol = \"mysql\"\ndatabase = \"app\"\nprimary = \"127.0.0.1:3306\"\nauth_user = \"nobody\"\n", []string{
			`cfg.toml:11: clusters[0].auth_user: "nobody" is not a [[users]] name`,
		}},
		{"server_public_key_path in a postgres cluster", base + cluster + "server_public_key_path = \"cfg.toml\"\n", []string{
			`cfg.toml:11: clusters[0].server_public_key_path: is for mysql clusters`,
			`cfg.toml:11: clusters[0].server_public_key_path: stat cfg.toml`,
		}},
		{"proxy login limits", "[proxy]\npostgres_listen = \":1\"\nclient_login_timeout = \"0s\"\nauth_failures_per_minute = -1\n", []string{
			`cfg.toml:3: proxy.client_login_timeout: must be more than zero`,
			`cfg.toml:4: proxy.auth_failures_per_minute: must not be negative, not -1 (0: no limit)`,
		}},
		{"pool_mode", base + "[defaults]\npool_mode = \"statement\"\n", []string{
			`cfg.toml:7: defaults.pool_mode: "statement" is not a pool mode (transaction or session)`,
		}},
		{"pool_size", base + "[defaults]\npool_size = 0\n", []string{
			`cfg.toml:7: defaults.pool_size: must be at least 1, not 0`,
		}},
		{"min_pool_size negative", base + "[defaults]\nmin_pool_size = -1\n", []string{
			`cfg.toml:7: defaults.min_pool_size: must not be negative, not -1`,
		}},
		{"min_pool_size above pool_size in defaults", base + "[defaults]\nmin_pool_size = 21\n", []string{
			`cfg.toml:7: defaults.min_pool_size: min_pool_size (21) is larger than pool_size (20)`,
		}},
		{"pool_size below the default min_pool_size in a cluster", base + "[defaults]\nmin_pool_size = 5\n" + cluster + "pool_size = 4\n", []string{
			`cfg.toml:13: clusters[0].pool_size: min_pool_size (5) is larger than pool_size (4)`,
		}},
		{"durations", base + "[defaults]\nquery_wait_timeout = \"0s\"\nidle_timeout = \"-1s\"\nserver_lifetime = \"1 hour\"\nconnect_timeout = \"0\"\nserver_check_delay = \"-5s\"\n", []string{
			`cfg.toml:7: defaults.query_wait_timeout: must be more than zero, not 0s`,
			`cfg.toml:8: defaults.idle_timeout: must be more than zero, not -1s`,
			`cfg.toml:9: defaults.server_lifetime: "1 hour" is not a duration`,
			`cfg.toml:10: defaults.connect_timeout: must be more than zero, not 0`,
			`cfg.toml:11: defaults.server_check_delay: must not be negative, not -5s`,
		}},
		{"cluster override checked at its line", base + cluster + cluster + "max_replica_lag = \"soon\"\n", []string{
			`cfg.toml:16: clusters[1].max_replica_lag: "soon" is not a duration`,
			`cfg.toml:12: clusters[1].name: "pg" is also the name of clusters[0]`,
			`cfg.toml:14: clusters[1].database: clusters[0] ("pg") already serves postgres database "app"`,
		}},
		{"protocol", base + "[[clusters]]\nname = \"c\"\nprotocol = \"oracle\"\ndatabase = \"d\"\nprimary = \"h:1\"\n", []string{
			`cfg.toml:8: clusters[0].protocol: "oracle" is not a protocol (postgres or mysql)`,
		}},
		{"missing cluster keys reported at the header", base + "[[clusters]]\nreplicas = []\n", []string{
			`cfg.toml:6: clusters[0].name: a cluster needs a name`,
			`cfg.toml:6: clusters[0].protocol: a cluster needs a protocol`,
			`cfg.toml:6: clusters[0].database: a cluster needs the database name`,
			`cfg.toml:6: clusters[0].primary: a cluster needs a primary`,
		}},
		{"primary not host:port", base + cluster + cluster[:len(cluster)-27] + "primary = \"127.0.0.1\"\n", []string{
			`cfg.toml:15: clusters[1].primary: "127.0.0.1" is not host:port`,
			`cfg.toml:12: clusters[1].name: "pg" is also the name of clusters[0]`,
			`cfg.toml:14: clusters[1].database: clusters[0] ("pg") already serves postgres database "app"`,
		}},
		{"server port 0 and missing host", base + cluster + "replicas = [\n  \"h:5433\",\n  \"h:0\",\n  \":5434\",\n  \"127.0.0.1:5432\",\n  \"h:5433\",\n]\n", []string{
			`cfg.toml:13: clusters[0].replicas[1]: "h:0" is not host:port: the port must be a number from 1 to 65535`,
			`cfg.toml:14: clusters[0].replicas[2]: ":5434" is not host:port: the host is missing`,
			`cfg.toml:15: clusters[0].replicas[3]: "127.0.0.1:5432" is the primary`,
			`cfg.toml:16: clusters[0].replicas[4]: "h:5433" is listed twice`,
		}},
		{"same database on two protocols is fine, twice on one is not", base + cluster +
			"[[clusters]]\nname = \"my\"\nprotocol = \"mysql\"\ndatabase = \"app\"\nprimary = \"h:3306\"\n" +
			"[[clusters]]\nname = \"my2\"\nprotocol = \"mysql\"\ndatabase = \"app\"\nprimary = \"h:3306\"\n", []string{
			`cfg.toml:19: clusters[2].database: clusters[1] ("my") already serves mysql database "app"`,
		}},
		{"both primary and shards", base + cluster + "[clusters.sharding]\nkind = \"hash\"\nkey = \"id\"\n[[clusters.shards]]\nprimary = \"h:1\"\n", []string{
			`cfg.toml:10: clusters[0].primary: a sharded cluster has no primary of its own`,
		}},
		{"shards without sharding", base + cluster[:len(cluster)-27] + "[[clusters.shards]]\nprimary = \"h:1\"\n", []string{
			`cfg.toml:10: clusters[0].shards: shards need a [clusters.sharding] table`,
			`cfg.toml:6: clusters[0].primary: a cluster needs a primary`,
		}},
		{"sharding without shards", base + cluster[:len(cluster)-27] + "replicas = [\"h:2\"]\n[clusters.sharding]\nkind = \"hash\"\nkey = \"id\"\n", []string{
			`cfg.toml:10: clusters[0].replicas: a sharded cluster has no replicas of its own`,
			`cfg.toml:11: clusters[0].sharding: a sharded cluster needs at least one [[clusters.shards]]`,
		}},
		{"sharding kind, key, tables, buckets", base + cluster[:len(cluster)-27] +
			"[clusters.sharding]\nkind = \"list\"\nkey = \"\"\ntables = { a = \"\", b = 1 }\nbuckets = 0\n[[clusters.shards]]\nprimary = \"h:1\"\n", []string{
			`cfg.toml:11: clusters[0].sharding.kind: "list" is not a sharding kind (hash or range)`,
			`cfg.toml:12: clusters[0].sharding.key: sharding needs the key column`,
			`cfg.toml:13: clusters[0].sharding.tables.a: the key column of table "a" must not be empty`,
			`cfg.toml:13: clusters[0].sharding.tables.b: must be a string, not an integer (1)`,
			`cfg.toml:14: clusters[0].sharding.buckets: must be between 1 and 1048576, not 0`,
		}},
		{"fewer buckets than shards", base + cluster[:len(cluster)-27] +
			"[clusters.sharding]\nkind = \"hash\"\nkey = \"k\"\nbuckets = 1\n[[clusters.shards]]\nprimary = \"h:1\"\n[[clusters.shards]]\nprimary = \"h:2\"\n", []string{
			`cfg.toml:13: clusters[0].sharding.buckets: 1 buckets cannot cover 2 shards`,
		}},
		{"shard problems in the right shard", base + cluster[:len(cluster)-27] +
			"[clusters.sharding]\nkind = \"hash\"\nkey = \"k\"\n" +
			"[[clusters.shards]]\nprimary = \"h:1\"\n" + // 13, 14
			"[[clusters.shards]]\ndatabase = \"x\"\n" + // 15, 16
			"[[clusters.shards]]\nprimary = \"h\"\nrange = [1, 2]\n" + // 17, 18, 19
			"[[clusters.shards]]\nprimary = \"h:1\"\ndatabase = \"app\"\n", // 20, 21, 22
			[]string{
				`cfg.toml:15: clusters[0].shards[1].primary: a shard needs a primary`,
				`cfg.toml:18: clusters[0].shards[2].primary: "h" is not host:port`,
				`cfg.toml:19: clusters[0].shards[2].range: a hash-sharded cluster's shards have no range`,
				`cfg.toml:22: clusters[0].shards[3].database: shards[0] has the same primary and database (h:1, "app")`,
			}},
		{"ranges", base + cluster[:len(cluster)-27] +
			"[clusters.sharding]\nkind = \"range\"\nkey = \"k\"\n" +
			"[[clusters.shards]]\nprimary = \"h:1\"\nrange = [0, 100]\n" + // 13-15
			"[[clusters.shards]]\nprimary = \"h:2\"\n" + // 16-17: no range
			"[[clusters.shards]]\nprimary = \"h:3\"\nrange = [100, 100]\n" + // 18-20
			"[[clusters.shards]]\nprimary = \"h:4\"\nrange = [1, \"z\"]\n" + // 21-23
			"[[clusters.shards]]\nprimary = \"h:5\"\nrange = [1, 2, 3]\n" + // 24-26
			"[[clusters.shards]]\nprimary = \"h:6\"\nrange = [\"a\", \"b\"]\n" + // 27-29
			"[[clusters.shards]]\nprimary = \"h:7\"\nrange = [50, 150]\n" + // 30-32
			"[[clusters.shards]]\nprimary = \"h:8\"\nrange = [1.5, 2.5]\n", // 33-35
			[]string{
				`cfg.toml:16: clusters[0].shards[1].range: a range-sharded cluster's shards each need range = [low, high]`,
				`cfg.toml:20: clusters[0].shards[2].range: low (100) must be less than high (100)`,
				`cfg.toml:23: clusters[0].shards[3].range: must be [low, high], two integers or two strings, not an integer (1) and a string ("z")`,
				`cfg.toml:26: clusters[0].shards[4].range: must be [low, high], two integers or two strings, not an array of 3`,
				`cfg.toml:29: clusters[0].shards[5].range: is string but shards[0].range is integer`,
				`cfg.toml:32: clusters[0].shards[6].range: [50, 150) overlaps shards[0].range [0, 100)`,
				`cfg.toml:35: clusters[0].shards[7].range: must be [low, high], two integers or two strings, not a float (1.5) and a float (2.5)`,
			}},
		{"string ranges overlap", base + cluster[:len(cluster)-27] +
			"[clusters.sharding]\nkind = \"range\"\nkey = \"k\"\n" +
			"[[clusters.shards]]\nprimary = \"h:1\"\nrange = [\"m\", \"z\"]\n" + // 13-15
			"[[clusters.shards]]\nprimary = \"h:2\"\nrange = [\"a\", \"n\"]\n", // 16-18
			[]string{
				`cfg.toml:18: clusters[0].shards[1].range: ["a", "n") overlaps shards[0].range ["m", "z")`,
			}},
		{"range gap", base + cluster[:len(cluster)-27] +
			"[clusters.sharding]\nkind = \"range\"\nkey = \"k\"\n" +
			"[[clusters.shards]]\nprimary = \"h:1\"\nrange = [100, 200]\n" + // 13-15
			"[[clusters.shards]]\nprimary = \"h:2\"\nrange = [0, 50]\n", // 16-18
			[]string{
				`cfg.toml:15: clusters[0].shards[0].range: starts at 100 but shards[1].range ends at 50: keys in [50, 100) would have no shard`,
			}},
		{"users", base + "[[users]]\nname = \"app\"\npassword = \"x\"\nauth = \"password\"\n" + // 6-9
			"[[users]]\nname = \"\"\npassword = \"x\"\n" + // 10-12
			"[[users]]\nname = \"nopw\"\n" + // 13-14
			"[[users]]\nname = \"v\"\npassword = \"" + scramPW + "\"\n" + // 15-17
			"[[users]]\nname = \"m\"\nauth = \"md5\"\npassword = \"" + scramPW + "\"\nserver_password = \"s\"\n" + // 18-22
			"[[users]]\nname = \"s\"\npassword = \"" + md5PW + "\"\nserver_password = \"s\"\n" + // 23-26
			"[[users]]\nname = \"bad\"\npassword = \"SCRAM-SHA-256$4096:salt\"\nserver_password = \"s\"\n" + // 27-30
			"[[users]]\nname = \"t\"\nauth = \"trust\"\npassword = \"" + md5PW + "\"\npool_mode = \"x\"\ndatabases = [\"nope\", \"switchyard\"]\nadmin = 1\n", // 31-37
			[]string{
				`cfg.toml:9: users[1].auth: "password" is not an auth method (scram-sha-256, md5 or trust)`,
				`cfg.toml:7: users[1].name: "app" is also the name of users[0]`,
				`cfg.toml:11: users[2].name: a user needs a name`,
				`cfg.toml:13: users[3].password: a user needs a password unless auth = "trust"`,
				`cfg.toml:17: users[4].password: is a verifier, which cannot log in to the servers: set server_password`,
				`cfg.toml:20: users[5].auth: md5 cannot check a SCRAM-SHA-256 verifier`,
				`cfg.toml:25: users[6].password: scram-sha-256 cannot check an md5 verifier`,
				`cfg.toml:29: users[7].password: malformed SCRAM-SHA-256 verifier`,
				`cfg.toml:35: users[8].pool_mode: "x" is not a pool mode`,
				`cfg.toml:36: users[8].databases[0]: no cluster serves database "nope"`,
				`cfg.toml:37: users[8].admin: must be true or false, not an integer (1)`,
			}},
		{"unknown keys, each where it is written", base + "extra = 1\n" + cluster + "pool_sise = 3\n" + // 6, 12
			cluster[:len(cluster)-27] + "[clusters.sharding]\nkind = \"hash\"\nkey = \"k\"\nhash = \"xx\"\n" + // 13-16, 17-20
			"[[clusters.shards]]\nprimary = \"h:1\"\nweight = 2\n" + // 21-23
			"[[clusters.shards]]\nprimary = \"h:2\"\ndatabase = \"two\"\n" + // 24-26
			"[[clusters.shards]]\nprimary = \"h:3\"\nweight = 2\n" + // 27-29
			"[metrics]\nport = 1\nsub.key = 2\n" + // 30-32
			"[[clusters]]\nname = \"c3\"\nprotocol = \"mysql\"\ndatabase = \"x\"\nprimary = \"h:1\"\nopts.a = 1\n", // 33-38
			[]string{
				`cfg.toml:6: users[0].extra: unknown key`,
				`cfg.toml:12: clusters[0].pool_sise: unknown key`,
				`cfg.toml:20: clusters[1].sharding.hash: unknown key`,
				`cfg.toml:23: clusters[1].shards[0].weight: unknown key`,
				`cfg.toml:29: clusters[1].shards[2].weight: unknown key`,
				`cfg.toml:30: metrics: unknown key`,
				`cfg.toml:38: clusters[2].opts: unknown key`,
				`cfg.toml:14: clusters[1].name: "pg" is also the name of clusters[0]`,
				`cfg.toml:16: clusters[1].database: clusters[0] ("pg") already serves postgres database "app"`,
			}},
		{"table where an array of tables belongs", base + "[clusters]\nname = \"x\"\n", []string{
			`cfg.toml:6: clusters: must be an array of tables, written [[clusters]]`,
		}},
		{"value where a table belongs", "defaults = 1\n" + base, []string{
			`cfg.toml:1: defaults: must be a table, written [defaults]`,
		}},
		{"value where a table belongs, nested", base + cluster + "sharding = \"hash\"\n", []string{
			`cfg.toml:11: clusters.sharding: must be a table, written [clusters.sharding]`,
		}},
		{"tls: only one of the pair", "[proxy]\npostgres_listen = \":1\"\ntls_key = \"k.pem\"\n", []string{
			`cfg.toml:3: proxy.tls_key: tls_key is set but tls_cert is not; set both or neither`,
		}},
		{"tls: missing files", "[proxy]\npostgres_listen = \":1\"\ntls_cert = \"/nonexistent/c.pem\"\ntls_key = \"/nonexistent/k.pem\"\n", []string{
			`cfg.toml:3: proxy.tls_cert: stat /nonexistent/c.pem: no such file or directory`,
			`cfg.toml:4: proxy.tls_key: stat /nonexistent/k.pem: no such file or directory`,
		}},
		{"tls: a directory", "[proxy]\npostgres_listen = \":1\"\ntls_cert = \"/\"\ntls_key = \"/\"\n", []string{
			`cfg.toml:3: proxy.tls_cert: / is not a regular file`,
			`cfg.toml:4: proxy.tls_key: / is not a regular file`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, tt.src, tt.want)
		})
	}
}

// checkProblems parses src and wants exactly the problems in want, each
// matched by prefix: file, line, key and the start of the message.
func checkProblems(t *testing.T, src string, want []string) {
	t.Helper()
	cfg, err := Parse([]byte(src), "cfg.toml")
	if err == nil {
		t.Fatalf("no error; config %+v", cfg)
	}
	if cfg != nil {
		t.Errorf("a Config came back with the error")
	}
	got := problems(err)
	used := make([]bool, len(got))
next:
	for _, w := range want {
		for i, g := range got {
			if !used[i] && strings.HasPrefix(g.Error(), w) {
				used[i] = true
				continue next
			}
		}
		t.Errorf("missing problem %q", w)
	}
	for i, g := range got {
		if !used[i] {
			t.Errorf("unexpected problem %q", g)
		}
	}
	if t.Failed() {
		t.Logf("source:\n%s", numbered(src))
	}
}

func numbered(src string) string {
	var b strings.Builder
	for i, line := range strings.Split(src, "\n") {
		b.WriteString(strings.Repeat(" ", 3-len(itoa(i+1))) + itoa(i+1) + " " + line + "\n")
	}
	return b.String()
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func TestAllProblemsReportedInFileOrder(t *testing.T) {
	src := `[proxy]
postgres_listen = "nope"
mysql_listen = ":3306"
[defaults]
pool_size = 0
[[clusters]]
name = "c"
protocol = "pg"
database = "d"
primary = "h:1"
`
	_, err := Parse([]byte(src), "cfg.toml")
	want := "cfg.toml:2: proxy.postgres_listen: \"nope\" is not host:port\n" +
		"cfg.toml:5: defaults.pool_size: must be at least 1, not 0\n" +
		"cfg.toml:8: clusters[0].protocol: \"pg\" is not a protocol (postgres or mysql)"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}
