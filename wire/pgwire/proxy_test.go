package pgwire

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/lib/pq"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/testcluster"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, true, false)) }

// testProxy is a Switchyard PostgreSQL listener in front of the test
// cluster's primary.
type testProxy struct {
	srv  *Server
	addr string
}

// startProxy serves database "app" (and the md5/trust users) from the test
// primary. extra is TOML appended to the [defaults] table.
func startProxy(t testing.TB, defaults string) *testProxy {
	t.Helper()
	pg := testcluster.PG
	src := fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
mysql_listen = ""
admin_listen = ""
shutdown_timeout = "5s"

[defaults]
%s

[[users]]
name = "app"
password = "app"

[[users]]
name = "app_md5"
password = "app_md5"
auth = "md5"

[[users]]
name = "app_trust"
password = ""
auth = "trust"

[[users]]
name = "admin"
password = "admin"
admin = true
server_user = "app"
server_password = "app"

[[users]]
name = "app_session"
password = "app"
server_user = "app"
server_password = "app"
pool_mode = "session"

[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
`, withDefaults(defaults, "pool_size = 10", `query_wait_timeout = "5s"`), pg.Primary.Addr())
	return serveConfig(t, src)
}

// serveConfig starts a proxy for the TOML src on a free loopback port; it
// shuts down when the test ends.
func serveConfig(t testing.TB, src string) *testProxy {
	t.Helper()
	cfg, err := config.Parse([]byte(src), "test.toml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	srv, err := NewServer(cfg, log)
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
	return &testProxy{srv: srv, addr: ln.Addr().String()}
}

// withDefaults adds the base lines whose keys extra does not set.
func withDefaults(extra string, base ...string) string {
	out := extra
	for _, b := range base {
		key := strings.TrimSpace(strings.SplitN(b, "=", 2)[0])
		if !strings.Contains(extra, key+" ") && !strings.Contains(extra, key+"=") {
			out += "\n" + b
		}
	}
	return out
}

// dsn is a DSN through the proxy. pgx's default statement cache needs
// prepared statements mapped across server connections; the tests of
// the core use the exec mode that needs no server-side state.
func (p *testProxy) dsn(user, password, db string) string {
	return p.rawDSN(user, password, db) + "&default_query_exec_mode=exec"
}

// rawDSN has only the parameters every driver understands.
func (p *testProxy) rawDSN(user, password, db string) string {
	if password == "" {
		return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", user, p.addr, db)
	}
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", user, password, p.addr, db)
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// mustExec runs sql directly on the primary as the application's owner.
func mustExec(t testing.TB, sql string) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgconn.Connect(ctx, testcluster.PG.DSN(testcluster.PG.Primary, "app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestPgxCommitRollbackAndErrors(t *testing.T) {
	p := startProxy(t, "")
	mustExec(t, `DROP TABLE IF EXISTS t_basic; CREATE TABLE t_basic (id int PRIMARY KEY, v text)`)
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t_basic VALUES (1, 'committed')`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tx, _ = conn.Begin(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO t_basic VALUES (2, 'rolled back')`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// An error inside a transaction aborts it, as on a direct connection.
	tx, _ = conn.Begin(ctx)
	_, err = tx.Exec(ctx, `INSERT INTO t_basic VALUES (1, 'duplicate')`)
	if sqlstate(err) != "23505" {
		t.Fatalf("duplicate insert: want 23505, got %v", err)
	}
	_, err = tx.Exec(ctx, `SELECT 1`)
	if sqlstate(err) != "25P02" {
		t.Fatalf("statement in failed transaction: want 25P02, got %v", err)
	}
	_ = tx.Rollback(ctx)

	var n int
	var v string
	if err := conn.QueryRow(ctx, `SELECT count(*), min(v) FROM t_basic`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != 1 || v != "committed" {
		t.Fatalf("rows: got %d %q, want 1 \"committed\"", n, v)
	}
	// Parameters reported at startup look like a real server's.
	if conn.PgConn().ParameterStatus("server_version") == "" || conn.PgConn().ParameterStatus("integer_datetimes") != "on" {
		t.Fatalf("missing ParameterStatus: server_version=%q integer_datetimes=%q",
			conn.PgConn().ParameterStatus("server_version"), conn.PgConn().ParameterStatus("integer_datetimes"))
	}
}

func TestPgxPoolExecModes(t *testing.T) {
	p := startProxy(t, "")
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := ctxT(t, 30*time.Second)
			cfg, err := pgxpool.ParseConfig(p.dsn("app", "app", "app"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.ConnConfig.DefaultQueryExecMode = mode
			cfg.MaxConns = 20
			pool, err := pgxpool.NewWithConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for i := 0; i < 40; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					var got int64
					var s string
					if err := pool.QueryRow(ctx, `SELECT $1::int8 * 2, $2::text`, int64(i), fmt.Sprint("x", i)).Scan(&got, &s); err != nil {
						errs <- err
						return
					}
					if got != int64(2*i) || s != fmt.Sprint("x", i) {
						errs <- fmt.Errorf("query %d: got %d %q", i, got, s)
					}
				}(i)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestLibPQDatabaseSQL(t *testing.T) {
	p := startProxy(t, "")
	mustExec(t, `DROP TABLE IF EXISTS t_pq; CREATE TABLE t_pq (id serial PRIMARY KEY, v text)`)
	db, err := sql.Open("postgres", p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(8)
	ctx := ctxT(t, 30*time.Second)
	for i := 0; i < 20; i++ {
		if _, err := db.ExecContext(ctx, `INSERT INTO t_pq (v) VALUES ($1)`, fmt.Sprint("row", i)); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO t_pq (v) VALUES ('gone')`); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t_pq WHERE v LIKE 'row%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 20 {
		t.Fatalf("count: %d, want 20", n)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t_pq WHERE v = 'gone'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rolled back row: n=%d err=%v", n, err)
	}
}

