package pgwire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/internal/faultnet"
	"github.com/switchyard/switchyard/internal/testcluster"
)

// Server-failure drills: a fault is injected under client load and the
// drill reports what clients saw. Each runs in a few seconds; the ones
// that stop nodes get a cluster of their own, so the other tests of the
// package never see a node down.

// drillPG starts a PostgreSQL primary with two replicas for one drill.
func drillPG(t *testing.T) *testcluster.Postgres {
	t.Helper()
	pg, err := testcluster.StartPostgres(testcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	return pg
}

// drillProxy serves database "app" from pg with read/write splitting;
// more is TOML appended after the cluster (other clusters).
func drillProxy(t *testing.T, pg *testcluster.Postgres, defaults, more string) *testProxy {
	t.Helper()
	return splitProxy(t, pg, withDefaults(defaults, "pool_size = 10", `max_replica_lag = "1s"`,
		`lag_poll_interval = "20ms"`, `connect_timeout = "3s"`), more)
}

// drillErrKey is how a failure is booked: its SQLSTATE, else its text.
func drillErrKey(err error) string {
	if key := sqlstate(err); key != "" {
		return key
	}
	key := err.Error()
	if len(key) > 400 {
		key = key[:400]
	}
	return key
}

// drillClient runs f in a loop on its own connection, reconnecting after
// errors as an application's pool would, until ctx ends. Each outcome is
// booked in the stats that book returns when the attempt ends.
func drillClient(ctx context.Context, dsn string, f func(*pgx.Conn) error, book func() *faultnet.Tally) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for ctx.Err() == nil {
		if conn == nil || conn.IsClosed() {
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				if ctx.Err() == nil {
					book().Fail(drillErrKey(err))
					time.Sleep(20 * time.Millisecond)
				}
				continue
			}
			conn = c
		}
		err := f(conn)
		st := book() // an attempt counts in the phase it ended in
		switch {
		case err == nil:
			st.OK.Add(1)
		case ctx.Err() != nil:
		default:
			st.Fail(drillErrKey(err))
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// warmUp waits until n clients have each had a statement succeed, so a
// fault hits clients in full flight even on a loaded machine.
func warmUp(t *testing.T, warm *atomic.Int64, n int) {
	t.Helper()
	for i := 0; i < 1500 && warm.Load() < int64(n); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if warm.Load() < int64(n) {
		t.Fatalf("only %d of %d clients got going within 15s", warm.Load(), n)
	}
	time.Sleep(300 * time.Millisecond)
}

// committedRows counts which of ids are in t_drill on the primary.
func committedRows(t *testing.T, pg *testcluster.Postgres, ids []int64) (lost int) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, pg.SuperDSN(pg.Primary, "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM t_drill WHERE id = ANY($1)`, ids).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return len(ids) - n
}

// A replica stopped under read load: reads go on elsewhere, only the
// statements running on it fail (with 57P01/08006), it is banned, and it
// gets reads again when it comes back.
func TestDrillReplicaKilledUnderLoad(t *testing.T) {
	pg := drillPG(t)
	p := drillProxy(t, pg, "", "")
	victim := pg.Replicas[0]
	const readers = 8
	var stats [3]faultnet.Tally // before the kill, while down, after the restart
	var phase atomic.Int32
	var onVictim atomic.Int64
	var victimBack atomic.Int64 // unix nanos of the first read it served after the restart
	var warm atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			drillClient(ctx, p.dsn("app", "app", "app"), func(c *pgx.Conn) error {
				ph := phase.Load()
				var port int
				err := c.QueryRow(ctx, `SELECT inet_server_port() FROM pg_sleep(0.005)`).Scan(&port)
				if err == nil && first {
					first = false
					warm.Add(1)
				}
				if err == nil && port == victim.Port {
					switch ph {
					case 1:
						onVictim.Add(1)
					case 2:
						victimBack.CompareAndSwap(0, time.Now().UnixNano())
					}
				}
				return err
			}, func() *faultnet.Tally { return &stats[phase.Load()] })
		}()
	}
	warmUp(t, &warm, readers)
	killed := time.Now()
	phase.Store(1)
	if err := pg.StopNode(victim); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(killed)
	rt := p.srv.Rts.Get("pg")
	var bannedAfter time.Duration
	for i := 0; i < 200 && bannedAfter == 0; i++ {
		for _, st := range rt.Set.Status() {
			if st.Name == victim.Addr() && !st.Eligible {
				bannedAfter = time.Since(killed)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	onVictimWhileDown := onVictim.Load()
	restartAt := time.Now()
	phase.Store(2) // from here on, the restart
	if err := pg.StartNode(victim); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3000 && victimBack.Load() == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	var recovery time.Duration
	if back := victimBack.Load(); back != 0 {
		recovery = time.Unix(0, back).Sub(restartAt)
	}
	t.Logf("DRILL pg replica killed under load: injected fast shutdown of replica %s (took %v) under %d reading clients",
		victim.Addr(), stopTook.Round(time.Millisecond), readers)
	t.Logf("  before: %s", stats[0].String())
	t.Logf("  down:   %s; reads on the dead replica after its stop: %d; out of rotation %v after the kill",
		stats[1].String(), onVictimWhileDown, bannedAfter.Round(time.Millisecond))
	t.Logf("  after:  %s; back in rotation %v after the restart began (0: never)", stats[2].String(), recovery.Round(time.Millisecond))
	if f := stats[1].Failed.Load(); f > readers {
		t.Errorf("%d reads failed while the replica was down; at most the %d in flight may", f, readers)
	}
	for _, code := range stats[1].Codes() {
		if code != "57P01" && !strings.HasPrefix(code, "08") {
			t.Errorf("a failed read saw %q; want 57P01 or class 08", code)
		}
	}
	if f := stats[0].Failed.Load() + stats[2].Failed.Load(); f > 0 {
		t.Errorf("%d reads failed outside the outage", f)
	}
	if bannedAfter == 0 {
		t.Error("the stopped replica stayed eligible for reads")
	}
	if recovery == 0 {
		t.Error("the replica got no reads within 30s of coming back")
	}
}

// drillWrites creates t_drill on pg's primary.
func drillTable(t *testing.T, pg *testcluster.Postgres) {
	t.Helper()
	if err := pg.Exec(pg.Primary, "app", `DROP TABLE IF EXISTS t_drill; CREATE TABLE t_drill (id bigint PRIMARY KEY); GRANT ALL ON t_drill TO app`); err != nil {
		t.Fatal(err)
	}
}

// The primary stopped under read and write load: writes fail at once with
// a clear error, reads go on on the replicas, and writes succeed again
// when the primary is back, without restarting the proxy.
func TestDrillPrimaryKilledUnderLoad(t *testing.T) {
	pg := drillPG(t)
	drillTable(t, pg)
	if err := pg.WaitReplicasCaughtUp(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	p := drillProxy(t, pg, "", "")
	const readers, writers = 4, 4
	var reads, writes [3]faultnet.Tally // before, while down, after the restart
	var phase atomic.Int32
	var nextID atomic.Int64
	var cmu sync.Mutex
	var committed []int64
	var slowestFail atomic.Int64 // nanos: the longest a write took to fail while the primary was down
	var firstFail, firstWriteBack, warm, killedAt atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < readers+writers; i++ {
		wg.Add(1)
		go func(writer bool) {
			defer wg.Done()
			stats := &reads
			if writer {
				stats = &writes
			}
			first := true
			drillClient(ctx, p.dsn("app", "app", "app"), func(c *pgx.Conn) error {
				if !writer {
					_, err := c.Exec(ctx, `SELECT inet_server_port() FROM pg_sleep(0.005)`)
					if err == nil && first {
						first = false
						warm.Add(1)
					}
					if err != nil && phase.Load() == 1 {
						t.Logf("  read failed %v after the kill: %v", time.Since(time.Unix(0, killedAt.Load())), err)
					}
					return err
				}
				id := nextID.Add(1)
				start := time.Now()
				_, err := c.Exec(ctx, `INSERT INTO t_drill VALUES ($1)`, id)
				now := time.Now()
				switch {
				case err == nil:
					if first {
						first = false
						warm.Add(1)
					}
					cmu.Lock()
					committed = append(committed, id)
					cmu.Unlock()
					if phase.Load() == 2 {
						firstWriteBack.CompareAndSwap(0, now.UnixNano())
					}
				case phase.Load() == 1:
					if now.Sub(start) > 300*time.Millisecond {
						t.Logf("  slow failure: %v after %v (since kill %v)", err, now.Sub(start), now.Sub(time.Unix(0, killedAt.Load())))
					}
					firstFail.CompareAndSwap(0, now.UnixNano())
					for d := int64(now.Sub(start)); ; {
						old := slowestFail.Load()
						if d <= old || slowestFail.CompareAndSwap(old, d) {
							break
						}
					}
				}
				return err
			}, func() *faultnet.Tally { return &stats[phase.Load()] })
		}(i >= readers)
	}
	warmUp(t, &warm, readers+writers)
	killed := time.Now()
	killedAt.Store(killed.UnixNano())
	phase.Store(1)
	if err := pg.StopNode(pg.Primary); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(killed)
	// A proxy started now has never seen the primary: read-only clients
	// still log in (greeted with a replica's parameters) and read.
	cold := drillProxy(t, pg, "", "")
	var coldPort int
	coldErr := func() error {
		c, err := pgx.Connect(ctx, cold.dsn("app", "app", "app"))
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		return c.QueryRow(ctx, `SELECT inet_server_port()`).Scan(&coldPort)
	}()
	time.Sleep(1500 * time.Millisecond)
	restartAt := time.Now()
	phase.Store(2) // from here on, the restart
	if err := pg.StartNode(pg.Primary); err != nil {
		t.Fatal(err)
	}
	startTook := time.Since(restartAt)
	for i := 0; i < 500 && firstWriteBack.Load() == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	lost := committedRows(t, pg, committed)
	var toError, recovery time.Duration
	if f := firstFail.Load(); f != 0 {
		toError = time.Unix(0, f).Sub(killed)
	}
	if b := firstWriteBack.Load(); b != 0 {
		recovery = time.Unix(0, b).Sub(restartAt)
	}
	t.Logf("DRILL pg primary killed under load: injected fast shutdown of the primary %s (took %v) under %d readers and %d writers",
		pg.Primary.Addr(), stopTook.Round(time.Millisecond), readers, writers)
	t.Logf("  writes before: %s", writes[0].String())
	t.Logf("  writes down:   %s; first error %v after the kill; slowest failure %v",
		writes[1].String(), toError.Round(time.Millisecond), time.Duration(slowestFail.Load()).Round(time.Millisecond))
	t.Logf("  writes after:  %s; first write committed %v after the restart began (StartNode took %v)",
		writes[2].String(), recovery.Round(time.Millisecond), startTook.Round(time.Millisecond))
	t.Logf("  reads before/down/after: %s / %s / %s", reads[0].String(), reads[1].String(), reads[2].String())
	t.Logf("  committed writes: %d, lost: %d; a proxy started during the outage served a new reader from port %d (err %v)",
		len(committed), lost, coldPort, coldErr)
	if coldErr != nil || coldPort == pg.Primary.Port {
		t.Errorf("a new client of a proxy started during the outage: port %d, %v; want a read on a replica", coldPort, coldErr)
	}
	if lost != 0 {
		t.Errorf("%d committed writes are missing", lost)
	}
	if writes[1].Failed.Load() == 0 {
		t.Error("no write failed while the primary was down")
	}
	// The first write to fail fails within a second of the kill, or, on
	// a machine so busy that the server itself takes longer to stop, no
	// later than it stops; the slowest failure is a dial the dying server
	// answers late (it still accepts, to say it is shutting down),
	// bounded but not by us. (At load 30 the fast shutdown took 1.9 s and
	// the first write failed after 1.5 s, as the server went.)
	if toError > max(time.Second, stopTook) {
		t.Errorf("the first write failed %v after the kill (the server took %v to stop); want under 1s", toError, stopTook)
	}
	if d := time.Duration(slowestFail.Load()); d > max(2*time.Second, stopTook+time.Second) {
		t.Errorf("a write took %v to fail while the primary was down (the server took %v to stop)", d, stopTook)
	}
	for _, st := range []*faultnet.Tally{&writes[1], &reads[1]} {
		for _, code := range st.Codes() {
			if code != "57P01" && code != "57P03" && !strings.HasPrefix(code, "08") {
				t.Errorf("a client saw %q while the primary was down; want 57P01/57P03 or class 08", code)
			}
		}
	}
	if reads[1].OK.Load() == 0 {
		t.Error("no read succeeded while the primary was down")
	}
	if f := reads[1].Failed.Load(); f > readers {
		t.Errorf("%d reads failed while the primary was down; at most the %d in flight on it may", f, readers)
	}
	if recovery == 0 {
		t.Error("no write succeeded within 5s of the primary's restart")
	}
	if f := writes[0].Failed.Load() + reads[0].Failed.Load(); f > 0 {
		t.Errorf("%d statements failed before the fault", f)
	}
}

// steadyClient runs SELECT 1 on database db through p until ctx ends and
// reports the statements run, failed and the slowest.
func steadyClient(ctx context.Context, p *testProxy, db string, st *faultnet.Tally, slowest *atomic.Int64) {
	drillClient(ctx, p.dsn("app", "app", db), func(c *pgx.Conn) error {
		start := time.Now()
		_, err := c.Exec(ctx, `SELECT 1`)
		faultnet.MaxInto(slowest, time.Since(start))
		time.Sleep(2 * time.Millisecond)
		return err
	}, func() *faultnet.Tally { return st })
}

// A server that accepts TCP and never answers, as primary of one cluster
// and as replica of another: clients of the first get a clear error within
// connect_timeout, reads of the second never wait for it, and a third
// cluster is untouched.
func TestDrillSilentServer(t *testing.T) {
	silent, err := faultnet.NewSilent()
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	pg := testcluster.PG
	// The silent server's dials give up after connectTimeout; a statement
	// or read of a healthy cluster held behind one would take at least
	// that, so healthyBound, below it, tells one from a loaded machine's
	// slow statement.
	const connectTimeout = 1500 * time.Millisecond
	const healthyBound = time.Second
	p := serveConfig(t, fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
shutdown_timeout = "5s"
[defaults]
pool_size = 4
# The healthy clusters' dials get the default's time on a loaded machine;
# the silent server's cluster gives up after connect_timeout below.
connect_timeout = "3s"
query_wait_timeout = "2s"
lag_poll_interval = "20ms"
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %[1]q
[[clusters]]
name = "silent"
protocol = "postgres"
database = "silentdb"
server_database = "app"
primary = %[2]q
connect_timeout = "1500ms"
[[clusters]]
name = "silentrep"
protocol = "postgres"
database = "silentrep"
server_database = "app"
primary = %[1]q
replicas = [%[2]q]
`, pg.Primary.Addr(), silent.Addr()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var other faultnet.Tally
	var otherSlowest atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); steadyClient(ctx, p, "app", &other, &otherSlowest) }()

	// Clients of the silent primary: more than pool_size at once, so some
	// wait in line behind the dials.
	const clients = 8
	type outcome struct {
		took time.Duration
		err  error
	}
	res := make(chan outcome, clients)
	for i := 0; i < clients; i++ {
		go func() {
			cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
			defer ccancel()
			start := time.Now()
			c, err := pgx.Connect(cctx, p.dsn("app", "app", "silentdb"))
			if err == nil {
				_, err = c.Exec(cctx, `SELECT 1`)
				c.Close(context.Background())
			}
			res <- outcome{time.Since(start), err}
		}()
	}
	var slowest time.Duration
	codes := map[string]int{}
	for i := 0; i < clients; i++ {
		o := <-res
		slowest = max(slowest, o.took)
		if o.err == nil {
			t.Error("a client of the silent server succeeded")
			continue
		}
		codes[sqlstate(o.err)]++
		if i == 0 {
			t.Logf("  first error: %v", o.err)
		}
	}
	// Reads of the cluster whose replica is silent.
	var repReads faultnet.Tally
	var repSlowest atomic.Int64
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	steadyClient(rctx, p, "silentrep", &repReads, &repSlowest)
	rcancel()
	cancel()
	wg.Wait()
	t.Logf("DRILL pg silent server: injected a listener on %s that accepts and never answers (connect_timeout %v, query_wait_timeout 2s)", silent.Addr(), connectTimeout)
	t.Logf("  %d clients of its cluster: errors by SQLSTATE %v, slowest error after %v; connections it accepted: %d",
		clients, codes, slowest.Round(time.Millisecond), silent.Accepted())
	t.Logf("  cluster with it as replica: %s, slowest read %v", repReads.String(), time.Duration(repSlowest.Load()).Round(time.Millisecond))
	t.Logf("  other cluster meanwhile: %s, slowest statement %v", other.String(), time.Duration(otherSlowest.Load()).Round(time.Millisecond))
	for code := range codes {
		if code != codeConnectionFailure && code != codeTooManyConnections {
			t.Errorf("a client of the silent server saw %q; want 08006 or 53300", code)
		}
	}
	// Each dial gives up after connect_timeout; a client behind others
	// waits at most query_wait_timeout.
	if slowest > 2*time.Second+connectTimeout+time.Second {
		t.Errorf("a client waited %v for its error", slowest)
	}
	if other.Failed.Load() > 0 || repReads.Failed.Load() > 0 {
		t.Error("clients of healthy clusters saw errors")
	}
	if d := time.Duration(repSlowest.Load()); d > healthyBound {
		t.Errorf("a read waited %v for the silent replica", d)
	}
	if d := time.Duration(otherSlowest.Load()); d > healthyBound {
		t.Errorf("a statement on a healthy cluster took %v while another cluster's server was silent", d)
	}
}

// hangServer is a PostgreSQL server that logs clients in and then never
// answers a SELECT. Cancel requests are counted and ignored.
type hangServer struct {
	ln               net.Listener
	cancels, closeds atomic.Int64
}

func newHangServer(t *testing.T) *hangServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangServer{ln: ln}
	t.Cleanup(faultnet.Serve(ln, func(c net.Conn, _ uint32) { h.serve(c) }))
	return h
}

func (h *hangServer) serve(c net.Conn) {
	defer c.Close()
	be := pgproto3.NewBackend(c, c)
	m, err := be.ReceiveStartupMessage()
	if err != nil {
		return
	}
	if _, ok := m.(*pgproto3.CancelRequest); ok {
		h.cancels.Add(1)
		return
	}
	be.Send(&pgproto3.AuthenticationOk{})
	for _, kv := range [][2]string{{"server_version", "15.0"}, {"client_encoding", "UTF8"}, {"server_encoding", "UTF8"},
		{"standard_conforming_strings", "on"}, {"DateStyle", "ISO, MDY"}, {"integer_datetimes", "on"}} {
		be.Send(&pgproto3.ParameterStatus{Name: kv[0], Value: kv[1]})
	}
	be.Send(&pgproto3.BackendKeyData{ProcessID: 42, SecretKey: []byte{1, 2, 3, 4}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	for {
		m, err := be.Receive()
		if err != nil {
			h.closeds.Add(1)
			return
		}
		switch m := m.(type) {
		case *pgproto3.Query:
			if strings.Contains(m.String, "SELECT") {
				continue // hang: never answer
			}
			be.Send(&pgproto3.EmptyQueryResponse{})
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Sync:
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Terminate:
			h.closeds.Add(1)
			return
		}
		if be.Flush() != nil {
			return
		}
	}
}

// A server that logs in and then hangs mid-query. The proxy has no query
// timeout of its own: the client's cancel is forwarded, and a client that
// gives up (pgx: cancel, then close) frees its server connection, which
// the proxy closes (after its own cancel attempt) instead of reusing.
func TestDrillServerHangsMidQuery(t *testing.T) {
	h := newHangServer(t)
	p := serveConfig(t, fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
shutdown_timeout = "2s"
[defaults]
pool_size = 1
query_wait_timeout = "1s"
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
# The healthy cluster is not under test: its server connection, dialed at
# the other client's login, may take more than the hung cluster's 1s on
# a loaded machine.
query_wait_timeout = "20s"
[[clusters]]
name = "hang"
protocol = "postgres"
database = "hangdb"
server_database = "app"
primary = %q
`, testcluster.PG.Primary.Addr(), h.ln.Addr()))
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "hangdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	_, qerr := conn.Exec(qctx, `SELECT 1`)
	took := time.Since(start)
	qcancel()
	if qerr == nil {
		t.Fatal("a query on a hung server succeeded")
	}
	// The pool's only connection comes back (closed) once pgx has closed
	// the client: a new client is served (and hangs in turn) rather than
	// told the pool is busy.
	var freedAfter time.Duration
	for i := 0; i < 100; i++ {
		if h.closeds.Load() > 0 {
			freedAfter = time.Since(start)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	conn2, err := pgx.Connect(ctx, p.dsn("app", "app", "hangdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(ctx)
	q2, c2 := context.WithTimeout(ctx, 1500*time.Millisecond)
	_, err2 := conn2.Exec(q2, `SELECT 2`)
	c2()
	other, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	var one int
	otherErr := other.QueryRow(ctx, `SELECT 1`).Scan(&one)
	t.Logf("DRILL pg server hangs mid-query: injected a server that logs in and never answers SELECT")
	t.Logf("  client with a 300ms timeout: error after %v: %v", took.Round(time.Millisecond), qerr)
	t.Logf("  cancels forwarded to the server: %d; server connection closed by the proxy %v after the query began", h.cancels.Load(), freedAfter.Round(time.Millisecond))
	t.Logf("  next client on the same 1-connection pool: %v; other cluster: %v", err2, otherErr)
	if took > 2*time.Second {
		t.Errorf("the client waited %v", took)
	}
	if h.cancels.Load() == 0 {
		t.Error("the client's cancel was not forwarded")
	}
	if freedAfter == 0 {
		t.Error("the proxy kept the hung server connection after the client left")
	}
	if err2 == nil || sqlstate(err2) == codeTooManyConnections {
		t.Errorf("next client: %v; want its own timeout, not query_wait_timeout", err2)
	}
	if otherErr != nil {
		t.Error(otherErr)
	}
}

// The link between the proxy and its server cut mid-result: the client
// gets an error, never a CommandComplete or ReadyForQuery that would make
// the truncated result look complete; other clients go on and the proxy
// serves the next client of that cluster.
func TestDrillNetworkCutMidResult(t *testing.T) {
	pg := testcluster.PG
	fwd, err := faultnet.NewForwarder(pg.Primary.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	p := serveConfig(t, fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
shutdown_timeout = "5s"
[defaults]
pool_size = 4
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
[[clusters]]
name = "viafwd"
protocol = "postgres"
database = "viafwd"
server_database = "app"
primary = %q
`, pg.Primary.Addr(), fwd.Addr()))
	ctx, cancel := context.WithCancel(ctxT(t, 60*time.Second))
	defer cancel()
	var other faultnet.Tally
	var otherSlowest atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); steadyClient(ctx, p, "app", &other, &otherSlowest) }()

	pc, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "viafwd"))
	if err != nil {
		t.Fatal(err)
	}
	hj, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Conn.Close()
	const total = 2000000
	fe := hj.Frontend
	fe.Send(&pgproto3.Query{String: fmt.Sprintf(`SELECT g, repeat('x', 100) FROM generate_series(1, %d) g`, total)})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = hj.Conn.SetDeadline(time.Now().Add(30 * time.Second))
	rows, rowsAtCut, cut := 0, 0, 0
	var cutAt time.Time
	var after []string
	var fatal *pgproto3.ErrorResponse
	for {
		m, err := fe.Receive()
		if err != nil {
			break // the proxy closed the connection after its error
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			rows++
			if rows == 20000 {
				rowsAtCut, cutAt = rows, time.Now()
				cut = fwd.Cut()
			}
		case *pgproto3.ErrorResponse:
			e := *m
			fatal = &e
			after = append(after, "ErrorResponse "+m.Code)
		case *pgproto3.CommandComplete:
			after = append(after, "CommandComplete "+string(m.CommandTag))
		case *pgproto3.ReadyForQuery:
			after = append(after, "ReadyForQuery")
		}
	}
	errAfter := time.Since(cutAt)
	// The proxy goes on serving that cluster through a new link.
	var n int
	c2, err := pgx.Connect(ctx, p.dsn("app", "app", "viafwd"))
	if err == nil {
		err = c2.QueryRow(ctx, `SELECT count(*) FROM generate_series(1, 1000)`).Scan(&n)
		c2.Close(ctx)
	}
	cancel()
	wg.Wait()
	t.Logf("DRILL pg network cut mid-result: injected a cut of %d proxy-server link(s) after %d of %d rows", cut, rowsAtCut, total)
	t.Logf("  client received %d rows in all, then %v; connection closed %v after the cut", rows, after, errAfter.Round(time.Millisecond))
	t.Logf("  same cluster afterwards: %d rows, err %v; other cluster meanwhile: %s", n, err, other.String())
	if cut == 0 {
		t.Fatal("nothing to cut: the forwarder had no open link")
	}
	for _, a := range after {
		if !strings.HasPrefix(a, "ErrorResponse") {
			t.Errorf("after the cut the client got %s: a truncated result must not look complete", a)
		}
	}
	if fatal == nil || fatal.Code != codeConnectionFailure {
		t.Errorf("want an ErrorResponse 08006 after the cut; got %v", after)
	}
	if rows >= total {
		t.Error("every row arrived; the cut came too late to test anything")
	}
	if err != nil || n != 1000 {
		t.Errorf("the next client of the cut cluster: %d rows, %v", n, err)
	}
	if other.Failed.Load() > 0 || other.OK.Load() == 0 {
		t.Errorf("the other cluster's client: %s", other.String())
	}
	_ = errors.Is
}

// Regression: a replica's connection that fails while the proxy brings it
// in line with the client (runtime parameters), before anything of the
// client's request was sent, failed the read with XX000. The read now
// goes to the primary and the replica is banned.
func TestReplicaLinkDeadAtLeaseRetriedOnPrimary(t *testing.T) {
	pg := testcluster.PG
	fwd, err := faultnet.NewForwarder(pg.Replicas[0].Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	p := oneReplicaProxy(t, pg.Primary.Addr(), fwd.Addr(), `pool_size = 1
query_wait_timeout = "700ms"
max_replica_lag = "5s"
lag_poll_interval = "20ms"`)
	ctx := ctxT(t, 30*time.Second)
	connect := func(app string) *pgx.Conn { return connectApp(t, ctx, p, app) }
	// The replica's pool gets a connection with a's parameters on it.
	a := connect("drill_a")
	onReplica := false
	for i := 0; i < 200 && !onReplica; i++ {
		onReplica = serverPort(t, a, `SELECT inet_server_port()`) == pg.Replicas[0].Port
		time.Sleep(10 * time.Millisecond)
	}
	if !onReplica {
		t.Fatal("no read reached the replica")
	}
	// The link goes dark; the idle connection still looks alive. b's
	// parameters differ, so its lease starts with a round trip.
	fwd.Stall()
	b := connect("drill_b")
	var port int
	err = b.QueryRow(ctx, `SELECT inet_server_port()`).Scan(&port)
	if err != nil || port != pg.Primary.Port {
		t.Fatalf("read while the replica's link was dead: port %d, %v; want it served by the primary", port, err)
	}
}
