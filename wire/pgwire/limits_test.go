package pgwire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/testcluster"
)

// limitsConfig is startProxy's setup with room for [proxy] keys, extra
// users and a second database "other" (on the same server database).
func limitsConfig(proxy, defaults, users string) string {
	return fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
mysql_listen = ""
admin_listen = ""
shutdown_timeout = "5s"
%s

[defaults]
%s

[[users]]
name = "app"
password = "app"

[[users]]
name = "app_trust"
password = ""
auth = "trust"
server_user = "app"
server_password = "app"

[[users]]
name = "admin"
password = "admin"
admin = true
server_user = "app"
server_password = "app"

%s

[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q

[[clusters]]
name = "pg_other"
protocol = "postgres"
database = "other"
server_database = "app"
primary = %q
`, proxy, withDefaults(defaults, "pool_size = 10", `query_wait_timeout = "5s"`), users,
		testcluster.PG.Primary.Addr(), testcluster.PG.Primary.Addr())
}

// logBuffer collects a proxy's log lines for a test to look at.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveLogged is serveConfig with the proxy's log kept in a buffer.
func serveLogged(t testing.TB, src string) (*testProxy, *logBuffer) {
	t.Helper()
	cfg, err := config.Parse([]byte(src), "test.toml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	lb := &logBuffer{}
	srv, err := NewServer(cfg, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return &testProxy{srv: srv, addr: ln.Addr().String()}, lb
}

// neighbour is a well-behaved client running numbered queries next to a
// misbehaving one; stop returns how many it ran and every error or wrong
// answer it saw.
func neighbour(t testing.TB, p *testProxy) (stop func() (int, []error)) {
	t.Helper()
	ctx := ctxT(t, 2*time.Minute)
	// Trust auth: a SCRAM login under the race detector takes longer
	// than the short login timeouts some tests set.
	conn, err := pgx.Connect(ctx, p.dsn("app_trust", "", "app"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		quit = make(chan struct{})
		done = make(chan struct{})
		n    int
		errs []error
	)
	go func() {
		defer close(done)
		defer conn.Close(context.Background())
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			var got int
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.QueryRow(qctx, `SELECT $1::int + 1`, i).Scan(&got)
			cancel()
			if err == nil && got != i+1 {
				err = fmt.Errorf("SELECT %d + 1 returned %d", i, got)
			}
			if err != nil {
				errs = append(errs, err)
				if len(errs) > 10 {
					return
				}
			}
			n++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return func() (int, []error) {
		close(quit)
		<-done
		return n, errs
	}
}

// checkNeighbour stops a neighbour and fails the test if it saw an error.
func checkNeighbour(t testing.TB, stop func() (int, []error)) int {
	t.Helper()
	n, errs := stop()
	if len(errs) > 0 {
		t.Errorf("the well-behaved neighbour saw %d errors in %d queries: %v", len(errs), n, errs)
	}
	if n == 0 {
		t.Error("the well-behaved neighbour ran no query")
	}
	return n
}

func waitCounts(t testing.TB, p *testProxy, total int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		got := p.srv.Limits.Clients.Counts()
		if got.Total == total {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client count %d, want %d (%+v)", got.Total, total, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pgMessage(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	return ""
}

// Caps on clients in all, per user and per database, each refused with
// 53300 naming what is full; counts return to zero however a login ends,
// and a reload's caps apply to the next login.
func TestLimitClientConns(t *testing.T) {
	src := limitsConfig(`max_client_conns = 5`, ``, `
[[users]]
name = "capped"
password = "capped"
server_user = "app"
server_password = "app"
max_client_conns = 2`)
	src = strings.Replace(src, `database = "other"`, `database = "other"
max_db_client_conns = 2`, 1)
	p := serveConfig(t, src)
	ctx := ctxT(t, 60*time.Second)
	stop := neighbour(t, p) // client 1
	capLimits := []string{"max_client_conns", "user", "database"}
	refusals := metricSumOf(t, "switchyard_client_limit_refusals_total", "limit", capLimits...)

	connect := func(user, pw, db string) (*pgx.Conn, error) {
		c, err := pgx.Connect(ctx, p.dsn(user, pw, db))
		if err == nil {
			t.Cleanup(func() { c.Close(context.Background()) })
			if _, err := c.Exec(ctx, `SELECT 1`); err != nil {
				t.Fatalf("%s on %s: %v", user, db, err)
			}
		}
		return c, err
	}
	wantRefused := func(err error, what string) {
		t.Helper()
		if sqlstate(err) != "53300" || !strings.Contains(pgMessage(err), what) {
			t.Fatalf("want 53300 naming %s, got %v", what, err)
		}
	}
	c1, err := connect("capped", "capped", "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connect("capped", "capped", "app"); err != nil {
		t.Fatal(err)
	}
	_, err = connect("capped", "capped", "app")
	wantRefused(err, `too many connections for user "capped" (max_client_conns = 2)`)

	if _, err := connect("app", "app", "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := connect("app_trust", "", "other"); err != nil { // client 5
		t.Fatal(err)
	}
	_, err = connect("app", "app", "other")
	wantRefused(err, `no more connections allowed (max_client_conns = 5)`)
	waitCounts(t, p, 5)

	// A freed place is free at once; a database cap is checked per database.
	c1.Close(ctx)
	waitCounts(t, p, 4)
	_, err = connect("app", "app", "other")
	wantRefused(err, `too many connections for database "other" (max_db_client_conns = 2)`)
	waitCounts(t, p, 4)

	// Logins that fail half-way, at any step, leave nothing counted, and
	// the place is free by the time the client reads why: back to back at
	// one below the cap, each fails for its own reason, not 53300.
	for _, tc := range []struct{ dsn, code string }{
		{p.dsn("app", "wrong", "app"), "28P01"},
		{p.dsn("nobody", "x", "app"), "28P01"},
		{p.dsn("app", "app", "nodb"), "3D000"},
		{p.dsn("app", "wrong", "app"), "28P01"},
	} {
		_, err := pgx.Connect(ctx, tc.dsn)
		if err == nil {
			t.Fatalf("%s: logged in", tc.dsn)
		}
		if got := sqlstate(err); got != tc.code {
			t.Fatalf("%s: SQLSTATE %s, want %s (%v)", tc.dsn, got, tc.code, err)
		}
	}
	raw, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = raw.Write([]byte{0, 0, 0, 40, 0, 3}) // half a startup packet
	raw.Close()
	waitCounts(t, p, 4)
	if got := p.srv.Limits.Clients.Counts(); got.ByUser["capped"] != 1 || got.ByDB["postgres/other"] != 2 {
		t.Fatalf("counts %+v", got)
	}

	// Reload: new caps for new logins; nobody connected is thrown out.
	cfg, err := config.Parse([]byte(strings.Replace(strings.Replace(src, "max_client_conns = 5", "max_client_conns = 7", 1),
		"max_db_client_conns = 2", "max_db_client_conns = 3", 1)), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := connect("app", "app", "other"); err != nil {
		t.Fatalf("after reload raised the database cap: %v", err)
	}
	if d := metricSumOf(t, "switchyard_client_limit_refusals_total", "limit", capLimits...) - refusals; d != 3 {
		t.Errorf("refusals metric grew by %v, want 3", d)
	}
	checkNeighbour(t, stop)
}

// max_wait_clients: a statement that would wait beyond the cap fails at
// once with 53300 naming the pool; the client stays connected and the
// clients in line are served.
func TestLimitWaitQueue(t *testing.T) {
	p := startProxy(t, `pool_size = 1
max_wait_clients = 1`)
	ctx := ctxT(t, 30*time.Second)
	conns := make([]*pgx.Conn, 3)
	for i := range conns {
		c, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		conns[i] = c
	}
	tx, err := conns[0].Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		var n int
		err := conns[1].QueryRow(ctx, `SELECT 42`).Scan(&n)
		if err == nil && n != 42 {
			err = fmt.Errorf("got %d", n)
		}
		waited <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); metricSum(t, "switchyard_pool_waiting_clients") < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the second client never queued")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	_, err = conns[2].Exec(ctx, `SELECT 1`)
	if sqlstate(err) != "53300" || !strings.Contains(pgMessage(err), "max_wait_clients") || !strings.Contains(pgMessage(err), `pool "pg/app@`) {
		t.Fatalf("third client: want 53300 naming max_wait_clients and the pool, got %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refused after %v, want at once", d)
	}
	// The console counts the refusal on the pool.
	acfg, _ := pgx.ParseConfig(p.rawDSN("admin", "admin", "switchyard"))
	acfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	adm, err := pgx.ConnectConfig(ctx, acfg)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := adm.Query(ctx, "SHOW POOLS")
	pools, err := pgx.CollectRows(rows, pgx.RowToMap)
	adm.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range pools {
		if r["cluster"] == "pg" && r["user"] == "app" {
			found = true
			if r["queue_full"] != "1" || r["waiting"] != "1" {
				t.Errorf("SHOW POOLS: queue_full=%v waiting=%v, want 1 and 1", r["queue_full"], r["waiting"])
			}
		}
	}
	if !found {
		t.Errorf("SHOW POOLS has no pg/app pool: %v", pools)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("the client in line: %v", err)
	}
	if _, err := conns[2].Exec(ctx, `SELECT 1`); err != nil {
		t.Fatalf("the refused client afterwards: %v", err)
	}
}

