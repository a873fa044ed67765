package mysqlwire

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/shard"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// The shards of the tests are the databases orders_0 and orders_1 of the
// MariaDB test primary (replicated to its replica). Clients connect to
// database "orders".

// shardConfig is a config with the sharded cluster "orders": sharding is
// the body of [clusters.sharding], shards the [[clusters.shards]] tables.
func shardConfig(t testing.TB, sharding, shards string) *config.Config {
	t.Helper()
	src := fmt.Sprintf(`
[proxy]
postgres_listen = ""
mysql_listen = "127.0.0.1:0"
admin_listen = ""
shutdown_timeout = "5s"

[defaults]
pool_size = 10
query_wait_timeout = "20s"
max_replica_lag = "300ms"
lag_poll_interval = "20ms"

[[users]]
name = "app"
password = "app"

[[clusters]]
name = "orders"
protocol = "mysql"
database = "orders"

[clusters.sharding]
%s

%s
`, sharding, shards)
	cfg, err := config.Parse([]byte(src), "shard.toml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

const hashSharding = `kind = "hash"
key = "customer_id"
tables = { customers = "id" }`

// hashShards: the two shards, with the replica when withReplica.
func hashShards(withReplica bool) string {
	ma := testcluster.Maria
	rep := ""
	if withReplica {
		rep = fmt.Sprintf("replicas = [%q]", ma.Replicas[0].Addr())
	}
	return fmt.Sprintf(`
[[clusters.shards]]
primary = %q
database = "orders_0"
%s

[[clusters.shards]]
primary = %q
database = "orders_1"
%s
`, ma.Primary.Addr(), rep, ma.Primary.Addr(), rep)
}

func rangeShards(boundary int) string {
	ma := testcluster.Maria
	return fmt.Sprintf(`
[[clusters.shards]]
primary = %q
database = "orders_0"
range = [0, %d]

[[clusters.shards]]
primary = %q
database = "orders_1"
range = [%d, 1000000000]
`, ma.Primary.Addr(), boundary, ma.Primary.Addr(), boundary)
}

func startShardProxy(t testing.TB, cfg *config.Config) *testProxy {
	t.Helper()
	return serveProxy(t, cfg, slog.LevelError, true)
}

func (p *testProxy) openOrders(t testing.TB, params string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", p.dsn("app", "app", "orders", params))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// resetShardTables recreates the test tables on both shards.
func resetShardTables(t testing.TB) {
	t.Helper()
	for _, db := range []string{"orders_0", "orders_1"} {
		rootExec(t, fmt.Sprintf(`DROP TABLE IF EXISTS %[1]s.orders, %[1]s.customers;
CREATE TABLE %[1]s.orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, total DECIMAL(10,2), note VARCHAR(40), KEY (customer_id));
CREATE TABLE %[1]s.customers (id BIGINT PRIMARY KEY, name VARCHAR(40))`, db))
	}
}

// onShard runs a query for one value as root on shard i's database.
func onShard(t testing.TB, i int, q string) string {
	t.Helper()
	ma := testcluster.Maria
	v, err := ma.QueryString(ma.Primary, "/* shard */ "+strings.ReplaceAll(q, "{db}", fmt.Sprintf("orders_%d", i)))
	if err != nil {
		t.Fatalf("shard %d: %s: %v", i, q, err)
	}
	return v
}

// union runs q on both shards' orders tables at once (as one database
// would answer it): {t} in q stands for the union of the two tables.
func union(t testing.TB, q string) []string {
	t.Helper()
	ma := testcluster.Maria
	db, err := sql.Open("mysql", ma.RootDSN(ma.Primary, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return rowsOf(t, db, strings.ReplaceAll(q, "{t}", "(SELECT * FROM orders_0.orders UNION ALL SELECT * FROM orders_1.orders) u"))
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// rowsOf returns each row of q as its values joined by "|".
func rowsOf(t testing.TB, db querier, q string, args ...any) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = "NULL"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

func shardCounter(cluster, i string) float64 {
	return counterValue(metrics.ShardStatements.WithLabelValues("mysql", cluster, i))
}

func scatterCounter() float64 {
	return counterValue(metrics.ScatterQueries.WithLabelValues("mysql", "orders"))
}

func refusedCounter() float64 {
	return counterValue(metrics.ShardRefused.WithLabelValues("mysql", "orders"))
}

func mapVersion() float64 {
	var m dto.Metric
	if err := metrics.ShardMapVersion.WithLabelValues("mysql", "orders").Write(&m); err != nil {
		panic(err)
	}
	return m.GetGauge().GetValue()
}

// wantRefused checks err is the proxy's 1235 and its message says what.
func wantRefused(t testing.TB, err error, what, contains string) {
	t.Helper()
	var me interface{ Error() string }
	if mysqlErrNum(err) != mysqlproto.ERNotSupportedYet {
		t.Errorf("%s: got %v, want error 1235", what, err)
		return
	}
	me = err
	if contains != "" && !strings.Contains(me.Error(), contains) {
		t.Errorf("%s: message %q does not say %q", what, me.Error(), contains)
	}
}

func TestShardHashRouting(t *testing.T) {
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	m := p.srv.Shards.Get("orders").Map
	a, b := twoShardKeys(m)
	ctx := context.Background()
	id := 0
	for _, params := range []string{"interpolateParams=true", ""} {
		t.Run("params="+params, func(t *testing.T) {
			db := p.openOrders(t, params)
			// Inserts land on the shard the map says.
			for cid := int64(1); cid <= 20; cid++ {
				for k := 0; k < 2; k++ {
					id++
					if _, err := db.ExecContext(ctx, "INSERT INTO orders (id, customer_id, total, note) VALUES (?, ?, ?, ?)",
						id, cid, fmt.Sprintf("%d.25", id), fmt.Sprintf("n%02d", id%7)); err != nil {
						t.Fatal(err)
					}
				}
			}
			perShard := [2]int{}
			for cid := int64(1); cid <= 20; cid++ {
				want, err := m.ShardOfInt(cid)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 2; i++ {
					got := onShard(t, i, fmt.Sprintf("SELECT COUNT(*) FROM {db}.orders WHERE customer_id = %d", cid))
					wantN := "0"
					switch {
					case i == want && params == "":
						wantN = "4" // both runs
					case i == want:
						wantN = "2"
					}
					if got != wantN {
						t.Errorf("customer %d: %s rows on shard %d, want %s (map says shard %d)", cid, got, i, wantN, want)
					}
					if i == want {
						perShard[i]++
					}
				}
			}
			t.Logf("customers per shard: %v", perShard)
			if perShard[0] == 0 || perShard[1] == 0 {
				t.Errorf("all customers on one shard: %v", perShard)
			}
		})
	}
	// From here: 80 rows, 4 per customer.
	for _, params := range []string{"interpolateParams=true", ""} {
		t.Run("read/"+params, func(t *testing.T) {
			db := p.openOrders(t, params)
			// A point read by key hits its shard alone.
			for cid := int64(1); cid <= 6; cid++ {
				sh, _ := m.ShardOfInt(cid)
				before, other, sc := shardCounter("orders", fmt.Sprint(sh)), shardCounter("orders", fmt.Sprint(1-sh)), scatterCounter()
				rows := rowsOf(t, db, "SELECT DATABASE(), COUNT(*) FROM orders WHERE customer_id = ?", cid)
				if want := fmt.Sprintf("orders_%d|4", sh); len(rows) != 1 || rows[0] != want {
					t.Errorf("customer %d: %v, want %s", cid, rows, want)
				}
				if d := shardCounter("orders", fmt.Sprint(sh)) - before; d != 1 || shardCounter("orders", fmt.Sprint(1-sh)) != other || scatterCounter() != sc {
					t.Errorf("customer %d: %v statements on its shard %d, other shard %v, scatter %v; want exactly one on its shard", cid, d, sh, shardCounter("orders", fmt.Sprint(1-sh))-other, scatterCounter()-sc)
				}
			}
			// UPDATE by key.
			res, err := db.ExecContext(ctx, "UPDATE orders SET note = ? WHERE customer_id = ?", "upd"+params, 3)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n != 4 {
				t.Errorf("UPDATE by key: %d rows affected, want 4", n)
			}
			sh3, _ := m.ShardOfInt(3)
			if got := onShard(t, sh3, "SELECT COUNT(*) FROM {db}.orders WHERE note = 'upd"+params+"'"); got != "4" {
				t.Errorf("updated rows on shard %d: %s", sh3, got)
			}
			// Scatter reads equal the same query against the union of
			// the shards.
			for _, q := range []string{
				"SELECT id, customer_id, total FROM orders ORDER BY total DESC, id LIMIT 7",
				"SELECT id, note FROM orders ORDER BY note, id DESC LIMIT 5 OFFSET 3",
				"SELECT id, note FROM orders ORDER BY 2 DESC, 1 LIMIT 2, 4",
				"SELECT COUNT(*) FROM orders",
				"SELECT COUNT(*), SUM(total), MIN(total), MAX(total), MIN(note), MAX(id) FROM orders",
				"SELECT SUM(total) FROM orders WHERE customer_id > 5",
				"SELECT id FROM orders WHERE customer_id IN (1, 2, 3, 4) ORDER BY id",
				fmt.Sprintf("SELECT MAX(total) FROM orders WHERE customer_id IN (%d, %d)", a, b),
			} {
				want := union(t, strings.Replace(q, "FROM orders", "FROM {t}", 1))
				sc := scatterCounter()
				got := rowsOf(t, db, q)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s:\n got %v\nwant %v", q, got, want)
				}
				if scatterCounter() != sc+1 {
					t.Errorf("%s: not counted as a scatter", q)
				}
			}
			// The same through COM_STMT_EXECUTE (server-side prepared
			// statements): rows in the binary protocol.
			for _, q := range []string{
				"SELECT id, customer_id, total FROM orders WHERE id >= ? ORDER BY total DESC, id LIMIT 7",
				"SELECT id, note, total FROM orders WHERE id >= ? ORDER BY note DESC, total, id LIMIT 5 OFFSET 3",
				"SELECT COUNT(*), SUM(total), MIN(total), MAX(total), MIN(note), MAX(id), SUM(id) FROM orders WHERE id >= ?",
				"SELECT id FROM orders WHERE id >= ? ORDER BY id LIMIT 100",
			} {
				want := union(t, strings.Replace(strings.Replace(q, "FROM orders", "FROM {t}", 1), "?", "0", 1))
				got := rowsOf(t, db, q, 0)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s with ? = 0:\n got %v\nwant %v", q, got, want)
				}
			}
			// Scatter with parameters (an IN list over both shards).
			got := rowsOf(t, db, "SELECT id FROM orders WHERE customer_id IN (?, ?) ORDER BY id DESC LIMIT ?", 1, 2, 3)
			want := union(t, "SELECT id FROM {t} WHERE customer_id IN (1, 2) ORDER BY id DESC LIMIT 3")
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("IN (?, ?) LIMIT ?: got %v, want %v", got, want)
			}
			// What cannot be merged or must not run on one shard only is
			// refused with 1235, and the session goes on.
			for _, tc := range []struct{ q, says string }{
				{"SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id", "GROUP BY"},
				{"SELECT DISTINCT note FROM orders", "DISTINCT"},
				{"SELECT AVG(total) FROM orders", "AVG"},
				{"SELECT note, COUNT(*) FROM orders", "aggregates next to plain columns"},
				{"UPDATE orders SET note = 'x' WHERE note = 'y'", "allow_all_shard_writes"},
				{"DELETE FROM orders", "without its shard key"},
				{fmt.Sprintf("INSERT INTO orders (id, customer_id) VALUES (1000, %d), (1001, %d)", a, b), "several shards"},
				{"UPDATE orders SET customer_id = 5 WHERE customer_id = 1", "changes the shard key"},
				{"CREATE TABLE x (id INT)", "switchyard:shard=N"},
			} {
				if params == "" && strings.HasPrefix(tc.q, "CREATE") {
					continue // not preparable
				}
				before := refusedCounter()
				_, err := db.ExecContext(ctx, tc.q)
				wantRefused(t, err, tc.q, tc.says)
				if refusedCounter() != before+1 {
					t.Errorf("%s: refusal not counted", tc.q)
				}
			}
			if got := rowsOf(t, db, "SELECT COUNT(*) FROM orders"); got[0] != "80" {
				t.Errorf("after refusals: %v rows", got)
			}
			// Hints and the per-table key.
			if got := rowsOf(t, db, "/* switchyard:shard=1 */ SELECT DATABASE(), COUNT(*) FROM orders"); got[0] != "orders_1|"+onShard(t, 1, "SELECT COUNT(*) FROM {db}.orders") {
				t.Errorf("shard hint: %v", got)
			}
			if got := rowsOf(t, db, "SELECT DATABASE() FROM orders /* switchyard:shard_key=3 */ LIMIT 1"); got[0] != fmt.Sprintf("orders_%d", sh3) {
				t.Errorf("shard_key hint: %v, want shard %d", got, sh3)
			}
			for cid := int64(1); cid <= 4; cid++ {
				if _, err := db.ExecContext(ctx, "REPLACE INTO customers (id, name) VALUES (?, ?)", cid, fmt.Sprint("c", cid)); err != nil {
					t.Fatal(err)
				}
				sh, _ := m.ShardOfInt(cid)
				if got := onShard(t, sh, fmt.Sprintf("SELECT name FROM {db}.customers WHERE id = %d", cid)); got != fmt.Sprint("c", cid) {
					t.Errorf("customer %d not on shard %d", cid, sh)
				}
			}
		})
	}
	// Prepared statements with text keys: a string key maps like the
	// same literal.
	db := p.openOrders(t, "")
	for _, k := range []any{"7", int64(7), int32(7), uint64(7)} {
		sh7, _ := m.ShardOfInt(7)
		if got := rowsOf(t, db, "SELECT DATABASE() FROM orders WHERE customer_id = ? LIMIT 1", k); len(got) != 1 || got[0] != fmt.Sprintf("orders_%d", sh7) {
			t.Errorf("key %T(%v): %v, want shard %d", k, k, got, sh7)
		}
	}
}

// twoShardKeys returns two keys on different shards.
func twoShardKeys(m shard.Map) (int64, int64) {
	a, b := int64(1), int64(2)
	sa, _ := m.ShardOfInt(a)
	for ; ; b++ {
		if sb, _ := m.ShardOfInt(b); sb != sa {
			return a, b
		}
	}
}

// Transactions stay on the shard of their first keyed statement; a
// statement for another shard is refused and the transaction goes on.
func TestShardTransactions(t *testing.T) {
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	m := p.srv.Shards.Get("orders").Map
	ctx := context.Background()
	a, b := twoShardKeys(m)
	sa, _ := m.ShardOfInt(a)
	for _, params := range []string{"interpolateParams=true", ""} {
		db := p.openOrders(t, params)
		rootExec(t, "DELETE FROM orders_0.orders; DELETE FROM orders_1.orders")
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("INSERT INTO orders (id, customer_id) VALUES (?, ?)", 1, a); err != nil {
			t.Fatal(err)
		}
		before := refusedCounter()
		_, err = tx.Exec("INSERT INTO orders (id, customer_id) VALUES (?, ?)", 2, b)
		wantRefused(t, err, "second shard in a transaction", "must stay on one shard")
		var n int
		err = tx.QueryRow("SELECT COUNT(*) FROM orders WHERE customer_id = ?", b).Scan(&n)
		wantRefused(t, err, "read of another shard in a transaction", "")
		err = tx.QueryRow("SELECT COUNT(*) FROM orders").Scan(&n)
		wantRefused(t, err, "keyless read in a transaction", "inside a transaction")
		if refusedCounter() != before+3 {
			t.Errorf("refused cross-shard statements counted %v, want 3", refusedCounter()-before)
		}
		// Still usable, still on its shard, and it sees its own write.
		if _, err := tx.Exec("INSERT INTO orders (id, customer_id) VALUES (?, ?)", 3, a); err != nil {
			t.Fatalf("transaction unusable after a refusal: %v", err)
		}
		if err := tx.QueryRow("SELECT COUNT(*) FROM orders WHERE customer_id = ?", a).Scan(&n); err != nil || n != 2 {
			t.Errorf("read in the transaction: %d, %v", n, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := onShard(t, sa, "SELECT COUNT(*) FROM {db}.orders"); got != "2" {
			t.Errorf("%s: %s rows on shard %d after commit, want 2", params, got, sa)
		}
		if got := onShard(t, 1-sa, "SELECT COUNT(*) FROM {db}.orders"); got != "0" {
			t.Errorf("%s: %s rows on the other shard, want 0", params, got)
		}
		// Rollback undoes the transaction on its shard; a BEGIN with
		// nothing after it costs no server.
		tx, _ = db.BeginTx(ctx, nil)
		if _, err := tx.Exec("DELETE FROM orders WHERE customer_id = ?", a); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if got := onShard(t, sa, "SELECT COUNT(*) FROM {db}.orders"); got != "2" {
			t.Errorf("rollback: %s rows", got)
		}
		tx, _ = db.BeginTx(ctx, nil)
		if err := tx.Commit(); err != nil {
			t.Errorf("empty transaction: %v", err)
		}
	}
	// SET switchyard.shard_key routes statements without a key of their own.
	c := conn(t, p.openOrders(t, "interpolateParams=true"))
	execSQL(t, c, "INSERT INTO orders (id, customer_id) VALUES (10, ?)", b)
	for _, tc := range []struct {
		set  string
		want string
	}{
		{fmt.Sprintf("SET switchyard.shard_key = '%d'", a), fmt.Sprintf("orders_%d|2", sa)},
		{fmt.Sprintf("SET switchyard.shard_key = %d", b), fmt.Sprintf("orders_%d|1", 1-sa)},
	} {
		execSQL(t, c, tc.set)
		if got := queryString(t, c, "SHOW switchyard.shard_key"); !strings.Contains(tc.set, got) || got == "" {
			t.Errorf("SHOW switchyard.shard_key after %s: %q", tc.set, got)
		}
		if got := rowsOf(t, c, "SELECT DATABASE(), COUNT(*) FROM orders"); len(got) != 1 || got[0] != tc.want {
			t.Errorf("after %s: %v, want %s", tc.set, got, tc.want)
		}
	}
	// A key of its own wins over the session's.
	if got := rowsOf(t, c, "SELECT DATABASE() FROM orders WHERE customer_id = ?", a); got[0] != fmt.Sprintf("orders_%d", sa) {
		t.Errorf("own key with a session key: %v", got)
	}
	execSQL(t, c, "DELETE FROM orders WHERE id = 10") // keyless write: the session key's shard
	execSQL(t, c, "SET switchyard.shard_key = DEFAULT")
	if got := rowsOf(t, c, "SELECT COUNT(*) FROM orders"); got[0] != "2" {
		t.Errorf("after SET switchyard.shard_key = DEFAULT: %v, want the scatter count 2", got)
	}
	if _, err := c.ExecContext(ctx, "SET switchyard.shard_key = ''"); err != nil {
		t.Error(err)
	}
	if got := queryString(t, c, "SHOW switchyard.shard_key"); got != "" {
		t.Errorf("SHOW switchyard.shard_key after clearing it: %q", got)
	}
}

// allow_all_shard_writes, a range map, and reloads that move the boundary.
func TestShardRangeReload(t *testing.T) {
	resetShardTables(t)
	sharding := "kind = \"range\"\nkey = \"customer_id\"\nallow_all_shard_writes = true"
	p := startShardProxy(t, shardConfig(t, sharding, rangeShards(100)))
	ctx := context.Background()
	v0 := mapVersion()
	db := p.openOrders(t, "interpolateParams=true")
	for _, cid := range []int{5, 50, 150, 500} {
		if _, err := db.ExecContext(ctx, "INSERT INTO orders (id, customer_id, note) VALUES (?, ?, 'a')", cid, cid); err != nil {
			t.Fatal(err)
		}
	}
	if got := onShard(t, 0, "SELECT GROUP_CONCAT(customer_id ORDER BY customer_id) FROM {db}.orders"); got != "5,50" {
		t.Errorf("shard 0 [0, 100) holds %s", got)
	}
	if got := onShard(t, 1, "SELECT GROUP_CONCAT(customer_id ORDER BY customer_id) FROM {db}.orders"); got != "150,500" {
		t.Errorf("shard 1 [100, ...) holds %s", got)
	}
	// A write on every shard, with the affected rows summed.
	res, err := db.ExecContext(ctx, "UPDATE orders SET note = 'all' WHERE note = 'a'")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 4 {
		t.Errorf("all-shard UPDATE affected %d, want 4", n)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO orders (id, customer_id) VALUES (1, -5)"); mysqlErrNum(err) != mysqlproto.ERNotSupportedYet {
		t.Errorf("key outside every range: %v", err)
	}
	// Not inside a transaction, though.
	tx, _ := db.BeginTx(ctx, nil)
	_, err = tx.Exec("UPDATE orders SET note = 'tx' WHERE note = 'all'")
	wantRefused(t, err, "all-shard write in a transaction", "autocommit")
	_ = tx.Rollback()

	shardOf := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}, cid int) string {
		var d string
		if err := q.QueryRowContext(ctx, "SELECT DATABASE() FROM DUAL WHERE ? > 0 /* switchyard:shard_key="+fmt.Sprint(cid)+" */", 1).Scan(&d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	if got := shardOf(db, 50); got != "orders_0" {
		t.Fatalf("key 50 before the reload: %s", got)
	}
	// A transaction under way keeps the map it started with.
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, tx, "SELECT DATABASE(), COUNT(*) FROM orders WHERE customer_id = 50"); got[0] != "orders_0|1" {
		t.Fatalf("in the transaction: %v", got)
	}
	if err := p.srv.Reload(shardConfig(t, sharding, rangeShards(40))); err != nil {
		t.Fatal(err)
	}
	if mapVersion() != v0+1 {
		t.Errorf("map version %v after changing the ranges, want %v", mapVersion(), v0+1)
	}
	if got := rowsOf(t, tx, "SELECT DATABASE(), COUNT(*) FROM orders WHERE customer_id = 50"); got[0] != "orders_0|1" {
		t.Errorf("the transaction moved with the reload: %v", got)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	st := p.srv.Status().(map[string]any)["shards"].([]map[string]any)
	if len(st) != 2 || st[1]["range"] != "[40, 1000000000)" || st[1]["map_version"] != uint64(v0+1) {
		t.Errorf("admin status after the reload: %v", st)
	}
	// After it, key 50 belongs to shard 1 [40, ...).
	if got := shardOf(db, 50); got != "orders_1" {
		t.Errorf("key 50 after moving the boundary to 40: %s, want orders_1", got)
	}
	if got := shardOf(db, 39); got != "orders_0" {
		t.Errorf("key 39: %s", got)
	}
	// A reload that changes nothing about sharding keeps the version.
	if err := p.srv.Reload(shardConfig(t, sharding, rangeShards(40))); err != nil {
		t.Fatal(err)
	}
	if mapVersion() != v0+1 {
		t.Errorf("map version %v after an unchanged reload", mapVersion())
	}
	// A bad file is refused by the config loader; a config whose map
	// cannot be built is refused by Reload: either way the old map stays.
	if _, err := config.Parse([]byte(strings.Replace(shardConfigSrc(sharding, rangeShards(40)), "range = [40,", "range = [30,", 1)), "bad.toml"); err == nil {
		t.Error("overlapping ranges accepted by the config loader")
	}
	bad := shardConfig(t, sharding, rangeShards(60))
	bad.Clusters[0].Shards[1].Range = nil
	if err := p.srv.CheckReload(bad); err == nil {
		t.Error("CheckReload accepted a range map without ranges")
	}
	if err := p.srv.Reload(bad); err == nil {
		t.Error("Reload accepted a range map without ranges")
	}
	if mapVersion() != v0+1 || shardOf(db, 50) != "orders_1" {
		t.Errorf("after a refused reload: version %v, key 50 on %s; want the old map", mapVersion(), shardOf(db, 50))
	}
}

// shardConfigSrc is the TOML of shardConfig, for tests that break it.
func shardConfigSrc(sharding, shards string) string {
	return fmt.Sprintf(`
[[users]]
name = "app"
password = "app"

[[clusters]]
name = "orders"
protocol = "mysql"
database = "orders"

[clusters.sharding]
%s

%s
`, sharding, shards)
}

// Reads by key go to the shard's replica once it is caught up; a client's
// read right after its own write sees the write (read-your-writes per
// shard primary), even with the replica paused.
func TestShardReplicaReads(t *testing.T) {
	resetShardTables(t)
	caughtUp(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(true)))
	ma := testcluster.Maria
	primary, rep := ma.Primary.Port, replicaNode().Port
	m := p.srv.Shards.Get("orders").Map
	ctx := context.Background()
	w := p.openOrders(t, "")
	for cid := 1; cid <= 10; cid++ {
		if _, err := w.ExecContext(ctx, "INSERT INTO orders (id, customer_id) VALUES (?, ?)", cid, cid); err != nil {
			t.Fatal(err)
		}
	}
	caughtUp(t)
	for i := 0; i < 2; i++ {
		waitShardEligible(t, p, i)
	}
	for _, params := range []string{"interpolateParams=true", ""} {
		db := p.openOrders(t, params)
		ports := map[int]int{}
		for cid := 1; cid <= 10; cid++ {
			var port int
			var d string
			if err := db.QueryRowContext(ctx, "SELECT @@port, DATABASE() FROM orders WHERE customer_id = ? LIMIT 1", cid).Scan(&port, &d); err != nil {
				t.Fatal(err)
			}
			sh, _ := m.ShardOfInt(int64(cid))
			if d != fmt.Sprintf("orders_%d", sh) {
				t.Errorf("customer %d read on %s", cid, d)
			}
			ports[port]++
		}
		if ports[rep] != 10 || ports[primary] != 0 {
			t.Errorf("%q: reads by key per port %v, want all on the replica %d", params, ports, rep)
		}
	}
	// Read-your-writes with the replica paused: every read after a write
	// sees it.
	onNode(t, replicaNode(), "STOP SLAVE SQL_THREAD")
	defer onNode(t, replicaNode(), "START SLAVE SQL_THREAD")
	var stale, failed, onReplica atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	const clients, pairs = 8, 50
	for c := 0; c < clients; c++ {
		params := ""
		if c%2 == 0 {
			params = "interpolateParams=true"
		}
		db := p.openOrders(t, params)
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			cn, err := db.Conn(ctx)
			if err != nil {
				failed.Add(1)
				return
			}
			defer cn.Close()
			for i := 0; i < pairs; i++ {
				id := c*1000 + i + 100000
				cid := 1000 + c*100 + i
				if _, err := cn.ExecContext(ctx, "INSERT INTO orders (id, customer_id) VALUES (?, ?)", id, cid); err != nil {
					failed.Add(1)
					continue
				}
				var n, port int
				if err := cn.QueryRowContext(ctx, "SELECT COUNT(*), @@port FROM orders WHERE customer_id = ?", cid).Scan(&n, &port); err != nil {
					failed.Add(1)
					continue
				}
				if n != 1 {
					stale.Add(1)
				}
				if port == rep {
					onReplica.Add(1)
				}
			}
		}(c)
	}
	wg.Wait()
	t.Logf("%d write-then-read pairs on 2 shards in %v with the replica paused: %d stale, %d failed, %d reads on the replica",
		clients*pairs, time.Since(start).Round(time.Millisecond), stale.Load(), failed.Load(), onReplica.Load())
	if stale.Load() != 0 || failed.Load() != 0 {
		t.Fatalf("stale %d, failed %d", stale.Load(), failed.Load())
	}
	// Scatter reads are served too, and agree with the primary.
	onNode(t, replicaNode(), "START SLAVE SQL_THREAD")
	caughtUp(t)
	db := p.openOrders(t, "")
	if got, want := rowsOf(t, db, "SELECT COUNT(*), MAX(id) FROM orders"), union(t, "SELECT COUNT(*), MAX(id) FROM {t}"); strings.Join(got, "") != strings.Join(want, "") {
		t.Errorf("scatter on replicas: %v, want %v", got, want)
	}
	// Replicas are not part of the map: dropping them keeps its version,
	// and reads go to the shards' primaries.
	v := mapVersion()
	if err := p.srv.Reload(shardConfig(t, hashSharding, hashShards(false))); err != nil {
		t.Fatal(err)
	}
	if mapVersion() != v || p.srv.Rts.Get(replica.ShardName("orders", 0)) != nil {
		t.Errorf("after dropping the replicas: map version %v (was %v), shard 0 runtime %v", mapVersion(), v, p.srv.Rts.Get(replica.ShardName("orders", 0)))
	}
	var port int
	if err := db.QueryRowContext(ctx, "SELECT @@port FROM orders WHERE customer_id = ?", 1).Scan(&port); err != nil || port != primary {
		t.Errorf("read after the replicas left the config: port %d (%v), want the primary", port, err)
	}
}

func waitShardEligible(t testing.TB, p *testProxy, i int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if rt := p.srv.Rts.Get(replica.ShardName("orders", i)); rt != nil {
			for _, st := range rt.Set.Status() {
				if st.Eligible {
					return
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("shard %d's replica not eligible after 10s", i)
}

// A BEGIN is answered by the proxy and sent with the first statement that
// names a shard; statements without a table before it do not pin the
// transaction to shard 0. DDL needs a shard hint.
func TestShardLazyBeginAndDDL(t *testing.T) {
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	m := p.srv.Shards.Get("orders").Map
	ctx := context.Background()
	var k1 int64 = 1
	for ; ; k1++ {
		if s, _ := m.ShardOfInt(k1); s == 1 {
			break
		}
	}
	c := conn(t, p.openOrders(t, "interpolateParams=true"))
	for _, begin := range []string{"BEGIN", "START TRANSACTION", "start transaction read write"} {
		execSQL(t, c, begin)
		if got := queryString(t, c, "SELECT 1"); got != "1" {
			t.Fatal(got)
		}
		execSQL(t, c, "SET @@session.sql_mode = @@session.sql_mode")
		if got := rowsOf(t, c, "SELECT DATABASE(), @@in_transaction FROM orders WHERE customer_id = ? LIMIT 1 FOR UPDATE", k1); len(got) != 0 {
			t.Fatalf("%s: rows %v in an empty table", begin, got)
		}
		execSQL(t, c, "INSERT INTO orders (id, customer_id) VALUES (?, ?)", k1*10, k1)
		if got := rowsOf(t, c, "SELECT DATABASE(), @@in_transaction FROM orders WHERE customer_id = ?", k1); len(got) != 1 || got[0] != "orders_1|1" {
			t.Errorf("%s: the transaction runs as %v, want on orders_1 inside a transaction", begin, got)
		}
		execSQL(t, c, "ROLLBACK")
		if got := onShard(t, 1, "SELECT COUNT(*) FROM {db}.orders"); got != "0" {
			t.Errorf("%s: ROLLBACK left %s rows", begin, got)
		}
	}
	// A transaction with an isolation level (SET TRANSACTION, then START
	// TRANSACTION) and a read-only one go to the shard of their key too.
	db := p.openOrders(t, "")
	for _, opts := range []*sql.TxOptions{{Isolation: sql.LevelSerializable}, {ReadOnly: true}} {
		tx, err := db.BeginTx(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		got := rowsOf(t, tx, "SELECT DATABASE(), @@tx_isolation, @@in_transaction FROM orders WHERE customer_id = ? LIMIT 1", k1)
		if len(got) != 0 {
			t.Fatal(got)
		}
		got = rowsOf(t, tx, "SELECT DATABASE(), @@tx_isolation, @@in_transaction, COUNT(*) FROM orders WHERE customer_id = ?", k1)
		// (@@tx_isolation shows the session's level, not the one SET
		// TRANSACTION gave this transaction.)
		want := "orders_1|REPEATABLE-READ|1|0"
		if len(got) != 1 || got[0] != want {
			t.Errorf("%+v: %v, want %s", opts, got, want)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// SET TRANSACTION reaches the shard with the BEGIN it is for.
	execSQL(t, c, "SET TRANSACTION READ ONLY")
	execSQL(t, c, "BEGIN")
	if _, err := c.ExecContext(ctx, "INSERT INTO orders (id, customer_id) VALUES (?, ?)", 5, k1); mysqlErrNum(err) != 1792 {
		t.Errorf("INSERT after SET TRANSACTION READ ONLY; BEGIN: %v, want the server's 1792 (read-only transaction)", err)
	}
	execSQL(t, c, "ROLLBACK")
	execSQL(t, c, "INSERT INTO orders (id, customer_id) VALUES (?, ?)", 5, k1)
	// DDL runs where a hint says, once per shard.
	_, err := c.ExecContext(ctx, "CREATE TABLE t_ddl (id INT PRIMARY KEY, customer_id INT)")
	wantRefused(t, err, "DDL without a hint", "switchyard:shard=N")
	for i := 0; i < 2; i++ {
		execSQL(t, c, fmt.Sprintf("/* switchyard:shard=%d */ CREATE TABLE IF NOT EXISTS t_ddl (id INT PRIMARY KEY, customer_id INT)", i))
		if got := onShard(t, i, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{db}' AND table_name = 't_ddl'"); got != "1" {
			t.Errorf("table not created on shard %d", i)
		}
		execSQL(t, c, fmt.Sprintf("/* switchyard:shard=%d */ DROP TABLE t_ddl", i))
	}
	_, err = c.ExecContext(ctx, "/* switchyard:shard=2 */ SELECT 1")
	wantRefused(t, err, "hint past the last shard", "has 2 shards")
	_, err = c.ExecContext(ctx, "USE app")
	wantRefused(t, err, "USE of another database", "USE")
	execSQL(t, c, "USE orders")
}

// Figures: the cost of a scatter (two shards, merged) next to a point
// read through the proxy.
func TestShardScatterLatency(t *testing.T) {
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	c := conn(t, p.openOrders(t, "interpolateParams=true"))
	for i := 1; i <= 200; i++ {
		execSQL(t, c, "INSERT INTO orders (id, customer_id, total) VALUES (?, ?, ?)", i, i%50, i)
	}
	const n = 200
	measure := func(q string, args ...any) time.Duration {
		start := time.Now()
		for i := 0; i < n; i++ {
			rowsOf(t, c, q, args...)
		}
		return time.Since(start) / n
	}
	ma := testcluster.Maria
	direct, err := sql.Open("mysql", ma.DSN(ma.Primary, "app", "app", fmt.Sprintf("orders_%d", mustShard(p.srv.Shards.Get("orders").Map, 7)))+"?interpolateParams=true")
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	dc, err := direct.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	start := time.Now()
	for i := 0; i < n; i++ {
		rowsOf(t, dc, "SELECT id, total FROM orders WHERE customer_id = ?", 7)
	}
	directPoint := time.Since(start) / n
	point := measure("SELECT id, total FROM orders WHERE customer_id = ?", 7)
	count := measure("SELECT COUNT(*), SUM(total) FROM orders")
	sorted := measure("SELECT id, total FROM orders ORDER BY total DESC LIMIT 10 OFFSET 5")
	all := measure("SELECT id, total FROM orders")
	t.Logf("per query, 200 rows over 2 shards: point read direct to its shard %v, through the proxy %v; scatter COUNT/SUM %v; scatter ORDER BY LIMIT 10 OFFSET 5 %v; scatter of all 200 rows %v",
		directPoint.Round(time.Microsecond), point.Round(time.Microsecond), count.Round(time.Microsecond), sorted.Round(time.Microsecond), all.Round(time.Microsecond))
}

// Merging values of several types, with NULLs, in both protocols: the
// merged answer equals one database's.
func TestShardScatterTypes(t *testing.T) {
	for _, db := range []string{"orders_0", "orders_1"} {
		rootExec(t, fmt.Sprintf(`DROP TABLE IF EXISTS %[1]s.t_types;
CREATE TABLE %[1]s.t_types (id INT PRIMARY KEY, customer_id BIGINT, d DATETIME(3) NULL, dt DATE NULL, tm TIME NULL,
  f DOUBLE NULL, u INT UNSIGNED NULL, b BIGINT UNSIGNED NULL, s VARBINARY(20) NULL, n INT NULL, dec2 DECIMAL(12,3) NULL, y YEAR NULL)`, db))
	}
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	w := p.openOrders(t, "interpolateParams=true")
	ctx := context.Background()
	for i := 1; i <= 30; i++ {
		var n any = (i*37)%11 - 5
		if i%4 == 0 {
			n = nil
		}
		var s any = []byte{byte(i * 53 % 256), 'x'}
		if i%5 == 0 {
			s = nil
		}
		if _, err := w.ExecContext(ctx, "INSERT INTO t_types (id, customer_id, d, dt, tm, f, u, b, s, n, dec2, y) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			i, i%9, fmt.Sprintf("2024-%02d-%02d 10:%02d:%02d.%03d", i%12+1, i%28+1, i%60, (i*7)%60, i*13%1000),
			fmt.Sprintf("20%02d-01-%02d", i%30, i%28+1), fmt.Sprintf("%d:%02d:05", (i*5)%40-20, i%60),
			float64(i)*0.25-3, uint32(i*1_000_000)%4_000_000_000+(1<<31), uint64(1)<<63+uint64(i),
			s, n, fmt.Sprintf("%d.%03d", i*7-100, i*91%1000), 1990+i%20); err != nil {
			t.Fatal(err)
		}
	}
	root, err := sql.Open("mysql", testcluster.Maria.RootDSN(testcluster.Maria.Primary, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	const u = "(SELECT * FROM orders_0.t_types UNION ALL SELECT * FROM orders_1.t_types) u"
	for _, q := range []string{
		"SELECT id, d FROM t_types WHERE id > ? ORDER BY d DESC LIMIT 8",
		"SELECT id, dt, tm FROM t_types WHERE id > ? ORDER BY dt, tm, id",
		"SELECT id, tm FROM t_types WHERE id > ? ORDER BY tm DESC, id LIMIT 10",
		"SELECT id, f FROM t_types WHERE id > ? ORDER BY f DESC LIMIT 5 OFFSET 2",
		"SELECT id, u, b FROM t_types WHERE id > ? ORDER BY u, id",
		"SELECT id, s FROM t_types WHERE id > ? ORDER BY s, id",
		"SELECT id, n FROM t_types WHERE id > ? ORDER BY n, id",
		"SELECT id, n FROM t_types WHERE id > ? ORDER BY n DESC, id DESC",
		"SELECT id, dec2, y FROM t_types WHERE id > ? ORDER BY dec2 DESC, y",
		"SELECT COUNT(*), COUNT(n), SUM(n), MIN(n), MAX(n), MIN(d), MAX(d), MIN(tm), MAX(tm), MIN(f), MAX(f), SUM(u), MAX(b), SUM(dec2), MIN(s), MAX(y) FROM t_types WHERE id > ?",
		"SELECT SUM(n), MIN(s), MAX(d) FROM t_types WHERE id > ? AND n IS NULL",
		// SUM of doubles that binary fractions represent exactly. (A sum
		// of inexact doubles depends on the order of the rows, on one
		// server as across shards: SUM(f * 0.1e0) is 2.6250000000000004
		// there and 2.625 merged.)
		"SELECT SUM(f), SUM(f * 0.5e0) FROM t_types WHERE id > ?",
	} {
		want := rowsOf(t, root, strings.Replace(strings.Replace(q, "FROM t_types", "FROM "+u, 1), "?", "0", 1))
		for _, params := range []string{"interpolateParams=true", ""} {
			got := rowsOf(t, p.openOrders(t, params), q, 0)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s (%s):\n got %v\nwant %v", q, params, got, want)
			}
		}
	}
	// Text beyond ASCII in a case-insensitive collation cannot be ordered
	// by the proxy as the server would: refused, not guessed.
	rootExec(t, "ALTER TABLE orders_0.t_types ADD COLUMN name VARCHAR(20) NULL; ALTER TABLE orders_1.t_types ADD COLUMN name VARCHAR(20) NULL")
	if _, err := w.ExecContext(ctx, "UPDATE t_types SET name = 'Émile' WHERE customer_id = 1"); err != nil {
		t.Fatal(err)
	}
	_, err = w.QueryContext(ctx, "SELECT id, name FROM t_types ORDER BY name")
	wantRefused(t, err, "ORDER BY non-ASCII text", "non-ASCII")
}

// Many clients at once, in both protocols, mixing keyed writes and reads,
// transactions (with a refused cross-shard statement in each), scatters
// and all-shard writes, over a small pool: no unexpected error, and every
// row is where the map says.
func TestShardConcurrentClients(t *testing.T) {
	resetShardTables(t)
	cfg := shardConfig(t, hashSharding+"\nallow_all_shard_writes = true", hashShards(false))
	cfg.Clusters[0].Settings.PoolSize = 4
	p := startShardProxy(t, cfg)
	m := p.srv.Shards.Get("orders").Map
	a, b := twoShardKeys(m)
	ctx := context.Background()
	const clients, rounds = 12, 30
	var failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		params := ""
		if c%2 == 0 {
			params = "interpolateParams=true"
		}
		db := p.openOrders(t, params)
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			fail := func(what string, err error) {
				failures.Add(1)
				t.Errorf("client %d: %s: %v", c, what, err)
			}
			for r := 0; r < rounds; r++ {
				id := c*1000 + r
				cid := int64(c*100 + r%7)
				if _, err := db.ExecContext(ctx, "INSERT INTO orders (id, customer_id, total) VALUES (?, ?, ?)", id, cid, r); err != nil {
					fail("insert", err)
					continue
				}
				var n int
				if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders WHERE id = ? AND customer_id = ?", id, cid).Scan(&n); err != nil || n != 1 {
					fail(fmt.Sprintf("read back (%d rows)", n), err)
				}
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					fail("begin", err)
					continue
				}
				other := a
				if s, _ := m.ShardOfInt(cid); s == 0 == (mustShard(m, a) == 0) {
					other = b
				}
				if _, err := tx.Exec("UPDATE orders SET total = total + 1 WHERE customer_id = ? AND id = ?", cid, id); err != nil {
					fail("update in tx", err)
				}
				if _, err := tx.Exec("UPDATE orders SET total = 0 WHERE customer_id = ?", other); mysqlErrNum(err) != mysqlproto.ERNotSupportedYet {
					fail("cross-shard statement in tx", err)
				}
				if err := tx.Commit(); err != nil {
					fail("commit", err)
				}
				if r%5 == 0 {
					if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders WHERE total >= ?", 0).Scan(&n); err != nil {
						fail("scatter", err)
					}
				}
				if r%10 == 0 {
					if _, err := db.ExecContext(ctx, "UPDATE orders SET note = ? WHERE note IS NULL AND id = ?", "seen", id); err != nil {
						fail("all-shard write", err)
					}
				}
			}
		}(c)
	}
	wg.Wait()
	t.Logf("%d clients x %d rounds (insert, read, transaction with a refused statement, scatters, all-shard writes) in %v over pool_size 4",
		clients, rounds, time.Since(start).Round(time.Millisecond))
	if failures.Load() > 0 {
		t.Fatalf("%d failures", failures.Load())
	}
	total := 0
	for i := 0; i < 2; i++ {
		var n int
		fmt.Sscan(onShard(t, i, "SELECT COUNT(*) FROM {db}.orders"), &n)
		total += n
		wrong := 0
		for c := 0; c < clients; c++ {
			for k := 0; k < 7; k++ {
				cid := int64(c*100 + k)
				if mustShard(m, cid) != i {
					var x int
					fmt.Sscan(onShard(t, i, fmt.Sprintf("SELECT COUNT(*) FROM {db}.orders WHERE customer_id = %d", cid)), &x)
					wrong += x
				}
			}
		}
		if wrong != 0 {
			t.Errorf("shard %d holds %d rows of another shard's keys", i, wrong)
		}
	}
	if total != clients*rounds {
		t.Errorf("%d rows on the shards, want %d", total, clients*rounds)
	}
	if got := union(t, "SELECT COUNT(*) FROM {t} WHERE total <> id % 1000 + 1"); got[0] != "0" {
		t.Errorf("rows whose transaction did not commit its update: %v", got)
	}
}

func mustShard(m shard.Map, k int64) int {
	s, err := m.ShardOfInt(k)
	if err != nil {
		panic(err)
	}
	return s
}

// The mariadb command-line client against the sharded database: its
// connect-time queries, keyed writes, a scatter, a refusal it prints, and
// a transaction.
func TestShardMariaDBCommandLine(t *testing.T) {
	bin, err := execLookPath("mariadb", "mysql")
	if err != nil {
		t.Skip("no mariadb client")
	}
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	a, b := twoShardKeys(p.srv.Shards.Get("orders").Map)
	host, port, _ := net.SplitHostPort(p.addr)
	run := func(sql string) (string, error) {
		return runCmd(bin, "--protocol=TCP", "-h", host, "-P", port, "-uapp", "-papp", "orders", "--batch", "-e", sql)
	}
	out, err := run(fmt.Sprintf("INSERT INTO orders (id, customer_id, total) VALUES (1, %[1]d, 2.5), (2, %[1]d, 3); "+
		"INSERT INTO orders (id, customer_id, total) VALUES (3, %[2]d, 4); "+
		"BEGIN; UPDATE orders SET total = total * 2 WHERE customer_id = %[2]d; COMMIT; "+
		"SELECT COUNT(*) AS n, SUM(total) AS s FROM orders; SELECT id FROM orders ORDER BY id DESC LIMIT 1; SHOW TABLES", a, b))
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"n\ts\n3\t13.50\n", "id\n3\n", "customers\norders\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = run("SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id")
	if err == nil || !strings.Contains(out, "1235") || !strings.Contains(out, "GROUP BY") {
		t.Errorf("GROUP BY on every shard: %v %s", err, out)
	}
}

// A scatter planned before a reload that replaces the shards' pools (a
// connection setting changed) and bumps the map's version (a sharding
// setting changed, no row moved) runs on the pools in force: the reload
// closes the pool a shard is about to lease from (testHookShardLease), as
// pgwire's reload drill saw at load 20 ("the pool was closed").
func TestShardScatterAcrossReload(t *testing.T) {
	resetShardTables(t)
	for i := range 2 {
		rootExec(t, fmt.Sprintf("INSERT INTO orders_%d.orders (id, customer_id) VALUES (1, 1), (2, 2), (3, 3)", i))
	}
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	after := shardConfig(t, hashSharding+"\nallow_all_shard_writes = true", hashShards(false))
	after.Clusters[0].Settings.ServerLifetime = 30 * time.Minute // new pools
	v0 := p.srv.Shards.Get("orders").Map.Version()
	db := p.openOrders(t, "")
	db.SetMaxOpenConns(1) // one session, whose shard pools are cached
	count := func() (int, error) {
		var n int
		err := db.QueryRow("SELECT COUNT(*) FROM orders").Scan(&n)
		return n, err
	}
	if n, err := count(); err != nil || n != 6 {
		t.Fatalf("scatter before the reload: %d rows, %v; want 6", n, err)
	}
	var once sync.Once
	var reloadErr error
	hook := func(i int, pl *pool.Pool) {
		once.Do(func() {
			reloadErr = p.srv.Reload(after)
			pl.Close() // what the reload's drain does, now rather than soon
		})
	}
	testHookShardLease.Store(&hook)
	defer testHookShardLease.Store(nil)
	n, err := count()
	testHookShardLease.Store(nil)
	if reloadErr != nil {
		t.Fatal(reloadErr)
	}
	if v := p.srv.Shards.Get("orders").Map.Version(); v == v0 {
		t.Errorf("map version %d after a reload of the sharding settings; want a new one", v)
	}
	if err != nil || n != 6 {
		t.Fatalf("scatter across the reload: %d rows, %v; want 6", n, err)
	}
	if n, err := count(); err != nil || n != 6 {
		t.Fatalf("scatter after the reload: %d rows, %v; want 6", n, err)
	}
}

// A statement that names a database on a sharded database is refused
// before it reaches a shard: orders_0.orders used to read shard 0's
// physical table on whichever shard the key picked (14 of 20 rows), and an
// UPDATE of it changed rows the shard map puts elsewhere.
func TestShardQualifiedNamesRefused(t *testing.T) {
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	m := p.srv.Shards.Get("orders").Map
	a, _ := twoShardKeys(m) // a is on shard 0
	db := p.openOrders(t, "")
	db.SetMaxOpenConns(1) // one session: it must stay usable after each refusal
	ctx := context.Background()
	for i := int64(1); i <= 20; i++ {
		if _, err := db.ExecContext(ctx, "INSERT INTO orders (id, customer_id, total) VALUES (?, ?, 1)", i, i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO orders (id, customer_id, total) VALUES (100, ?, 1)", a); err != nil {
		t.Fatal(err)
	}
	before := onShard(t, 1, "SELECT COUNT(*) FROM {db}.orders")
	for _, c := range []struct{ q, says string }{
		{"SELECT COUNT(*) FROM orders_0.orders", "(orders_0)"},
		{fmt.Sprintf("SELECT COUNT(*) FROM orders_1.orders WHERE customer_id = %d", a), "(orders_1)"},
		{fmt.Sprintf("UPDATE orders_1.orders SET total = 7 WHERE customer_id = %d", a), "(orders_1)"},
		{fmt.Sprintf("INSERT INTO orders_1.orders (id, customer_id) VALUES (101, %d)", a), "(orders_1)"},
		{"SHOW TABLES FROM orders_1", "(orders_1)"},
		{"SELECT COUNT(*) FROM orders.orders", "without the database"},
	} {
		_, err := db.ExecContext(ctx, c.q)
		wantRefused(t, err, c.q, c.says)
	}
	if got := onShard(t, 1, "SELECT COUNT(*) FROM {db}.orders"); got != before {
		t.Errorf("shard 1's physical table went from %s to %s rows through refused statements", before, got)
	}
	if got := onShard(t, 1, "SELECT COUNT(*) FROM {db}.orders WHERE total = 7"); got != "0" {
		t.Errorf("an UPDATE of orders_1.orders changed %s rows", got)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders").Scan(&n); err != nil || n != 21 {
		t.Errorf("SELECT COUNT(*) FROM orders after the refusals: %d, %v; want 21", n, err)
	}
	// The server's own databases are every shard's alike (other tests
	// may have left more tables than these two).
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN ('orders', 'customers')").Scan(&n); err != nil || n != 2 {
		t.Errorf("information_schema: %d tables, %v; want 2", n, err)
	}
}

// A key written as text that is no number whole ('5abc', 'abc') compared
// with a numeric key column: MariaDB reads it as the number it starts with
// (5, 0), so the statement must go to that number's shard, not to the
// shard of the text's bytes (which found nothing and updated nothing). A
// text key column keeps routing by the bytes.
func TestShardTextKeyOnNumericColumn(t *testing.T) {
	resetShardTables(t)
	for _, db := range []string{"orders_0", "orders_1"} {
		rootExec(t, fmt.Sprintf(`DROP TABLE IF EXISTS %[1]s.tags;
CREATE TABLE %[1]s.tags (customer_id VARCHAR(40) PRIMARY KEY, tag VARCHAR(40))`, db))
	}
	t.Cleanup(func() { rootExec(t, "DROP TABLE IF EXISTS orders_0.tags, orders_1.tags") })
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	m := p.srv.Shards.Get("orders").Map
	// Texts whose number and bytes are on different shards.
	differs := func(text string, n int64) bool {
		sn, _ := m.ShardOfInt(n)
		sb, err := m.ShardOf(text)
		return err == nil && sn != sb
	}
	var n int64 = 1
	for !differs(fmt.Sprintf("%dabc", n), n) {
		n++
	}
	mixed := fmt.Sprintf("%dabc", n)
	word := ""
	for _, w := range []string{"abc", "xyz", "apple", "kiwi", "plum", "fig", "lime", "pear", "date", "sloe"} {
		if differs(w, 0) {
			word = w
			break
		}
	}
	if word == "" {
		t.Fatal("no word found whose bytes are on another shard than 0")
	}
	sn, _ := m.ShardOfInt(n)
	s0, _ := m.ShardOfInt(0)
	rootExec(t, fmt.Sprintf("INSERT INTO orders_%d.orders (id, customer_id, note) VALUES (1, %d, 'n')", sn, n))
	rootExec(t, fmt.Sprintf("INSERT INTO orders_%d.orders (id, customer_id, note) VALUES (2, 0, 'zero')", s0))
	ctx := context.Background()
	for _, params := range []string{"interpolateParams=true", ""} {
		t.Run("params="+params, func(t *testing.T) {
			db := p.openOrders(t, params)
			for text, want := range map[string]string{mixed: "1", word: "2", "": "2"} {
				if got := rowsOf(t, db, "SELECT id FROM orders WHERE customer_id = ?", text); len(got) != 1 || got[0] != want {
					t.Errorf("customer_id = %q: rows %v, want [%s] (MariaDB reads it as a number)", text, got, want)
				}
			}
			res, err := db.ExecContext(ctx, "UPDATE orders SET note = ? WHERE customer_id = ?", params, mixed)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				t.Errorf("UPDATE ... WHERE customer_id = %q: %d rows affected, want 1", mixed, n)
			}
			if got := onShard(t, sn, "SELECT note FROM {db}.orders WHERE id = 1"); got != params {
				t.Errorf("row 1's note %q, want %q", got, params)
			}
			// A text key column: the bytes decide, as before.
			tag := mixed + params
			if _, err := db.ExecContext(ctx, "INSERT INTO tags (customer_id, tag) VALUES (?, 't')", tag); err != nil {
				t.Fatal(err)
			}
			sb, _ := m.ShardOf(tag)
			if got := onShard(t, sb, fmt.Sprintf("SELECT COUNT(*) FROM {db}.tags WHERE customer_id = '%s'", tag)); got != "1" {
				t.Errorf("text key %q: %s rows on shard %d (its bytes' shard), want 1", tag, got, sb)
			}
			if got := rowsOf(t, db, "SELECT tag FROM tags WHERE customer_id = ?", tag); len(got) != 1 {
				t.Errorf("text key %q read back: %v", tag, got)
			}
		})
	}
}

// A switchyard command sent with other statements in one query (with
// multiStatements) is refused as a whole, as on PostgreSQL: it set a key
// of "42; SELECT 1" and the SELECT never ran.
func TestShardProxyCommandNotAlone(t *testing.T) {
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	c := conn(t, p.openOrders(t, "multiStatements=true"))
	_, err := c.ExecContext(context.Background(), "SET switchyard.shard_key = 42; SELECT 1")
	if err == nil || !strings.Contains(err.Error(), "alone") {
		t.Fatalf("SET switchyard.shard_key with a SELECT after it: %v, want refused as not sent alone", err)
	}
	if got := queryString(t, c, "SHOW switchyard.shard_key"); got != "" {
		t.Errorf("SHOW switchyard.shard_key after the refused SET: %q, want it unset", got)
	}
}
