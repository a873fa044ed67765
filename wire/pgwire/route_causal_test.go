package pgwire

import (
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/testcluster"
)

// causalMix is the read-your-writes checker of issue 14: clients each
// write a row and then read their own rows back nine times (a 90/10 mix of
// autocommit statements). Every read must count every row the client
// wrote (0 stale), and with healthy replicas most reads must still be
// served by replicas.
func causalMix(t testing.TB, p *testProxy, table string, clients, rounds int) (reads, stale, failed, onReplica int64) {
	t.Helper()
	mustExec(t, `DROP TABLE IF EXISTS `+table+`; CREATE TABLE `+table+` (id bigint PRIMARY KEY, client int)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	primary, _ := nodePorts()
	ctx := ctxT(t, 5*time.Minute)
	var nReads, nStale, nFailed, nReplica atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
			if err != nil {
				nFailed.Add(1)
				return
			}
			defer conn.Close(ctx)
			written := 0
			for i := range rounds {
				if _, err := conn.Exec(ctx, `INSERT INTO `+table+` VALUES ($1, $2)`, int64(c)*1_000_000+int64(i), c); err != nil {
					nFailed.Add(1)
					continue
				}
				written++
				for range 9 {
					var n, port int
					if err := conn.QueryRow(ctx, `SELECT count(*), inet_server_port() FROM `+table+` WHERE client = $1`, c).Scan(&n, &port); err != nil {
						nFailed.Add(1)
						continue
					}
					nReads.Add(1)
					if n != written {
						nStale.Add(1)
					}
					if port != primary {
						nReplica.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	return nReads.Load(), nStale.Load(), nFailed.Load(), nReplica.Load()
}

// With healthy replicas, read-your-writes keeps the replicas useful: a
// writer's reads go to a replica that has replayed its write (checked with
// fresh positions), not to the primary until the next poll. It used to
// send 0% of such reads to replicas on PostgreSQL.
func TestCausalReadsUseReplicas(t *testing.T) {
	p := startSplitProxy(t, `lag_poll_interval = "50ms"`)
	rounds := causalRounds(25)
	n0, sum0 := causalWaits(t)
	passed0, failed0 := causalCounts(t)
	reads, stale, failed, onReplica := causalMix(t, p, "t_causal", 20, rounds)
	n1, sum1 := causalWaits(t)
	passed1, failed1 := causalCounts(t)
	t.Logf("position checks in the same round trip as the read: %.0f passed, %.0f failed", passed1-passed0, failed1-failed0)
	if n1 > n0 {
		t.Logf("reads that probed positions first: %d, mean wait %v", n1-n0, time.Duration((sum1-sum0)/float64(n1-n0)*float64(time.Second)).Round(time.Microsecond))
	}
	share := float64(onReplica) / float64(max(reads, 1))
	t.Logf("20 writers x %d rounds of 1 write + 9 reads: %d reads, %d stale, %d failed, %.1f%% served by replicas", rounds, reads, stale, failed, 100*share)
	if stale != 0 || failed != 0 {
		t.Fatalf("stale reads %d, failures %d", stale, failed)
	}
	if share < 0.5 {
		t.Fatalf("%.1f%% of reads served by replicas, want at least 50%%", 100*share)
	}
	if passed1 == passed0 {
		t.Fatal("no read was served by a replica after a position check in its round trip")
	}
}

// causalRounds is the checker's rounds per writer: def in make test,
// SWITCHYARD_CAUSAL_ROUNDS for the full run whose figures are in the
// README.
func causalRounds(def int) int {
	if n, err := strconv.Atoi(os.Getenv("SWITCHYARD_CAUSAL_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return def
}

// causalWaits reads switchyard_causal_read_wait_seconds (all clusters):
// how many reads waited for fresh positions, and their total wait.
func causalWaits(t testing.TB) (n uint64, sum float64) {
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_causal_read_wait_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
			sum += m.GetHistogram().GetSampleSum()
		}
	}
	return n, sum
}

// causalCounts reads the checked reads of PostgreSQL clusters: passed
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
			if labels["protocol"] != "postgres" {
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

// A read whose position check fails on a replica (both replicas' replay
// paused, max_replica_lag keeping them eligible) runs again on the
// primary: the client sees its write and nothing of the replica's
// answers, with pgx's extended protocol (statements prepared and cached,
// and described each time), its simple protocol, lib/pq, a read that
// fails, and a multi-statement simple query; the session goes on.
func TestCausalCheckFailsOver(t *testing.T) {
	p := startSplitProxy(t, `max_replica_lag = "1h"`)
	mustExec(t, `DROP TABLE IF EXISTS t_causal_fail; CREATE TABLE t_causal_fail (id bigint PRIMARY KEY, client int)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	primary, replicas := nodePorts()
	for _, r := range replicas {
		superExec(t, r, `SELECT pg_wal_replay_pause()`)
		defer superExec(t, r, `SELECT pg_wal_replay_resume()`)
	}
	ctx := ctxT(t, 60*time.Second)
	_, failed0 := causalCounts(t)
	reads := 0
	modes := []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeSimpleProtocol}
	for m, mode := range modes {
		cfg, err := pgx.ParseConfig(p.dsn("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = mode
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		client := m + 1
		for i := range 10 {
			id := int64(client*1000 + i)
			if _, err := conn.Exec(ctx, `INSERT INTO t_causal_fail VALUES ($1, $2)`, id, client); err != nil {
				t.Fatal(err)
			}
			var n, port int
			if err := conn.QueryRow(ctx, `SELECT count(*), inet_server_port() FROM t_causal_fail WHERE client = $1`, client).Scan(&n, &port); err != nil {
				t.Fatalf("%v: read %d: %v", mode, i, err)
			}
			reads++
			if n != i+1 || port != primary {
				t.Fatalf("%v: read %d after its write: count %d on port %d, want %d on the primary %d", mode, i, n, port, i+1, primary)
			}
			rows, err := conn.Query(ctx, `SELECT id FROM t_causal_fail WHERE client = $1 ORDER BY id`, client)
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for rows.Next() {
				got++
			}
			if rows.Close(); rows.Err() != nil || got != i+1 {
				t.Fatalf("%v: rows after write %d: %d (%v), want %d", mode, i, got, rows.Err(), i+1)
			}
			if _, err := conn.Exec(ctx, `UPDATE t_causal_fail SET client = client WHERE id = $1`, id); err != nil {
				t.Fatal(err)
			}
			// A read that fails fails once, with the primary's error.
			_, err = conn.Exec(ctx, `SELECT id FROM t_causal_nope WHERE id = $1`, id)
			if err == nil || !strings.Contains(err.Error(), "t_causal_nope") {
				t.Fatalf("%v: read of a missing table: %v", mode, err)
			}
		}
		if mode == pgx.QueryExecModeSimpleProtocol {
			if _, err := conn.Exec(ctx, `INSERT INTO t_causal_fail VALUES (9999, 9)`); err != nil {
				t.Fatal(err)
			}
			rr := conn.PgConn().Exec(ctx, `SELECT count(*) FROM t_causal_fail WHERE client = 9; SELECT inet_server_port()`)
			res, err := rr.ReadAll()
			if err != nil || len(res) != 2 || string(res[0].Rows[0][0]) != "1" || string(res[1].Rows[0][0]) != strconv.Itoa(primary) {
				t.Fatalf("multi-statement read after a write: %v %v", res, err)
			}
		}
		conn.Close(ctx)
	}
	db, err := sql.Open("postgres", p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 10 {
		id := int64(5000 + i)
		if _, err := db.ExecContext(ctx, `INSERT INTO t_causal_fail VALUES ($1, 5)`, id); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t_causal_fail WHERE client = 5`).Scan(&n); err != nil || n != i+1 {
			t.Fatalf("lib/pq read %d after its write: %d (%v), want %d", i, n, err, i+1)
		}
	}
	if _, failed1 := causalCounts(t); failed1-failed0 < float64(reads) {
		t.Fatalf("%.0f position checks failed, want one per read after a write (at least %d)", failed1-failed0, reads)
	}
}

// A client that reads right after its writes gets the primary's position
// read behind each write on its own server connection, so its next reads
// need no probe of the primary; a COPY FROM STDIN (simple protocol, as
// pgx's CopyFrom sends it) gets no query behind it (the server would take
// it for copy data). Every read sees the client's rows.
func TestCausalPositionAfterWrite(t *testing.T) {
	p := splitProxy(t, testcluster.PG, `pool_size = 4
max_replica_lag = "1h"
lag_poll_interval = "10s"`, "")
	mustExec(t, `DROP TABLE IF EXISTS t_causal_pos; CREATE TABLE t_causal_pos (id bigint PRIMARY KEY)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows := int64(0)
	check := func(what string) {
		t.Helper()
		var n int64
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM t_causal_pos`).Scan(&n); err != nil || n != rows {
			t.Fatalf("after %s: %d rows (%v), want %d", what, n, err, rows)
		}
	}
	insert := func() {
		t.Helper()
		rows++
		if _, err := conn.Exec(ctx, `INSERT INTO t_causal_pos VALUES ($1)`, rows); err != nil {
			t.Fatal(err)
		}
	}
	insert()
	check("the first insert") // the primary is probed: the client reads after its writes
	n0, _ := causalWaits(t)
	for range 20 {
		insert()
		check("an insert")
	}
	if n1, _ := causalWaits(t); n1 != n0 {
		t.Errorf("%d reads after writes waited for a probe of the primary, want 0", n1-n0)
	}
	var src [][]any
	for range 50 {
		rows++
		src = append(src, []any{rows})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"t_causal_pos"}, []string{"id"}, pgx.CopyFromRows(src)); err != nil {
		t.Fatalf("COPY FROM after writes and reads: %v", err)
	}
	check("COPY FROM")
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows++
	if _, err := tx.Exec(ctx, `INSERT INTO t_causal_pos VALUES ($1)`, rows); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback(ctx)
	rows--
	check("a rolled back transaction")
}

// The query of the primary's position that read-your-writes sends behind a
// write goes only behind a request that leaves no transaction open: behind
// a BEGIN it would be the transaction's first query, and the client's SET
// TRANSACTION ISOLATION LEVEL after it would fail (25001).
func TestCausalPositionQueryNotBehindBegin(t *testing.T) {
	p := startSplitProxy(t, `lag_poll_interval = "10s"
max_replica_lag = "1h"`)
	mustExec(t, `DROP TABLE IF EXISTS t_causal_begin; CREATE TABLE t_causal_begin (id int)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, time.Minute)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for i := range 3 {
		// A client that reads right after its writes.
		if _, err := conn.Exec(ctx, `INSERT INTO t_causal_begin VALUES ($1)`, i); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM t_causal_begin`).Scan(&n); err != nil || n != 2*i+1 {
			t.Fatalf("round %d: read after write: %d, %v; want %d", i, n, err, 2*i+1)
		}
		for _, q := range []string{`BEGIN`, `SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`, `INSERT INTO t_causal_begin VALUES (100)`, `COMMIT`} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("round %d: %s: %v", i, q, err)
			}
		}
	}
}

// causalServed reads switchyard_causal_reads_total of PostgreSQL clusters
// by served_by.
func causalServed(t testing.TB) map[string]float64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_causal_reads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["protocol"] == "postgres" {
				served[labels["served_by"]] += m.GetCounter().GetValue()
			}
		}
	}
	return served
}

// switchyard_causal_reads_total adds up to what the clients did: every
// read after a write is counted once, where it was served. A request that
// only parses and describes (lib/pq's first round trip of a query with
// parameters, pgx's first use of a statement) is not a read; a read that
// comes while the primary's lease is held only for the position query
// behind the client's write (the pump reads its answer: here always, as
// syncRelayWait is made tiny; under load when the answer comes late) is
// routed as a read, not sent on that lease uncounted. Before, the metric
// said 30-50% more reads than lib/pq clients made, and reads rode the
// primary's lease uncounted.
func TestCausalMetricsCountReads(t *testing.T) {
	p := startSplitProxy(t, `lag_poll_interval = "50ms"`)
	mustExec(t, `DROP TABLE IF EXISTS t_causal_count; CREATE TABLE t_causal_count (id bigint PRIMARY KEY, client int)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	old := syncRelayWait
	syncRelayWait = time.Microsecond // a pump reads the replies: the position's answer comes after the client's
	defer func() { syncRelayWait = old }()
	primary, _ := nodePorts()
	ctx := ctxT(t, 2*time.Minute)
	type client struct {
		exec  func(q string, args ...any) error
		count func(c int) (n, port int, err error)
	}
	connect := func(c int) client {
		if c%2 == 0 {
			db, err := sql.Open("postgres", p.rawDSN("app", "app", "app"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			cn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cn.Close() })
			return client{
				exec: func(q string, args ...any) error { _, err := cn.ExecContext(ctx, q, args...); return err },
				count: func(c int) (n, port int, err error) {
					err = cn.QueryRowContext(ctx, `SELECT count(*), inet_server_port() FROM t_causal_count WHERE client = $1`, c).Scan(&n, &port)
					return
				},
			}
		}
		conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(ctx) })
		return client{
			exec: func(q string, args ...any) error { _, err := conn.Exec(ctx, q, args...); return err },
			count: func(c int) (n, port int, err error) {
				err = conn.QueryRow(ctx, `SELECT count(*), inet_server_port() FROM t_causal_count WHERE client = $1`, c).Scan(&n, &port)
				return
			},
		}
	}
	served0 := causalServed(t)
	var reads, onReplica atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for c := range 4 {
		cl := connect(c)
		wg.Go(func() {
			for i := range 30 {
				if err := cl.exec(`INSERT INTO t_causal_count VALUES ($1, $2)`, int64(c*1000+i), c); err != nil {
					errs <- err
					return
				}
				for range 3 {
					n, port, err := cl.count(c)
					if err != nil {
						errs <- err
						return
					}
					if n != i+1 {
						errs <- fmt.Errorf("client %d: %d rows after %d writes (port %d)", c, n, i+1, port)
						return
					}
					reads.Add(1)
					if port != primary {
						onReplica.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	served1 := causalServed(t)
	d := map[string]float64{}
	for k, v := range served1 {
		d[k] = v - served0[k]
	}
	t.Logf("%d reads after writes, %d on replicas; switchyard_causal_reads_total: %v", reads.Load(), onReplica.Load(), d)
	total := d["replica"] + d["replica_checked"] + d["replica_after_wait"] + d["primary"]
	if total != float64(reads.Load()) || d["primary"] != float64(reads.Load()-onReplica.Load()) {
		t.Fatalf("switchyard_causal_reads_total counts %.0f reads, %.0f on the primary; the clients made %d, %d on the primary",
			total, d["primary"], reads.Load(), reads.Load()-onReplica.Load())
	}
}

// A client that asks for its token (SHOW switchyard.write_position) gets
// the primary's position read behind its next writes on its own server
// connection, so its next SHOW needs no probe of the primary: here the
// monitor cannot log in, so the first SHOW fails after its 2 s, and every
// later one answers the position after the write at once. Before, every
// SHOW failed while the primary could not be probed.
func TestWritePositionAfterFirstShow(t *testing.T) {
	p := splitProxy(t, testcluster.PG, withDefaults("", `lag_poll_interval = "10s"`), `monitor_user = "app"
monitor_password = "not the password"`)
	mustExec(t, `DROP TABLE IF EXISTS t_causal_tok2; CREATE TABLE t_causal_tok2 (id bigint PRIMARY KEY)`)
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	show := func() (string, error) {
		var tok string
		err := conn.QueryRow(ctx, "SHOW switchyard.write_position", pgx.QueryExecModeSimpleProtocol).Scan(&tok)
		return tok, err
	}
	if _, err := conn.Exec(ctx, `INSERT INTO t_causal_tok2 VALUES (0)`); err != nil {
		t.Fatal(err)
	}
	if tok, err := show(); err == nil {
		t.Fatalf("first SHOW with the primary unprobed: %q, want an error", tok)
	}
	for id := 1; id <= 3; id++ {
		if _, err := conn.Exec(ctx, `INSERT INTO t_causal_tok2 VALUES ($1)`, id); err != nil {
			t.Fatal(err)
		}
		tok, err := show()
		if err != nil {
			t.Fatalf("write %d: SHOW switchyard.write_position: %v", id, err)
		}
		// The token covers the write: a replica that has replayed it has
		// the row.
		lsn := strings.TrimPrefix(tok, "pg@")
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn() >= $1::pg_lsn AND $1::pg_lsn > '0/0'`, lsn).Scan(&ok); err != nil || !ok {
			t.Fatalf("write %d: token %q (%v)", id, tok, err)
		}
	}
}

// A read whose Execute comes while the replica lease of its own Parse and
// Describe is still held (a client that pipelines the two round trips
// lib/pq makes of a query with parameters; lib/pq itself under load, when
// its Bind reaches the proxy before that lease is returned) is served on
// that lease, where the position was made sure of for the Describe. It is
// counted in switchyard_causal_reads_total all the same, where the lease
// was: before, it was served by a replica and counted nowhere (the
// Describe is no read, and the Execute was not routed again).
func TestCausalMetricsCountReadOnDescribeLease(t *testing.T) {
	p := startSplitProxy(t, `lag_poll_interval = "50ms"`)
	mustExec(t, `DROP TABLE IF EXISTS t_causal_pipe; CREATE TABLE t_causal_pipe (id bigint PRIMARY KEY, client int)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, time.Minute)
	conn, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	primary, _ := nodePorts()
	fe := conn.Frontend()
	const rounds = 20
	served0 := causalServed(t)
	onReplica := 0
	for i := range rounds {
		if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO t_causal_pipe VALUES (%d, 1)", i)).ReadAll(); err != nil {
			t.Fatal(err)
		}
		// Parse and Describe, Sync; Bind and Execute, Sync: one write.
		fe.Send(&pgproto3.Parse{Query: "SELECT count(*)::int, inet_server_port() FROM t_causal_pipe WHERE client = $1"})
		fe.Send(&pgproto3.Describe{ObjectType: 'S'})
		fe.Send(&pgproto3.Sync{})
		fe.Send(&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}})
		fe.Send(&pgproto3.Execute{})
		fe.Send(&pgproto3.Sync{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		var row []string
		for rfq := 0; rfq < 2; {
			msg, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := msg.(type) {
			case *pgproto3.DataRow:
				row = []string{string(m.Values[0]), string(m.Values[1])}
			case *pgproto3.ErrorResponse:
				t.Fatalf("read %d: %s", i, m.Message)
			case *pgproto3.ReadyForQuery:
				rfq++
			}
		}
		if len(row) != 2 || row[0] != strconv.Itoa(i+1) {
			t.Fatalf("read %d after %d writes: %v", i, i+1, row)
		}
		if row[1] != strconv.Itoa(primary) {
			onReplica++
		}
	}
	served1 := causalServed(t)
	d := map[string]float64{}
	for k, v := range served1 {
		d[k] = v - served0[k]
	}
	t.Logf("%d reads after writes, %d on replicas; switchyard_causal_reads_total: %v", rounds, onReplica, d)
	total := d["replica"] + d["replica_checked"] + d["replica_after_wait"] + d["primary"]
	if total != rounds || d["primary"] != float64(rounds-onReplica) {
		t.Fatalf("switchyard_causal_reads_total counts %.0f reads, %.0f on the primary; the client made %d, %d on the primary",
			total, d["primary"], rounds, rounds-onReplica)
	}
}
