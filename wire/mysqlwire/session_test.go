package mysqlwire

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

func conn(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func queryString(t *testing.T, c *sql.Conn, q string) string {
	t.Helper()
	var s sql.NullString
	if err := c.QueryRowContext(context.Background(), q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if !s.Valid {
		return "NULL"
	}
	return s.String
}

func execSQL(t *testing.T, c *sql.Conn, q string, args ...any) {
	t.Helper()
	if _, err := c.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// With one server connection, every client shares it: what one client SET
// must not leak to the next, and must come back for it.
func TestSessionStateReplayed(t *testing.T) {
	p := startProxy(t, "pool_size = 1")
	db := p.open(t, "")
	a, b := conn(t, db), conn(t, db)
	execSQL(t, a, "SET time_zone = '+05:00'")
	execSQL(t, a, "SET NAMES latin1")
	if got := queryString(t, b, "SELECT @@time_zone"); got != "SYSTEM" {
		t.Errorf("client b sees time_zone %q", got)
	}
	if got := queryString(t, a, "SELECT @@time_zone"); got != "+05:00" {
		t.Errorf("client a lost its time_zone: %q", got)
	}
	if got := queryString(t, a, "SELECT @@character_set_client"); got != "latin1" {
		t.Errorf("client a lost SET NAMES: %q", got)
	}
	if got := queryString(t, b, "SELECT @@character_set_client"); got != "utf8mb4" {
		t.Errorf("client b sees character_set_client %q", got)
	}
	execSQL(t, a, "USE orders_0")
	if got := queryString(t, b, "SELECT DATABASE()"); got != "app" {
		t.Errorf("client b in database %q", got)
	}
	if got := queryString(t, a, "SELECT DATABASE()"); got != "orders_0" {
		t.Errorf("client a in database %q", got)
	}
	// A client that connected to "orders" lands in its server database.
	odb, err := sql.Open("mysql", p.dsn("app", "app", "orders", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer odb.Close()
	if got := queryString(t, conn(t, odb), "SELECT DATABASE()"); got != "orders_0" {
		t.Errorf("database orders maps to %q", got)
	}
}

func TestSessionPinning(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	db := p.open(t, "")
	db.SetMaxIdleConns(0) // Close of a sql.Conn closes the client connection
	a, b := conn(t, db), conn(t, db)
	before := counterValue(metricPinned.WithLabelValues("user variable"))
	// The metrics both protocols share (README): the gauge and the
	// counter by reason.
	gauge := func() float64 {
		var m dto.Metric
		_ = metrics.PinnedSessions.WithLabelValues("mysql").Write(&m)
		return m.GetGauge().GetValue()
	}
	pinnedBefore, pinsBefore := gauge(), counterValue(metrics.Pins.WithLabelValues("mysql", "user variable"))
	execSQL(t, a, "SET @x = 42")
	execSQL(t, a, "CREATE TEMPORARY TABLE tmp1 (id INT)")
	execSQL(t, a, "INSERT INTO tmp1 VALUES (1), (2)")
	for i := 0; i < 5; i++ {
		queryString(t, b, "SELECT 1")
	}
	if got := queryString(t, a, "SELECT @x"); got != "42" {
		t.Errorf("@x = %s", got)
	}
	if got := queryString(t, a, "SELECT COUNT(*) FROM tmp1"); got != "2" {
		t.Errorf("temporary table has %s rows", got)
	}
	if after := counterValue(metricPinned.WithLabelValues("user variable")); after != before+1 {
		t.Errorf("pinned metric %v -> %v", before, after)
	}
	if g, n := gauge(), counterValue(metrics.Pins.WithLabelValues("mysql", "user variable")); g != pinnedBefore+1 || n != pinsBefore+1 {
		t.Errorf("switchyard_pinned_sessions{mysql} %v -> %v, switchyard_session_pins_total{mysql,user variable} %v -> %v; want +1 each", pinnedBefore, g, pinsBefore, n)
	}
	a.Close()
	// The pinned connection was reset when a left: nobody inherits @x.
	c := conn(t, db)
	d := conn(t, db)
	for _, x := range []*sql.Conn{b, c, d} {
		if got := queryString(t, x, "SELECT @x"); got != "NULL" {
			t.Errorf("a later client sees @x = %s", got)
		}
	}
	for deadline := time.Now().Add(2 * time.Second); gauge() != pinnedBefore; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("switchyard_pinned_sessions{mysql} = %v after the pinned client left, want %v", gauge(), pinnedBefore)
			break
		}
	}
}

func TestPreparedStatementsMoveBetweenConnections(t *testing.T) {
	p := startProxy(t, "pool_size = 3")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.ps (id INT PRIMARY KEY, v VARCHAR(20))")
	rootExec(t, "DELETE FROM app.ps")
	db := p.open(t, "interpolateParams=false")
	a, b := conn(t, db), conn(t, db)
	ctx := context.Background()
	ins, err := a.PrepareContext(ctx, "INSERT INTO ps VALUES (?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	sel, err := a.PrepareContext(ctx, "SELECT v FROM ps WHERE id = ?")
	if err != nil {
		t.Fatal(err)
	}
	before := counterValue(metricReprepares)
	for i := 0; i < 20; i++ {
		// b holds a transaction now and then, so a's statements run on
		// whichever connection is free.
		var tx *sql.Tx
		if i%3 == 0 {
			if tx, err = b.BeginTx(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec("SELECT 1"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ins.ExecContext(ctx, i, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := sel.QueryRowContext(ctx, i).Scan(&v); err != nil || v != fmt.Sprint("v", i) {
			t.Fatalf("row %d: %q %v", i, v, err)
		}
		if tx != nil {
			_ = tx.Rollback()
		}
	}
	ins.Close()
	sel.Close()
	t.Logf("lazy prepares: %v", counterValue(metricReprepares)-before)
	// Unknown statement ids are refused, not forwarded.
	if got := queryString(t, a, "SELECT COUNT(*) FROM ps"); got != "20" {
		t.Fatalf("%s rows", got)
	}
}

// rawClient logs in to the proxy with the proxy's own client code.
func rawClientCaps(t *testing.T, p *testProxy, plugin string, caps uint32) *backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	be, err := dialBackend(ctx, dialParams{addr: p.addr, user: "app", password: "app", db: "app",
		caps: caps, collation: defaultCollation, plugin: plugin, noTrack: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

// readResponse reads one response to a COM_QUERY/COM_STMT_EXECUTE (with
// CLIENT_DEPRECATE_EOF) and returns its rows' first bytes.
func readRows(t *testing.T, be *backend) (rows [][]byte, errp []byte) {
	t.Helper()
	p, _, err := be.readPacket()
	if err != nil {
		t.Fatal(err)
	}
	switch p[0] {
	case mysqlproto.HeaderOK:
		return nil, nil
	case mysqlproto.HeaderERR:
		return nil, append([]byte(nil), p...)
	}
	r := mysqlproto.NewReader(p)
	cols, _ := r.LenEnc()
	if be.caps&mysqlproto.CapDeprecateEOF == 0 {
		cols++ // the EOF after the column definitions
	}
	for i := uint64(0); i < cols; i++ {
		if _, _, err := be.readPacket(); err != nil {
			t.Fatal(err)
		}
	}
	for {
		p, _, err := be.readPacket()
		if err != nil {
			t.Fatal(err)
		}
		if p[0] == mysqlproto.HeaderEOF && len(p) < mysqlproto.MaxChunk {
			return rows, nil
		}
		if p[0] == mysqlproto.HeaderERR {
			return rows, append([]byte(nil), p...)
		}
		rows = append(rows, append([]byte(nil), p...))
	}
}

// An EXECUTE that does not repeat the parameter types (the client sent
// them with an earlier execute) still works when the lease moved to a
// connection where the statement was never executed.
func TestExecuteWithoutTypesOnAnotherConnection(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	for i, plugin := range []string{mysqlproto.PluginNative, mysqlproto.PluginCachingSHA2, mysqlproto.PluginNative} {
		caps := mysqlproto.CapDeprecateEOF | mysqlproto.CapMultiResults | mysqlproto.CapPSMultiResults
		if i == 2 {
			caps = mysqlproto.CapMultiResults // old-style EOF packets
		}
		be := rawClientCaps(t, p, plugin, caps)
		if _, err := be.writePacket(0, append([]byte{mysqlproto.ComStmtPrepare}, "SELECT ? + 1"...)); err != nil {
			t.Fatal(err)
		}
		first, _, err := be.readPacket()
		if err != nil || first[0] != mysqlproto.HeaderOK {
			t.Fatalf("prepare: %x %v", first, err)
		}
		id := binary.LittleEndian.Uint32(first[1:])
		defs := 2 // 1 param def, 1 column def
		if caps&mysqlproto.CapDeprecateEOF == 0 {
			defs = 4 // each followed by an EOF
		}
		for i := 0; i < defs; i++ {
			if _, _, err := be.readPacket(); err != nil {
				t.Fatal(err)
			}
		}
		execute := func(bound bool, v int64) []byte {
			pk := []byte{mysqlproto.ComStmtExecute, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}
			binary.LittleEndian.PutUint32(pk[1:], id)
			if bound {
				pk = append(pk, 1, 8, 0) // LONGLONG
			} else {
				pk = append(pk, 0)
			}
			pk = binary.LittleEndian.AppendUint64(pk, uint64(v))
			if _, err := be.writePacket(0, pk); err != nil {
				t.Fatal(err)
			}
			rows, errp := readRows(t, be)
			if errp != nil || len(rows) != 1 {
				e, _ := mysqlproto.DecodeERR(errp)
				t.Fatalf("execute: %d rows, %+v", len(rows), e)
			}
			return rows[0]
		}
		execute(true, 1)
		// Hold both server connections with other clients' transactions,
		// release one, so the next execute may land elsewhere.
		db := p.open(t, "")
		var txs []*sql.Tx
		for i := 0; i < 2; i++ {
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec("SELECT 1"); err != nil {
				t.Fatal(err)
			}
			txs = append(txs, tx)
		}
		done := make(chan []byte)
		go func() { done <- execute(false, 41) }()
		time.Sleep(50 * time.Millisecond)
		_ = txs[1].Rollback()
		row := <-done
		_ = txs[0].Rollback()
		// Binary row: 0x00, NULL bitmap (1 byte), then the value.
		if len(row) < 10 || binary.LittleEndian.Uint64(row[2:]) != 42 {
			t.Fatalf("row %x", row)
		}
		// COM_PING is answered; COM_STMT_FETCH refused clearly.
		if _, err := be.writePacket(0, []byte{mysqlproto.ComPing}); err != nil {
			t.Fatal(err)
		}
		if pk, _, err := be.readPacket(); err != nil || pk[0] != mysqlproto.HeaderOK {
			t.Fatalf("ping: %x %v", pk, err)
		}
	}
}

func TestKillQuery(t *testing.T) {
	other := `[[users]]
name = "other"
password = "other"
server_user = "app"
server_password = "app"`
	app := `[[users]]
name = "app"
password = "app"`
	p := startProxy(t, "pool_size = 4", app, other)
	db := p.open(t, "")
	victim := conn(t, db)
	var victimID uint32
	ids := func() map[uint32]bool {
		m := map[uint32]bool{}
		for _, s := range p.srv.fe.Clients() {
			m[s.id] = true
		}
		return m
	}
	old := ids()
	queryString(t, conn(t, db), "SELECT 1") // warm
	_ = old
	// Find the victim's proxy connection id: the session that is busy.
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := victim.ExecContext(context.Background(), "SELECT SLEEP(20)")
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for victimID == 0 && time.Now().Before(deadline) {
		for _, s := range p.srv.fe.Clients() {
			s.mu.Lock()
			busy := s.busy
			s.mu.Unlock()
			if busy && victimID == 0 {
				victimID = s.id
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if victimID == 0 {
		t.Fatal("victim not found busy")
	}
	// Another user may not kill it; unknown ids are unknown.
	odb, err := sql.Open("mysql", p.dsn("other", "other", "app", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer odb.Close()
	if _, err := odb.Exec(fmt.Sprintf("KILL QUERY %d", victimID)); mysqlErrNum(err) != 1095 {
		t.Errorf("kill by another user: %v", err)
	}
	if _, err := db.Exec("KILL QUERY 999999"); mysqlErrNum(err) != 1094 {
		t.Errorf("kill of unknown id: %v", err)
	}
	if _, err := db.Exec(fmt.Sprintf("KILL QUERY %d", victimID)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("victim returned after %v", d)
		}
		t.Logf("victim got %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("KILL QUERY did not stop the query")
	}
	// The victim's session goes on.
	if got := queryString(t, victim, "SELECT 7"); got != "7" {
		t.Fatal(got)
	}
	// KILL CONNECTION closes it.
	if _, err := db.Exec(fmt.Sprintf("KILL %d", victimID)); err != nil {
		t.Fatal(err)
	}
	if _, err := victim.ExecContext(context.Background(), "SELECT 8"); err == nil {
		t.Fatal("killed connection still served")
	}
}

func TestSessionPoolMode(t *testing.T) {
	user := `[[users]]
name = "app"
password = "app"
pool_mode = "session"`
	p := startProxy(t, "pool_size = 2", user)
	db := p.open(t, "")
	a := conn(t, db)
	before := counterValue(metricPinned.WithLabelValues("user variable"))
	id := queryString(t, a, "SELECT CONNECTION_ID()")
	execSQL(t, a, "SET @x = 1")
	b := conn(t, db)
	for i := 0; i < 3; i++ {
		queryString(t, b, "SELECT 1")
		if got := queryString(t, a, "SELECT CONNECTION_ID()"); got != id {
			t.Fatalf("session mode moved the client from server thread %s to %s", id, got)
		}
	}
	if after := counterValue(metricPinned.WithLabelValues("user variable")); after != before {
		t.Error("session mode counted a pin")
	}
}

func TestShutdownLetsTransactionsFinish(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.sd (id INT PRIMARY KEY)")
	rootExec(t, "DELETE FROM app.sd")
	db := p.open(t, "")
	idle := conn(t, db)
	queryString(t, idle, "SELECT 1")
	busy := conn(t, db)
	execSQL(t, busy, "BEGIN")
	execSQL(t, busy, "INSERT INTO sd VALUES (1)")
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- p.srv.Shutdown(ctx)
	}()
	time.Sleep(100 * time.Millisecond)
	// New clients are refused.
	if nc, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		nc.Close()
		t.Error("listener still open")
	}
	execSQL(t, busy, "INSERT INTO sd VALUES (2)")
	execSQL(t, busy, "COMMIT")
	select {
	case err := <-shut:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not finish after the transaction")
	}
	if n, err := testcluster_count("app.sd"); err != nil || n != "2" {
		t.Fatalf("rows %s %v", n, err)
	}
	if _, err := idle.ExecContext(context.Background(), "SELECT 1"); err == nil {
		t.Error("idle client still served after shutdown")
	}
}

func TestTooManyClients(t *testing.T) {
	p := startProxy(t, "")
	cfg := *p.srv.Config()
	cfg.Proxy.MaxClientConns = 1
	p.srv.Reload(&cfg)
	db := p.open(t, "")
	a := conn(t, db)
	queryString(t, a, "SELECT 1")
	_, err := db.Conn(context.Background())
	if mysqlErrNum(err) != 1040 {
		t.Fatalf("want 1040, got %v", err)
	}
}

func TestConcurrentMixedLoad(t *testing.T) {
	// Mixed text, binary and transactional traffic under -race.
	p := startProxy(t, "pool_size = 4")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.mix (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	dbs := []*sql.DB{p.open(t, "interpolateParams=true"), p.open(t, "")}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := dbs[g%2]
			for i := 0; i < 30; i++ {
				var err error
				switch i % 3 {
				case 0:
					_, err = db.Exec("INSERT INTO mix (v) VALUES (?)", i)
				case 1:
					var n int
					err = db.QueryRow("SELECT COUNT(*) FROM mix WHERE v >= ?", 0).Scan(&n)
				case 2:
					var tx *sql.Tx
					if tx, err = db.Begin(); err == nil {
						_, err = tx.Exec("UPDATE mix SET v = v + 1 WHERE id = ?", i)
						if err == nil {
							err = tx.Commit()
						} else {
							_ = tx.Rollback()
						}
					}
				}
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(strings.Join(strings.Fields(fmt.Sprint(errs)), " "))
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func TestLastInsertIDAcrossConnections(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.li (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	db := p.open(t, "")
	a, b := conn(t, db), conn(t, db)
	res, err := a.ExecContext(context.Background(), "INSERT INTO li (v) VALUES (1)")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := res.LastInsertId()
	// b inserts too, on whatever connection; a's LAST_INSERT_ID() stays a's.
	for i := 0; i < 3; i++ {
		execSQL(t, b, "INSERT INTO li (v) VALUES (2)")
	}
	if got := queryString(t, a, "SELECT LAST_INSERT_ID()"); got != fmt.Sprint(want) {
		t.Fatalf("LAST_INSERT_ID() = %s, want %d", got, want)
	}
	rows, err := a.QueryContext(context.Background(), "select last_insert_id() as id")
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	rows.Close()
	if len(cols) != 1 || cols[0] != "id" {
		t.Fatalf("columns %q", cols)
	}
}

// A reload that changes only pool limits (pool_size) resizes the pools in
// place, as for PostgreSQL: the pool and its server connections stay (they
// used to be drained and replaced). One that changes how connections are
// made (server_lifetime here) replaces the pool; a connected client moves
// over.
func TestReloadKeepsAndReplacesPools(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	db := p.open(t, "")
	a := conn(t, db)
	connID := queryString(t, a, "SELECT CONNECTION_ID()")
	only := func() *pool.Pool {
		t.Helper()
		var pools []*pool.Pool
		p.srv.Pools.Each(func(_ frontend.PoolKey, pl *pool.Pool, _ struct{}) { pools = append(pools, pl) })
		if len(pools) != 1 {
			t.Fatalf("%d pools, want 1", len(pools))
		}
		return pools[0]
	}
	first := only()
	// Same config: the pool stays.
	cfg := *p.srv.Config()
	p.srv.Reload(&cfg)
	if only() != first {
		t.Fatal("a no-op reload replaced the pool")
	}
	// New pool size: the pool stays, resized; its connection too.
	cfg2 := cfg
	cfg2.Clusters = append([]config.Cluster(nil), cfg.Clusters...)
	for i := range cfg2.Clusters {
		cfg2.Clusters[i].Settings.PoolSize = 3
	}
	p.srv.Reload(&cfg2)
	if only() != first {
		t.Fatal("a pool_size reload replaced the pool (drained a healthy one)")
	}
	if got := queryString(t, a, "SELECT CONNECTION_ID()"); got != connID {
		t.Errorf("server connection %s after a pool_size reload, want %s kept", got, connID)
	}
	// Three clients in transactions at once: the pool holds three now.
	var txs []*sql.Tx
	for range 3 {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		var id string
		if err := tx.QueryRow("SELECT CONNECTION_ID()").Scan(&id); err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	if st := first.Stats(); st.Active != 3 {
		t.Errorf("pool stats %+v with three transactions open, want 3 active", st)
	}
	for _, tx := range txs {
		_ = tx.Rollback()
	}
	// A change to how connections are made: a new pool; a connected
	// client moves over.
	cfg3 := cfg2
	cfg3.Clusters = append([]config.Cluster(nil), cfg2.Clusters...)
	for i := range cfg3.Clusters {
		cfg3.Clusters[i].Settings.ServerLifetime = 2 * time.Hour
	}
	p.srv.Reload(&cfg3)
	if got := queryString(t, a, "SELECT 2"); got != "2" {
		t.Fatal(got)
	}
	if only() == first {
		t.Fatal("a server_lifetime reload kept the old pool")
	}
}

func TestClientTLS(t *testing.T) {
	p := startProxy(t, "")
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := *p.srv.Config()
	cfg.Proxy.TLSCert, cfg.Proxy.TLSKey = certFile, keyFile
	p.srv.Reload(&cfg)
	db, err := sql.Open("mysql", p.dsn("app", "app", "app", "tls=skip-verify"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := conn(t, db)
	// The proxy terminates TLS; the cipher is visible only to the client,
	// so check that the session works and that plain clients still do.
	if got := queryString(t, c, "SELECT 'over tls'"); got != "over tls" {
		t.Fatal(got)
	}
	if got := queryString(t, conn(t, p.open(t, "")), "SELECT 'plain'"); got != "plain" {
		t.Fatal(got)
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestRSAEncryptPassword(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	scramble := []byte("abcdefghijklmnopqrst")
	enc, err := rsaEncryptPassword(pub, scramble, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := rsa.DecryptOAEP(sha1.New(), nil, key, enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range plain {
		plain[i] ^= scramble[i%len(scramble)]
	}
	if string(plain) != "s3cret\x00" {
		t.Fatalf("%q", plain)
	}
	if _, err := rsaEncryptPassword([]byte("garbage"), scramble, "x"); err == nil {
		t.Fatal("garbage key accepted")
	}
}

// SELECT CONNECTION_ID() answers the client's own id, the one its
// handshake gave and KILL takes: the server thread that would answer is
// any pooled one, and a KILL of that number named another client (a
// tester's KILL of what CONNECTION_ID() said dropped an unrelated
// client). A watchdog that kills a connection's query by the id the
// connection read works.
func TestConnectionIDIsKillable(t *testing.T) {
	p := startProxy(t, "pool_size = 4")
	db := p.open(t, "")
	victim, killer := conn(t, db), conn(t, db)
	id := queryString(t, victim, "SELECT CONNECTION_ID()")
	if alias := queryString(t, victim, "SELECT CONNECTION_ID() AS me"); alias != id {
		t.Fatalf("SELECT CONNECTION_ID() AS me = %s, want %s", alias, id)
	}
	known := false
	for _, s := range p.srv.fe.Clients() {
		known = known || fmt.Sprint(s.id) == id
	}
	if !known {
		t.Fatalf("CONNECTION_ID() = %s is no client of the proxy", id)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := victim.ExecContext(context.Background(), "SELECT SLEEP(20)")
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := killer.ExecContext(context.Background(), "KILL QUERY "+id)
		if err != nil {
			t.Fatalf("KILL QUERY %s: %v", id, err)
		}
		select {
		case err := <-done:
			if mysqlErrNum(err) != 1317 {
				t.Fatalf("the victim's query: %v, want 1317 (query interrupted)", err)
			}
			t.Logf("interrupted after %v", time.Since(start))
			if got := queryString(t, victim, "SELECT 7"); got != "7" {
				t.Fatal(got)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("KILL QUERY of CONNECTION_ID() did not stop the query")
		}
	}
}

// Malformed commands get MariaDB's answers: an empty command packet ERR
// 1047 (Unknown command) and the session goes on; a command with a
// sequence id other than 0, ERR 1156 (Got packets out of order) and the
// connection ends. Both closed the connection without a word.
func TestMalformedCommandAnswers(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	be := rawClientCaps(t, p, mysqlproto.PluginNative, 0)
	if _, err := be.writePacket(0, nil); err != nil {
		t.Fatal(err)
	}
	pkt, seq, err := be.readPacket()
	if err != nil {
		t.Fatalf("empty command: %v", err)
	}
	if e, derr := mysqlproto.DecodeERR(pkt); derr != nil || e.Code != 1047 || seq != 1 {
		t.Fatalf("empty command: %x (seq %d), want ERR 1047 with sequence id 1", pkt, seq)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if v, _, err := be.queryValue(ctx, "SELECT 41 + 1"); err != nil || v != "42" {
		t.Fatalf("after the empty command: %q, %v", v, err)
	}
	if _, err := be.writePacket(3, append([]byte{mysqlproto.ComQuery}, "SELECT 1"...)); err != nil {
		t.Fatal(err)
	}
	pkt, _, err = be.readPacket()
	if err != nil {
		t.Fatalf("out of order: %v", err)
	}
	if e, derr := mysqlproto.DecodeERR(pkt); derr != nil || e.Code != 1156 {
		t.Fatalf("command with sequence id 3: %x, want ERR 1156", pkt)
	}
	if _, _, err := be.readPacket(); err == nil {
		t.Fatal("the connection stayed open after packets out of order")
	}
}

// The server binds a prepared statement's tables (and DATABASE()) in the
// database current at prepare time. Two clients preparing the same text in
// different databases on one pooled connection must each read their own
// table, and a client that changed database after preparing reads the
// table of the statement's database, as on a server of its own. (The
// proxy kept server statements by text alone: the client in app executed
// the statement prepared in orders_0 and read orders_0's rows.)
func TestPreparedStatementKeepsItsDatabase(t *testing.T) {
	p := startProxy(t, "pool_size = 1") // one server connection for everyone
	for _, d := range []string{"app", "orders_0"} {
		rootExec(t, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.psdb (v VARCHAR(20)); DELETE FROM %[1]s.psdb; INSERT INTO %[1]s.psdb VALUES ('%[1]s')", d))
	}
	t.Cleanup(func() { rootExec(t, "DROP TABLE app.psdb, orders_0.psdb") }) // TestShardCatalog lists orders_0's tables
	ctx := context.Background()
	dbB := p.open(t, "interpolateParams=false")
	a, b := conn(t, p.open(t, "interpolateParams=false")), conn(t, dbB)
	execSQL(t, b, "USE orders_0")
	const q = "SELECT v, DATABASE() FROM psdb"
	sa, err := a.PrepareContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.PrepareContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	check := func(who string, st *sql.Stmt, want string) {
		t.Helper()
		var v, d string
		if err := st.QueryRowContext(ctx).Scan(&v, &d); err != nil || v != want || d != want {
			t.Fatalf("%s: read %q in %q (%v), want %q", who, v, d, err, want)
		}
	}
	for i := 0; i < 3; i++ {
		check("client in app", sa, "app")
		check("client in orders_0", sb, "orders_0")
	}
	// a moves to orders_0; its statement stays app's, on a connection
	// that has not seen it in app (reset by b's COM_RESET_CONNECTION).
	execSQL(t, a, "USE orders_0")
	if _, err := b.ExecContext(ctx, "SET @x = 1"); err != nil { // pins b
		t.Fatal(err)
	}
	sb.Close()
	b.Close()
	dbB.Close() // the client leaves: its connection is reset, statements and all
	check("client moved to orders_0", sa, "app")
	if got := queryString(t, a, "SELECT DATABASE()"); got != "orders_0" {
		t.Fatalf("after the execute the client is in %q", got)
	}
}

// COM_RESET_CONNECTION resets the session as a server does: settings,
// autocommit and LAST_INSERT_ID() go back, the current database stays
// (the proxy went back to the database of the login: a client that had
// switched wrote into the other one).
func TestResetConnectionKeepsDatabase(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.rc (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	be := rawClientCaps(t, p, mysqlproto.PluginNative, mysqlproto.CapDeprecateEOF|mysqlproto.CapMultiResults)
	query := func(q string) string {
		t.Helper()
		if _, err := be.writePacket(0, append([]byte{mysqlproto.ComQuery}, q...)); err != nil {
			t.Fatal(err)
		}
		rows, errp := readRows(t, be)
		if errp != nil {
			e, _ := mysqlproto.DecodeERR(errp)
			t.Fatalf("%s: %+v", q, e)
		}
		if len(rows) == 0 {
			return ""
		}
		return string(rows[0][1:]) // one short text column: its length byte, then the value
	}
	query("SET sql_mode = 'ANSI'")
	if got := query("SELECT @@sql_mode LIKE '%ANSI_QUOTES%'"); got != "1" {
		t.Fatalf("sql_mode: %q", got)
	}
	query("INSERT INTO rc (v) VALUES (1)")
	query("USE orders_0")
	if got := query("SELECT LAST_INSERT_ID() > 0"); got != "1" {
		t.Fatalf("LAST_INSERT_ID() > 0: %q", got)
	}
	if err := be.roundTrip([]byte{mysqlproto.ComResetConnection}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ q, want string }{
		{"SELECT DATABASE()", "orders_0"},
		{"SELECT LAST_INSERT_ID()", "0"},
		{"SELECT @@sql_mode LIKE '%ANSI_QUOTES%'", "0"},
	} {
		if got := query(c.q); got != c.want {
			t.Errorf("after COM_RESET_CONNECTION, %s: %q, want %q", c.q, got, c.want)
		}
	}
}

// A SET the client runs again counts as its latest: replayed on another
// server connection, SET a; SET b; SET a leaves a. (The proxy kept the
// first place of a repeated SET: the replay ran a, then b, and every
// later lease read b.)
func TestRepeatedSetReplayedLast(t *testing.T) {
	p := startProxy(t, "pool_size = 1")
	db := p.open(t, "")
	a, b := conn(t, db), conn(t, db)
	execSQL(t, a, "SET time_zone = '+01:00'")
	execSQL(t, a, "SET time_zone = '+02:00'")
	execSQL(t, a, "SET time_zone = '+01:00'")
	if got := queryString(t, a, "SELECT @@time_zone"); got != "+01:00" {
		t.Fatalf("on its own connection: %q", got)
	}
	// b takes the only server connection: a's SETs are replayed after.
	if got := queryString(t, b, "SELECT @@time_zone"); got != "SYSTEM" {
		t.Fatalf("client b sees time_zone %q", got)
	}
	if got := queryString(t, a, "SELECT @@time_zone"); got != "+01:00" {
		t.Errorf("after a replay: time_zone %q, want +01:00, the value the client set last", got)
	}
}

// The server parses a prepared statement under the sql_mode and character
// set of the moment. A statement one client prepared on a pooled
// connection must not serve another client whose SETs make the same text
// mean something else ('a' || 'b' is OR, or CONCAT under
// PIPES_AS_CONCAT). (The proxy replayed a client's SETs on top of a
// connection's statements and executed another client's.)
func TestPreparedStatementParsedUnderClientsSettings(t *testing.T) {
	p := startProxy(t, "pool_size = 1")
	db := p.open(t, "interpolateParams=false")
	ctx := context.Background()
	a, b := conn(t, db), conn(t, db)
	execSQL(t, a, "SET sql_mode = 'PIPES_AS_CONCAT'")
	const q = "SELECT 'a' || 'b'"
	sb, err := b.PrepareContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := a.PrepareContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		for _, c := range []struct {
			who  string
			st   *sql.Stmt
			want string
		}{{"client without SETs", sb, "0"}, {"client with PIPES_AS_CONCAT", sa, "ab"}} {
			var v string
			if err := c.st.QueryRowContext(ctx).Scan(&v); err != nil || v != c.want {
				t.Fatalf("%s: %q (%v), want %q", c.who, v, err, c.want)
			}
		}
	}
}

// A prepared KILL (go-sql-driver's db.Exec("KILL QUERY ?", id) without
// interpolateParams) is the proxy's to serve, as the text one is: the id
// is a client's. (It went to a server, where the number named whatever
// server thread had it: another client's pooled connection, or none, and
// the client's query ran on.)
func TestPreparedKill(t *testing.T) {
	p := startProxy(t, "pool_size = 4")
	db := p.open(t, "interpolateParams=false")
	ctx := context.Background()
	victim := conn(t, db)
	id := queryString(t, victim, "SELECT CONNECTION_ID()")
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := victim.ExecContext(ctx, "SELECT SLEEP(20)")
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := db.Exec("KILL QUERY ?", 999999); mysqlErrNum(err) != 1094 {
		t.Errorf("prepared KILL of an unknown id: %v", err)
	}
	if _, err := db.Exec("KILL QUERY ?", id); err != nil { // a string of digits
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("victim returned after %v", d)
		}
		t.Logf("victim got %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("a prepared KILL QUERY did not stop the query")
	}
	if got := queryString(t, victim, "SELECT 7"); got != "7" {
		t.Fatal(got)
	}
	st, err := db.Prepare("KILL CONNECTION " + id) // the id in the text
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Exec(); err != nil {
		t.Fatal(err)
	}
	if _, err := victim.ExecContext(ctx, "SELECT 8"); err == nil {
		t.Fatal("killed connection still served")
	}
}

// MariaDB's statement id -1 names the last statement prepared: drivers
// send COM_STMT_PREPARE and COM_STMT_EXECUTE(-1) back to back (Connector/C's
// mariadb_stmt_execute_direct, Connector/J, the Node.js connector). (The
// proxy answered 'Unknown prepared statement handler (4294967295)'.)
func TestExecuteLastPreparedStatement(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	be := rawClientCaps(t, p, mysqlproto.PluginNative, mysqlproto.CapDeprecateEOF|mysqlproto.CapMultiResults|mysqlproto.CapPSMultiResults)
	last := []byte{0xff, 0xff, 0xff, 0xff}
	prepare := func(q string) {
		t.Helper()
		if _, err := mysqlproto.WritePacket(be.bw, 0, append([]byte{mysqlproto.ComStmtPrepare}, q...)); err != nil {
			t.Fatal(err)
		}
	}
	execute := func(params ...byte) {
		t.Helper()
		pk := append(append([]byte{mysqlproto.ComStmtExecute}, last...), 0, 1, 0, 0, 0)
		pk = append(pk, params...)
		if _, err := mysqlproto.WritePacket(be.bw, 0, pk); err != nil {
			t.Fatal(err)
		}
	}
	readPrepare := func() {
		t.Helper()
		pk, _, err := be.readPacket()
		if err != nil || pk[0] != mysqlproto.HeaderOK {
			t.Fatalf("prepare: %q %v", pk, err)
		}
		n := int(binary.LittleEndian.Uint16(pk[5:])) + int(binary.LittleEndian.Uint16(pk[7:]))
		for i := 0; i < n; i++ {
			if _, _, err := be.readPacket(); err != nil {
				t.Fatal(err)
			}
		}
	}
	row := func() []byte {
		t.Helper()
		rows, errp := readRows(t, be)
		if errp != nil || len(rows) != 1 {
			e, _ := mysqlproto.DecodeERR(errp)
			t.Fatalf("execute(-1): %d rows, %+v", len(rows), e)
		}
		return rows[0]
	}
	// Pipelined, no parameters.
	prepare("SELECT 40 + 2")
	execute()
	if err := be.bw.Flush(); err != nil {
		t.Fatal(err)
	}
	readPrepare()
	if r := row(); len(r) < 3 || r[2] != 42 { // 0x00, NULL bitmap, the value
		t.Fatalf("row %x", r)
	}
	// A parameter, with long data sent under -1 as well.
	prepare("SELECT CONCAT(?, '!')")
	ld := append(append([]byte{mysqlproto.ComStmtSendLongData}, last...), 0, 0)
	if _, err := mysqlproto.WritePacket(be.bw, 0, append(ld, "long"...)); err != nil {
		t.Fatal(err)
	}
	execute(0x00, 1, 0xfd, 0) // VAR_STRING; null bitmap, types bound, no inline value
	if err := be.bw.Flush(); err != nil {
		t.Fatal(err)
	}
	readPrepare()
	if r := row(); !bytes.Contains(r, []byte("long!")) {
		t.Fatalf("row %q", r)
	}
	// After a prepare that failed, -1 names nothing.
	prepare("SELECT FROM nowhere")
	execute()
	if err := be.bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if pk, _, err := be.readPacket(); err != nil || pk[0] != mysqlproto.HeaderERR {
		t.Fatalf("bad prepare: %q %v", pk, err)
	}
	if _, errp := readRows(t, be); errp == nil {
		t.Fatal("execute(-1) after a failed prepare was served")
	} else if e, _ := mysqlproto.DecodeERR(errp); e.Code != mysqlproto.ERUnknownStmtHandler {
		t.Fatalf("execute(-1) after a failed prepare: %+v", e)
	}
}

// A client whose current database is dropped can still USE another one.
// (Every lease switched the server connection to the client's database
// first, which failed with 1049, this USE included: the client was stuck
// until it reconnected.)
func TestUseAfterDatabaseDropped(t *testing.T) {
	p := startProxy(t, "pool_size = 1")
	rootExec(t, "CREATE DATABASE IF NOT EXISTS sy_dropped")
	rootExec(t, "GRANT ALL ON `sy_dropped`.* TO 'app'@'%'")
	t.Cleanup(func() { rootExec(t, "DROP DATABASE IF EXISTS sy_dropped") })
	db := p.open(t, "")
	a, b := conn(t, db), conn(t, db)
	execSQL(t, a, "USE sy_dropped")
	rootExec(t, "DROP DATABASE sy_dropped")
	if got := queryString(t, b, "SELECT DATABASE()"); got != "app" { // b takes the connection
		t.Fatalf("client b in %q", got)
	}
	execSQL(t, a, "USE app")
	if got := queryString(t, a, "SELECT DATABASE()"); got != "app" {
		t.Fatalf("after USE app: %q", got)
	}
}

// A USE the proxy cannot follow (in a multi-statement query that failed
// after it, or prepared) moves the server connection to another database;
// once that client is gone, COM_RESET_CONNECTION keeps the database, and
// the next client must not run in it. (The proxy still believed the
// connection was in the database of before: the next client's statements
// read and wrote orders_0's tables.)
func TestUntrackedUseNotHandedOn(t *testing.T) {
	p := startProxy(t, "pool_size = 1")
	for i, use := range []string{"USE orders_0; SELECT * FROM no_such_table", "prepared"} {
		db := p.open(t, "multiStatements=true")
		db.SetMaxIdleConns(0)
		a := conn(t, db)
		if use == "prepared" {
			st, err := a.PrepareContext(context.Background(), "USE orders_0")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Exec(); err != nil {
				t.Fatal(err)
			}
			st.Close()
		} else if _, err := a.ExecContext(context.Background(), use); err == nil {
			t.Fatalf("%s: no error", use)
		}
		if got := queryString(t, a, "SELECT DATABASE()"); got != "orders_0" {
			t.Fatalf("%d: the client itself is in %q", i, got)
		}
		a.Close()
		db.Close() // the client leaves: its connection is reset
		b := conn(t, p.open(t, ""))
		if got := queryString(t, b, "SELECT DATABASE()"); got != "app" {
			t.Errorf("%d (%s): the next client runs in %q, want app", i, use, got)
		}
	}
}

// SET TRANSACTION is for the next transaction of the server connection it
// ran on. When the client's next command starts none (SELECT 1, a SET),
// the lease ends with it still pending there: the next client must not
// get it. (Its transaction became READ ONLY: its INSERT failed with 1792.)
func TestSetTransactionNotHandedOn(t *testing.T) {
	p := startProxy(t, "pool_size = 1")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.stx (id INT)")
	db := p.open(t, "")
	a, b := conn(t, db), conn(t, db)
	execSQL(t, a, "SET TRANSACTION READ ONLY")
	if got := queryString(t, a, "SELECT 1"); got != "1" {
		t.Fatal(got)
	}
	tx, err := b.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("INSERT INTO stx VALUES (1)"); err != nil {
		t.Fatalf("another client's transaction: %v", err)
	}
}