// A client that connects and says nothing, or stops half-way through the
// startup or the password exchange, is closed after client_login_timeout
// with a log line; a client logged in meanwhile is not disturbed.
func TestLoginTimeout(t *testing.T) {
	p, logs := serveLogged(t, limitsConfig(`client_login_timeout = "500ms"`, ``, ``))
	stop := neighbour(t, p)
	before := metricSum(t, "switchyard_client_login_timeouts_total")

	full := startupPacket("user", "app", "database", "app")
	cases := []struct {
		name string
		send []byte
	}{
		{"silent", nil},
		{"half a startup packet", full[:10]},
		{"no password", full}, // gets the SASL request, never answers
		{"ssl request, then silent", []byte{0, 0, 0, 8, 4, 210, 22, 47}},
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			start := time.Now()
			if len(c.send) > 0 {
				_, _ = conn.Write(c.send)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.Copy(io.Discard, conn) // until the proxy closes
			if d := time.Since(start); err != nil || d < 400*time.Millisecond || d > 3*time.Second {
				t.Errorf("%s: closed after %v (err %v), want about 500ms", c.name, d, err)
			}
		}()
	}
	wg.Wait()
	if d := metricSum(t, "switchyard_client_login_timeouts_total") - before; d != float64(len(cases)) {
		t.Errorf("login timeouts metric grew by %v, want %d", d, len(cases))
	}
	if n := strings.Count(logs.String(), "client login timed out"); n != len(cases) {
		t.Errorf("%d log lines about login timeouts, want %d:\n%s", n, len(cases), logs)
	}
	// A client that logs in normally has its own clock.
	c, err := pgx.Connect(ctxT(t, 10*time.Second), p.dsn("app_trust", "", "app"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	if _, err := c.Exec(ctxT(t, 10*time.Second), `SELECT 1`); err != nil {
		t.Fatalf("a client logged in longer than the login timeout: %v", err)
	}
	c.Close(context.Background())
	checkNeighbour(t, stop)
	waitCounts(t, p, 0)
}

// After auth_failures_per_minute failed logins from one address, its next
// login is refused at once with 28000, even with the right password; the
// failures and refusals are counted; clients logged in are not disturbed.
func TestAuthFailureRateLimit(t *testing.T) {
	p, logs := serveLogged(t, limitsConfig(`auth_failures_per_minute = 3`, ``, `
[[users]]
name = "secretive"
password = "Pl41n-t3xt-S3cret"
server_user = "app"
server_password = "app"

[[users]]
name = "secretive_md5"
password = "Md5-Pl41n-S3cret"
auth = "md5"
server_user = "app"
server_password = "app"`))
	stop := neighbour(t, p)
	ctx := ctxT(t, 30*time.Second)
	failures := metricSum(t, "switchyard_auth_failures_total")
	refusals := metricSum(t, "switchyard_auth_refusals_total")
	// No password, right or wrong, plain or md5, reaches the log.
	for _, u := range [][2]string{{"secretive", "Pl41n-t3xt-S3cret"}, {"secretive_md5", "Md5-Pl41n-S3cret"}} {
		c, err := pgx.Connect(ctx, p.dsn(u[0], u[1], "app"))
		if err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
	}
	if _, err := pgx.Connect(ctx, p.dsn("secretive_md5", "Wr0ng-Md5-Guess", "app")); sqlstate(err) != "28P01" {
		t.Fatalf("md5 wrong password: %v", err)
	}
	defer func() {
		for _, secret := range []string{"Pl41n-t3xt-S3cret", "Md5-Pl41n-S3cret", "Wr0ng-Md5-Guess", "Wr0ng-Pa55"} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("the log shows a password %q:\n%s", secret, logs)
			}
		}
		if !strings.Contains(logs.String(), "login refused") {
			t.Errorf("no login failure was logged:\n%s", logs)
		}
	}()
	// The database a client asked for is not a password failure.
	if _, err := pgx.Connect(ctx, p.dsn("app", "app", "nodb")); sqlstate(err) != "3D000" {
		t.Fatalf("unknown database: %v", err)
	}
	for i, dsn := range []string{p.dsn("app", "Wr0ng-Pa55", "app"), p.dsn("nobody", "x", "app")} {
		if _, err := pgx.Connect(ctx, dsn); sqlstate(err) != "28P01" {
			t.Fatalf("failure %d: want 28P01, got %v", i, err)
		}
	}
	_, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if sqlstate(err) != "28000" || !strings.Contains(pgMessage(err), "too many failed logins from 127.0.0.1 (auth_failures_per_minute = 3)") {
		t.Fatalf("after 3 failures: want 28000 naming the limit, got %v", err)
	}
	if d := metricSum(t, "switchyard_auth_failures_total") - failures; d != 3 {
		t.Errorf("auth failures metric grew by %v, want 3 (md5 and SCRAM)", d)
	}
	if d := metricSum(t, "switchyard_auth_refusals_total") - refusals; d != 1 {
		t.Errorf("auth refusals metric grew by %v, want 1", d)
	}
	checkNeighbour(t, stop)
}

