package mysqlwire

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/faultnet"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// startSplitProxy serves database "app" from the MariaDB test primary and
// its replica, with read/write splitting. defaults is TOML added to
// [defaults].
func startSplitProxy(t testing.TB, defaults string) *testProxy {
	t.Helper()
	return serveProxy(t, splitConfig(t, defaults, true), slog.LevelError, true)
}

// splitConfig is the configuration of startSplitProxy; withReplica false
// leaves the replica out.
func splitConfig(t testing.TB, defaults string, withReplica bool) *config.Config {
	t.Helper()
	ma := testcluster.Maria
	replicas := fmt.Sprintf("replicas = [%q]", ma.Replicas[0].Addr())
	if !withReplica {
		replicas = ""
	}
	for _, d := range []string{"pool_size = 10", `max_replica_lag = "300ms"`, `lag_poll_interval = "20ms"`, `query_wait_timeout = "20s"`} {
		if !strings.Contains(defaults, strings.Fields(d)[0]+" ") {
			defaults += "\n" + d
		}
	}
	src := fmt.Sprintf(`
[proxy]
postgres_listen = ""
mysql_listen = "127.0.0.1:0"
admin_listen = ""
shutdown_timeout = "5s"

[defaults]
%s

[[users]]
name = "app"
password = "app"

[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q
%s
`, defaults, ma.Primary.Addr(), replicas)
	cfg, err := config.Parse([]byte(src), "split.toml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func replicaNode() testcluster.Node { return testcluster.Maria.Replicas[0] }

// onNode runs sql as root on n.
func onNode(t testing.TB, n testcluster.Node, q string) {
	t.Helper()
	if err := testcluster.Maria.Exec(n, q); err != nil {
		t.Fatalf("%s on %s: %v", q, n.Addr(), err)
	}
}

// portOf runs a query whose first column is @@port.
func portOf(t testing.TB, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, args ...any) int {
	t.Helper()
	var port int
	if err := q.QueryRowContext(context.Background(), query, args...).Scan(&port); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return port
}

func (p *testProxy) nodeStatus(t testing.TB, name string) (eligible bool) {
	t.Helper()
	rt := p.srv.Rts.Get("my")
	if rt == nil {
		t.Fatal("no routing runtime for cluster my")
	}
	for _, st := range rt.Set.Status() {
		if st.Name == name {
			return st.Eligible
		}
	}
	t.Fatalf("no replica %s", name)
	return false
}

// waitIneligible waits until the replica set gives a replica no reads (it
// lags past max_replica_lag while the primary keeps writing).
func waitIneligible(t testing.TB, p *testProxy, name string) {
	t.Helper()
	onNode(t, testcluster.Maria.Primary, "CREATE TABLE IF NOT EXISTS app.heartbeat (id INT PRIMARY KEY, at DATETIME(6))")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		onNode(t, testcluster.Maria.Primary, "REPLACE INTO app.heartbeat VALUES (1, NOW(6))") // keep the primary's position moving
		if !p.nodeStatus(t, name) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("replica %s still eligible after 10s", name)
}

// waitEligible waits until a replica may take reads that need no position.
func waitEligible(t testing.TB, p *testProxy, name string) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		if p.nodeStatus(t, name) {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("replica %s not eligible after 10s", name)
	return 0
}

func caughtUp(t testing.TB) {
	t.Helper()
	if err := testcluster.Maria.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestSplitReadsReplicaWritesPrimary(t *testing.T) {
	p := startSplitProxy(t, "")
	ma := testcluster.Maria
	primary, rep := ma.Primary.Port, replicaNode().Port
	onNode(t, ma.Primary, "CREATE TABLE IF NOT EXISTS app.t_split (id INT AUTO_INCREMENT PRIMARY KEY, port INT, v INT)")
	onNode(t, ma.Primary, "INSERT INTO app.t_split (port, v) VALUES (0, 0)")
	caughtUp(t)
	waitEligible(t, p, replicaNode().Addr())
	ctx := context.Background()

	// Reads from clients that never write: all on the replica, text and
	// prepared (COM_STMT_EXECUTE) alike.
	for _, params := range []string{"interpolateParams=true", ""} {
		db := p.open(t, params)
		db.SetMaxOpenConns(8)
		counts := map[int]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for c := 0; c < 8; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					var port int
					err := db.QueryRowContext(ctx, "SELECT @@port FROM t_split WHERE id >= ? LIMIT 1", 0).Scan(&port)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					counts[port]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if counts[primary] != 0 || counts[rep] != 200 {
			t.Fatalf("%q: reads per port %v (primary %d, replica %d): want all 200 on the replica", params, counts, primary, rep)
		}
	}

	// Writes and reads that must see the primary, on one connection.
	db := p.open(t, "")
	c := conn(t, db)
	res, err := c.ExecContext(ctx, "INSERT INTO t_split (port, v) VALUES (@@port, 1)")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	if _, err := c.ExecContext(ctx, "UPDATE t_split SET v = 2, port = @@port + 0 * v WHERE id = ?", id); err != nil {
		t.Fatal(err)
	}
	if got, err := ma.QueryString(ma.Primary, fmt.Sprintf("SELECT CONCAT(port, '/', v) FROM app.t_split WHERE id = %d", id)); err != nil || got != fmt.Sprintf("%d/2", primary) {
		t.Fatalf("INSERT/UPDATE ran where @@port = %q (%v), want the primary %d", got, err, primary)
	}
	for _, q := range []string{
		"SELECT @@port FROM t_split WHERE id = 1 FOR UPDATE",
		"SELECT @@port FROM t_split WHERE id = 1 LOCK IN SHARE MODE",
		"/* switchyard:primary */ SELECT @@port",
		"SELECT @@port + 0 * ROW_COUNT()",
	} {
		if port := portOf(t, c, q); port != primary {
			t.Errorf("%s ran on %d, want the primary %d", q, port, primary)
		}
	}
	// GET_LOCK pins the session to its (primary) connection.
	lc := conn(t, p.open(t, ""))
	var got sql.NullInt64
	var port int
	if err := lc.QueryRowContext(ctx, "SELECT GET_LOCK('t_split', 0), @@port").Scan(&got, &port); err != nil || port != primary {
		t.Fatalf("GET_LOCK ran on %d (%v), want the primary", port, err)
	}
	if port := portOf(t, lc, "SELECT @@port"); port != primary {
		t.Errorf("a session pinned by GET_LOCK read on %d, want the primary", port)
	}
	execSQL(t, lc, "DO RELEASE_LOCK('t_split')")

	// A transaction with a write runs whole on the primary, its reads too.
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if port := portOf(t, tx, "SELECT @@port"); port != primary {
		t.Errorf("read at the start of a read-write transaction ran on %d", port)
	}
	if _, err := tx.Exec("INSERT INTO t_split (port, v) VALUES (@@port, 3)"); err != nil {
		t.Fatal(err)
	}
	if port := portOf(t, tx, "SELECT @@port"); port != primary {
		t.Errorf("read inside a write transaction ran on %d", port)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	// A read-only transaction may use the replica (a client that has not
	// written: no position to wait for).
	ro := conn(t, p.open(t, ""))
	tx, err = ro.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if port := portOf(t, tx, "SELECT @@port"); port != rep {
		t.Errorf("read-only transaction ran on %d, want the replica %d", port, rep)
	}
	if port := portOf(t, tx, "SELECT @@port FROM t_split WHERE id = 1"); port != rep {
		t.Errorf("second statement of a read-only transaction ran on %d, want the replica %d", port, rep)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if port := portOf(t, ro, "SELECT @@port"); port != rep {
		t.Errorf("read after a read-only transaction ran on %d", port)
	}
}

func TestSessionTargetAndWritePosition(t *testing.T) {
	p := startSplitProxy(t, "")
	ma := testcluster.Maria
	primary, rep := ma.Primary.Port, replicaNode().Port
	onNode(t, ma.Primary, "CREATE TABLE IF NOT EXISTS app.t_tok (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	caughtUp(t)
	waitEligible(t, p, replicaNode().Addr())
	ctx := context.Background()
	c := conn(t, p.open(t, ""))
	for _, tc := range []struct {
		set  string
		want int
	}{
		{"SET switchyard.target = 'primary'", primary},
		{"SET switchyard.target = 'replica'", rep},
		{"set SESSION switchyard.target=auto;", rep},
		{"SET switchyard.target = primary", primary},
		{"SET switchyard.target = 'auto'", rep},
	} {
		execSQL(t, c, tc.set)
		if port := portOf(t, c, "SELECT @@port"); port != tc.want {
			t.Errorf("after %s: read on %d, want %d", tc.set, port, tc.want)
		}
	}
	// Even SET switchyard.target = 'replica' does not send a write there.
	execSQL(t, c, "SET switchyard.target = 'replica'")
	execSQL(t, c, "INSERT INTO t_tok (v) VALUES (@@port)")
	execSQL(t, c, "SET switchyard.target = 'auto'")
	if _, err := c.ExecContext(ctx, "SET switchyard.target = 'sideways'"); mysqlErrNum(err) != erWrongValueForVar {
		t.Errorf("bad target: %v", err)
	}
	if _, err := c.ExecContext(ctx, "SET switchyard.nonsense = 1"); mysqlErrNum(err) != erUnknownSystemVariable {
		t.Errorf("unknown proxy variable: %v", err)
	}
	// A client that never wrote has no position.
	if got := queryString(t, conn(t, p.open(t, "")), "SHOW switchyard.write_position"); got != "" {
		t.Errorf("write position of a client that never wrote: %q", got)
	}

	// The position of a write, carried to another connection, keeps that
	// connection's reads off a replica that has not replayed it.
	execSQL(t, c, "INSERT INTO t_tok (v) VALUES (1)")
	tok := queryString(t, c, "SHOW switchyard.write_position")
	if tok == "" || !strings.Contains(tok, "-") {
		t.Fatalf("write position %q", tok)
	}
	caughtUp(t)
	other := conn(t, p.open(t, ""))
	execSQL(t, other, "SET switchyard.read_after = '"+tok+"'")
	if port := portOf(t, other, "SELECT @@port"); port != rep {
		t.Errorf("read after a replayed position went to %d, want the replica", port)
	}
	onNode(t, replicaNode(), "STOP SLAVE SQL_THREAD")
	defer onNode(t, replicaNode(), "START SLAVE SQL_THREAD")
	execSQL(t, c, "INSERT INTO t_tok (v) VALUES (2)")
	tok = queryString(t, c, "SHOW switchyard.write_position")
	execSQL(t, other, "SET switchyard.read_after = '"+tok+"'")
	for i := 0; i < 20; i++ {
		var n, port int
		if err := other.QueryRowContext(ctx, "SELECT COUNT(*), @@port FROM t_tok WHERE v = 2").Scan(&n, &port); err != nil {
			t.Fatal(err)
		}
		if n != 1 || port != primary {
			t.Fatalf("read after an unreplayed position: %d rows on %d, want 1 on the primary", n, port)
		}
	}
	if _, err := other.ExecContext(ctx, "SET switchyard.read_after = 'not a gtid'"); mysqlErrNum(err) != erWrongValueForVar {
		t.Errorf("bad position: %v", err)
	}
	execSQL(t, other, "SET switchyard.read_after = ''")
}

// With autocommit off any statement may open a transaction that writes
// later: the session stays on the primary until autocommit is back on.
func TestAutocommitOffStaysOnPrimary(t *testing.T) {
	p := startSplitProxy(t, "")
	ma := testcluster.Maria
	primary, rep := ma.Primary.Port, replicaNode().Port
	onNode(t, ma.Primary, "CREATE TABLE IF NOT EXISTS app.t_ac (id INT PRIMARY KEY, v INT)")
	onNode(t, ma.Primary, "REPLACE INTO app.t_ac VALUES (1, 0)")
	caughtUp(t)
	waitEligible(t, p, replicaNode().Addr())
	c := conn(t, p.open(t, ""))
	if port := portOf(t, c, "SELECT @@port"); port != rep {
		t.Fatalf("read on %d before SET autocommit = 0", port)
	}
	execSQL(t, c, "SET autocommit = 0")
	for i := 0; i < 3; i++ {
		if port := portOf(t, c, "SELECT @@port FROM t_ac WHERE id = 1"); port != primary {
			t.Fatalf("read %d with autocommit off ran on %d, want the primary", i, port)
		}
		execSQL(t, c, "UPDATE t_ac SET v = v + 1 WHERE id = 1")
		execSQL(t, c, "COMMIT")
	}
	execSQL(t, c, "SET autocommit = 1")
	caughtUp(t)
	deadline := time.Now().Add(2 * time.Second)
	for portOf(t, c, "SELECT @@port") != rep {
		if time.Now().After(deadline) {
			t.Fatal("reads stayed on the primary after SET autocommit = 1")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Reload: a cluster that loses its replicas reads from the primary, its
// monitor stops; one that gets them back reads from the replica again. An
// unchanged cluster keeps its runtime.
func TestSplitReload(t *testing.T) {
	p := startSplitProxy(t, "")
	ma := testcluster.Maria
	primary, rep := ma.Primary.Port, replicaNode().Port
	waitEligible(t, p, replicaNode().Addr())
	c := conn(t, p.open(t, ""))
	if port := portOf(t, c, "SELECT @@port"); port != rep {
		t.Fatalf("read on %d, want the replica", port)
	}
	rt := p.srv.Rts.Get("my")
	p.srv.Reload(splitConfig(t, "", true))
	if p.srv.Rts.Get("my") != rt {
		t.Error("an unchanged cluster got a new routing runtime")
	}
	p.srv.Reload(splitConfig(t, "", false))
	if p.srv.Rts.Get("my") != nil {
		t.Fatal("a cluster without replicas still has a routing runtime")
	}
	if port := portOf(t, c, "SELECT @@port"); port != primary {
		t.Errorf("read on %d after the replica left the config, want the primary", port)
	}
	p.srv.Reload(splitConfig(t, `max_replica_lag = "2s"`, true))
	waitEligible(t, p, replicaNode().Addr())
	if port := portOf(t, c, "SELECT @@port"); port != rep {
		t.Errorf("read on %d after the replica came back, want the replica", port)
	}
}

// The write-then-read workload of the issue: with the replica's SQL thread
// stopped, clients that insert a row and read it back at once always see
// it, and a client that never writes stops being served by the replica
// once it lags past max_replica_lag; after replay resumes, the replica
// takes reads again within a few polls.
func TestReadYourWritesPausedReplica(t *testing.T) {
	p := startSplitProxy(t, "")
	ma := testcluster.Maria
	primary, rep := ma.Primary.Port, replicaNode().Port
	onNode(t, ma.Primary, "DROP TABLE IF EXISTS app.t_ryw")
	onNode(t, ma.Primary, "CREATE TABLE app.t_ryw (id BIGINT PRIMARY KEY, client INT)")
	caughtUp(t)
	waitEligible(t, p, replicaNode().Addr())
	onNode(t, replicaNode(), "STOP SLAVE SQL_THREAD")
	resumed := false
	defer func() {
		if !resumed {
			onNode(t, replicaNode(), "START SLAVE SQL_THREAD")
		}
	}()
	ctx := context.Background()

	const clients, pairs = 20, 500
	var stale, failures, onReplica atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		params := "" // prepared statements (COM_STMT_EXECUTE)
		if c%2 == 0 {
			params = "interpolateParams=true" // text protocol
		}
		db := p.open(t, params)
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			cn, err := db.Conn(ctx)
			if err != nil {
				failures.Add(1)
				return
			}
			defer cn.Close()
			for i := 0; i < pairs; i++ {
				id := int64(c)*1_000_000 + int64(i)
				if _, err := cn.ExecContext(ctx, "INSERT INTO t_ryw VALUES (?, ?)", id, c); err != nil {
					t.Logf("client %d insert: %v", c, err)
					failures.Add(1)
					continue
				}
				var n, port int
				if err := cn.QueryRowContext(ctx, "SELECT COUNT(*), @@port FROM t_ryw WHERE id = ?", id).Scan(&n, &port); err != nil {
					t.Logf("client %d read: %v", c, err)
					failures.Add(1)
					continue
				}
				if n != 1 {
					stale.Add(1)
				}
				if port != primary {
					onReplica.Add(1)
				}
			}
		}(c)
	}
	// Meanwhile a client that never writes reads, and must not be served
	// by the paused replica once it lags past max_replica_lag.
	waitIneligible(t, p, replicaNode().Addr())
	reader := conn(t, p.open(t, ""))
	readerPorts := map[int]int{}
	for i := 0; i < 100; i++ {
		readerPorts[portOf(t, reader, "SELECT @@port")]++
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d write-then-read pairs in %v, replica paused: %d stale, %d failed, %d reads served by the replica (%.1f%%); never-writing reader: %v",
		clients*pairs, elapsed.Round(time.Millisecond), stale.Load(), failures.Load(), onReplica.Load(),
		100*float64(onReplica.Load())/float64(clients*pairs), readerPorts)
	if stale.Load() != 0 || failures.Load() != 0 {
		t.Fatalf("stale reads %d, failures %d", stale.Load(), failures.Load())
	}
	if readerPorts[rep] != 0 || readerPorts[primary] != 100 {
		t.Fatalf("reader's reads per port %v: want none on the lagging replica %d", readerPorts, rep)
	}

	// Replay resumes: the replica catches up and gets reads again.
	onNode(t, replicaNode(), "START SLAVE SQL_THREAD")
	resumed = true
	start = time.Now()
	caughtUp(t)
	replayed := time.Now()
	for portOf(t, reader, "SELECT @@port") != rep {
		if time.Since(replayed) > 2*time.Second {
			t.Fatal("the replica got no reads 2s after it caught up")
		}
		time.Sleep(2 * time.Millisecond)
	}
	back := time.Since(replayed)
	t.Logf("replica replayed %d rows in %v after START SLAVE SQL_THREAD, and got reads again %v after that (poll 20ms)",
		clients*pairs, replayed.Sub(start).Round(time.Millisecond), back.Round(time.Millisecond))
	if back > 500*time.Millisecond {
		t.Errorf("the replica took %v after catching up to get reads again: more than a few polls", back)
	}
}

// The share of reads the replica serves in the write-then-read workload
// when it replays normally, with causal_read_timeout 0 (a read that finds
// no replica with the client's write goes to the primary at once) and
// 100ms (it waits for one). No read may be stale either way.
func TestWriteThenReadReplicaShare(t *testing.T) {
	for _, crt := range []string{"0s", "100ms"} {
		t.Run("causal_read_timeout="+crt, func(t *testing.T) {
			p := startSplitProxy(t, fmt.Sprintf("causal_read_timeout = %q", crt))
			ma := testcluster.Maria
			primary := ma.Primary.Port
			onNode(t, ma.Primary, "DROP TABLE IF EXISTS app.t_share")
			onNode(t, ma.Primary, "CREATE TABLE app.t_share (id BIGINT PRIMARY KEY, client INT)")
			caughtUp(t)
			waitEligible(t, p, replicaNode().Addr())
			const clients, pairs = 20, 100
			var stale, failures, onReplica atomic.Int64
			var wg sync.WaitGroup
			db := p.open(t, "interpolateParams=true")
			db.SetMaxOpenConns(clients)
			start := time.Now()
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func(c int) {
					defer wg.Done()
					ctx := context.Background()
					cn, err := db.Conn(ctx)
					if err != nil {
						failures.Add(1)
						return
					}
					defer cn.Close()
					for i := 0; i < pairs; i++ {
						id := int64(c)*1_000_000 + int64(i)
						if _, err := cn.ExecContext(ctx, "INSERT INTO t_share VALUES (?, ?)", id, c); err != nil {
							failures.Add(1)
							continue
						}
						var n, port int
						if err := cn.QueryRowContext(ctx, "SELECT COUNT(*), @@port FROM t_share WHERE id = ?", id).Scan(&n, &port); err != nil {
							failures.Add(1)
							continue
						}
						if n != 1 {
							stale.Add(1)
						}
						if port != primary {
							onReplica.Add(1)
						}
					}
				}(c)
			}
			wg.Wait()
			t.Logf("causal_read_timeout=%s: %d write-then-read pairs in %v: %d stale, %d failed, %d reads served by the replica (%.1f%%)",
				crt, clients*pairs, time.Since(start).Round(time.Millisecond), stale.Load(), failures.Load(), onReplica.Load(),
				100*float64(onReplica.Load())/float64(clients*pairs))
			if stale.Load() != 0 || failures.Load() != 0 {
				t.Fatalf("stale reads %d, failures %d", stale.Load(), failures.Load())
			}
			if crt != "0s" && onReplica.Load() == 0 {
				t.Fatal("with causal_read_timeout no read was served by the replica")
			}
		})
	}
}

// A stopped replica: reads go on, on the primary, with no client error,
// including reads that find dead idle connections in the replica's pool.
func TestStoppedReplicaNoErrors(t *testing.T) {
	p := startSplitProxy(t, "")
	ma := testcluster.Maria
	rep := replicaNode().Port
	caughtUp(t)
	waitEligible(t, p, replicaNode().Addr())
	ctx := context.Background()
	var conns []*sql.Conn
	for _, params := range []string{"", "interpolateParams=true", "", "interpolateParams=true"} {
		conns = append(conns, conn(t, p.open(t, params)))
	}
	for i, c := range conns {
		if port := portOf(t, c, "SELECT @@port + ?", 0); port != rep {
			t.Fatalf("conn %d: read on %d before the stop, want the replica", i, port)
		}
	}
	if err := ma.StopNode(replicaNode()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := ma.StartNode(replicaNode()); err != nil {
			t.Error(err)
		}
	}()
	errs := 0
	for i := 0; i < 200; i++ {
		var port int
		if err := conns[i%len(conns)].QueryRowContext(ctx, "SELECT @@port + ?", 0).Scan(&port); err != nil {
			errs++
			t.Logf("read %d: %v", i, err)
		} else if port == rep {
			t.Fatalf("read %d served by the stopped replica", i)
		}
	}
	if errs != 0 {
		t.Fatalf("%d of 200 reads failed while the replica was down", errs)
	}
	var banned bool
	for _, st := range p.srv.Rts.Get("my").Set.Status() {
		banned = banned || st.Banned || !st.Healthy
	}
	if !banned {
		t.Error("the stopped replica is neither banned nor unhealthy")
	}
}

// The proxy commands' text is read by router.ParseProxyCommand (its
// table covers MySQL's spellings); the position is MySQL's own.
func TestProxyCommandPosition(t *testing.T) {
	var rt *replica.Runtime
	if pos, err := parsePosition(rt, "0-1-100,1-2-5"); err != nil || pos.String() != "0-1-100,1-2-5" {
		t.Errorf("MariaDB position: %v %v", pos, err)
	}
	if _, err := parsePosition(rt, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-100"); err != nil {
		t.Errorf("MySQL position: %v", err)
	}
}

// queryValue is the lag monitor's reader: one value, NULL, no row, and an
// error that leaves the connection usable, with and without
// CLIENT_DEPRECATE_EOF.
func TestQueryValue(t *testing.T) {
	ma := testcluster.Maria
	for _, caps := range []uint32{0, mysqlproto.CapDeprecateEOF} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		be, err := dialBackend(ctx, dialParams{addr: ma.Primary.Addr(), user: "app", password: "app", collation: defaultCollation, caps: caps})
		if err != nil {
			t.Fatal(err)
		}
		if flavorOf(be.version) != flavorMariaDB {
			t.Errorf("version %q not seen as MariaDB", be.version)
		}
		for _, tc := range []struct {
			q, want string
			ok      bool
		}{
			{"SELECT @@port", fmt.Sprint(ma.Primary.Port), true},
			{"SELECT NULL", "", false},
			{"SELECT 1 FROM DUAL WHERE 1 = 0", "", false},
			{"SELECT 'a', 'b' UNION ALL SELECT 'c', 'd'", "a", true},
		} {
			v, ok, err := be.queryValue(ctx, tc.q)
			if err != nil || v != tc.want || ok != tc.ok {
				t.Errorf("caps %#x: %s = %q, %v, %v", caps, tc.q, v, ok, err)
			}
		}
		var se *mysqlproto.ServerError
		if _, _, err := be.queryValue(ctx, "SELECT nope FROM nowhere"); !errors.As(err, &se) || be.broken {
			t.Errorf("caps %#x: error query: %v (broken %v)", caps, err, be.broken)
		}
		if v, _, err := be.queryValue(ctx, "SELECT @@gtid_binlog_pos"); err != nil {
			t.Errorf("caps %#x: gtid: %v", caps, err)
		} else if _, err := parsePosition(nil, v); err != nil {
			t.Errorf("caps %#x: gtid %q: %v", caps, v, err)
		}
		be.Close()
		cancel()
	}
}

// A primary the lag monitor cannot probe in time is not a primary that is
// down: it may only be busy. While its probes time out the replica's lag
// is unknown, and a replica whose SQL thread is stopped, past
// max_replica_lag, must get no reads (before, three timed-out probes
// counted as "primary down" and handed it every read).
func TestSilentPrimaryLaggingReplica(t *testing.T) {
	ma := testcluster.Maria
	fw, err := faultnet.NewForwarder(ma.Primary.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	cfg := splitConfig(t, `connect_timeout = "500ms"
query_wait_timeout = "500ms"`, true)
	cfg.Clusters[0].Primary = fw.Addr()
	p := serveProxy(t, cfg, slog.LevelError, false)
	rep := replicaNode()
	caughtUp(t)
	waitEligible(t, p, rep.Addr())
	onNode(t, rep, "STOP SLAVE SQL_THREAD")
	defer onNode(t, rep, "START SLAVE SQL_THREAD")
	waitIneligible(t, p, rep.Addr())

	rt := p.srv.Rts.Get("my")
	fw.Stall()
	for deadline := time.Now().Add(15 * time.Second); rt.Mon.Replica(rep.Addr()).LagKnown; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("lag still known 15s after the primary went silent: %+v", rt.Mon.Replica(rep.Addr()))
		}
	}
	db := p.open(t, "timeout=1s")
	got := map[int]int{}
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		var port int
		if db.QueryRowContext(ctx, "SELECT @@port").Scan(&port) != nil {
			port = 0
		}
		cancel()
		got[port]++
	}
	t.Logf("primary silent: reads per port %v (0: failed)", got)
	if st := rt.Mon.Replica(rep.Addr()); st.PrimaryDown {
		t.Errorf("a primary whose probes time out counts as down: %+v", st)
	}
	if got[rep.Port] != 0 {
		t.Fatalf("reads per port %v while the primary was silent: the stopped replica %d served some", got, rep.Port)
	}
}
