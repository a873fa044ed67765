package pgwire

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/shard"
)

// startShardProxy serves database "orders", hash-sharded on customer_id
// over orders_0 and orders_1 of the test primary.
func startShardProxy(t testing.TB) *testProxy {
	t.Helper()
	return serveConfig(t, shardConfig(""))
}

// shardConfig is the config of startShardProxy; sharding is added to the
// [clusters.sharding] table.
func shardConfig(sharding string) string {
	pg := testcluster.PG
	return fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
shutdown_timeout = "5s"
[defaults]
pool_size = 5
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
%s
[[clusters.shards]]
primary = %q
database = "orders_0"
[[clusters.shards]]
primary = %q
database = "orders_1"
`, sharding, pg.Primary.Addr(), pg.Primary.Addr())
}

// shardConns connects to each shard database directly and (re)creates
// the orders table there.
func shardConns(t *testing.T) []*pgx.Conn {
	t.Helper()
	pg := testcluster.PG
	var out []*pgx.Conn
	for _, db := range []string{"orders_0", "orders_1"} {
		conn, err := pgx.Connect(ctxT(t, 30*time.Second), pg.DSN(pg.Primary, "app", "app", db))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		if _, err := conn.Exec(context.Background(), `DROP TABLE IF EXISTS orders;
			CREATE TABLE orders (customer_id bigint, id serial, amount int)`); err != nil {
			t.Fatal(err)
		}
		out = append(out, conn)
	}
	return out
}

func wantSQLState(t *testing.T, err error, code, what string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("%s: error %v; want SQLSTATE %s", what, err, code)
	}
	t.Logf("%s: %s", what, pe.Message)
}

func TestShardRouting(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	m, _ := shard.NewHash(2, 1024, 1)
	ctx := ctxT(t, 60*time.Second)

	modes := map[string]string{
		"simple": "&default_query_exec_mode=simple_protocol",
		"exec":   "&default_query_exec_mode=exec",
		"cache":  "", // pgx default: named prepared statements
	}
	conns := map[string]*pgx.Conn{}
	for name, opt := range modes {
		conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+opt)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		conns[name] = conn
	}
	simple := conns["simple"]

	// 200 rows: literals (simple), bind parameters in every mode.
	want := map[int64]int{} // customer → shard
	for i := int64(0); i < 200; i++ {
		cust := i*7919 + 3
		var err error
		switch i % 4 {
		case 0:
			_, err = simple.Exec(ctx, fmt.Sprintf("INSERT INTO orders (customer_id, amount) VALUES (%d, %d)", cust, i))
		case 1:
			_, err = simple.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, $2)", cust, i)
		case 2:
			_, err = conns["exec"].Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, $2)", cust, i)
		case 3:
			_, err = conns["cache"].Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, $2)", cust, i)
		}
		if err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
		s, _ := m.ShardOfInt(cust)
		want[cust] = s
	}
	// Each row is where the map says.
	total := 0
	for s, conn := range shards {
		rows, err := conn.Query(ctx, "SELECT customer_id FROM orders")
		if err != nil {
			t.Fatal(err)
		}
		custs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range custs {
			if want[c] != s {
				t.Errorf("customer %d on shard %d; the map says %d", c, s, want[c])
			}
		}
		total += len(custs)
		t.Logf("shard %d: %d rows", s, len(custs))
	}
	if total != 200 {
		t.Fatalf("%d rows in the shards, want 200", total)
	}

	// Point reads and updates by key, in every mode.
	for name, conn := range conns {
		for _, cust := range []int64{3, 7919*5 + 3, 7919*150 + 3} {
			var amount int
			if err := conn.QueryRow(ctx, "SELECT amount FROM orders WHERE customer_id = $1", cust).Scan(&amount); err != nil {
				t.Fatalf("%s: point read %d: %v", name, cust, err)
			}
			if amount != int((cust-3)/7919) {
				t.Errorf("%s: customer %d amount %d", name, cust, amount)
			}
			tag, err := conn.Exec(ctx, "UPDATE orders SET amount = amount + 0 WHERE customer_id = $1", cust)
			if err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("%s: update %d: %v %v", name, cust, tag, err)
			}
		}
	}
	var n int
	if err := simple.QueryRow(ctx, "SELECT count(*) FROM orders WHERE customer_id = 3").Scan(&n); err != nil || n != 1 {
		t.Fatalf("literal point read: %d, %v", n, err)
	}
	// Hints.
	if err := simple.QueryRow(ctx, "/* switchyard:shard=1 */ SELECT count(*) FROM orders").Scan(&n); err != nil {
		t.Fatal(err)
	}
	var direct int
	shards[1].QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&direct)
	if n != direct {
		t.Errorf("shard=1 hint: %d rows, shard 1 has %d", n, direct)
	}
	if err := simple.QueryRow(ctx, "/* switchyard:shard_key=3 */ SELECT count(*) FROM orders").Scan(&n); err != nil {
		t.Fatal(err)
	}
	shards[want[3]].QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&direct)
	if n != direct {
		t.Errorf("shard_key=3 hint: %d rows, shard %d has %d", n, want[3], direct)
	}

	// Scatter: count, ORDER BY + LIMIT, aggregates.
	if err := simple.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 200 {
		t.Fatalf("scatter count: %d, %v", n, err)
	}
	var sum, mn, mx int
	if err := simple.QueryRow(ctx, "SELECT sum(amount), min(amount), max(amount) FROM orders").Scan(&sum, &mn, &mx); err != nil ||
		sum != 199*200/2 || mn != 0 || mx != 199 {
		t.Fatalf("scatter sum/min/max: %d %d %d, %v", sum, mn, mx, err)
	}
	type row struct {
		Cust   int64
		Amount int
	}
	var union []row
	for _, conn := range shards {
		rows, _ := conn.Query(ctx, "SELECT customer_id, amount FROM orders")
		rs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		if err != nil {
			t.Fatal(err)
		}
		union = append(union, rs...)
	}
	sort.SliceStable(union, func(i, j int) bool { return union[i].Amount > union[j].Amount })
	rows, _ := simple.Query(ctx, "SELECT customer_id, amount FROM orders ORDER BY amount DESC LIMIT 5")
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, union[:5]) {
		t.Errorf("scatter ORDER BY amount DESC LIMIT 5 = %v; union of the shards: %v", got, union[:5])
	}
	// The same in the extended protocol, every mode.
	for name, conn := range conns {
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 200 {
			t.Fatalf("%s: scatter count: %d, %v", name, n, err)
		}
		if err := conn.QueryRow(ctx, "SELECT sum(amount), min(amount), max(amount) FROM orders WHERE amount >= $1", 0).Scan(&sum, &mn, &mx); err != nil ||
			sum != 199*200/2 || mn != 0 || mx != 199 {
			t.Fatalf("%s: scatter sum/min/max: %d %d %d, %v", name, sum, mn, mx, err)
		}
		rows, _ := conn.Query(ctx, "SELECT customer_id, amount FROM orders ORDER BY amount DESC LIMIT 5")
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(got, union[:5]) {
			t.Errorf("%s: scatter ORDER BY amount DESC LIMIT 5 = %v; union of the shards: %v", name, got, union[:5])
		}
		// A point read still works after the scatter on this connection.
		if err := conn.QueryRow(ctx, "SELECT amount FROM orders WHERE customer_id = $1", int64(3)).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%s: point read after scatter: %d, %v", name, n, err)
		}
	}
	rows, _ = simple.Query(ctx, "SELECT customer_id FROM orders")
	all, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(all) != 200 {
		t.Fatalf("scatter select: %d rows, %v", len(all), err)
	}

	// Refusals: a write without a key, an unmergeable scatter, a
	// transaction over two shards. The connection keeps working.
	_, err = simple.Exec(ctx, "UPDATE orders SET amount = 0")
	wantSQLState(t, err, "0A000", "write without key")
	_, err = conns["exec"].Exec(ctx, "DELETE FROM orders WHERE amount = $1", 5)
	wantSQLState(t, err, "0A000", "extended write without key")
	_, err = simple.Exec(ctx, "SELECT amount, count(*) FROM orders GROUP BY amount")
	wantSQLState(t, err, "0A000", "GROUP BY scatter")
	_, err = simple.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES (1, 1); INSERT INTO orders (customer_id, amount) VALUES (2, 2)")
	wantSQLState(t, err, "0A000", "several statements")
	_, err = simple.Exec(ctx, "-- clean up\nTRUNCATE orders")
	wantSQLState(t, err, "0A000", "TRUNCATE without a shard")
	rows, _ = simple.Query(ctx, "SELECT amount FROM orders ORDER BY amount OFFSET 3")
	if amounts, err := pgx.CollectRows(rows, pgx.RowTo[int32]); err != nil || len(amounts) != 197 || amounts[0] != 3 {
		t.Fatalf("scatter OFFSET 3: %d rows from %v, %v; want 197 from 3", len(amounts), amounts[:min(len(amounts), 1)], err)
	}
	for s := range shards {
		if _, err := simple.Exec(ctx, fmt.Sprintf("/* switchyard:shard=%d */ CREATE TABLE IF NOT EXISTS shard_probe (x int)", s)); err != nil {
			t.Fatalf("hinted DDL on shard %d: %v", s, err)
		}
		if err := shards[s].QueryRow(ctx, "SELECT count(*) FROM shard_probe").Scan(&n); err != nil {
			t.Fatalf("hinted DDL did not reach shard %d: %v", s, err)
		}
		if _, err := simple.Exec(ctx, fmt.Sprintf("/* switchyard:shard=%d */ DROP TABLE shard_probe", s)); err != nil {
			t.Fatal(err)
		}
	}

	var a, b int64 = -1, -1
	for c, s := range want {
		if s == 0 && a < 0 {
			a = c
		}
		if s == 1 && b < 0 {
			b = c
		}
	}
	for name, conn := range conns {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "UPDATE orders SET amount = amount + 1000 WHERE customer_id = $1", a); err != nil {
			t.Fatalf("%s: tx update: %v", name, err)
		}
		_, err = tx.Exec(ctx, "UPDATE orders SET amount = amount + 1000 WHERE customer_id = $1", b)
		wantSQLState(t, err, "0A000", name+": two-shard transaction")
		// The transaction is untouched: still open on shard 0.
		var amt int
		if err := tx.QueryRow(ctx, "SELECT amount FROM orders WHERE customer_id = $1", a).Scan(&amt); err != nil || amt < 1000 {
			t.Fatalf("%s: after the refusal: %d, %v", name, amt, err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatalf("%s: rollback: %v", name, err)
		}
		if err := conn.QueryRow(ctx, "SELECT amount FROM orders WHERE customer_id = $1", a).Scan(&amt); err != nil || amt >= 1000 {
			t.Fatalf("%s: rolled back: %d, %v", name, amt, err)
		}
	}
	// A transaction on one shard commits.
	tx, err := simple.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, 1)", b); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	shards[1].QueryRow(ctx, "SELECT count(*) FROM orders WHERE customer_id = $1", b).Scan(&n)
	if n != 2 {
		t.Errorf("committed insert: %d rows for %d on shard 1", n, b)
	}
}

// A reload that keeps the sharding keeps the map (and its version); one
// that changes it builds a new map with the next version.
func TestShardReloadVersion(t *testing.T) {
	p := startShardProxy(t)
	version := func() uint64 {
		t.Helper()
		v := p.srv.Shards.Get("orders").Map.Version()
		var m dto.Metric
		if err := metrics.ShardMapVersion.WithLabelValues("postgres", "orders").Write(&m); err != nil {
			t.Fatal(err)
		}
		if g := m.GetGauge().GetValue(); g != float64(v) {
			t.Errorf("switchyard_shard_map_version = %v, map version %d", g, v)
		}
		return v
	}
	m0 := p.srv.Shards.Get("orders").Map
	if version() != 1 {
		t.Fatalf("initial version %d", version())
	}
	reload := func(sharding string) {
		t.Helper()
		cfg, err := config.Parse([]byte(shardConfig(sharding)), "test.toml")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	reload("")
	if version() != 1 || p.srv.Shards.Get("orders").Map != m0 {
		t.Errorf("unchanged reload: version %d, same map %v", version(), p.srv.Shards.Get("orders").Map == m0)
	}
	reload("buckets = 512")
	if version() != 2 {
		t.Errorf("changed reload: version %d, want 2", version())
	}
	reload("buckets = 512")
	if version() != 2 {
		t.Errorf("unchanged reload: version %d, want 2", version())
	}
	// Still serving.
	conn, err := pgx.Connect(ctxT(t, 30*time.Second), p.rawDSN("app", "app", "orders")+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after reloads: %d, %v", n, err)
	}
}

// Clients at once, every protocol mode: inserts by key, point reads,
// scatter counts, transactions with a proxy-answered BEGIN. Every row ends
// on its shard and nothing fails.
func TestShardConcurrent(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	m, _ := shard.NewHash(2, 1024, 1)
	ctx := ctxT(t, 120*time.Second)
	modes := []string{"&default_query_exec_mode=simple_protocol", "&default_query_exec_mode=exec", ""}
	const clients, each = 9, 30
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+modes[w%len(modes)])
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(context.Background())
			for i := range each {
				cust := int64(w*1000 + i)
				if i%3 == 0 {
					tx, err := conn.Begin(ctx)
					if err != nil {
						errs <- err
						return
					}
					if _, err := tx.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, $2)", cust, i); err != nil {
						errs <- fmt.Errorf("tx insert: %w", err)
						return
					}
					if err := tx.Commit(ctx); err != nil {
						errs <- err
						return
					}
				} else if _, err := conn.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, $2)", cust, i); err != nil {
					errs <- fmt.Errorf("insert: %w", err)
					return
				}
				var n int
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE customer_id = $1", cust).Scan(&n); err != nil || n != 1 {
					errs <- fmt.Errorf("point read %d: %d, %v", cust, n, err)
					return
				}
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n < 1 {
					errs <- fmt.Errorf("scatter count: %d, %v", n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for s, conn := range shards {
		rows, _ := conn.Query(ctx, "SELECT customer_id FROM orders")
		custs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range custs {
			if w, _ := m.ShardOfInt(c); w != s {
				t.Errorf("customer %d on shard %d; the map says %d", c, s, w)
			}
		}
		total += len(custs)
	}
	if total != clients*each {
		t.Errorf("%d rows, want %d", total, clients*each)
	}
}

// A BEGIN the proxy answered (no shard named yet) is ended by the proxy
// only for a plain COMMIT or ROLLBACK (router.LocalTxnVerb): ROLLBACK TO
// SAVEPOINT and COMMIT AND CHAIN go to a server with the BEGIN ahead of
// them, and answer as a database would.
func TestShardLazyBeginOnlyPlainEnds(t *testing.T) {
	p := startShardProxy(t)
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	status := func() byte { return conn.PgConn().TxStatus() }
	for _, end := range []string{"COMMIT", "END", "ROLLBACK", "ABORT"} {
		if _, err := conn.Exec(ctx, "BEGIN"); err != nil || status() != 'T' {
			t.Fatalf("BEGIN: %v, status %c", err, status())
		}
		if _, err := conn.Exec(ctx, end); err != nil || status() != 'I' {
			t.Fatalf("%s of a proxy-answered BEGIN: %v, status %c", end, err, status())
		}
	}
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "ROLLBACK TO SAVEPOINT nope")
	wantSQLState(t, err, "3B001", "ROLLBACK TO an unknown savepoint")
	if status() != 'E' {
		t.Fatalf("after a failed ROLLBACK TO: status %c, want E (the transaction goes on, failed)", status())
	}
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil || status() != 'I' {
		t.Fatalf("ROLLBACK: %v, status %c", err, status())
	}
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "COMMIT AND CHAIN"); err != nil || status() != 'T' {
		t.Fatalf("COMMIT AND CHAIN: %v, status %c; want a new transaction open", err, status())
	}
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil || status() != 'I' {
		t.Fatalf("ROLLBACK after the chain: %v, status %c", err, status())
	}
}
