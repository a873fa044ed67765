package pgwire

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/shard"
)

// loadConfig is one valid config of the reload drill. Every variant keeps
// row placement (hash, 2 shards, 1024 buckets, same databases); they
// differ in pool sizes, in the replicas each shard has, and in sharding
// keys that bump the map's version without moving a row.
type loadConfig struct {
	poolSize int
	replicas [2]bool // shard i lists the test cluster's replicas
	tables   bool    // sharding.tables names a table the load does not use
	allowAll bool    // allow_all_shard_writes
}

func (lc loadConfig) String() string {
	pg := testcluster.PG
	var b strings.Builder
	fmt.Fprintf(&b, `# reload drill
[proxy]
postgres_listen = "127.0.0.1:0"
shutdown_timeout = "10s"

[defaults]
pool_size = %d
query_wait_timeout = "10s"
max_replica_lag = "500ms"
lag_poll_interval = "20ms"

[[users]]
name = "app"
password = "app"

[[clusters]]
name = "orders"
protocol = "postgres"
database = "orders"

[clusters.sharding]
kind = "hash"
key = "customer_id"
allow_all_shard_writes = %v
`, lc.poolSize, lc.allowAll)
	if lc.tables {
		b.WriteString("tables = { unused_table = \"other_id\" }\n")
	}
	for i, db := range []string{"orders_0", "orders_1"} {
		fmt.Fprintf(&b, "\n[[clusters.shards]]\nprimary = %q\ndatabase = %q\n", pg.Primary.Addr(), db)
		if lc.replicas[i] {
			fmt.Fprintf(&b, "replicas = [%q, %q]\n", pg.Replicas[0].Addr(), pg.Replicas[1].Addr())
		}
	}
	return b.String()
}

// next is the config after reload i: even reloads change what the shard
// map does not depend on (the pool size); odd ones change the [clusters.
// sharding] table or the shards' replicas.
func (lc loadConfig) next(i int) loadConfig {
	if i%2 == 0 {
		lc.poolSize = 11 - lc.poolSize // 5 <-> 6
		return lc
	}
	switch (i / 2) % 4 {
	case 0:
		lc.replicas[0] = !lc.replicas[0]
	case 1:
		lc.replicas[1] = !lc.replicas[1]
	case 2:
		lc.tables = !lc.tables
	case 3:
		lc.allowAll = !lc.allowAll
	}
	return lc
}

