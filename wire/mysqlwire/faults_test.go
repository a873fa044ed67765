package mysqlwire

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/faultnet"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// Server-failure drills for MySQL, the counterparts of pgwire's: a fault
// is injected under client load and the drill reports what clients saw.
// The ones that stop nodes get a MariaDB cluster of their own.

func drillMaria(t *testing.T) *testcluster.MariaDB {
	t.Helper()
	ma, err := testcluster.StartMariaDB(testcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ma.Stop)
	return ma
}

// serveDrill starts a proxy for the TOML src; it shuts down when the test
// ends.
func serveDrill(t *testing.T, src string) *testProxy {
	t.Helper()
	cfg, err := config.Parse([]byte(src), "drill.toml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return serveProxy(t, cfg, slog.LevelError+4, false) // drills log only with -v
}

// drillSplitProxy serves database "app" from ma with read/write splitting.
func drillSplitProxy(t *testing.T, ma *testcluster.MariaDB) *testProxy {
	return serveDrill(t, fmt.Sprintf(`
[proxy]
postgres_listen = ""
mysql_listen = "127.0.0.1:0"
shutdown_timeout = "5s"
[defaults]
pool_size = 10
max_replica_lag = "1s"
lag_poll_interval = "20ms"
connect_timeout = "3s"
query_wait_timeout = "5s"
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q
replicas = [%q]
`, ma.Primary.Addr(), ma.Replicas[0].Addr()))
}

func errKey(err error) string {
	if n := mysqlErrNum(err); n != 0 {
		return fmt.Sprint(n)
	}
	if errors.Is(err, mysql.ErrInvalidConn) {
		return "invalid connection"
	}
	k := err.Error()
	if len(k) > 60 {
		k = k[:60]
	}
	return k
}

// drillClient runs f in a loop on a database/sql pool of one connection,
// as an application would, until ctx ends. Each outcome is booked in the
// stats book returns when the attempt ends.
func drillClient(ctx context.Context, dsn string, f func(*sql.DB) error, book func() *faultnet.Tally) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for ctx.Err() == nil {
		err := f(db)
		st := book()
		switch {
		case err == nil:
			st.OK.Add(1)
		case ctx.Err() != nil:
		default:
			st.Fail(errKey(err))
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// A replica stopped under read load: reads go on on the primary, at most
// the statements running on it fail, it is banned, and it gets reads
// again when it comes back.
func TestDrillReplicaKilledUnderLoad(t *testing.T) {
	ma := drillMaria(t)
	p := drillSplitProxy(t, ma)
	victim := ma.Replicas[0]
	const readers = 8
	var stats [3]faultnet.Tally
	var phase atomic.Int32
	var onVictim, victimBack atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			drillClient(ctx, p.dsn("app", "app", "app", ""), func(db *sql.DB) error {
				ph := phase.Load()
				var port int
				var slept int
				err := db.QueryRowContext(ctx, `SELECT @@port, SLEEP(0.005)`).Scan(&port, &slept)
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
	time.Sleep(700 * time.Millisecond)
	killed := time.Now()
	phase.Store(1)
	if err := ma.StopNode(victim); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(killed)
	bannedAfter := time.Duration(0)
	for i := 0; i < 200 && bannedAfter == 0; i++ {
		if !p.nodeStatus(t, victim.Addr()) {
			bannedAfter = time.Since(killed)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	down := onVictim.Load()
	restartAt := time.Now()
	phase.Store(2) // from here on, the restart
	if err := ma.StartNode(victim); err != nil {
		t.Fatal(err)
	}
	startTook := time.Since(restartAt)
	for i := 0; i < 3000 && victimBack.Load() == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	var recovery time.Duration
	if b := victimBack.Load(); b != 0 {
		recovery = time.Unix(0, b).Sub(restartAt)
	}
	t.Logf("DRILL mysql replica killed under load: injected shutdown of replica %s (took %v) under %d reading clients",
		victim.Addr(), stopTook.Round(time.Millisecond), readers)
	t.Logf("  before: %s", stats[0].String())
	t.Logf("  down:   %s; reads on the dead replica after its stop: %d; out of rotation %v after the kill",
		stats[1].String(), down, bannedAfter.Round(time.Millisecond))
	t.Logf("  after:  %s; back in rotation %v after the restart began (StartNode took %v; 0: never)",
		stats[2].String(), recovery.Round(time.Millisecond), startTook.Round(time.Millisecond))
	if f := stats[1].Failed.Load(); f > readers {
		t.Errorf("%d reads failed while the replica was down; at most the %d in flight may", f, readers)
	}
	for _, k := range stats[1].Codes() {
		if k != "1053" && k != "2013" && k != "1927" {
			t.Errorf("a failed read saw %q; want 1053 (shutdown) or 2013 (lost connection)", k)
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

// The primary stopped under read and write load: writes fail at once with
// a clear error, reads go on on the replica, and writes succeed again when
// the primary is back, without restarting the proxy.
func TestDrillPrimaryKilledUnderLoad(t *testing.T) {
	ma := drillMaria(t)
	if err := ma.Exec(ma.Primary, `CREATE TABLE app.t_drill (id BIGINT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if err := ma.WaitReplicasCaughtUp(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	p := drillSplitProxy(t, ma)
	const readers, writers = 4, 4
	var reads, writes [3]faultnet.Tally
	var phase atomic.Int32
	var nextID, slowestFail, firstFail, firstWriteBack atomic.Int64
	var cmu sync.Mutex
	var committed []int64
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
			drillClient(ctx, p.dsn("app", "app", "app", ""), func(db *sql.DB) error {
				if !writer {
					var port, slept int
					return db.QueryRowContext(ctx, `SELECT @@port, SLEEP(0.005)`).Scan(&port, &slept)
				}
				id := nextID.Add(1)
				start := time.Now()
				_, err := db.ExecContext(ctx, `INSERT INTO t_drill VALUES (?)`, id)
				now := time.Now()
				switch {
				case err == nil:
					cmu.Lock()
					committed = append(committed, id)
					cmu.Unlock()
					if phase.Load() == 2 {
						firstWriteBack.CompareAndSwap(0, now.UnixNano())
					}
				case phase.Load() == 1:
					firstFail.CompareAndSwap(0, now.UnixNano())
					faultnet.MaxInto(&slowestFail, now.Sub(start))
				}
				return err
			}, func() *faultnet.Tally { return &stats[phase.Load()] })
		}(i >= readers)
	}
	time.Sleep(700 * time.Millisecond)
	killed := time.Now()
	phase.Store(1)
	if err := ma.StopNode(ma.Primary); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(killed)
	time.Sleep(1500 * time.Millisecond)
	restartAt := time.Now()
	phase.Store(2) // from here on, the restart
	if err := ma.StartNode(ma.Primary); err != nil {
		t.Fatal(err)
	}
	startTook := time.Since(restartAt)
	for i := 0; i < 1000 && firstWriteBack.Load() == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	lost := len(committed)
	if len(committed) > 0 {
		var b strings.Builder
		for i, id := range committed {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprint(&b, id)
		}
		n, err := ma.QueryString(ma.Primary, `SELECT count(*) FROM app.t_drill WHERE id IN (`+b.String()+`)`)
		if err != nil {
			t.Fatal(err)
		}
		var found int
		fmt.Sscan(n, &found)
		lost -= found
	}
	var toError, recovery time.Duration
	if f := firstFail.Load(); f != 0 {
		toError = time.Unix(0, f).Sub(killed)
	}
	if b := firstWriteBack.Load(); b != 0 {
		recovery = time.Unix(0, b).Sub(restartAt)
	}
	t.Logf("DRILL mysql primary killed under load: injected shutdown of the primary %s (took %v) under %d readers and %d writers",
		ma.Primary.Addr(), stopTook.Round(time.Millisecond), readers, writers)
	t.Logf("  writes before: %s", writes[0].String())
	t.Logf("  writes down:   %s; first error %v after the kill; slowest failure %v",
		writes[1].String(), toError.Round(time.Millisecond), time.Duration(slowestFail.Load()).Round(time.Millisecond))
	t.Logf("  writes after:  %s; first write committed %v after the restart began (StartNode took %v)",
		writes[2].String(), recovery.Round(time.Millisecond), startTook.Round(time.Millisecond))
	t.Logf("  reads before/down/after: %s / %s / %s", reads[0].String(), reads[1].String(), reads[2].String())
	t.Logf("  committed writes: %d, lost: %d", len(committed), lost)
	if lost != 0 {
		t.Errorf("%d committed writes are missing", lost)
	}
	if writes[1].Failed.Load() == 0 {
		t.Error("no write failed while the primary was down")
	}
	if toError > time.Second {
		t.Errorf("the first write failed %v after the kill; want under 1s", toError)
	}
	if d := time.Duration(slowestFail.Load()); d > 2*time.Second {
		t.Errorf("a write took %v to fail while the primary was down", d)
	}
	for _, st := range []*faultnet.Tally{&writes[1], &reads[1]} {
		for _, k := range st.Codes() {
			if k != "1053" && k != "2013" && k != "2003" && k != "1927" {
				t.Errorf("a client saw %q while the primary was down; want 1053, 2003 or 2013", k)
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
		t.Error("no write succeeded within 10s of the primary's restart")
	}
	if f := writes[0].Failed.Load() + reads[0].Failed.Load(); f > 0 {
		t.Errorf("%d statements failed before the fault", f)
	}
}

// steadyClient runs SELECT 1 on database db through p until ctx ends.
func steadyClient(ctx context.Context, p *testProxy, db string, st *faultnet.Tally, slowest *atomic.Int64) {
	drillClient(ctx, p.dsn("app", "app", db, ""), func(d *sql.DB) error {
		start := time.Now()
		var one int
		err := d.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
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
	ma := testcluster.Maria
	// The silent server's dials give up after connectTimeout; a statement
	// or read of a healthy cluster held behind one would take at least
	// that, so healthyBound, below it, tells one from a loaded machine's
	// slow statement.
	// (1 s against 1.5 s failed once on a machine at load 30: a healthy
	// statement took 1.15 s; 2 s against 3 s keeps the distinction.)
	const connectTimeout = 3 * time.Second
	const healthyBound = 2 * time.Second
	p := serveDrill(t, fmt.Sprintf(`
[proxy]
postgres_listen = ""
mysql_listen = "127.0.0.1:0"
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
name = "my"
protocol = "mysql"
database = "app"
primary = %[1]q
[[clusters]]
name = "silent"
protocol = "mysql"
database = "silentdb"
server_database = "app"
primary = %[2]q
connect_timeout = "3s"
[[clusters]]
name = "silentrep"
protocol = "mysql"
database = "silentrep"
server_database = "app"
primary = %[1]q
replicas = [%[2]q]
`, ma.Primary.Addr(), silent.Addr()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var other faultnet.Tally
	var otherSlowest atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); steadyClient(ctx, p, "app", &other, &otherSlowest) }()

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
			db, err := sql.Open("mysql", p.dsn("app", "app", "silentdb", ""))
			if err != nil {
				res <- outcome{0, err}
				return
			}
			defer db.Close()
			start := time.Now()
			var one int
			err = db.QueryRowContext(cctx, `SELECT 1`).Scan(&one)
			res <- outcome{time.Since(start), err}
		}()
	}
	var slowest time.Duration
	var codes faultnet.Tally
	var first error
	for i := 0; i < clients; i++ {
		o := <-res
		if first == nil {
			first = o.err
		}
		slowest = max(slowest, o.took)
		if o.err == nil {
			t.Error("a client of the silent server succeeded")
			continue
		}
		codes.Fail(errKey(o.err))
		if i == 0 || errKey(o.err) != errKey(first) {
			t.Logf("  first error: %v", o.err)
		}
	}
	var repReads faultnet.Tally
	var repSlowest atomic.Int64
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	steadyClient(rctx, p, "silentrep", &repReads, &repSlowest)
	rcancel()
	cancel()
	wg.Wait()
	t.Logf("DRILL mysql silent server: injected a listener on %s that accepts and never answers (connect_timeout %v, query_wait_timeout 2s)", silent.Addr(), connectTimeout)
	t.Logf("  %d clients of its cluster: %s, slowest error after %v; connections it accepted: %d",
		clients, codes.String(), slowest.Round(time.Millisecond), silent.Accepted())
	t.Logf("  cluster with it as replica: %s, slowest read %v", repReads.String(), time.Duration(repSlowest.Load()).Round(time.Millisecond))
	t.Logf("  other cluster meanwhile: %s, slowest statement %v", other.String(), time.Duration(otherSlowest.Load()).Round(time.Millisecond))
	for _, k := range codes.Codes() {
		if k != "2013" && k != "1040" {
			t.Errorf("a client of the silent server saw %q; want 2013 or 1040", k)
		}
	}
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

// The link between the proxy and its server cut mid-result: the client
// gets an error, never the final EOF/OK that would make the truncated
// result look complete; other clients go on and the proxy serves the next
// client of that cluster.
func TestDrillNetworkCutMidResult(t *testing.T) {
	ma := testcluster.Maria
	fwd, err := faultnet.NewForwarder(ma.Primary.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	p := serveDrill(t, fmt.Sprintf(`
[proxy]
postgres_listen = ""
mysql_listen = "127.0.0.1:0"
shutdown_timeout = "5s"
[defaults]
pool_size = 4
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q
[[clusters]]
name = "viafwd"
protocol = "mysql"
database = "viafwd"
server_database = "app"
primary = %q
`, ma.Primary.Addr(), fwd.Addr()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var other faultnet.Tally
	var otherSlowest atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); steadyClient(ctx, p, "app", &other, &otherSlowest) }()

	db, err := sql.Open("mysql", p.dsn("app", "app", "viafwd", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// seq_1_to_N is MariaDB's sequence engine: rows made on the fly.
	const total = 2000000
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT seq, REPEAT('x', 100) FROM seq_1_to_%d`, total))
	if err != nil {
		t.Fatal(err)
	}
	n, cut := 0, 0
	var cutAt time.Time
	for rows.Next() {
		n++
		if n == 20000 {
			cutAt = time.Now()
			cut = fwd.Cut()
		}
	}
	rerr := rows.Err()
	rows.Close()
	errAfter := time.Since(cutAt)
	var cnt int
	err2 := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM seq_1_to_1000`).Scan(&cnt)
	cancel()
	wg.Wait()
	t.Logf("DRILL mysql network cut mid-result: injected a cut of %d proxy-server link(s) after 20000 of %d rows", cut, total)
	t.Logf("  client received %d rows, then error %v (%v after the cut)", n, rerr, errAfter.Round(time.Millisecond))
	t.Logf("  same cluster afterwards: %d rows, err %v; other cluster meanwhile: %s", cnt, err2, other.String())
	if cut == 0 {
		t.Fatal("nothing to cut: the forwarder had no open link")
	}
	if rerr == nil {
		t.Errorf("the result ended without an error after %d of %d rows: a truncated result looked complete", n, total)
	} else if mysqlErrNum(rerr) != 2013 {
		t.Errorf("after the cut the client saw %v; want error 2013", rerr)
	}
	if n >= total {
		t.Error("every row arrived; the cut came too late to test anything")
	}
	if err2 != nil || cnt != 1000 {
		t.Errorf("the next statement on the cut cluster: %d, %v", cnt, err2)
	}
	if other.Failed.Load() > 0 || other.OK.Load() == 0 {
		t.Errorf("the other cluster's client: %s", other.String())
	}
}

// Regression: a server connection lost inside a transaction used to leave
// the client's session going on in autocommit, so a client that carried
// on would COMMIT half a transaction. The client must get 2013 and lose
// its connection, as with a server crash.
func TestServerLostMidTransactionClosesClient(t *testing.T) {
	ma := testcluster.Maria
	rootExec(t, `CREATE TABLE IF NOT EXISTS app.t_lost_tx (id INT PRIMARY KEY)`)
	rootExec(t, `DELETE FROM app.t_lost_tx`)
	fwd, err := faultnet.NewForwarder(ma.Primary.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	p := serveDrill(t, fmt.Sprintf(`
[proxy]
postgres_listen = ""
mysql_listen = "127.0.0.1:0"
[defaults]
pool_size = 2
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q
`, fwd.Addr()))
	ctx := context.Background()
	db, err := sql.Open("mysql", p.dsn("app", "app", "app", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{`BEGIN`, `INSERT INTO t_lost_tx VALUES (1)`} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if fwd.Cut() == 0 {
		t.Fatal("nothing to cut")
	}
	_, err = conn.ExecContext(ctx, `INSERT INTO t_lost_tx VALUES (2)`)
	if mysqlErrNum(err) != 2013 {
		t.Fatalf("statement after the loss: %v; want error 2013", err)
	}
	_, err = conn.ExecContext(ctx, `INSERT INTO t_lost_tx VALUES (3)`)
	_, cerr := conn.ExecContext(ctx, `COMMIT`)
	if err == nil || cerr == nil {
		t.Fatalf("the session went on after its transaction was lost: insert %v, commit %v", err, cerr)
	}
	n, err := ma.QueryString(ma.Primary, `SELECT COUNT(*) FROM app.t_lost_tx`)
	if err != nil || n != "0" {
		t.Fatalf("rows of the lost transaction: %s %v; want 0", n, err)
	}
	// A new connection works.
	var one int
	if err := db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		t.Fatal(err)
	}
}

// hangServer is a MySQL server that logs clients in (any password) and
// then never answers a SELECT. Statements it is told to KILL are counted.
type hangServer struct {
	ln             net.Listener
	kills, closeds atomic.Int64
}

func newHangServer(t *testing.T) *hangServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangServer{ln: ln}
	t.Cleanup(faultnet.Serve(ln, h.serve))
	return h
}

func (h *hangServer) serve(c net.Conn, id uint32) {
	defer c.Close()
	bw := bufio.NewWriter(c)
	hs := mysqlproto.Handshake{ServerVersion: "10.11.0-MariaDB-hang", ConnectionID: id, Scramble: mysqlproto.NewScramble(),
		Capabilities: proxyCaps, Collation: defaultCollation, Status: mysqlproto.StatusAutocommit, AuthPlugin: mysqlproto.PluginNative}
	if _, err := mysqlproto.WritePacket(bw, 0, hs.Encode(nil)); err != nil || bw.Flush() != nil {
		return
	}
	p, seq, err := mysqlproto.ReadPacket(c, nil, 1<<20)
	if err != nil {
		return
	}
	var resp mysqlproto.HandshakeResponse
	if resp.Decode(p) != nil {
		return
	}
	caps := resp.Capabilities & proxyCaps
	if _, err := mysqlproto.WritePacket(bw, seq+1, mysqlproto.AppendOK(nil, caps, mysqlproto.HeaderOK, 0, 0, mysqlproto.StatusAutocommit, 0)); err != nil || bw.Flush() != nil {
		return
	}
	for {
		p, _, err := mysqlproto.ReadPacket(c, nil, 1<<20)
		if err != nil || len(p) == 0 || p[0] == mysqlproto.ComQuit {
			h.closeds.Add(1)
			return
		}
		q := string(p[1:])
		switch {
		case p[0] == mysqlproto.ComQuery && strings.HasPrefix(q, "KILL"):
			h.kills.Add(1)
		case p[0] == mysqlproto.ComQuery && strings.Contains(q, "SELECT"):
			continue // hang: never answer
		}
		if _, err := mysqlproto.WritePacket(bw, 1, mysqlproto.AppendOK(nil, caps, mysqlproto.HeaderOK, 0, 0, mysqlproto.StatusAutocommit, 0)); err != nil || bw.Flush() != nil {
			return
		}
	}
}

// A server that logs in and then hangs mid-query. The proxy has no query
// timeout of its own; what frees the server connection is the client
// giving up: go-sql-driver closes its connection when its context ends,
// the proxy notices (it looks at the client socket while a command is
// out), closes the server connection and kills its thread (KILL QUERY from
// another client connection, as the mysql CLI sends on Ctrl-C, works too).
func TestDrillServerHangsMidQuery(t *testing.T) {
	h := newHangServer(t)
	p := serveDrill(t, fmt.Sprintf(`
[proxy]
postgres_listen = ""
mysql_listen = "127.0.0.1:0"
shutdown_timeout = "2s"
[defaults]
pool_size = 1
query_wait_timeout = "1s"
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q
# The healthy cluster is not under test: its server connection may take
# more than the hung cluster's 1s to dial on a loaded machine.
query_wait_timeout = "20s"
[[clusters]]
name = "hang"
protocol = "mysql"
database = "hangdb"
server_database = "app"
primary = %q
`, testcluster.Maria.Primary.Addr(), h.ln.Addr()))
	ctx := context.Background()
	db, err := sql.Open("mysql", p.dsn("app", "app", "hangdb", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	var one int
	qerr := db.QueryRowContext(qctx, `SELECT 1`).Scan(&one)
	took := time.Since(start)
	qcancel()
	if qerr == nil {
		t.Fatal("a query on a hung server succeeded")
	}
	var freedAfter time.Duration
	for i := 0; i < 100; i++ {
		if h.closeds.Load() > 0 {
			freedAfter = time.Since(start)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The next client of the 1-connection pool gets a connection (and
	// hangs in turn until its own timeout), not query_wait_timeout.
	q2, c2 := context.WithTimeout(ctx, 1500*time.Millisecond)
	err2 := db.QueryRowContext(q2, `SELECT 2`).Scan(&one)
	c2()
	other, err := sql.Open("mysql", p.dsn("app", "app", "app", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherErr := other.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
	t.Logf("DRILL mysql server hangs mid-query: injected a server that logs in and never answers SELECT")
	t.Logf("  client with a 300ms timeout: error after %v: %v", took.Round(time.Millisecond), qerr)
	t.Logf("  server connection closed by the proxy %v after the query began; KILLs sent to the server: %d", freedAfter.Round(time.Millisecond), h.kills.Load())
	t.Logf("  next client on the same 1-connection pool: %v; other cluster: %v", err2, otherErr)
	if took > 2*time.Second {
		t.Errorf("the client waited %v", took)
	}
	if freedAfter == 0 {
		t.Error("the proxy kept the hung server connection after the client left")
	}
	if err2 == nil || mysqlErrNum(err2) == 1040 {
		t.Errorf("next client: %v; want its own timeout, not the pool's", err2)
	}
	if otherErr != nil {
		t.Error(otherErr)
	}
}

// Regression: idle server connections whose server went away (closed by
// a restart) were handed out, failed on first use and, on a replica,
// banned it again each time its ban ended, so a restarted replica took up
// to 18s to get reads back. The pool's check now sees the closed socket.
func TestDeadIdleReplicaConnectionNotLeased(t *testing.T) {
	ma := testcluster.Maria
	fwd, err := faultnet.NewForwarder(ma.Replicas[0].Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	p := serveDrill(t, fmt.Sprintf(`
[proxy]
postgres_listen = ""
mysql_listen = "127.0.0.1:0"
[defaults]
pool_size = 2
max_replica_lag = "5s"
lag_poll_interval = "20ms"
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q
replicas = [%q]
`, ma.Primary.Addr(), fwd.Addr()))
	db, err := sql.Open("mysql", p.dsn("app", "app", "app", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	read := func() int {
		var port int
		if err := db.QueryRow(`SELECT @@port`).Scan(&port); err != nil {
			t.Fatal(err)
		}
		return port
	}
	onReplica := false
	for i := 0; i < 300 && !onReplica; i++ {
		onReplica = read() == ma.Replicas[0].Port
		time.Sleep(10 * time.Millisecond)
	}
	if !onReplica {
		t.Fatal("no read reached the replica")
	}
	// Every link to the replica dies while idle (the lag monitor's too;
	// it reconnects).
	fwd.Cut()
	time.Sleep(50 * time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for read() != ma.Replicas[0].Port {
		if time.Now().After(deadline) {
			t.Fatal("reads stayed off the replica after its idle connections died")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, st := range p.srv.Rts.Get("my").Set.Status() {
		if st.Banned {
			t.Errorf("replica banned for a connection that died while idle: %s", st.BanReason)
		}
	}
}