// A user reaches only its databases; the admin console admits only users
// with admin = true, whatever their databases say.
func TestLimitUserDatabasesAndConsole(t *testing.T) {
	p := serveConfig(t, limitsConfig(``, ``, `
[[users]]
name = "only_other"
password = "x"
server_user = "app"
server_password = "app"
databases = ["other", "switchyard"]`))
	ctx := ctxT(t, 30*time.Second)
	c, err := pgx.Connect(ctx, p.dsn("only_other", "x", "other"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	_, err = pgx.Connect(ctx, p.dsn("only_other", "x", "app"))
	if sqlstate(err) != "28000" || !strings.Contains(pgMessage(err), `may not connect to database "app"`) {
		t.Fatalf("user outside its databases: want 28000, got %v", err)
	}
	for _, u := range []struct{ user, pw, code string }{
		{"only_other", "x", "42501"}, // listed the console, but no admin
		{"app", "app", "42501"},
		{"app_trust", "", "42501"},
		{"admin", "wrong", "28P01"},
		{"nobody", "x", "28P01"},
	} {
		_, err := pgx.Connect(ctx, p.rawDSN(u.user, u.pw, "switchyard"))
		if sqlstate(err) != u.code {
			t.Errorf("%s on the console: want %s, got %v", u.user, u.code, err)
		}
	}
	cfg, _ := pgx.ParseConfig(p.rawDSN("admin", "admin", "switchyard"))
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	adm, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("admin on the console: %v", err)
	}
	adm.Close(ctx)
}

// slowDialer relays loopback connections to target after a delay: a
// server that takes its time to accept.
func slowDialer(t testing.TB, target string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer a.Close()
				time.Sleep(delay)
				b, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer b.Close()
				go func() { _, _ = io.Copy(b, a); b.Close() }()
				_, _ = io.Copy(a, b)
			}()
		}
	}()
	return ln.Addr().String()
}

