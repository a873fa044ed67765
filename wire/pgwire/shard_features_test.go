package pgwire

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/shard"
)

// shardReplicaConfig is shardConfig with more settings: sharding goes to
// [clusters.sharding], defaults to [defaults], and with replicas each
// shard lists the test cluster's two replicas (which stream every
// database of the primary, so orders_0 on a replica is a replica of shard
// 0).
func shardReplicaConfig(sharding, defaults string, replicas bool) string {
	pg := testcluster.PG
	reps := ""
	if replicas {
		reps = fmt.Sprintf("replicas = [%q, %q]", pg.Replicas[0].Addr(), pg.Replicas[1].Addr())
	}
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
[clusters.sharding]
kind = "hash"
key = "customer_id"
%s
[[clusters.shards]]
primary = %q
database = "orders_0"
%s
[[clusters.shards]]
primary = %q
database = "orders_1"
%s
`, withDefaults(defaults, "pool_size = 5", `max_replica_lag = "300ms"`, `lag_poll_interval = "20ms"`),
		sharding, pg.Primary.Addr(), reps, pg.Primary.Addr(), reps)
}

// keysOn returns n keys that the test map (hash, 2 shards, 1024 buckets)
// puts on shard s, from start up.
func keysOn(s, n int, start int64) []int64 {
	m, _ := shard.NewHash(2, 1024, 1)
	var out []int64
	for k := start; len(out) < n; k++ {
		if got, _ := m.ShardOfInt(k); got == s {
			out = append(out, k)
		}
	}
	return out
}

func shardCount(t *testing.T, conn *pgx.Conn, where string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM orders "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Reads by key go to a caught-up replica of their shard; a client reads
// its own writes on every shard even with one replica's replay paused;
// writes, and reads in a write transaction, stay on the shard's primary;
// a scatter reads every shard from replicas.
func TestShardReplicaReads(t *testing.T) {
	p := serveConfig(t, shardReplicaConfig("", "", true))
	shards := shardConns(t)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	primary, replicas := nodePorts()
	ctx := ctxT(t, 120*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	// Point reads of both shards are served by replicas.
	waitShardReplicasEligible(t, p)
	for s := range 2 {
		k := keysOn(s, 1, 1)[0]
		for range 10 {
			if port := serverPort(t, conn, "SELECT inet_server_port() + 0 * count(*) FROM orders WHERE customer_id = $1", k); port == primary {
				t.Fatalf("read of key %d (shard %d) ran on the primary", k, s)
			}
		}
	}
	// A write, and a read inside a write transaction, run on the primary.
	k0 := keysOn(0, 1, 1000)[0]
	if port := serverPort(t, conn, "INSERT INTO orders (customer_id, amount) VALUES ($1, 1) RETURNING inet_server_port()", k0); port != primary {
		t.Fatalf("insert ran on %d", port)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE orders SET amount = 2 WHERE customer_id = $1", k0); err != nil {
		t.Fatal(err)
	}
	var port int
	if err := tx.QueryRow(ctx, "SELECT inet_server_port() FROM orders WHERE customer_id = $1", k0).Scan(&port); err != nil || port != primary {
		t.Fatalf("read in a write transaction ran on %d (%v)", port, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// A read-only transaction may use a replica.
	time.Sleep(200 * time.Millisecond)
	waitShardReplicasEligible(t, p)
	tx, err = conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "SELECT inet_server_port() FROM orders WHERE customer_id = $1", k0).Scan(&port); err != nil || port == primary {
		t.Fatalf("read-only transaction ran on %d (%v), want a replica", port, err)
	}
	_ = tx.Commit(ctx)

	// Scatter: every shard's rows come from a replica.
	k1 := keysOn(1, 1, 1000)[0]
	if _, err := conn.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, 1)", k1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	waitShardReplicasEligible(t, p)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		rows, _ := conn.Query(ctx, "SELECT inet_server_port() FROM orders", mode)
		ports, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil || len(ports) != 2 {
			t.Fatalf("%v: scatter: %v, %v", mode, ports, err)
		}
		for _, p := range ports {
			if int(p) == primary {
				t.Errorf("%v: scatter read a shard on the primary: %v", mode, ports)
			}
		}
	}

	// Read-your-writes on every shard, one replica paused: clients write
	// a row and read it back at once, by key and by scatter.
	superExec(t, replicas[0], `SELECT pg_wal_replay_pause()`)
	defer superExec(t, replicas[0], `SELECT pg_wal_replay_resume()`)
	const clients, pairs = 6, 60
	var stale, failures, onReplica atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, p.dsn("app", "app", "orders"))
			if err != nil {
				failures.Add(1)
				return
			}
			defer conn.Close(context.Background())
			for i := range pairs {
				k := int64(100_000 + c*1000 + i)
				amount := 1_000_000 + c*1000 + i
				if _, err := conn.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, $2)", k, amount); err != nil {
					failures.Add(1)
					continue
				}
				var n, port int
				if err := conn.QueryRow(ctx, "SELECT count(*), inet_server_port() FROM orders WHERE customer_id = $1", k).Scan(&n, &port); err != nil {
					failures.Add(1)
					continue
				}
				if n != 1 {
					stale.Add(1)
				}
				if port != primary {
					onReplica.Add(1)
				}
				if i%5 == 0 { // scatter: the row is on one shard, found wherever it is
					if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE amount = $1", amount).Scan(&n); err != nil {
						failures.Add(1)
					} else if n != 1 {
						stale.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d write-then-read pairs with a replica paused: %d stale, %d failed, %d point reads on a replica",
		clients*pairs, stale.Load(), failures.Load(), onReplica.Load())
	if stale.Load() != 0 || failures.Load() != 0 {
		t.Fatalf("stale reads %d, failures %d", stale.Load(), failures.Load())
	}
	// A client that never writes is not served by the paused replica once
	// it lags past max_replica_lag, and is by the other one.
	paused := fmt.Sprintf("127.0.0.1:%d", replicas[0])
	deadline := time.Now().Add(10 * time.Second)
	for ineligible := false; !ineligible; {
		if time.Now().After(deadline) {
			t.Fatalf("the paused replica %s is still eligible on shard 0 after 10s", paused)
		}
		mustExec(t, `SELECT txid_current()`) // keep the primary's position moving
		for _, st := range p.srv.Shards.Get("orders").Replicas[0].Set.Status() {
			ineligible = ineligible || st.Name == paused && !st.Eligible
		}
		time.Sleep(20 * time.Millisecond)
	}
	reader, err := pgx.Connect(ctx, p.dsn("app", "app", "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(context.Background())
	ports := map[int]int{}
	for range 50 {
		ports[serverPort(t, reader, "SELECT inet_server_port() + 0 * count(*) FROM orders WHERE customer_id = $1", k0)]++
	}
	t.Logf("reader's reads of shard 0 per port: %v", ports)
	if ports[replicas[0]] != 0 || ports[replicas[1]] == 0 {
		t.Fatalf("reader's reads per port %v: want none on the paused replica %d, some on %d", ports, replicas[0], replicas[1])
	}
	_ = shards
}

// waitShardReplicasEligible waits until every replica of every shard may
// serve reads (a loaded machine can leave one past max_replica_lag for a
// moment), so that what a test checks next is routing, not lag.
func waitShardReplicasEligible(t *testing.T, p *testProxy) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := true
		for _, rep := range p.srv.Shards.Get("orders").Replicas {
			for _, st := range rep.Set.Status() {
				all = all && st.Eligible
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("shard replicas still not eligible for reads after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SET switchyard.shard_key routes the statements that name no key of
// their own; RESET and DEFAULT clear it.
func TestShardSessionKey(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	k0, k1 := keysOn(0, 3, 1), keysOn(1, 3, 1)
	for _, k := range append(k0, k1...) {
		if _, err := conn.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, 1)", k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("SET switchyard.shard_key = '%d'", k1[0])); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := conn.QueryRow(ctx, "SHOW switchyard.shard_key", pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil || v != fmt.Sprint(k1[0]) {
		t.Fatalf("SHOW switchyard.shard_key: %q, %v", v, err)
	}
	// A keyless read and keyless writes run on shard 1 only.
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 3 {
		t.Fatalf("keyless count with the session key on shard 1: %d, %v (want shard 1's 3)", n, err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO orders (amount) VALUES (42)"); err != nil {
		t.Fatalf("insert without the key column: %v", err)
	}
	tag, err := conn.Exec(ctx, "UPDATE orders SET amount = 5 WHERE amount = 1")
	if err != nil || tag.RowsAffected() != 3 {
		t.Fatalf("keyless update: %v, %v (want 3 rows, shard 1's)", tag, err)
	}
	if got := shardCount(t, shards[1], "WHERE amount = 42"); got != 1 {
		t.Errorf("shard 1 has %d rows of the keyless insert", got)
	}
	if got := shardCount(t, shards[0], "WHERE amount = 5"); got != 0 {
		t.Errorf("the keyless update changed %d rows of shard 0", got)
	}
	// A statement's own key wins over the session's.
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE customer_id = $1", k0[0]).Scan(&n); err != nil || n != 1 {
		t.Fatalf("keyed read of shard 0 with the session key on shard 1: %d, %v", n, err)
	}
	// In a transaction: keyless statements stay on the session key's
	// shard, a key of the other shard is refused.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE orders SET amount = 6 WHERE amount = 5"); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "UPDATE orders SET amount = 6 WHERE customer_id = $1", k0[0])
	wantSQLState(t, err, "0A000", "other shard in a session-key transaction")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := shardCount(t, shards[1], "WHERE amount = 6"); got != 3 {
		t.Errorf("committed keyless update: %d rows on shard 1, want 3", got)
	}
	// A key the map cannot place is refused at SET; the old one stays.
	for _, clear := range []string{"RESET switchyard.shard_key", "SET switchyard.shard_key = DEFAULT", "SET switchyard.shard_key TO default"} {
		if _, err := conn.Exec(ctx, fmt.Sprintf("SET switchyard.shard_key TO %d", k0[1])); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 3 {
			t.Fatalf("keyless count with the session key on shard 0: %d, %v", n, err)
		}
		if _, err := conn.Exec(ctx, clear); err != nil {
			t.Fatalf("%s: %v", clear, err)
		}
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 7 {
			t.Fatalf("after %s: scatter count %d, %v (want 7)", clear, n, err)
		}
		_, err = conn.Exec(ctx, "UPDATE orders SET amount = 0")
		wantSQLState(t, err, "0A000", "keyless write after "+clear)
	}
	if err := conn.QueryRow(ctx, "SHOW switchyard.shard_key", pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil || v != "" {
		t.Fatalf("SHOW switchyard.shard_key after RESET: %q, %v", v, err)
	}
}

// A text key set with SET switchyard.shard_key (a tenant name, a UUID)
// stays what the client set while later statements arrive: it routed by
// whatever bytes the next statements left where the SET's text had been
// read (SHOW answered "OM " for 'abc'), so keyless writes went to other
// shards.
func TestShardSessionTextKeyKept(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	m, _ := shard.NewHash(2, 1024, 1)
	for want := range 2 {
		key := ""
		for i := 0; key == ""; i++ {
			if s, _ := m.ShardOfBytes([]byte(fmt.Sprintf("tenant-%d", i))); s == want {
				key = fmt.Sprintf("tenant-%d", i)
			}
		}
		if _, err := conn.Exec(ctx, "SET switchyard.shard_key = '"+key+"'"); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			// Statements of other lengths and bytes than the SET.
			if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO orders (amount) VALUES (%d) /* %s */", 100*want+i, strings.Repeat("x", i))); err != nil {
				t.Fatalf("keyless insert %d: %v", i, err)
			}
		}
		var v string
		if err := conn.QueryRow(ctx, "SHOW switchyard.shard_key").Scan(&v); err != nil || v != key {
			t.Fatalf("SHOW switchyard.shard_key after 20 statements: %q, %v; want %q", v, err, key)
		}
		where := fmt.Sprintf("WHERE amount BETWEEN %d AND %d", 100*want, 100*want+19)
		if got := shardCount(t, shards[want], where); got != 20 {
			t.Errorf("key %q (shard %d): %d of 20 keyless inserts on its shard, %d on the other", key, want, got, shardCount(t, shards[1-want], where))
		}
	}
}

// A statement whose tables pin keys on two shards (a cross join of two
// customers, DELETE ... USING another customer's rows) is refused: it ran
// on the first key's shard, answering no rows where one database answers
// their product, and deleting nothing.
func TestShardJoinedKeysOnTwoShards(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	k0, k1 := keysOn(0, 2, 1), keysOn(1, 1, 1)
	for _, k := range []int64{k0[0], k0[1], k1[0]} {
		if _, err := conn.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, 3)", k); err != nil {
			t.Fatal(err)
		}
	}
	_, err = conn.Exec(ctx, "SELECT a.id, b.id FROM orders a, orders b WHERE a.customer_id = $1 AND b.customer_id = $2", k0[0], k1[0])
	wantSQLState(t, err, "0A000", "cross join of two shards' customers")
	_, err = conn.Exec(ctx, "DELETE FROM orders USING orders b WHERE orders.customer_id = $1 AND b.customer_id = $2", k0[0], k1[0])
	wantSQLState(t, err, "0A000", "DELETE USING another shard's rows")
	if n := shardCount(t, shards[0], "WHERE amount = 3"); n != 2 {
		t.Fatalf("shard 0 has %d of its 2 rows after the refused DELETE", n)
	}
	// Keys on one shard: it answers as one database.
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders a, orders b WHERE a.customer_id = $1 AND b.customer_id = $2", k0[0], k0[1]).Scan(&n); err != nil || n != 1 {
		t.Fatalf("cross join on one shard: %d, %v", n, err)
	}
}

// allow_all_shard_writes: a keyless UPDATE or DELETE outside a transaction
// runs on every shard and reports the sum; inside one it is refused; a
// keyless INSERT and a multi-row INSERT over two shards are refused
// either way.
func TestShardAllShardWrites(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow=%v", allow), func(t *testing.T) {
			p := serveConfig(t, shardReplicaConfig(fmt.Sprintf("allow_all_shard_writes = %v", allow), "", false))
			shards := shardConns(t)
			ctx := ctxT(t, 60*time.Second)
			simple, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+"&default_query_exec_mode=simple_protocol")
			if err != nil {
				t.Fatal(err)
			}
			defer simple.Close(context.Background())
			ext, err := pgx.Connect(ctx, p.dsn("app", "app", "orders"))
			if err != nil {
				t.Fatal(err)
			}
			defer ext.Close(context.Background())
			k0, k1 := keysOn(0, 4, 1), keysOn(1, 6, 1)

			// Multi-row INSERTs: one shard is fine, two are refused and
			// write nothing.
			if _, err := simple.Exec(ctx, fmt.Sprintf("INSERT INTO orders (customer_id, amount) VALUES (%d, 1), (%d, 1), (%d, 1), (%d, 1)", k0[0], k0[1], k0[2], k0[3])); err != nil {
				t.Fatalf("multi-row insert on one shard: %v", err)
			}
			if _, err := ext.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, 1), ($2, 1), ($3, 1)", k1[0], k1[1], k1[2]); err != nil {
				t.Fatalf("multi-row insert on one shard (extended): %v", err)
			}
			for i := 3; i < 6; i++ {
				if _, err := ext.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, 1)", k1[i]); err != nil {
					t.Fatal(err)
				}
			}
			_, err = simple.Exec(ctx, fmt.Sprintf("INSERT INTO orders (customer_id, amount) VALUES (%d, 9), (%d, 9)", k0[0], k1[0]))
			wantSQLState(t, err, "0A000", "multi-row insert over two shards")
			_, err = ext.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, 9), ($2, 9)", k1[1], k0[1])
			wantSQLState(t, err, "0A000", "multi-row insert over two shards (extended)")
			_, err = simple.Exec(ctx, "INSERT INTO orders (amount) VALUES (9)")
			wantSQLState(t, err, "0A000", "insert without the key")
			if a, b := shardCount(t, shards[0], "WHERE amount = 9"), shardCount(t, shards[1], "WHERE amount = 9"); a+b != 0 {
				t.Fatalf("refused inserts left rows: %d on shard 0, %d on shard 1", a, b)
			}

			tag, err := simple.Exec(ctx, "UPDATE orders SET amount = amount + 1")
			if !allow {
				wantSQLState(t, err, "0A000", "keyless update, not allowed")
				if got := shardCount(t, shards[0], "WHERE amount = 2") + shardCount(t, shards[1], "WHERE amount = 2"); got != 0 {
					t.Fatalf("a refused update changed %d rows", got)
				}
				return
			}
			if err != nil || tag.String() != "UPDATE 10" {
				t.Fatalf("keyless update on every shard: %q, %v (want UPDATE 10)", tag, err)
			}
			if a, b := shardCount(t, shards[0], "WHERE amount = 2"), shardCount(t, shards[1], "WHERE amount = 2"); a != 4 || b != 6 {
				t.Fatalf("keyless update changed %d rows of shard 0 and %d of shard 1; want 4 and 6", a, b)
			}
			// Extended protocol, with a parameter, and RETURNING.
			tag, err = ext.Exec(ctx, "UPDATE orders SET amount = $1 WHERE amount = $2", 3, 2)
			if err != nil || tag.String() != "UPDATE 10" {
				t.Fatalf("extended keyless update: %q, %v", tag, err)
			}
			rows, _ := ext.Query(ctx, "UPDATE orders SET amount = 4 WHERE customer_id IS NOT NULL RETURNING customer_id")
			got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil || len(got) != 10 {
				t.Fatalf("keyless update RETURNING: %v, %v (want 10 rows)", got, err)
			}
			// Inside a transaction: refused, the transaction goes on.
			tx, err := ext.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "UPDATE orders SET amount = 5 WHERE customer_id = $1", k0[0]); err != nil {
				t.Fatal(err)
			}
			_, err = tx.Exec(ctx, "DELETE FROM orders WHERE amount = $1", 4)
			wantSQLState(t, err, "0A000", "keyless delete in a transaction")
			if !strings.Contains(err.Error(), "transaction") {
				t.Errorf("the refusal does not say why: %v", err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if got := shardCount(t, shards[0], "WHERE amount = 5"); got != 1 {
				t.Errorf("the transaction's keyed update: %d rows", got)
			}
			tag, err = simple.Exec(ctx, "DELETE FROM orders WHERE amount = 4")
			if err != nil || tag.String() != "DELETE 9" {
				t.Fatalf("keyless delete on every shard: %q, %v (want DELETE 9)", tag, err)
			}
			if a, b := shardCount(t, shards[0], ""), shardCount(t, shards[1], ""); a != 1 || b != 0 {
				t.Fatalf("after the delete: %d rows on shard 0, %d on shard 1; want 1 and 0", a, b)
			}
		})
	}
}

// A switchyard command sent with other statements in one query is refused
// as a whole: "SET switchyard.shard_key = 42; SELECT 1" set a key of
// "42; SELECT 1" and answered SET, the SELECT never ran.
func TestShardProxyCommandNotAlone(t *testing.T) {
	p := startShardProxy(t)
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SET switchyard.shard_key = 42; SELECT 1")
	if sqlstate(err) != "22023" || !strings.Contains(err.Error(), "alone") {
		t.Fatalf("SET switchyard.shard_key with a SELECT after it: %v, want 22023 saying it must be sent alone", err)
	}
	var v string
	if err := conn.QueryRow(ctx, "SHOW switchyard.shard_key").Scan(&v); err != nil || v != "" {
		t.Fatalf("SHOW switchyard.shard_key after the refused SET: %q, %v; want it unset", v, err)
	}
	if _, err := conn.Exec(ctx, "SET switchyard.shard_key = 'a;b'"); err != nil {
		t.Fatalf("a key with a ';' inside its quotes: %v", err)
	}
	if err := conn.QueryRow(ctx, "SHOW switchyard.shard_key").Scan(&v); err != nil || v != "a;b" {
		t.Fatalf("SHOW switchyard.shard_key: %q, %v; want a;b", v, err)
	}
}