// shardReplicaReads is how many transactions of sharded clusters the
// proxy has routed to a shard replica so far.
func shardReplicaReads(t *testing.T) float64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_routed_transactions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var shard, replica bool
			for _, l := range m.GetLabel() {
				shard = shard || l.GetName() == "cluster" && strings.Contains(l.GetValue(), "/shard")
				replica = replica || l.GetName() == "target" && l.GetValue() == "replica"
			}
			if shard && replica {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// badConfigs turn a valid file into one the reload must refuse, naming
// the line.
var badConfigs = []struct {
	name string
	edit func(string) string
}{
	{"unknown key", func(s string) string {
		return strings.Replace(s, "[defaults]\n", "[defaults]\npool_sise = 7\n", 1)
	}},
	{"bad address", func(s string) string {
		return strings.Replace(s, fmt.Sprintf("primary = %q\ndatabase = \"orders_1\"", testcluster.PG.Primary.Addr()), "primary = \"127.0.0.1:99999\"\ndatabase = \"orders_1\"", 1)
	}},
	{"overlapping ranges", func(s string) string {
		s = strings.Replace(s, `kind = "hash"`, `kind = "range"`, 1)
		s = strings.Replace(s, "database = \"orders_0\"", "database = \"orders_0\"\nrange = [0, 100]", 1)
		return strings.Replace(s, "database = \"orders_1\"", "database = \"orders_1\"\nrange = [50, 200]", 1)
	}},
	{"bad value", func(s string) string {
		return strings.Replace(s, "pool_size = ", "pool_size = -", 1)
	}},
	{"syntax", func(s string) string {
		return strings.Replace(s, "[[users]]", "[[users]", 1)
	}},
}

// The reload drill: 16 clients of every protocol mode run keyed inserts,
// point reads, updates, scatter counts and multi-statement transactions
// against a 2-shard cluster for 30 s, while the config file is rewritten
// and reloaded through the admin endpoint 60 times: 50 valid files (pool
// sizes, shard replicas, sharding keys) and 10 broken ones, each refused
// with its line. No client sees an error, every committed row is on the
// shard the map says with the amount its updates gave it, and nothing
// else is there.
func TestShardReloadUnderLoad(t *testing.T) {
	const (
		clients  = 16
		duration = 30 * time.Second
		goodN    = 50
		badN     = 10
	)
	pg := testcluster.PG
	ctx := ctxT(t, duration+90*time.Second)
	for _, db := range []string{"orders_0", "orders_1"} {
		conn, err := pgx.Connect(ctx, pg.DSN(pg.Primary, "app", "app", db))
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, `DROP TABLE IF EXISTS load_orders;
			CREATE TABLE load_orders (customer_id bigint PRIMARY KEY, client int NOT NULL, amount int NOT NULL)`)
		conn.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := pg.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	// The proxy, and the reload path of cmd/switchyard: the file is read
	// and validated whole, then applied; POST /reload on the admin
	// handler runs it.
	path := filepath.Join(t.TempDir(), "switchyard.toml")
	cur := loadConfig{poolSize: 5}
	if err := os.WriteFile(path, []byte(cur.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := serveConfig(t, cur.String())
	if err := p.srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	reload := func() error {
		cfg, err := config.Load(path)
		if err != nil {
			return err
		}
		return p.srv.Reload(cfg)
	}
	adm := httptest.NewServer(admin.NewHandler(reload, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer adm.Close()

	m, _ := shard.NewHash(2, 1024, 1)
	var stop atomic.Bool
	var txns, errCount atomic.Int64
	var errMu sync.Mutex
	var firstErrs []string
	fail := func(c int, what string, err error) {
		if errCount.Add(1) <= 10 {
			errMu.Lock()
			firstErrs = append(firstErrs, fmt.Sprintf("client %d: %s: %v", c, what, err))
			errMu.Unlock()
		}
	}
	// committed[c] is client c's rows: key -> amount.
	committed := make([]map[int64]int, clients)
	modes := []string{"&default_query_exec_mode=simple_protocol", "&default_query_exec_mode=exec", ""}
	var wg sync.WaitGroup
	for c := range clients {
		committed[c] = map[int64]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+modes[c%len(modes)])
			if err != nil {
				fail(c, "connect", err)
				return
			}
			defer conn.Close(context.Background())
			mine := committed[c]
			var keys []int64
			next := int64(c) * 10_000_000
			newKey := func() int64 { next++; return next }
			sameShard := func(k int64) int64 { // a fresh key on k's shard
				want, _ := m.ShardOfInt(k)
				for {
					n := newKey()
					if s, _ := m.ShardOfInt(n); s == want {
						return n
					}
				}
			}
			for i := 0; !stop.Load(); i++ {
				if conn.IsClosed() {
					fail(c, "connection", fmt.Errorf("closed"))
					return
				}
				switch {
				case i%7 == 0 || len(keys) == 0: // keyed insert
					k := newKey()
					if _, err := conn.Exec(ctx, "INSERT INTO load_orders (customer_id, client, amount) VALUES ($1, $2, 1)", k, c); err != nil {
						fail(c, "insert", err)
						continue
					}
					mine[k], keys = 1, append(keys, k)
				case i%7 == 1 || i%7 == 4: // point read of an own row, right after writing it
					k := keys[len(keys)-1-i%min(len(keys), 5)]
					var amount int
					if err := conn.QueryRow(ctx, "SELECT amount FROM load_orders WHERE customer_id = $1", k).Scan(&amount); err != nil {
						fail(c, fmt.Sprintf("point read %d", k), err)
					} else if amount != mine[k] {
						fail(c, fmt.Sprintf("point read %d", k), fmt.Errorf("amount %d, committed %d", amount, mine[k]))
					}
				case i%7 == 2: // update
					k := keys[i%len(keys)]
					tag, err := conn.Exec(ctx, "UPDATE load_orders SET amount = amount + 1 WHERE customer_id = $1", k)
					if err != nil || tag.RowsAffected() != 1 {
						fail(c, fmt.Sprintf("update %d (%s)", k, tag), err)
						continue
					}
					mine[k]++
				case i%7 == 3: // scatter count of own rows: every shard, read-your-writes on each
					var n int
					if err := conn.QueryRow(ctx, "SELECT count(*) FROM load_orders WHERE client = $1", c).Scan(&n); err != nil {
						fail(c, "scatter count", err)
					} else if n != len(mine) {
						fail(c, "scatter count", fmt.Errorf("%d rows, committed %d", n, len(mine)))
					}
				case i%7 == 5: // a transaction of several keyed statements on one shard
					k1 := newKey()
					k2 := sameShard(k1)
					tx, err := conn.Begin(ctx)
					if err != nil {
						fail(c, "begin", err)
						continue
					}
					var sum int
					err = func() error {
						if _, err := tx.Exec(ctx, "INSERT INTO load_orders (customer_id, client, amount) VALUES ($1, $2, 1)", k1, c); err != nil {
							return err
						}
						if _, err := tx.Exec(ctx, "INSERT INTO load_orders (customer_id, client, amount) VALUES ($1, $2, 2)", k2, c); err != nil {
							return err
						}
						if _, err := tx.Exec(ctx, "UPDATE load_orders SET amount = amount + 10 WHERE customer_id = $1", k1); err != nil {
							return err
						}
						return tx.QueryRow(ctx, "SELECT sum(amount) FROM load_orders WHERE customer_id IN ($1, $2)", k1, k2).Scan(&sum)
					}()
					if err == nil && sum != 13 {
						err = fmt.Errorf("sum in the transaction %d, want 13", sum)
					}
					if err != nil {
						_ = tx.Rollback(ctx)
						fail(c, "transaction", err)
						continue
					}
					if i%2 == 0 {
						// Rolled back: none of it may stay.
						if err := tx.Rollback(ctx); err != nil {
							fail(c, "rollback", err)
						}
						txns.Add(1)
						continue
					}
					if err := tx.Commit(ctx); err != nil {
						fail(c, "commit", err)
						continue
					}
					mine[k1], mine[k2] = 11, 2
					keys = append(keys, k1, k2)
				case i%7 == 6: // read-only transaction on the shard of an own row
					k := keys[len(keys)-1]
					tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
					if err != nil {
						fail(c, "begin read only", err)
						continue
					}
					var amount int
					err = tx.QueryRow(ctx, "SELECT amount FROM load_orders WHERE customer_id = $1", k).Scan(&amount)
					if err == nil && amount != mine[k] {
						err = fmt.Errorf("amount %d of %d, committed %d", amount, k, mine[k])
					}
					if err != nil {
						_ = tx.Rollback(ctx)
						fail(c, "read-only transaction", err)
						continue
					}
					if err := tx.Commit(ctx); err != nil {
						fail(c, "commit read only", err)
					}
				}
				txns.Add(1)
			}
		}()
	}

	replicaReads0 := shardReplicaReads(t)

	// The reloads: one every duration/60, a broken file every sixth.
	lineRE := regexp.MustCompile(regexp.QuoteMeta(filepath.Base(path)) + `:\d+: `)
	var ok, refused int
	var reloadTime, maxReload time.Duration
	start := time.Now()
	tick := duration / (goodN + badN)
	for i := range goodN + badN {
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * tick)))
		bad := i%6 == 5
		var src string
		var badName string
		if bad {
			b := badConfigs[(i/6)%len(badConfigs)]
			badName, src = b.name, b.edit(cur.String())
		} else {
			cur = cur.next(i)
			src = cur.String()
		}
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		resp, err := http.Post(adm.URL+"/reload", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(t0)
		reloadTime += took
		maxReload = max(maxReload, took)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case bad && resp.StatusCode == http.StatusBadRequest && lineRE.Match(body):
			refused++
			if refused <= len(badConfigs) {
				t.Logf("%s refused: %s", badName, strings.TrimSpace(strings.SplitN(string(body), "\n", 2)[1]))
			}
		case bad:
			t.Errorf("reload %d (%s): %d %q; want 400 naming a line", i, badName, resp.StatusCode, body)
		case resp.StatusCode == http.StatusOK:
			ok++
		default:
			t.Errorf("reload %d: %d %q", i, resp.StatusCode, body)
		}
	}
	time.Sleep(time.Until(start.Add(duration)))
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)

	// Each shard, directly: every row where the map says, and exactly
	// the committed rows with their amounts.
	want := map[int64]int{}
	for _, mine := range committed {
		for k, a := range mine {
			want[k] = a
		}
	}
	found := map[int64]bool{}
	var rows, misplaced, wrong, extra int
	for s, db := range []string{"orders_0", "orders_1"} {
		conn, err := pgx.Connect(ctx, pg.DSN(pg.Primary, "app", "app", db))
		if err != nil {
			t.Fatal(err)
		}
		r, _ := conn.Query(ctx, "SELECT customer_id, amount FROM load_orders")
		type row struct {
			Key    int64
			Amount int
		}
		got, err := pgx.CollectRows(r, pgx.RowToStructByPos[row])
		conn.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			rows++
			if ms, _ := m.ShardOfInt(r.Key); ms != s {
				misplaced++
			}
			a, ok := want[r.Key]
			switch {
			case !ok:
				extra++
			case a != r.Amount:
				wrong++
			}
			found[r.Key] = true
		}
	}
	lost := 0
	for k := range want {
		if !found[k] {
			lost++
		}
	}
	replicaReads := shardReplicaReads(t) - replicaReads0
	t.Logf("reload drill: %v, %d clients, %d transactions (%.0f served by shard replicas); reloads: %d applied, %d refused (%v each on average, %v at most); client errors %d; rows %d (committed %d): %d lost, %d misplaced, %d extra, %d with a wrong amount",
		elapsed.Round(time.Millisecond), clients, txns.Load(), replicaReads, ok, refused, (reloadTime / (goodN + badN)).Round(time.Millisecond), maxReload.Round(time.Millisecond),
		errCount.Load(), rows, len(want), lost, misplaced, extra, wrong)
	for _, e := range firstErrs {
		t.Error(e)
	}
	if errCount.Load() != 0 || lost+misplaced+extra+wrong != 0 || ok != goodN || refused != badN || rows != len(want) {
		t.Fatal("the drill failed")
	}
	if replicaReads == 0 {
		t.Error("no read was served by a shard replica while the shards had replicas")
	}
	if txns.Load() < 20*clients { // the load ran (the machine is shared: no more than that is certain)
		t.Errorf("only %d transactions in %v", txns.Load(), elapsed)
	}
}

