package pgwire

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/replica"
)

// pipelineProxy is a split proxy whose two replicas stay eligible while
// their replay is paused: a read that needs a client's own write then has
// to go to the primary, and one that does not goes to a stale replica.
// It pauses replay for the rest of the test.
func pipelineProxy(t *testing.T) *testProxy {
	t.Helper()
	p := startSplitProxy(t, `max_replica_lag = "60s"
causal_read_timeout = "100ms"`)
	mustExec(t, `DROP TABLE IF EXISTS t_pipe; CREATE TABLE t_pipe (id int PRIMARY KEY, port int)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	_, replicas := nodePorts()
	for _, r := range replicas {
		superExec(t, r, `SELECT pg_wal_replay_pause()`)
		t.Cleanup(func() { superExec(t, r, `SELECT pg_wal_replay_resume()`) })
	}
	time.Sleep(100 * time.Millisecond) // the lag monitor's next samples
	return p
}

// seesRow reads row id back through conn, as the next statement of the
// client that wrote it: read-your-writes must find it.
func seesRow(t *testing.T, ctx context.Context, conn *pgconn.PgConn, id int) {
	t.Helper()
	res := conn.ExecParams(ctx, `SELECT count(*) FROM t_pipe WHERE id = $1`, [][]byte{[]byte(strconv.Itoa(id))}, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "1" {
		t.Errorf("read after the pipeline's INSERT of %d: %v rows %q; want the row (read-your-writes)", id, res.Err, res.Rows)
	}
}

// onPrimary checks that row id is on the primary, written there.
func onPrimary(t *testing.T, ctx context.Context, id int) {
	t.Helper()
	primary, _ := nodePorts()
	conn, err := pgconn.Connect(ctx, testcluster.PG.DSN(testcluster.PG.Primary, "app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, `SELECT port FROM t_pipe WHERE id = $1`, [][]byte{[]byte(strconv.Itoa(id))}, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != strconv.Itoa(primary) {
		t.Errorf("row %d on the primary: %v %q, want one written by port %d", id, res.Err, res.Rows, primary)
	}
}

func resultPort(t *testing.T, what string, rr *pgconn.ResultReader) int {
	t.Helper()
	res := rr.Read()
	if res.Err != nil {
		t.Fatalf("%s: %v", what, res.Err)
	}
	if len(res.Rows) != 1 {
		t.Fatalf("%s: %d rows", what, len(res.Rows))
	}
	row := res.Rows[0]
	port, err := strconv.Atoi(string(row[len(row)-1]))
	if err != nil {
		t.Fatalf("%s: %q", what, row)
	}
	return port
}

// A write that follows a read in a pipeline (pgconn pipeline mode: one
// Sync per query, all written before any reply is read) runs on the
// primary, not on the replica the read's lease holds; its row is then
// read back. Before, the INSERT rode on the read's replica lease and
// failed with "cannot execute INSERT in a read-only transaction".
func TestPipelineWriteAfterReadGoesToPrimary(t *testing.T) {
	p := pipelineProxy(t)
	primary, replicas := nodePorts()
	ctx := ctxT(t, 60*time.Second)
	for i, flushEach := range []bool{false, true} {
		id := 100 + i
		conn, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		pl := conn.StartPipeline(ctx)
		send := func(sql string, args ...[]byte) {
			pl.SendQueryParams(sql, args, nil, nil, nil)
			pl.SendPipelineSync()
			if flushEach {
				if err := pl.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
		arg := []byte(strconv.Itoa(id))
		// The read holds its replica lease a while: the INSERT is sent
		// while the read's reply is still due.
		send(`SELECT pg_sleep(0.2), inet_server_port()`)
		send(`INSERT INTO t_pipe VALUES ($1, inet_server_port()) RETURNING inet_server_port()`, arg)
		send(`SELECT count(*), inet_server_port() FROM t_pipe WHERE id = $1`, arg)
		send(`SELECT inet_server_port()`)
		if err := pl.Flush(); err != nil {
			t.Fatal(err)
		}
		var ports []int
		for q := 0; q < 4; q++ {
			res, err := pl.GetResults()
			if err != nil {
				t.Fatalf("flushEach %v, result %d: %v", flushEach, q, err)
			}
			rr, ok := res.(*pgconn.ResultReader)
			if !ok {
				t.Fatalf("result %d: %T", q, res)
			}
			ports = append(ports, resultPort(t, fmt.Sprint("query ", q), rr))
			if res, err = pl.GetResults(); err != nil {
				t.Fatalf("sync %d: %v", q, err)
			} else if _, ok := res.(*pgconn.PipelineSync); !ok {
				t.Fatalf("sync %d: %T", q, res)
			}
		}
		if err := pl.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("flushEach %v: ports %v (primary %d, replicas %v)", flushEach, ports, primary, replicas)
		if ports[0] == primary {
			t.Errorf("the pipeline's first read ran on the primary: the test needs it on a replica")
		}
		if ports[1] != primary {
			t.Errorf("the pipeline's INSERT ran on %d, want the primary %d", ports[1], primary)
		}
		onPrimary(t, ctx, id)
		seesRow(t, ctx, conn, id)
		conn.Close(ctx)
	}
}

// The same with back-to-back simple Query messages written at once.
func TestBackToBackQueriesWriteGoesToPrimary(t *testing.T) {
	p := pipelineProxy(t)
	primary, _ := nodePorts()
	ctx := ctxT(t, 60*time.Second)
	pc, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	hj, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Conn.Close()
	_ = hj.Conn.SetDeadline(time.Now().Add(30 * time.Second))
	fe := hj.Frontend
	// round sends the queries in one write and returns, per query, its
	// last DataRow's last column or its error.
	round := func(qs ...string) []string {
		for _, q := range qs {
			fe.Send(&pgproto3.Query{String: q})
		}
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(qs))
		for i := 0; i < len(qs); {
			m, err := fe.Receive()
			if err != nil {
				t.Fatalf("after %d replies: %v", i, err)
			}
			switch m := m.(type) {
			case *pgproto3.DataRow:
				out[i] = string(m.Values[len(m.Values)-1])
			case *pgproto3.ErrorResponse:
				out[i] = "ERROR: " + m.Message
			case *pgproto3.ReadyForQuery:
				i++
			}
		}
		return out
	}
	got := round(
		`SELECT pg_sleep(0.2), inet_server_port()`,
		`INSERT INTO t_pipe VALUES (200, inet_server_port()) RETURNING inet_server_port()`,
		`SELECT count(*) FROM t_pipe WHERE id = 200`,
		`SELECT inet_server_port(); INSERT INTO t_pipe VALUES (201, inet_server_port()) RETURNING inet_server_port()`,
	)
	t.Logf("replies %q (primary %d)", got, primary)
	if got[0] == strconv.Itoa(primary) {
		t.Errorf("the first read ran on the primary: the test needs it on a replica")
	}
	if got[1] != strconv.Itoa(primary) || got[2] != "1" || got[3] != strconv.Itoa(primary) {
		t.Errorf("INSERTs after a read ran on %q and %q, the read after the first saw %q rows; want the primary %d and 1 row", got[1], got[3], got[2], primary)
	}
	onPrimary(t, ctx, 200)
	onPrimary(t, ctx, 201)
	if got := round(`SELECT count(*) FROM t_pipe WHERE id IN (200, 201)`); got[0] != "2" {
		t.Errorf("read after the writes: %q rows, want 2 (read-your-writes)", got[0])
	}
}

// pgx's Batch (one Sync for all its queries) with a write between reads:
// routed whole to the primary, and the row read back after it.
func TestBatchWithWriteGoesToPrimary(t *testing.T) {
	p := pipelineProxy(t)
	primary, _ := nodePorts()
	ctx := ctxT(t, 60*time.Second)
	for i, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		id := 300 + i
		cfg, err := pgx.ParseConfig(p.rawDSN("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = mode
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		b := &pgx.Batch{}
		var readPort, insertPort, n int
		b.Queue(`SELECT inet_server_port()`).QueryRow(func(r pgx.Row) error { return r.Scan(&readPort) })
		b.Queue(`INSERT INTO t_pipe VALUES ($1, inet_server_port()) RETURNING inet_server_port()`, id).QueryRow(func(r pgx.Row) error { return r.Scan(&insertPort) })
		b.Queue(`SELECT count(*) FROM t_pipe WHERE id = $1`, id).QueryRow(func(r pgx.Row) error { return r.Scan(&n) })
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			t.Fatalf("%v: batch: %v", mode, err)
		}
		if insertPort != primary || n != 1 {
			t.Errorf("%v: batch INSERT on %d, its row read %d times; want the primary %d, 1", mode, insertPort, n, primary)
		}
		onPrimary(t, ctx, id)
		seesRow(t, ctx, conn.PgConn(), id)
		conn.Close(ctx)
	}
}

// A write in a lease that fell back to the primary (no replica qualified
// for the read that began it) counts for read-your-writes: once the
// replicas qualify again, the client's next read does not go to one that
// has not replayed the write. Before, the write was not booked, and the
// read went to a paused replica and missed the row.
func TestFallbackLeaseWriteCountsForReadYourWrites(t *testing.T) {
	p := pipelineProxy(t)
	primary, replicas := nodePorts()
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rt := p.srv.Rts.Get("pg")
	for _, r := range replicas {
		rt.Set.Ban(fmt.Sprintf("127.0.0.1:%d", r), "test")
	}
	pl := conn.StartPipeline(ctx)
	// The read begins the lease (and holds it a while); the INSERTs are
	// requests of their own, sent during it.
	pl.SendQueryParams(`SELECT pg_sleep(0.2), inet_server_port()`, nil, nil, nil, nil)
	pl.SendPipelineSync()
	pl.SendQueryParams(`INSERT INTO t_pipe VALUES (400, inet_server_port()) RETURNING inet_server_port()`, nil, nil, nil, nil)
	pl.SendPipelineSync()
	pl.SendQueryParams(`SELECT inet_server_port()`, nil, nil, nil, nil)
	pl.SendQueryParams(`INSERT INTO t_pipe VALUES (401, inet_server_port()) RETURNING inet_server_port()`, nil, nil, nil, nil)
	pl.SendPipelineSync()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	for q, want := range []string{"read", "sync", "insert 400", "sync", "read", "insert 401", "sync"} {
		res, err := pl.GetResults()
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		if rr, ok := res.(*pgconn.ResultReader); ok {
			if port := resultPort(t, want, rr); port != primary {
				t.Errorf("%s ran on %d, want the primary %d (the replicas are banned)", want, port, primary)
			}
		} else if _, ok := res.(*pgconn.PipelineSync); !ok || want != "sync" {
			t.Fatalf("result %d (%s): %T", q, want, res)
		}
	}
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	// The bans end by themselves (a few seconds).
	deadline := time.Now().Add(20 * time.Second)
	for !allEligible(rt) {
		if time.Now().After(deadline) {
			t.Fatal("replicas still out 20s after their ban")
		}
		time.Sleep(50 * time.Millisecond)
	}
	seesRow(t, ctx, conn, 400)
	seesRow(t, ctx, conn, 401)
}

func allEligible(rt *replica.Runtime) bool {
	for _, st := range rt.Set.Status() {
		if !st.Eligible {
			return false
		}
	}
	return true
}

// A batch already on a replica (its first part was sent with a Flush, not
// a Sync) is one implicit transaction and cannot move: a write in its
// rest is refused by the proxy with an error that says what to do,
// never sent to the replica; the session goes on.
func TestWriteAfterFlushOnReplicaRefused(t *testing.T) {
	p := pipelineProxy(t)
	primary, _ := nodePorts()
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pl := conn.StartPipeline(ctx)
	pl.SendQueryParams(`SELECT inet_server_port()`, nil, nil, nil, nil)
	pl.SendFlushRequest()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	res, err := pl.GetResults()
	if err != nil {
		t.Fatal(err)
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		t.Fatalf("%T", res)
	}
	if port := resultPort(t, "read", rr); port == primary {
		t.Fatal("the batch's read ran on the primary: the test needs it on a replica")
	}
	pl.SendQueryParams(`INSERT INTO t_pipe VALUES (500, inet_server_port())`, nil, nil, nil, nil)
	pl.SendPipelineSync()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	res, err = pl.GetResults()
	var pgErr *pgconn.PgError
	if res != nil {
		if rr, ok := res.(*pgconn.ResultReader); ok {
			_, err = rr.Close()
		}
	}
	if !errors.As(err, &pgErr) || pgErr.Code != "0A000" || !strings.Contains(pgErr.Message, "end the batch with Sync") {
		t.Fatalf("INSERT after a Flush on a replica: %v (%T), want the proxy's 0A000", err, res)
	}
	if res, err := pl.GetResults(); err != nil {
		t.Fatalf("sync: %v", err)
	} else if _, ok := res.(*pgconn.PipelineSync); !ok {
		t.Fatalf("sync: %T", res)
	}
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	// The session goes on, and the write is not anywhere.
	res2 := conn.ExecParams(ctx, `/* switchyard:primary */ SELECT count(*) FROM t_pipe WHERE id = 500`, nil, nil, nil, nil).Read()
	if res2.Err != nil || string(res2.Rows[0][0]) != "0" {
		t.Fatalf("after the refusal: %v %q", res2.Err, res2.Rows)
	}
}

// Sharded: a write pipelined after a read that holds a shard replica's
// lease runs on the shard's primary, and a read of the other shard
// pipelined after it goes to that shard (before, the write reached the
// replica, and the other shard's read was refused as a second shard of
// one transaction).
func TestShardPipelineRoutedPerRequest(t *testing.T) {
	p := serveConfig(t, shardReplicaConfig("", `max_replica_lag = "60s"
causal_read_timeout = "100ms"`, true))
	shards := shardConns(t)
	k0, k1 := keysOn(0, 1, 5000)[0], keysOn(1, 1, 5000)[0]
	for s, k := range []int64{k0, k1} {
		if _, err := shards[s].Exec(context.Background(), `INSERT INTO orders (customer_id, amount) VALUES ($1, 0)`, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitShardReplicasEligible(t, p)
	primary, replicas := nodePorts()
	for _, r := range replicas {
		superExec(t, r, `SELECT pg_wal_replay_pause()`)
		t.Cleanup(func() { superExec(t, r, `SELECT pg_wal_replay_resume()`) })
	}
	ctx := ctxT(t, 60*time.Second)
	arg := func(k int64) [][]byte { return [][]byte{[]byte(strconv.FormatInt(k, 10))} }
	const (
		read   = `SELECT pg_sleep(0.2), inet_server_port() FROM orders WHERE customer_id = $1`
		insert = `INSERT INTO orders (customer_id, amount) VALUES ($1, 7) RETURNING inet_server_port()`
	)
	type query struct {
		sql string
		k   int64
	}
	// Each pipeline on a connection of its own: no write of the client
	// yet, so its first read may go to a replica.
	var conn *pgconn.PgConn
	pipeline := func(qs ...query) (ports []int) {
		t.Helper()
		var err error
		if conn, err = pgconn.Connect(ctx, p.rawDSN("app", "app", "orders")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		pl := conn.StartPipeline(ctx)
		for _, q := range qs {
			pl.SendQueryParams(q.sql, arg(q.k), nil, nil, nil)
			pl.SendPipelineSync()
		}
		if err := pl.Flush(); err != nil {
			t.Fatal(err)
		}
		for i := range qs {
			res, err := pl.GetResults()
			if err != nil {
				t.Fatalf("query %d: %v", i, err)
			}
			rr, ok := res.(*pgconn.ResultReader)
			if !ok {
				t.Fatalf("query %d: %T", i, res)
			}
			ports = append(ports, resultPort(t, fmt.Sprint("query ", i), rr))
			if res, err := pl.GetResults(); err != nil {
				t.Fatalf("sync %d: %v", i, err)
			} else if _, ok := res.(*pgconn.PipelineSync); !ok {
				t.Fatalf("sync %d: %T", i, res)
			}
		}
		if err := pl.Close(); err != nil {
			t.Fatal(err)
		}
		return ports
	}
	a := pipeline(query{read, k0}, query{insert, k0})
	b := pipeline(query{read, k0}, query{read, k1}, query{insert, k1})
	t.Logf("ports %v, %v (primary %d, replicas %v)", a, b, primary, replicas)
	if a[0] == primary || b[0] == primary || b[1] == primary {
		t.Errorf("reads ran on the primary: the test needs them on replicas")
	}
	if a[1] != primary || b[2] != primary {
		t.Errorf("INSERTs ran on %d and %d, want the primary %d", a[1], b[2], primary)
	}
	// b's client reads its row back (read-your-writes on shard 1: the
	// paused replicas have only the first row of k1).
	r := conn.ExecParams(ctx, `SELECT count(*) FROM orders WHERE customer_id = $1`, arg(k1), nil, nil, nil).Read()
	if r.Err != nil || len(r.Rows) != 1 || string(r.Rows[0][0]) != "2" {
		t.Errorf("read of key %d after its INSERT: %v %q; want 2 rows (read-your-writes)", k1, r.Err, r.Rows)
	}
}

// Inside a read-only transaction on a shard replica, a pipelined request
// for the other shard cannot leave: it is refused (simple and extended
// protocol), the transaction goes on on its shard, and COMMIT ends it.
func TestShardReplicaTxnPipelineOtherShardRefused(t *testing.T) {
	p := serveConfig(t, shardReplicaConfig("", `max_replica_lag = "60s"`, true))
	shards := shardConns(t)
	k0, k1 := keysOn(0, 1, 6000)[0], keysOn(1, 1, 6000)[0]
	for s, k := range []int64{k0, k1} {
		if _, err := shards[s].Exec(context.Background(), `INSERT INTO orders (customer_id, amount) VALUES ($1, 0)`, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitShardReplicasEligible(t, p)
	primary, _ := nodePorts()
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	q := func(k int64) string {
		return fmt.Sprintf(`SELECT pg_sleep(0.1), inet_server_port() FROM orders WHERE customer_id = %d`, k)
	}
	// Extended protocol, one Sync per query, written at once.
	mrr := conn.Exec(ctx, "BEGIN READ ONLY")
	if _, err := mrr.ReadAll(); err != nil {
		t.Fatal(err)
	}
	pl := conn.StartPipeline(ctx)
	pl.SendQueryParams(q(k0), nil, nil, nil, nil)
	pl.SendPipelineSync()
	pl.SendQueryParams(q(k1), nil, nil, nil, nil)
	pl.SendPipelineSync()
	pl.SendQueryParams(q(k0), nil, nil, nil, nil)
	pl.SendPipelineSync()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []string{"row", "sync", "error", "sync", "row", "sync"}
	for i, w := range want {
		res, err := pl.GetResults()
		var got string
		switch r := res.(type) {
		case *pgconn.ResultReader:
			rd := r.Read()
			if rd.Err != nil {
				got = "error"
				var pe *pgconn.PgError
				if !errors.As(rd.Err, &pe) || pe.Code != "0A000" {
					t.Errorf("result %d: %v, want the proxy's 0A000", i, rd.Err)
				}
			} else if len(rd.Rows) == 1 {
				got = "row"
				if port, _ := strconv.Atoi(string(rd.Rows[0][1])); port == primary {
					t.Errorf("result %d: the read-only transaction ran on the primary", i)
				}
			}
		case *pgconn.PipelineSync:
			got = "sync"
		case nil:
			if err != nil {
				got = "error"
			}
		}
		if got != w {
			t.Fatalf("result %d: %q (%T, %v), want %q", i, got, res, err, w)
		}
	}
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		t.Fatal(err)
	}
	// The session is usable, out of any transaction.
	if _, err := conn.Exec(ctx, q(k1)).ReadAll(); err != nil {
		t.Fatal(err)
	}
	if st := conn.TxStatus(); st != 'I' {
		t.Fatalf("status %c after COMMIT", st)
	}
}
