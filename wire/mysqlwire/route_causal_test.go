package mysqlwire

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/testcluster"
)

// The read-your-writes checker of issue 14 for MariaDB: clients each write
// a row and then read their own rows back nine times (a 90/10 mix of
// autocommit statements). Every read must count every row the client
// wrote (0 stale), and with a healthy replica most reads must still be
// served by it. It used to send 8% of such reads to the replica.
func TestCausalReadsUseReplicas(t *testing.T) {
	p := startSplitProxy(t, `lag_poll_interval = "50ms"`)
	ma := testcluster.Maria
	onNode(t, ma.Primary, "DROP TABLE IF EXISTS app.t_causal")
	onNode(t, ma.Primary, "CREATE TABLE app.t_causal (id BIGINT PRIMARY KEY, client INT)")
	caughtUp(t)
	waitEligible(t, p, replicaNode().Addr())
	const clients = 20
	rounds := 25
	if n, err := strconv.Atoi(os.Getenv("SWITCHYARD_CAUSAL_ROUNDS")); err == nil && n > 0 {
		rounds = n // the full run whose figures are in the README
	}
	ctx := context.Background()
	passed0, failed0 := causalCounts(t)
	servedBy := []string{"replica", "replica_checked", "replica_after_wait", "primary"}
	served0 := map[string]float64{}
	for _, k := range servedBy {
		served0[k] = causalServed(t, k)
	}
	var reads, stale, failed, onReplica atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		params := "" // prepared statements (COM_STMT_EXECUTE)
		if c%2 == 0 {
			params = "interpolateParams=true" // text protocol
		}
		db := p.open(t, params)
		wg.Go(func() {
			cn, err := db.Conn(ctx)
			if err != nil {
				failed.Add(1)
				return
			}
			defer cn.Close()
			written := 0
			for i := range rounds {
				if _, err := cn.ExecContext(ctx, "INSERT INTO t_causal VALUES (?, ?)", int64(c)*1_000_000+int64(i), c); err != nil {
					failed.Add(1)
					continue
				}
				written++
				for range 9 {
					var n, port int
					if err := cn.QueryRowContext(ctx, "SELECT count(*), @@port FROM t_causal WHERE client = ?", c).Scan(&n, &port); err != nil {
						failed.Add(1)
						continue
					}
					reads.Add(1)
					if n != written {
						stale.Add(1)
					}
					if port != ma.Primary.Port {
						onReplica.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	share := float64(onReplica.Load()) / float64(max(reads.Load(), 1))
	passed1, failed1 := causalCounts(t)
	t.Logf("position checks in the same round trip as the read: %.0f passed, %.0f failed", passed1-passed0, failed1-failed0)
	t.Logf("%d writers x %d rounds of 1 write + 9 reads: %d reads, %d stale, %d failed, %.1f%% served by the replica",
		clients, rounds, reads.Load(), stale.Load(), failed.Load(), 100*share)
	if stale.Load() != 0 || failed.Load() != 0 {
		t.Fatalf("stale reads %d, failures %d", stale.Load(), failed.Load())
	}
	if share < 0.5 {
		t.Fatalf("%.1f%% of reads served by the replica, want at least 50%%", 100*share)
	}
	if passed1 == passed0 {
		t.Fatal("no read was served by the replica after a position check in its round trip")
	}
	// The metric adds up to the clients' reads: a COM_STMT_PREPARE (the
	// prepared clients' first command of each read) goes where the read
	// goes but is no read. It used to count, 1.5 times the reads here.
	d := map[string]float64{}
	for _, k := range servedBy {
		d[k] = causalServed(t, k) - served0[k]
	}
	total := d["replica"] + d["replica_checked"] + d["replica_after_wait"] + d["primary"]
	if total != float64(reads.Load()) || d["primary"] != float64(reads.Load()-onReplica.Load()) {
		t.Fatalf("switchyard_causal_reads_total counts %.0f reads, %.0f on the primary (%v); the clients made %d, %d on the primary",
			total, d["primary"], d, reads.Load(), reads.Load()-onReplica.Load())
	}
}

// causalCounts reads the checked reads of the MySQL cluster: passed
// (served by a replica that checked the position in the same round trip)
// and failed (the replica was behind; the read ran elsewhere).
func causalCounts(t testing.TB) (passed, failed float64) {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["protocol"] != "mysql" {
				continue
			}
			switch {
			case mf.GetName() == "switchyard_causal_reads_total" && labels["served_by"] == "replica_checked":
				passed += m.GetCounter().GetValue()
			case mf.GetName() == "switchyard_causal_checks_failed_total":
				failed += m.GetCounter().GetValue()
			}
		}
	}
	return passed, failed
}

// A read whose position check fails on the replica (its SQL thread is
// stopped, but max_replica_lag keeps it eligible) runs again on the
// primary: the client sees its write and nothing of the replica's
// answer, through the text and the binary protocol, with a result set of
// several rows and with an error, and the session goes on.
func TestCausalCheckFailsOver(t *testing.T) {
	p := startSplitProxy(t, `max_replica_lag = "1h"`)
	ma := testcluster.Maria
	onNode(t, ma.Primary, "DROP TABLE IF EXISTS app.t_causal_fail")
	onNode(t, ma.Primary, "CREATE TABLE app.t_causal_fail (id BIGINT PRIMARY KEY, client INT)")
	caughtUp(t)
	waitEligible(t, p, replicaNode().Addr())
	onNode(t, replicaNode(), "STOP SLAVE SQL_THREAD")
	defer onNode(t, replicaNode(), "START SLAVE SQL_THREAD")
	ctx := context.Background()
	_, failed0 := causalCounts(t)
	for _, params := range []string{"", "interpolateParams=true"} {
		cn := conn(t, p.open(t, params))
		client := 1
		if params != "" {
			client = 2
		}
		for i := range 20 {
			id := int64(client*1000 + i)
			if _, err := cn.ExecContext(ctx, "INSERT INTO t_causal_fail VALUES (?, ?)", id, client); err != nil {
				t.Fatal(err)
			}
			var n, port int
			if err := cn.QueryRowContext(ctx, "SELECT COUNT(*), @@port FROM t_causal_fail WHERE id = ?", id).Scan(&n, &port); err != nil {
				t.Fatalf("%s read %d: %v", params, i, err)
			}
			if n != 1 || port != ma.Primary.Port {
				t.Fatalf("%s read %d after its write: count %d on port %d, want 1 on the primary %d", params, i, n, port, ma.Primary.Port)
			}
			rows, err := cn.QueryContext(ctx, "SELECT id FROM t_causal_fail WHERE client = ? AND id <= ? ORDER BY id", client, id)
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for rows.Next() {
				got++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
			if want := i + 1; got != want {
				t.Fatalf("%s rows read after write %d: %d, want %d", params, i, got, want)
			}
			if _, err := cn.ExecContext(ctx, "INSERT INTO t_causal_fail VALUES (?, 0)", id+100); err != nil {
				t.Fatal(err)
			}
			// A read that fails (no such table) fails once, with the
			// primary's error, and the session goes on.
			if err := cn.QueryRowContext(ctx, "SELECT COUNT(*) FROM t_causal_nope WHERE id = ?", id).Scan(&n); err == nil || !strings.Contains(err.Error(), "t_causal_nope") {
				t.Fatalf("read of a missing table: %v", err)
			}
			if _, err := cn.ExecContext(ctx, "DELETE FROM t_causal_fail WHERE id = ?", id+100); err != nil {
				t.Fatal(err)
			}
		}
		_ = cn.Close()
	}
	if _, failed1 := causalCounts(t); failed1-failed0 < 40 {
		t.Fatalf("%.0f position checks failed, want one per read after a write (at least 40)", failed1-failed0)
	}
}

// causalWaits counts the reads (MySQL clusters) that waited for fresh
// positions: probes of the primary or the replicas.
func causalWaits(t testing.TB) uint64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_causal_read_wait_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "protocol" && l.GetValue() == "mysql" {
					n += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return n
}

// A client that reads right after its writes gets the primary's GTID
// position read on its own server connection after each write, so its
// next reads need no probe of the primary; every read sees its rows.
func TestCausalPositionAfterWrite(t *testing.T) {
	p := startSplitProxy(t, `max_replica_lag = "1h"
lag_poll_interval = "10s"`)
	ma := testcluster.Maria
	onNode(t, ma.Primary, "DROP TABLE IF EXISTS app.t_causal_pos")
	onNode(t, ma.Primary, "CREATE TABLE app.t_causal_pos (id BIGINT PRIMARY KEY)")
	caughtUp(t)
	ctx := context.Background()
	for _, params := range []string{"", "interpolateParams=true"} {
		cn := conn(t, p.open(t, params))
		onNode(t, ma.Primary, "DELETE FROM app.t_causal_pos")
		caughtUp(t)
		rows := 0
		step := func() {
			t.Helper()
			rows++
			if _, err := cn.ExecContext(ctx, "INSERT INTO t_causal_pos VALUES (?)", rows); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := cn.QueryRowContext(ctx, "SELECT COUNT(*) FROM t_causal_pos WHERE id <= ?", rows).Scan(&n); err != nil || n != rows {
				t.Fatalf("%q: read after write %d: %d rows (%v)", params, rows, n, err)
			}
		}
		step() // the primary is probed: the client reads after its writes
		n0 := causalWaits(t)
		for range 20 {
			step()
		}
		if n1 := causalWaits(t); n1 != n0 {
			t.Errorf("%q: %d reads after writes waited for a probe of the primary, want 0", params, n1-n0)
		}
		_ = cn.Close()
	}
}

// With causal_read_timeout, the replica waits for the position
// (MASTER_GTID_WAIT) in the read's round trip: a replica whose SQL thread
// is stopped makes the read wait that long and then go to the primary; a
// running one serves it.
func TestCausalCheckWaits(t *testing.T) {
	p := startSplitProxy(t, `max_replica_lag = "1h"
lag_poll_interval = "10s"
causal_read_timeout = "200ms"`)
	ma := testcluster.Maria
	onNode(t, ma.Primary, "DROP TABLE IF EXISTS app.t_causal_wait")
	onNode(t, ma.Primary, "CREATE TABLE app.t_causal_wait (id BIGINT PRIMARY KEY)")
	caughtUp(t)
	ctx := context.Background()
	cn := conn(t, p.open(t, "interpolateParams=true"))
	read := func(id int) (port int, d time.Duration) {
		t.Helper()
		if _, err := cn.ExecContext(ctx, "INSERT INTO t_causal_wait VALUES (?)", id); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var n int
		if err := cn.QueryRowContext(ctx, "SELECT COUNT(*), @@port FROM t_causal_wait WHERE id = ?", id).Scan(&n, &port); err != nil || n != 1 {
			t.Fatalf("read after write %d: %d rows (%v)", id, n, err)
		}
		return port, time.Since(start)
	}
	read(1) // the client now reads after its writes: positions come with the writes
	if port, _ := read(2); port != replicaNode().Port {
		t.Errorf("read after write with the replica running: port %d, want the replica %d", port, replicaNode().Port)
	}
	onNode(t, replicaNode(), "STOP SLAVE SQL_THREAD")
	defer onNode(t, replicaNode(), "START SLAVE SQL_THREAD")
	_, failed0 := causalCounts(t)
	port, d := read(3)
	if port != ma.Primary.Port || d < 200*time.Millisecond {
		t.Errorf("read after write with the replica stopped: port %d after %v, want the primary %d after the 200ms wait", port, d, ma.Primary.Port)
	}
	if _, failed1 := causalCounts(t); failed1 != failed0+1 {
		t.Errorf("%.0f checks failed, want 1", failed1-failed0)
	}
}

// causalServed counts the reads (MySQL clusters) that needed a position
// and were served as servedBy says (replica: by a replica known to have
// the position, with no check).
func causalServed(t testing.TB, servedBy string) float64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_causal_reads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["protocol"] == "mysql" && labels["served_by"] == servedBy {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// A check that passed tells the proxy the replica's whole position: the
// reads that need that position or an older one, of this client or any
// other, go to the replica with no check (the replica runs the read
// alone); a position past it is checked again.
func TestCausalKnownPositionNoCheck(t *testing.T) {
	p := startSplitProxy(t, `max_replica_lag = "1h"
lag_poll_interval = "10s"`)
	ma := testcluster.Maria
	onNode(t, ma.Primary, "DROP TABLE IF EXISTS app.t_causal_known")
	onNode(t, ma.Primary, "CREATE TABLE app.t_causal_known (id BIGINT PRIMARY KEY)")
	caughtUp(t)
	waitEligible(t, p, replicaNode().Addr())
	ctx := context.Background()
	writer := conn(t, p.open(t, ""))
	write := func(id int) string {
		t.Helper()
		execSQL(t, writer, "INSERT INTO t_causal_known VALUES (?)", id)
		tok, err := ma.QueryString(ma.Primary, "SELECT @@gtid_binlog_pos")
		if err != nil {
			t.Fatal(err)
		}
		tok = "my@" + tok
		caughtUp(t) // replayed, but the monitor (polls 10 s apart) has not seen it
		return tok
	}
	read := func(c *sql.Conn, id int) {
		t.Helper()
		var n, port int
		if err := c.QueryRowContext(ctx, "SELECT COUNT(*), @@port FROM t_causal_known WHERE id = ?", id).Scan(&n, &port); err != nil {
			t.Fatal(err)
		}
		if n != 1 || port != replicaNode().Port {
			t.Fatalf("read of row %d: count %d on port %d, want 1 on the replica %d", id, n, port, replicaNode().Port)
		}
	}
	// counts returns the reads served by the replica with a check and
	// without one since the last call.
	var checked0, plain0 float64
	counts := func() (checked, plain float64) {
		t.Helper()
		c, _ := causalCounts(t)
		pl := causalServed(t, "replica")
		checked, plain, checked0, plain0 = c-checked0, pl-plain0, c, pl
		return checked, plain
	}
	tok := write(1)
	a, b := conn(t, p.open(t, "")), conn(t, p.open(t, "interpolateParams=true"))
	execSQL(t, a, "SET switchyard.read_after = '"+tok+"'")
	execSQL(t, b, "SET switchyard.read_after = '"+tok+"'")
	counts()
	read(b, 1)
	if c, pl := counts(); c != 1 || pl != 0 {
		t.Fatalf("first read after a position no replica is known to have: %.0f checked, %.0f unchecked, want 1 checked", c, pl)
	}
	for range 5 {
		read(a, 1)
		read(b, 1)
	}
	// (A read through the binary protocol counts its COM_STMT_PREPARE
	// too.)
	if c, pl := counts(); c != 0 || pl < 10 {
		t.Fatalf("reads after a position a check found on the replica: %.0f checked, %.0f unchecked, want 0 checked, at least 10 unchecked", c, pl)
	}
	tok = write(2)
	execSQL(t, b, "SET switchyard.read_after = '"+tok+"'")
	read(b, 2)
	read(a, 1) // its older position is still known
	if c, pl := counts(); c != 1 || pl < 1 {
		t.Fatalf("a read after a newer position, then one after the older: %.0f checked, %.0f unchecked, want 1 checked and the other unchecked", c, pl)
	}
}

// SHOW switchyard.write_position right after a write answers with the
// write's position at once, probing the primary, however far apart the
// lag monitor's polls are: it used to wait for a poll, and with polls more
// than 2 s apart answered after the first wait (lag_poll_interval / 2)
// with the position of an earlier write, or "" for the first: a token that
// did not cover the write.
func TestWritePositionWithoutPoll(t *testing.T) {
	p := startSplitProxy(t, `max_replica_lag = "1h"
lag_poll_interval = "10s"`)
	ma := testcluster.Maria
	onNode(t, ma.Primary, "DROP TABLE IF EXISTS app.t_causal_tok")
	onNode(t, ma.Primary, "CREATE TABLE app.t_causal_tok (id BIGINT PRIMARY KEY)")
	c := conn(t, p.open(t, ""))
	for id := range 3 {
		execSQL(t, c, "INSERT INTO t_causal_tok VALUES (?)", id)
		start := time.Now()
		tok := queryString(t, c, "SHOW switchyard.write_position")
		took := time.Since(start)
		want, err := ma.QueryString(ma.Primary, "SELECT @@gtid_binlog_pos")
		if err != nil {
			t.Fatal(err)
		}
		if tok != "my@"+want {
			t.Fatalf("write %d: write_position %q after %v, want my@%s (the primary's position after the write)", id, tok, took, want)
		}
		if took > time.Second {
			t.Errorf("write %d: write_position took %v, want a probe's round trip", id, took)
		}
	}
}

// A client that asks for its token (SHOW switchyard.write_position) gets
// the primary's position read behind its next writes on its own
// connection, so its next SHOW needs no probe of the primary: here the
// monitor cannot log in, so the first SHOW fails after its 2 s, and every
// later one answers the position after the write at once. Before, every
// SHOW failed while the primary could not be probed (and waited for a
// probe under load: the check-causal run at load 54 saw one fail).
func TestWritePositionAfterFirstShow(t *testing.T) {
	cfg := splitConfig(t, `lag_poll_interval = "10s"`, true)
	cfg.Clusters[0].MonitorUser, cfg.Clusters[0].MonitorPassword = "app", "not the password"
	p := serveProxy(t, cfg, slog.LevelError, true)
	ma := testcluster.Maria
	onNode(t, ma.Primary, "DROP TABLE IF EXISTS app.t_causal_tok2")
	onNode(t, ma.Primary, "CREATE TABLE app.t_causal_tok2 (id BIGINT PRIMARY KEY)")
	c := conn(t, p.open(t, ""))
	execSQL(t, c, "INSERT INTO t_causal_tok2 VALUES (0)")
	var tok string
	if err := c.QueryRowContext(context.Background(), "SHOW switchyard.write_position").Scan(&tok); err == nil {
		t.Fatalf("first SHOW with the primary unprobed: %q, want an error", tok)
	}
	for id := 1; id <= 3; id++ {
		execSQL(t, c, "INSERT INTO t_causal_tok2 VALUES (?)", id)
		start := time.Now()
		tok := queryString(t, c, "SHOW switchyard.write_position")
		want, err := ma.QueryString(ma.Primary, "SELECT @@gtid_binlog_pos")
		if err != nil {
			t.Fatal(err)
		}
		if tok != "my@"+want {
			t.Fatalf("write %d: write_position %q after %v, want my@%s", id, tok, time.Since(start), want)
		}
	}
}