// A session outlives reloads that replace its pools (a setting of the
// connections changed) and that resize them (pool_size): its next
// transactions run on the pools of the config in force, sharded or not.
func TestReloadKeepsSessions(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		t.Run(fmt.Sprintf("sharded=%v", sharded), func(t *testing.T) {
			src := func(defaults string) string {
				if sharded {
					return shardReplicaConfig("", defaults, false)
				}
				pg := testcluster.PG
				return fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
shutdown_timeout = "5s"
[defaults]
%s
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "orders"
protocol = "postgres"
database = "orders"
server_database = "app"
primary = %q
`, defaults, pg.Primary.Addr())
			}
			p := serveConfig(t, src("pool_size = 3"))
			ctx := ctxT(t, 30*time.Second)
			conn, err := pgx.Connect(ctx, p.dsn("app", "app", "orders"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			query := func(what string) {
				t.Helper()
				var n int
				if err := conn.QueryRow(ctx, "SELECT 1 + 0 * $1::int", 1).Scan(&n); err != nil || n != 1 {
					t.Fatalf("%s: %d, %v", what, n, err)
				}
			}
			query("before the reloads")
			for i, defaults := range []string{`pool_size = 3
server_lifetime = "30m"`, `pool_size = 7
server_lifetime = "30m"`, "pool_size = 2"} {
				cfg, err := config.Parse([]byte(src(defaults)), "test.toml")
				if err != nil {
					t.Fatal(err)
				}
				if err := p.srv.Reload(cfg); err != nil {
					t.Fatal(err)
				}
				query(fmt.Sprintf("after reload %d (%s)", i, strings.ReplaceAll(defaults, "\n", ", ")))
			}
			// The pools in force have the last pool_size.
			n := 0
			p.srv.Pools.Each(func(_ frontend.PoolKey, pl *pool.Pool, _ *poolEntry) {
				n++
				if l := pl.Limits(); l.Size != 2 {
					t.Errorf("pool %s: size %d after reloading pool_size = 2", pl.Name(), l.Size)
				}
			})
			if n == 0 {
				t.Fatal("no pools")
			}
		})
	}
}

// A scatter planned before a reload that replaces the shards' pools (a
// connection setting changed) and bumps the map's version (a sharding
// key changed, no row moved) runs on the pools in force: its shards had
// looked up their pools, which the reload closes before they lease
// (testHookShardLease), as happened in the reload drill at load 20
// ("the pool was closed").
func TestScatterAcrossReload(t *testing.T) {
	pg := testcluster.PG
	ctx := ctxT(t, 60*time.Second)
	for _, db := range []string{"orders_0", "orders_1"} {
		conn, err := pgx.Connect(ctx, pg.DSN(pg.Primary, "app", "app", db))
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, `DROP TABLE IF EXISTS reload_scatter;
			CREATE TABLE reload_scatter (customer_id bigint PRIMARY KEY);
			INSERT INTO reload_scatter SELECT g FROM generate_series(1, 10) g`)
		conn.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
	}
	before := shardReplicaConfig("", "pool_size = 3", false)
	after, err := config.Parse([]byte(shardReplicaConfig(`tables = { unused_table = "other_id" }`, "pool_size = 3\nserver_lifetime = \"30m\"", false)), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	p := serveConfig(t, before)
	v0 := p.srv.MapVersions()["orders"]
	conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	var once sync.Once
	var reloadErr error
	hook := func(i int, e *poolEntry) {
		once.Do(func() {
			reloadErr = p.srv.Reload(after)
			e.p.Close() // what the reload's Drain does, now rather than soon
		})
	}
	testHookShardLease.Store(&hook)
	defer testHookShardLease.Store(nil)
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM reload_scatter").Scan(&n)
	testHookShardLease.Store(nil)
	if reloadErr != nil {
		t.Fatal(reloadErr)
	}
	if v := p.srv.MapVersions()["orders"]; v == v0 {
		t.Errorf("map version %d after a reload of the sharding keys; want a new one", v)
	}
	if err != nil || n != 20 {
		t.Fatalf("scatter across the reload: %d rows, %v; want 20", n, err)
	}
	// And the next one, on the config in force.
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM reload_scatter").Scan(&n); err != nil || n != 20 {
		t.Fatalf("scatter after the reload: %d rows, %v; want 20", n, err)
	}
}