// Five hundred clients share ten server connections; every row they
// commit must be there.
func TestManyClientsSmallPool(t *testing.T) {
	// md5 keeps 500 logins cheap for the client side, which runs in this
	// test process (SCRAM's 4096 PBKDF2 rounds per login starve the CPU
	// under the race detector); SCRAM logins are tested elsewhere.
	p := startProxy(t, `query_wait_timeout = "30s"
connect_timeout = "30s"`)
	mustExec(t, `DROP TABLE IF EXISTS t_many; CREATE TABLE t_many (client int, seq int, PRIMARY KEY (client, seq))`)
	ctx := ctxT(t, 120*time.Second)
	const clients, perClient = 500, 10
	var wg sync.WaitGroup
	var failures atomic.Int64
	var firstErr atomic.Value
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			fail := func(err error) {
				failures.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
			conn, err := pgx.Connect(ctx, p.dsn("app_md5", "app_md5", "app"))
			if err != nil {
				fail(err)
				return
			}
			defer conn.Close(ctx)
			for i := 0; i < perClient; i++ {
				err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, `INSERT INTO t_many VALUES ($1, $2)`, c, i); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, `SELECT pg_catalog.txid_current()`)
					return err
				})
				if err != nil {
					fail(err)
				}
			}
		}(c)
	}
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d failures, first: %v", n, firstErr.Load())
	}
	got, err := testcluster.PG.QueryString(testcluster.PG.Primary, "app", `SELECT count(*) FROM t_many`)
	if err != nil {
		t.Fatal(err)
	}
	if got != fmt.Sprint(clients*perClient) {
		t.Fatalf("rows: %s, want %d", got, clients*perClient)
	}
	open, _ := testcluster.PG.QueryString(testcluster.PG.Primary, "app",
		`SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_md5' AND datname = 'app'`)
	if n, err := strconv.Atoi(open); err != nil || n > 10 {
		t.Fatalf("server connections for app_md5: %s, want <= 10", open)
	}
}

// A client that dies in the middle of a transaction must not leave its
// locks behind for the next client of the same server connection.
func TestKilledClientLeavesNoLock(t *testing.T) {
	p := startProxy(t, `pool_size = 2`)
	mustExec(t, `DROP TABLE IF EXISTS t_lock; CREATE TABLE t_lock (id int PRIMARY KEY, v int); INSERT INTO t_lock VALUES (1, 0)`)
	ctx := ctxT(t, 30*time.Second)
	for _, running := range []bool{false, true} {
		victim, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := victim.Exec(ctx, `BEGIN; UPDATE t_lock SET v = v + 1 WHERE id = 1`).ReadAll(); err != nil {
			t.Fatal(err)
		}
		if running {
			// Leave with a statement still running on the server.
			victim.Frontend().Send(&pgproto3.Query{String: "SELECT pg_sleep(30)"})
			_ = victim.Frontend().Flush()
			time.Sleep(100 * time.Millisecond)
		}
		// Kill the TCP connection without a Terminate message.
		_ = victim.Conn().Close()

		other, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := other.Exec(ctx, `SET lock_timeout = '3s'`); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Exec(ctx, `UPDATE t_lock SET v = v + 10 WHERE id = 1`); err != nil {
			t.Fatalf("running=%v: update after the killed client: %v", running, err)
		}
		if _, err := other.Exec(ctx, `RESET lock_timeout`); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("running=%v: waited %v for the lock", running, d)
		}
		other.Close(ctx)
	}
	got, _ := testcluster.PG.QueryString(testcluster.PG.Primary, "app", `SELECT v FROM t_lock WHERE id = 1`)
	if got != "20" {
		t.Fatalf("v = %s, want 20 (the killed clients' updates rolled back)", got)
	}
}

func TestAuthErrors(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 30*time.Second)
	cases := []struct {
		name, dsn, code string
	}{
		{"wrong password", p.dsn("app", "nope", "app"), "28P01"},
		{"unknown user", p.dsn("nobody", "x", "app"), "28P01"},
		{"unknown database", p.dsn("app", "app", "nodb"), "3D000"},
		{"md5 wrong password", p.dsn("app_md5", "nope", "app"), "28P01"},
	}
	for _, c := range cases {
		_, err := pgx.Connect(ctx, c.dsn)
		if sqlstate(err) != c.code {
			t.Errorf("%s: want SQLSTATE %s, got %v", c.name, c.code, err)
		}
	}
	for _, u := range []struct{ user, pw string }{{"app_md5", "app_md5"}, {"app_trust", ""}} {
		conn, err := pgx.Connect(ctx, p.dsn(u.user, u.pw, "app"))
		if err != nil {
			t.Fatalf("%s: %v", u.user, err)
		}
		var who string
		if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&who); err != nil || who != u.user {
			t.Fatalf("%s: current_user=%q err=%v", u.user, who, err)
		}
		conn.Close(ctx)
	}
}

func TestQueryWaitTimeout(t *testing.T) {
	p := startProxy(t, `pool_size = 1
query_wait_timeout = "300ms"`)
	ctx := ctxT(t, 30*time.Second)
	// The holder's login dials the one server connection within the 300ms
	// of query_wait_timeout; on a loaded machine a SCRAM login can take
	// longer (53300 too): try again, the pool keeps a dial that finished.
	var holder *pgx.Conn
	var err error
	for i := 0; i < 20; i++ {
		if holder, err = pgx.Connect(ctx, p.dsn("app", "app", "app")); err == nil || sqlstate(err) != "53300" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waiter, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close(ctx)
	_, err = waiter.Exec(ctx, `SELECT 1`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" || !strings.Contains(pe.Message, "pg/app@") {
		t.Fatalf("want 53300 naming the pool, got %v", err)
	}
	_ = tx.Rollback(ctx)
	// The waiter's connection survives the error and works once a server
	// connection is free.
	if _, err := waiter.Exec(ctx, `SELECT 1`); err != nil {
		t.Fatalf("after timeout: %v", err)
	}
}

func TestPipelineWithErrorAndLargeResult(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	b := &pgx.Batch{}
	b.Queue(`SELECT 1`)
	b.Queue(`SELECT 1/0`)
	b.Queue(`SELECT 3`)
	br := conn.SendBatch(ctx, b)
	var v int
	if err := br.QueryRow().Scan(&v); err != nil || v != 1 {
		t.Fatalf("first: %v %v", v, err)
	}
	if err := br.QueryRow().Scan(&v); sqlstate(err) != "22012" {
		t.Fatalf("second: want 22012, got %v", err)
	}
	if err := br.QueryRow().Scan(&v); err == nil {
		t.Fatalf("third ran after an error in an implicit transaction")
	}
	_ = br.Close()

	// Pipelined statements without an error all arrive.
	b = &pgx.Batch{}
	for i := 0; i < 500; i++ {
		b.Queue(`SELECT $1::int`, i)
	}
	br = conn.SendBatch(ctx, b)
	for i := 0; i < 500; i++ {
		if err := br.QueryRow().Scan(&v); err != nil || v != i {
			t.Fatalf("batch %d: %v %v", i, v, err)
		}
	}
	_ = br.Close()

	// A large result set streams through.
	rows, err := conn.Query(ctx, `SELECT g, repeat('x', 100) FROM generate_series(1, 300000) g`)
	if err != nil {
		t.Fatal(err)
	}
	var n, sum int64
	for rows.Next() {
		var g int64
		var s string
		if err := rows.Scan(&g, &s); err != nil {
			t.Fatal(err)
		}
		n++
		sum += g
	}
	if rows.Err() != nil || n != 300000 || sum != 300000*300001/2 {
		t.Fatalf("large result: n=%d sum=%d err=%v", n, sum, rows.Err())
	}
	// One value larger than the relay buffers.
	var big string
	if err := conn.QueryRow(ctx, `SELECT repeat('y', 5000000)`).Scan(&big); err != nil || len(big) != 5000000 {
		t.Fatalf("large value: len=%d err=%v", len(big), err)
	}
}

func TestServerRestartSurvived(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 90*time.Second)
	pool, err := pgxpool.New(ctx, p.dsn("app", "app", "app")+"&pool_max_conns=5")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for i := 0; i < 20; i++ {
		if _, err := pool.Exec(ctx, `SELECT 1`); err != nil {
			t.Fatal(err)
		}
	}
	if err := testcluster.PG.RestartNode(testcluster.PG.Primary); err != nil {
		t.Fatal(err)
	}
	// Idle server connections died with the server: the proxy notices
	// before it hands them out, so clients see no error.
	for i := 0; i < 20; i++ {
		if _, err := pool.Exec(ctx, `SELECT 1`); err != nil {
			t.Fatalf("after restart, query %d: %v", i, err)
		}
	}
}