// The login timeout is the client's: a first login that waits for the
// proxy to reach a slow server is not closed for it.
func TestLoginTimeoutNotChargedForServerDial(t *testing.T) {
	src := limitsConfig(`client_login_timeout = "300ms"`, `connect_timeout = "5s"`, ``)
	src = strings.Replace(src, fmt.Sprintf("primary = %q", testcluster.PG.Primary.Addr()),
		fmt.Sprintf("primary = %q", slowDialer(t, testcluster.PG.Primary.Addr(), 600*time.Millisecond)), 1)
	p := serveConfig(t, src)
	ctx := ctxT(t, 30*time.Second)
	start := time.Now()
	c, err := pgx.Connect(ctx, p.dsn("app_trust", "", "app"))
	if err != nil {
		t.Fatalf("first login through a server slower than the login timeout: %v", err)
	}
	defer c.Close(ctx)
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Fatalf("the login took %v; the server dial was not on its path", d)
	}
	var n int
	if err := c.QueryRow(ctx, `SELECT 7`).Scan(&n); err != nil || n != 7 {
		t.Fatalf("query: %d, %v", n, err)
	}
}

// Many clients logging in at once, some failing their login, some
// leaving half-way, some over the user's cap: the counts never pass a cap
// and come back to exactly what is connected.
func TestLimitCountsExactUnderChurn(t *testing.T) {
	p := serveConfig(t, limitsConfig(`max_client_conns = 40
auth_failures_per_minute = 0`, ``, `
[[users]]
name = "capped"
password = ""
auth = "trust"
server_user = "app"
server_password = "app"
max_client_conns = 5`))
	ctx := ctxT(t, 60*time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted, refused := 0, 0
	var unexpected []error
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 15; i++ {
				switch (w + i) % 3 {
				case 0: // a capped user who holds its place a moment
					c, err := pgconn.Connect(ctx, p.rawDSN("capped", "", "app"))
					mu.Lock()
					switch {
					case err == nil:
						admitted++
					case sqlstate(err) == "53300":
						refused++
					default:
						unexpected = append(unexpected, err)
					}
					mu.Unlock()
					if err == nil {
						time.Sleep(5 * time.Millisecond)
						c.Close(ctx)
					}
				case 1: // a wrong password (SCRAM: slow under -race, so a few), an unknown database
					dsn, code := p.rawDSN("capped", "", "nodb"), "3D000"
					if i == 1 && w%4 == 0 {
						dsn, code = p.rawDSN("app", "wrong", "app"), "28P01"
					}
					if _, err := pgconn.Connect(ctx, dsn); sqlstate(err) != code {
						mu.Lock()
						unexpected = append(unexpected, err)
						mu.Unlock()
					}
				case 2: // half a startup packet, then gone
					if c, err := net.Dial("tcp", p.addr); err == nil {
						_, _ = c.Write(startupPacket("user", "capped", "database", "app")[:12])
						c.Close()
					}
				}
				if n := p.srv.Limits.Clients.Counts().ByUser["capped"]; n > 5 {
					mu.Lock()
					unexpected = append(unexpected, fmt.Errorf("%d capped clients counted, cap 5", n))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("%d unexpected results, first: %v", len(unexpected), unexpected[0])
	}
	if admitted == 0 {
		t.Fatal("no capped client got in")
	}
	t.Logf("capped user: %d admitted, %d refused with 53300", admitted, refused)
	waitCounts(t, p, 0)
	if got := p.srv.Limits.Clients.Counts(); len(got.ByUser) != 0 || len(got.ByDB) != 0 {
		t.Fatalf("counts left behind: %+v", got)
	}
}