func TestCancelAndSessionMode(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	_, err = conn.Exec(qctx, `SELECT pg_sleep(10)`)
	cancel()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	if err == nil {
		t.Fatal("pg_sleep was not cancelled")
	}

	// Session pooling keeps the server connection, so session state stays.
	s, err := pgx.Connect(ctx, p.dsn("app_session", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	var pid1, pid2 int
	if err := s.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Exec(ctx, `SET work_mem = '7MB'`); err != nil {
		t.Fatal(err)
	}
	var wm string
	if err := s.QueryRow(ctx, `SELECT pg_backend_pid(), current_setting('work_mem')`).Scan(&pid2, &wm); err != nil {
		t.Fatal(err)
	}
	if pid1 != pid2 || wm != "7MB" {
		t.Fatalf("session mode: pid %d then %d, work_mem %q", pid1, pid2, wm)
	}
}

// RESET name, SET name TO DEFAULT and RESET ALL return a parameter the
// client gave at startup to its startup value, as PostgreSQL does (the
// startup packet sets the session default), in and out of a transaction,
// and the client's ParameterStatus view follows the server's. The
// proxy applies startup parameters with SET on its server connections, so
// the server's RESET went to the server's own default: work_mem 4MB where
// the client connected with 5MB, and application_name reported empty;
// and a SET before RESET ALL in a transaction came back at its commit.
func TestResetReturnsToStartupParameters(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	ctx := ctxT(t, 60*time.Second)
	script := func(dsn string) []string {
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["work_mem"] = "5MB"
		cfg.RuntimeParams["application_name"] = "start"
		cfg.RuntimeParams["search_path"] = "public, pg_catalog"
		c, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var out []string
		for _, sql := range []string{
			"SET work_mem = '9MB'; SET application_name = 'zz'; SET search_path = pg_catalog",
			"RESET ALL",
			"SELECT current_setting('work_mem'), current_setting('application_name'), current_setting('search_path')",
			"SET work_mem = '9MB'",
			"RESET work_mem",
			"SHOW work_mem",
			"SET search_path = pg_catalog",
			"SET search_path TO DEFAULT",
			"SHOW search_path",
			"SET application_name = 'yy'",
			"RESET application_name",
			"BEGIN",
			"SET work_mem = '10MB'",
			"RESET ALL",
			"SHOW work_mem",
			"COMMIT",
			"SHOW work_mem",
			"SET work_mem = '11MB'",
			"BEGIN",
			"RESET work_mem",
			"SHOW work_mem",
			"COMMIT",
			"SHOW work_mem",
			"BEGIN",
			"RESET ALL",
			"ROLLBACK",
			"SHOW work_mem",
			"RESET application_name",
			"SELECT 1",
			// A RESET rolled back with its request changes nothing.
			"SET work_mem = '12MB'",
			"RESET work_mem; SELECT 1/0",
			"SHOW work_mem",
			"RESET work_mem",
		} {
			res, err := c.Exec(ctx, sql).ReadAll()
			if err != nil {
				out = append(out, sqlstate(err))
				continue
			}
			for _, r := range res {
				for _, row := range r.Rows {
					for _, v := range row {
						out = append(out, string(v))
					}
				}
			}
			if !strings.HasPrefix(sql, "S") || strings.HasPrefix(sql, "SET") {
				// The proxy's ParameterStatus for a reset value comes
				// just after the ReadyForQuery (as an asynchronous one
				// may): looked at after the next statement.
				continue
			}
			out = append(out, "application_name="+c.ParameterStatus("application_name"))
		}
		return out
	}
	want := script(directDSN())
	got := script(p.rawDSN("app", "app", "app"))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("through the proxy %q\ndirectly          %q", got, want)
	}

	// A RESET ALL committed in a transaction leaves the server connection
	// without what it undid: another client with the same setting gets
	// it applied there (pool_size 1: the same connection).
	p1 := startProxy(t, "pool_size = 1")
	a, err := pgconn.Connect(ctx, p1.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	b, err := pgconn.Connect(ctx, p1.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	for _, step := range []struct {
		c   *pgconn.PgConn
		sql string
	}{{b, "SET lock_timeout = '11s'"}, {a, "SET lock_timeout = '11s'"}, {a, "BEGIN"}, {a, "RESET ALL"}, {a, "COMMIT"}} {
		if _, err := step.c.Exec(ctx, step.sql).ReadAll(); err != nil {
			t.Fatalf("%s: %v", step.sql, err)
		}
	}
	for _, c := range []struct {
		c    *pgconn.PgConn
		want string
	}{{b, "11s"}, {a, "0"}} {
		res, err := c.c.Exec(ctx, "SHOW lock_timeout").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(res[0].Rows[0][0]); got != c.want {
			t.Fatalf("after another client's committed RESET ALL: lock_timeout %q, want %q", got, c.want)
		}
	}
}

// A pinned client (LISTEN) and one in session mode keep their server
// connection, where the proxy applied their startup parameters with SET:
// RESET there went to the server's default too (work_mem 4MB where the
// client connected with 5MB); it returns to the startup value as directly.
func TestResetStartupParameterPinnedAndSession(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	ctx := ctxT(t, 60*time.Second)
	script := func(dsn, pin string) []string {
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["work_mem"] = "5MB"
		c, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var out []string
		for _, sql := range []string{pin, "SET work_mem = '9MB'", "RESET work_mem", "SHOW work_mem",
			"SET work_mem = '9MB'", "RESET ALL", "SHOW work_mem",
			"BEGIN", "SET work_mem TO DEFAULT", "SHOW work_mem", "COMMIT", "SHOW work_mem"} {
			res, err := c.Exec(ctx, sql).ReadAll()
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			for _, r := range res {
				for _, row := range r.Rows {
					out = append(out, string(row[0]))
				}
			}
		}
		return out
	}
	for _, s := range []struct{ what, user, pin string }{
		{"pinned", "app", "LISTEN reset_pinned"},
		{"session mode", "app_session", "SELECT 1"},
	} {
		want := fmt.Sprint(script(directDSN(), s.pin))
		if got := fmt.Sprint(script(p.rawDSN(s.user, "app", "app"), s.pin)); got != want {
			t.Fatalf("%s: through the proxy %s, directly %s", s.what, got, want)
		}
	}
}

// A RESET ALL rolled back with its request (RESET ALL; SELECT 1/0, or the
// same in an extended batch) changes nothing: the client keeps its
// settings, and the server connection, which keeps them too, is not taken
// for one without them. The proxy took any RESET ALL as done: it forgot
// the client's settings and what the server connection had applied, so
// the next client on that connection ran with the first one's
// lock_timeout (pool_size 1).
func TestFailedResetAllChangesNothing(t *testing.T) {
	p := startProxy(t, "pool_size = 1")
	ctx := ctxT(t, 60*time.Second)
	show := func(c *pgconn.PgConn) string {
		res, err := c.Exec(ctx, "SHOW lock_timeout").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return string(res[0].Rows[0][0])
	}
	for _, tc := range []struct {
		what  string
		reset func(c *pgconn.PgConn) error
	}{
		{"simple", func(c *pgconn.PgConn) error {
			_, err := c.Exec(ctx, "RESET ALL; SELECT 1/0").ReadAll()
			return err
		}},
		{"extended", func(c *pgconn.PgConn) error {
			b := &pgconn.Batch{}
			b.ExecParams("RESET ALL", nil, nil, nil, nil)
			b.ExecParams("SELECT 1/0", nil, nil, nil, nil)
			_, err := c.ExecBatch(ctx, b).ReadAll()
			return err
		}},
	} {
		a, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Exec(ctx, "SET lock_timeout = '3s'").ReadAll(); err != nil {
			t.Fatal(err)
		}
		if err := tc.reset(a); sqlstate(err) != "22012" {
			t.Fatalf("%s: %v, want 22012", tc.what, err)
		}
		if got := show(b); got != "0" {
			t.Fatalf("%s: another client's lock_timeout is %q, want 0", tc.what, got)
		}
		if got := show(a); got != "3s" {
			t.Fatalf("%s: the client's lock_timeout is %q, want 3s", tc.what, got)
		}
		a.Close(ctx)
		b.Close(ctx)
	}
}

func TestStartupParametersApplied(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 30*time.Second)
	for _, app := range []string{"alpha", "beta"} {
		conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app")+"&application_name="+app+"&timezone=Asia/Tokyo")
		if err != nil {
			t.Fatal(err)
		}
		var got, tz string
		if err := conn.QueryRow(ctx, `SELECT current_setting('application_name'), current_setting('TimeZone')`).Scan(&got, &tz); err != nil {
			t.Fatal(err)
		}
		if got != app || tz != "Asia/Tokyo" {
			t.Fatalf("application_name=%q TimeZone=%q, want %q Asia/Tokyo", got, tz, app)
		}
		conn.Close(ctx)
	}
	// A client that asked for nothing gets the server default back.
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var got string
	if err := conn.QueryRow(ctx, `SELECT current_setting('application_name')`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "" {
		t.Fatalf("application_name leaked from an earlier client: %q", got)
	}
}

func TestPsqlAndPgbench(t *testing.T) {
	p := startProxy(t, `query_wait_timeout = "30s"`)
	bin := testcluster.PG.BinDir
	host, port, _ := net.SplitHostPort(p.addr)
	env := append(os.Environ(), "PGPASSWORD=app", "PGSSLMODE=disable")
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), append([]string{"-h", host, "-p", port, "-U", "app"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	out := run("psql", "-X", "-A", "-t", "-d", "app", "-c", "SELECT 40 + 2")
	if strings.TrimSpace(out) != "42" {
		t.Fatalf("psql: %q", out)
	}
	run("pgbench", "-i", "-q", "-s", "1", "app")
	for _, mode := range []string{"simple", "extended"} {
		out := run("pgbench", "-c", "64", "-j", "2", "-T", "10", "-M", mode, "app")
		if !strings.Contains(out, "number of failed transactions: 0") {
			t.Fatalf("pgbench -M %s:\n%s", mode, out)
		}
		t.Logf("pgbench -M %s through the proxy: %s", mode, grepLine(out, "tps"))
	}
}

func grepLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// pgx's default mode caches named prepared statements per connection; under
// transaction pooling the proxy maps them onto whichever server connection
// each transaction gets.
func TestPreparedStatementsTransactionMode(t *testing.T) {
	p := startProxy(t, `pool_size = 3
query_wait_timeout = "30s"`)
	mustExec(t, `DROP TABLE IF EXISTS t_prep; CREATE TABLE t_prep (id int PRIMARY KEY, v text)`)
	ctx := ctxT(t, 120*time.Second)
	modes := []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec}
	const clients = 40
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			cfg, err := pgx.ParseConfig(p.rawDSN("app", "app", "app"))
			if err != nil {
				errs <- err
				return
			}
			cfg.DefaultQueryExecMode = modes[c%len(modes)]
			cfg.StatementCacheCapacity = 64 // small: exercises eviction and re-preparing
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			for i := 0; i < 150; i++ {
				// Distinct texts (i%100) and repeated ones, across clients.
				q := fmt.Sprintf("SELECT $1::int + %d, $2::text", i%100)
				var n int
				var s string
				if err := conn.QueryRow(ctx, q, c, "x").Scan(&n, &s); err != nil {
					errs <- fmt.Errorf("client %d (%v) query %d: %w", c, cfg.DefaultQueryExecMode, i, err)
					return
				}
				if n != c+i%100 || s != "x" {
					errs <- fmt.Errorf("client %d: got %d %q", c, n, s)
					return
				}
				if i%10 == 0 {
					err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
						_, err := tx.Exec(ctx, `INSERT INTO t_prep VALUES ($1, $2)`, c*1000+i, "r")
						return err
					})
					if err != nil {
						errs <- fmt.Errorf("client %d insert: %w", c, err)
						return
					}
				}
			}
			// Batches with prepared statements.
			b := &pgx.Batch{}
			for i := 0; i < 20; i++ {
				b.Queue(`SELECT $1::int * 3`, i)
			}
			br := conn.SendBatch(ctx, b)
			for i := 0; i < 20; i++ {
				var v int
				if err := br.QueryRow().Scan(&v); err != nil || v != 3*i {
					errs <- fmt.Errorf("client %d batch %d: %v %v", c, i, v, err)
					break
				}
			}
			_ = br.Close()
			// A statement that fails to prepare reports its error at the
			// point the server raises it, and the session goes on.
			if _, err := conn.Exec(ctx, `SELECT * FROM no_such_table WHERE id = $1`, 1); sqlstate(err) != "42P01" {
				errs <- fmt.Errorf("client %d: want 42P01, got %v", c, err)
			}
			var one int
			if err := conn.QueryRow(ctx, `SELECT $1::int`, 1).Scan(&one); err != nil {
				errs <- fmt.Errorf("client %d after error: %w", c, err)
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, _ := testcluster.PG.QueryString(testcluster.PG.Primary, "app", `SELECT count(*) FROM t_prep`)
	if got != fmt.Sprint(clients*15) {
		t.Fatalf("rows: %s, want %d", got, clients*15)
	}
}

// lib/pq prepares with database/sql's Prepare and reuses the statement
// across transactions, each possibly on another server connection.
func TestLibPQPreparedAcrossTransactions(t *testing.T) {
	p := startProxy(t, `pool_size = 2`)
	db, err := sql.Open("postgres", p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(6)
	ctx := ctxT(t, 60*time.Second)
	st, err := db.PrepareContext(ctx, `SELECT $1::int * 2, pg_backend_pid()`)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pids := map[int]bool{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				var v, pid int
				if err := st.QueryRowContext(ctx, i).Scan(&v, &pid); err != nil || v != 2*i {
					t.Errorf("prepared query: %v %v", v, err)
					return
				}
				mu.Lock()
				pids[pid] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(pids) < 2 {
		t.Logf("statement ran on %d server connections", len(pids))
	}
}

func TestCopyBothWays(t *testing.T) {
	p := startProxy(t, `pool_size = 2`)
	mustExec(t, `DROP TABLE IF EXISTS t_copy; CREATE TABLE t_copy (id int, v text)`)
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const n = 200000
	rows := make([][]any, 0, n)
	for i := 0; i < n; i++ {
		rows = append(rows, []any{int32(i), "value"})
	}
	copied, err := conn.CopyFrom(ctx, pgx.Identifier{"t_copy"}, []string{"id", "v"}, pgx.CopyFromRows(rows))
	if err != nil || copied != n {
		t.Fatalf("CopyFrom: %d %v", copied, err)
	}
	// COPY TO STDOUT streams back.
	var cw countingWriter
	tag, err := conn.PgConn().CopyTo(ctx, &cw, `COPY t_copy TO STDOUT`)
	if err != nil || tag.RowsAffected() != n || cw.lines != n {
		t.Fatalf("CopyTo: %v rows=%d lines=%d", err, tag.RowsAffected(), cw.lines)
	}
	// A client that aborts its COPY with CopyFail gets the error and keeps
	// a working session; nothing of the aborted COPY lands.
	_, err = conn.PgConn().CopyFrom(ctx, &failingReader{after: 3}, `COPY t_copy FROM STDIN`)
	if err == nil {
		t.Fatal("CopyFail: no error")
	}
	var count int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM t_copy`).Scan(&count); err != nil || count != n {
		t.Fatalf("after CopyFail: count=%d err=%v", count, err)
	}
}

type countingWriter struct{ lines int }

func (w *countingWriter) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			w.lines++
		}
	}
	return len(p), nil
}

type failingReader struct{ after int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.after == 0 {
		return 0, errors.New("client gave up")
	}
	r.after--
	return copy(p, "1\tx\n"), nil
}

// A cancel that arrives after the client's query finished, when its server
// connection already serves another client, must cancel nothing.
func TestLateCancelCancelsNothing(t *testing.T) {
	p := startProxy(t, `pool_size = 1`)
	ctx := ctxT(t, 30*time.Second)
	a, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	if _, err := a.Exec(ctx, `SELECT 1`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	b, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := b.Exec(ctx, `SELECT pg_sleep(1)`).ReadAll()
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	// a's cancel while b runs on the only server connection.
	if err := a.CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("b's query was cancelled by a's late cancel: %v", err)
	}
	// A cancel with a wrong secret is ignored too, and a right one works.
	go func() {
		_, err := b.Exec(ctx, `SELECT pg_sleep(10)`).ReadAll()
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if err := b.CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if sqlstate(err) != "57014" {
			t.Fatalf("want 57014 query_canceled, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not reach the server")
	}
}

func TestPgbenchPrepared(t *testing.T) {
	p := startProxy(t, `query_wait_timeout = "30s"`)
	bin := testcluster.PG.BinDir
	host, port, _ := net.SplitHostPort(p.addr)
	cmd := exec.Command(filepath.Join(bin, "pgbench"), "-h", host, "-p", port, "-U", "app", "-i", "-q", "-s", "1", "app")
	cmd.Env = append(os.Environ(), "PGPASSWORD=app", "PGSSLMODE=disable")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	cmd = exec.Command(filepath.Join(bin, "pgbench"), "-h", host, "-p", port, "-U", "app", "-c", "64", "-j", "2", "-T", "5", "-M", "prepared", "app")
	cmd.Env = append(os.Environ(), "PGPASSWORD=app", "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "number of failed transactions: 0") {
		t.Fatalf("pgbench -M prepared: %v\n%s", err, out)
	}
	t.Logf("pgbench -M prepared -c 64 through the proxy: %s", grepLine(string(out), "tps"))
}

// SET outside a transaction outlives it: the next transaction, on another
// server connection, sees it; a SET in a rolled-back transaction does not
// stick; SET LOCAL never does; another client never sees it.
func TestSessionStateCarriedAcrossConnections(t *testing.T) {
	p := startProxy(t, `pool_size = 4`)
	ctx := ctxT(t, 60*time.Second)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		cfg, _ := pgx.ParseConfig(p.rawDSN("app", "app", "app"))
		cfg.DefaultQueryExecMode = mode
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Hold other server connections busy so the next transactions
		// land on different ones.
		if _, err := conn.Exec(ctx, `SET search_path TO pg_catalog, public`); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `SET TimeZone = 'America/New_York'`); err != nil {
			t.Fatal(err)
		}
		pids := map[int]bool{}
		others := make([]*pgx.Conn, 3)
		for i := range others {
			if others[i], err = pgx.Connect(ctx, p.dsn("app", "app", "app")); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 12; i++ {
			// Other clients hold i%4 server connections in open
			// transactions, so this client lands on a different one.
			var txs []pgx.Tx
			for _, o := range others[:i%4] {
				var sp, tz string
				if err := o.QueryRow(ctx, `SELECT current_setting('search_path'), current_setting('TimeZone')`).Scan(&sp, &tz); err != nil {
					t.Fatal(err)
				}
				if sp == "pg_catalog, public" || tz == "America/New_York" {
					t.Fatalf("%v: another client saw this client's settings: %q %q", mode, sp, tz)
				}
				tx, err := o.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				txs = append(txs, tx)
			}
			var pid int
			var sp, tz2 string
			if err := conn.QueryRow(ctx, `SELECT pg_backend_pid(), current_setting('search_path'), current_setting('TimeZone')`).Scan(&pid, &sp, &tz2); err != nil {
				t.Fatal(err)
			}
			pids[pid] = true
			if sp != "pg_catalog, public" || tz2 != "America/New_York" {
				t.Fatalf("%v: on server pid %d the client's settings are lost: %q %q", mode, pid, sp, tz2)
			}
			for _, tx := range txs {
				_ = tx.Rollback(ctx)
			}
		}
		for _, o := range others {
			o.Close(ctx)
		}
		if len(pids) < 3 {
			t.Fatalf("%v: the client ran on %d server connections, want several", mode, len(pids))
		}
		// Rolled back and local settings do not stick.
		tx, _ := conn.Begin(ctx)
		if _, err := tx.Exec(ctx, `SET work_mem = '9MB'`); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '77s'`); err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback(ctx)
		tx, _ = conn.Begin(ctx)
		if _, err := tx.Exec(ctx, `SET lock_timeout = '11s'`); err != nil {
			t.Fatal(err)
		}
		_ = tx.Commit(ctx)
		var wm, st, lt, sp string
		if err := conn.QueryRow(ctx, `SELECT current_setting('work_mem'), current_setting('statement_timeout'), current_setting('lock_timeout')`).Scan(&wm, &st, &lt); err != nil {
			t.Fatal(err)
		}
		if wm == "9MB" || st == "77s" || lt != "11s" {
			t.Fatalf("%v: work_mem=%q statement_timeout=%q lock_timeout=%q", mode, wm, st, lt)
		}
		// RESET ALL forgets them.
		if _, err := conn.Exec(ctx, `RESET ALL`); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `SELECT current_setting('lock_timeout'), current_setting('search_path')`).Scan(&lt, &sp); err != nil {
			t.Fatal(err)
		}
		if lt != "0" || sp == "pg_catalog, public" {
			t.Fatalf("%v: after RESET ALL: lock_timeout=%q search_path=%q", mode, lt, sp)
		}
		conn.Close(ctx)
	}
}

// LISTEN keeps the session on its server connection, so notifications
// arrive; the pin is visible in the metrics.
func TestListenPinsSession(t *testing.T) {
	p := startProxy(t, `pool_size = 3`)
	ctx := ctxT(t, 30*time.Second)
	l, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	if _, err := l.Exec(ctx, `LISTEN switchyard_test`); err != nil {
		t.Fatal(err)
	}
	n, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(ctx)
	for i := 0; i < 3; i++ {
		if _, err := n.Exec(ctx, `SELECT pg_notify('switchyard_test', $1)`, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		note, err := l.WaitForNotification(wctx)
		cancel()
		if err != nil || note.Payload != fmt.Sprint(i) {
			t.Fatalf("notification %d: %v %v", i, note, err)
		}
	}
	if got := testutilGauge(t, "switchyard_pinned_sessions"); got < 1 {
		t.Fatalf("switchyard_pinned_sessions = %v, want >= 1", got)
	}
	// DEALLOCATE ALL and DISCARD ALL outside a transaction are answered
	// by the proxy for unpinned sessions and keep them working.
	if _, err := n.Exec(ctx, `DEALLOCATE ALL`); err != nil {
		t.Fatal(err)
	}
	var one int
	if err := n.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		t.Fatal(err)
	}
}

func testutilGauge(t *testing.T, name string) float64 { return metricSum(t, name) }

// metricSum adds up every series of a gauge or counter.
func metricSum(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// metricSumOf is metricSum over the series whose label has one of values:
// a counter other tests also raise (a late refusal of an earlier test's
// session) must not be counted against this one.
func metricSumOf(t *testing.T, name, label string, values ...string) float64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && slices.Contains(values, lp.GetValue()) {
					sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// Shutdown: idle clients are told 57P01 at once, a transaction in flight
// finishes and commits, new clients are refused, and Shutdown returns.
func TestGracefulShutdown(t *testing.T) {
	p := startProxy(t, "")
	mustExec(t, `DROP TABLE IF EXISTS t_drain; CREATE TABLE t_drain (v int)`)
	ctx := ctxT(t, 30*time.Second)
	idle, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	busy, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := busy.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t_drain VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- p.srv.Shutdown(sctx)
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := idle.Exec(ctx, `SELECT 1`); sqlstate(err) != "57P01" && err == nil {
		t.Fatalf("idle client during shutdown: %v", err)
	}
	if _, err := pgx.Connect(ctx, p.dsn("app", "app", "app")); err == nil {
		t.Fatal("a new client was accepted during shutdown")
	}
	// The transaction in flight goes on and commits.
	if _, err := tx.Exec(ctx, `INSERT INTO t_drain VALUES (2)`); err != nil {
		t.Fatalf("in-flight transaction: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit during shutdown: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("Shutdown did not return after the last transaction")
	}
	got, _ := testcluster.PG.QueryString(testcluster.PG.Primary, "app", `SELECT count(*) FROM t_drain`)
	if got != "2" {
		t.Fatalf("rows committed: %s, want 2", got)
	}
}

// TestAdminConsolePauseWaitsForTransactions: PAUSE returns once the
// transactions in flight have ended, as PgBouncer's does, so that an
// operator who pauses before a switchover knows nothing runs; it returned
// at once while a transaction was still open. A connection held by an idle
// session-pooled client does not hold PAUSE past shutdown_timeout: it
// returns with a warning.
func TestAdminConsolePauseWaitsForTransactions(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 60*time.Second)
	app, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	var notices []string
	var mu sync.Mutex
	cfg, _ := pgx.ParseConfig(p.rawDSN("admin", "admin", "switchyard"))
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		notices = append(notices, n.Message)
		mu.Unlock()
	}
	adm, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close(ctx)
	defer adm.Exec(ctx, "RESUME")

	if _, err := app.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	paused := make(chan error, 1)
	go func() {
		_, err := adm.Exec(ctx, "PAUSE pg")
		paused <- err
	}()
	select {
	case err := <-paused:
		t.Fatalf("PAUSE returned while a transaction was open: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	// The open transaction goes on and ends; then PAUSE returns.
	if _, err := app.Exec(ctx, "SELECT 2"); err != nil {
		t.Fatalf("statement of the open transaction during PAUSE: %v", err)
	}
	if _, err := app.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-paused:
		if err != nil {
			t.Fatalf("PAUSE: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("PAUSE did not return 3s after the transaction ended")
	}
	mu.Lock()
	if len(notices) != 0 {
		t.Fatalf("PAUSE warned with nothing left running: %v", notices)
	}
	mu.Unlock()
	if _, err := adm.Exec(ctx, "RESUME pg"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(ctx, "SELECT 3"); err != nil {
		t.Fatalf("after RESUME: %v", err)
	}

	// A session-pooled client holds its connection while idle: PAUSE
	// gives up waiting after shutdown_timeout (5s here) and says so.
	sess, err := pgx.Connect(ctx, p.dsn("app_session", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(ctx)
	if _, err := sess.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := adm.Exec(ctx, "PAUSE pg"); err != nil {
		t.Fatalf("PAUSE with a session-pooled client: %v", err)
	}
	if d := time.Since(start); d < 4*time.Second || d > 10*time.Second {
		t.Fatalf("PAUSE with a session-pooled client returned after %v, want about shutdown_timeout (5s)", d)
	}
	mu.Lock()
	if len(notices) != 1 || !strings.Contains(notices[0], "1 server connection(s) are still in use") {
		t.Fatalf("PAUSE's warning: %q", notices)
	}
	mu.Unlock()
}

// TestAdminConsolePauseHoldsPoolsOpenedLater: pools open on first use
// (and on a reload), so PAUSE must hold the pools of its cluster that do
// not exist yet. "PAUSE pg" before any client had used the cluster was
// refused ("no pools of cluster"), and a plain PAUSE let the first
// client's queries run, on pools opened after it.
func TestAdminConsolePauseHoldsPoolsOpenedLater(t *testing.T) {
	for _, cmd := range []string{"PAUSE pg", "PAUSE"} {
		t.Run(cmd, func(t *testing.T) {
			p := startProxy(t, "")
			ctx := ctxT(t, 60*time.Second)
			adm := consoleConn(ctx, t, p)
			defer adm.Exec(ctx, "RESUME")
			if _, err := adm.Exec(ctx, cmd); err != nil {
				t.Fatalf("%s before any pool of the cluster is open: %v", cmd, err)
			}
			done := make(chan error, 1)
			go func() {
				app, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
				if err == nil {
					_, err = app.Exec(ctx, "SELECT 1")
					app.Close(ctx)
				}
				done <- err
			}()
			select {
			case err := <-done:
				t.Fatalf("a query ran while paused, on a pool opened after %s: %v", cmd, err)
			case <-time.After(time.Second):
			}
			if _, err := adm.Exec(ctx, "RESUME"); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("after RESUME: %v", err)
				}
			case <-time.After(4 * time.Second):
				t.Fatal("the query did not run after RESUME")
			}
		})
	}
}

// TestAdminConsolePauseClusterNameCase: "PAUSE Orders" pauses cluster
// "Orders". The console lowered the name and answered 'no pools of
// cluster "orders"', so a cluster whose name has a capital could not be
// paused or resumed on its own.
func TestAdminConsolePauseClusterNameCase(t *testing.T) {
	p := serveConfig(t, fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
mysql_listen = ""
admin_listen = ""

[defaults]
query_wait_timeout = "5s"

[[users]]
name = "app"
password = "app"

[[users]]
name = "admin"
password = "admin"
admin = true
server_user = "app"
server_password = "app"

[[clusters]]
name = "Orders"
protocol = "postgres"
database = "app"
primary = %q
`, testcluster.PG.Primary.Addr()))
	ctx := ctxT(t, 30*time.Second)
	app, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	if _, err := app.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	adm := consoleConn(ctx, t, p)
	defer adm.Exec(ctx, "RESUME")
	if _, err := adm.Exec(ctx, "PAUSE Orders"); err != nil {
		t.Fatalf("PAUSE Orders: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := app.Exec(ctx, "SELECT 2")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("query ran while cluster Orders was paused: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := adm.Exec(ctx, "RESUME Orders"); err != nil {
		t.Fatalf("RESUME Orders: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("after RESUME Orders: %v", err)
	}
}

// TestShutdownDeadlineFailsPoolWaiters: a client waiting for a server
// connection when the drain's deadline comes (here a login on a paused
// pool; the same for an exhausted one) is refused then. It was not: the
// drain closed the clients' sockets and waited for their goroutines, one
// of which sat in the pool's queue for query_wait_timeout (twice: the
// primary, then a replica), so SIGTERM took query_wait_timeout longer than
// shutdown_timeout.
func TestShutdownDeadlineFailsPoolWaiters(t *testing.T) {
	p := startProxy(t, `query_wait_timeout = "20s"`)
	t.Cleanup(func() { frontend.PausePools("", false) })
	ctx := ctxT(t, 60*time.Second)
	adm := consoleConn(ctx, t, p)
	if _, err := adm.Exec(ctx, "PAUSE pg"); err != nil {
		t.Fatal(err)
	}
	login := make(chan error, 1)
	go func() {
		app, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
		if err == nil {
			app.Close(ctx)
		}
		login <- err
	}()
	select {
	case err := <-login:
		t.Fatalf("login on a paused pool did not wait: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_ = p.srv.Shutdown(sctx)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the drain took %v with a 1s deadline: a client waiting for a server connection held it", d)
	}
	select {
	case err := <-login:
		if err == nil {
			t.Fatal("the login waiting on a paused pool succeeded during shutdown")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the login waiting on a paused pool was not refused after the drain")
	}
}

// TestAdminConsoleExtendedProtocolOneError: the console refuses the
// extended protocol with one ErrorResponse per batch, then ReadyForQuery,
// as a server does (after an error it skips messages up to Sync). It sent
// one error per message: four for Parse, Bind, Describe, Execute.
func TestAdminConsoleExtendedProtocolOneError(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 30*time.Second)
	adm, err := pgx.Connect(ctx, p.rawDSN("admin", "admin", "switchyard"))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close(ctx)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeDescribeExec, pgx.QueryExecModeCacheDescribe} {
		rows, err := adm.Query(ctx, "SHOW POOLS", mode)
		if err == nil {
			rows.Close()
			err = rows.Err()
		}
		if sqlstate(err) != "0A000" {
			t.Fatalf("SHOW POOLS in exec mode %v: want 0A000, got %v", mode, err)
		}
		if _, err := adm.Exec(ctx, "SHOW HELP", pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("simple query after the refused batch (mode %v): %v", mode, err)
		}
	}
	// On the wire: one ErrorResponse, then ReadyForQuery.
	conn := adm.PgConn().Conn()
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.Parse{Query: "SHOW POOLS"})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Describe{ObjectType: 'P'})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	errs := 0
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*pgproto3.ErrorResponse); ok {
			errs++
			continue
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); !ok {
			t.Fatalf("unexpected %T", m)
		}
		break
	}
	if errs != 1 {
		t.Fatalf("%d ErrorResponses for one extended-protocol batch, want 1", errs)
	}
	if _, err := adm.Exec(ctx, "SHOW HELP", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("simple query after the raw batch: %v", err)
	}
}

// TestPausedPoolTimeoutSaysPaused: a client that waited
// query_wait_timeout on a paused pool is told the pool is paused. It was
// told that every server connection stayed busy and to raise pool_size,
// with "0 in use".
func TestPausedPoolTimeoutSaysPaused(t *testing.T) {
	p := startProxy(t, `query_wait_timeout = "1s"`)
	t.Cleanup(func() { frontend.PausePools("", false) })
	ctx := ctxT(t, 30*time.Second)
	app, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	if _, err := app.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	adm := consoleConn(ctx, t, p)
	if _, err := adm.Exec(ctx, "PAUSE pg"); err != nil {
		t.Fatal(err)
	}
	_, err = app.Exec(ctx, "SELECT 2")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" || !strings.Contains(pe.Hint, "paused") || strings.Contains(pe.Hint, "pool_size") {
		t.Fatalf("query on a paused pool: want 53300 with a hint that says paused, got %v (hint %q)", err, hintOf(pe))
	}
	if _, err := adm.Exec(ctx, "RESUME pg"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(ctx, "SELECT 3"); err != nil {
		t.Fatalf("after RESUME: %v", err)
	}
}

func hintOf(pe *pgconn.PgError) string {
	if pe == nil {
		return ""
	}
	return pe.Hint
}

func TestMetricsCountTraffic(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 30*time.Second)
	before := counterSum(t, "switchyard_transactions_total")
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for i := 0; i < 10; i++ {
		if _, err := conn.Exec(ctx, `SELECT 1`); err != nil {
			t.Fatal(err)
		}
	}
	if got := counterSum(t, "switchyard_transactions_total") - before; got < 10 {
		t.Fatalf("switchyard_transactions_total grew by %v, want >= 10", got)
	}
	if testutilGauge(t, "switchyard_server_connections") < 1 {
		t.Fatal("no server connections reported")
	}
	if testutilGauge(t, "switchyard_client_connections") < 1 {
		t.Fatal("no client connections reported")
	}
}

func counterSum(t *testing.T, name string) float64 { return metricSum(t, name) }

func TestAdminConsole(t *testing.T) {
	p := startProxy(t, "")
	reloads := 0
	p.srv.OnReload = func() error { reloads++; return nil }
	ctx := ctxT(t, 30*time.Second)
	app, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	if _, err := app.Exec(ctx, `SELECT 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, p.rawDSN("app", "app", "switchyard")); sqlstate(err) != "42501" {
		t.Fatalf("non-admin on the console: want 42501, got %v", err)
	}
	adm := consoleConn(ctx, t, p)
	rows := func(q string) [][]any {
		rs, err := adm.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return out
	}
	pools := rows("SHOW POOLS")
	found := false
	for _, r := range pools {
		if r[1] == "pg" && r[3] == "app" {
			found = true
		}
	}
	if !found {
		t.Fatalf("SHOW POOLS has no pg/app pool: %v", pools)
	}
	if cl := rows("SHOW CLIENTS"); len(cl) < 1 {
		t.Fatalf("SHOW CLIENTS: %v", cl)
	}
	rows("SHOW SERVERS")
	rows("SHOW STATS")
	rows("SHOW REPLICAS")
	rows("SHOW SHARDS")
	if _, err := adm.Exec(ctx, "RELOAD"); err != nil || reloads != 1 {
		t.Fatalf("RELOAD: %v (reloads %d)", err, reloads)
	}
	// PAUSE stops handing out server connections; RESUME lets the waiting
	// query through.
	if _, err := adm.Exec(ctx, "PAUSE pg"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := app.Exec(ctx, `SELECT 1`)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("query ran while paused: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := adm.Exec(ctx, "RESUME pg"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("query after RESUME: %v", err)
	}
	if _, err := adm.Exec(ctx, "SHOW NONSENSE"); err == nil {
		t.Fatal("unknown command accepted")
	}
}

// consoleConn logs the admin user into the admin console (the simple
// protocol, as psql); the connection closes with the test.
func consoleConn(ctx context.Context, t testing.TB, p *testProxy) *pgx.Conn {
	t.Helper()
	cfg, _ := pgx.ParseConfig(p.rawDSN("admin", "admin", "switchyard"))
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	adm, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adm.Close(context.Background()) })
	return adm
}
