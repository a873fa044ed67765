package pgwire

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/testcluster"
)

// passthroughSetup is the documented pattern: auth_user is no superuser;
// a SECURITY DEFINER function owned by one reads pg_shadow for it.
const passthroughSetup = `
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sy_auth') THEN CREATE ROLE sy_auth LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pt_scram') THEN CREATE ROLE pt_scram LOGIN; END IF;
END $$;
SET password_encryption = 'scram-sha-256';
ALTER ROLE sy_auth PASSWORD 'sy_auth';
ALTER ROLE pt_scram PASSWORD 'pt-pass';
RESET password_encryption;
CREATE SCHEMA IF NOT EXISTS switchyard;
CREATE OR REPLACE FUNCTION switchyard.user_lookup(i_username text, OUT uname text, OUT phash text)
RETURNS record AS $$
BEGIN
  SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = i_username INTO uname, phash;
  RETURN;
END;
$$ LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION switchyard.user_lookup(text) FROM public;
GRANT USAGE ON SCHEMA switchyard TO sy_auth;
GRANT EXECUTE ON FUNCTION switchyard.user_lookup(text) TO sy_auth;
`

func lookupCount(t *testing.T, result string) float64 {
	t.Helper()
	var m dto.Metric
	if err := metrics.AuthQueries.WithLabelValues("postgres", "pg", result).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestPassthroughAuth: users that are not in [[users]] log in with the
// password they have on the server, through pgx and psql, for SCRAM and
// md5 verifiers; the proxy reaches the server as that user without
// knowing the password; wrong passwords and unknown users fail as usual;
// look-ups are cached and counted.
func TestPassthroughAuth(t *testing.T) {
	pg := testcluster.PG
	if err := pg.Exec(pg.Primary, "app", passthroughSetup); err != nil {
		t.Fatal(err)
	}
	p := serveConfig(t, fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
shutdown_timeout = "5s"

[defaults]
pool_size = 4
query_wait_timeout = "10s"

[[users]]
name = "sy_auth"
password = "sy_auth"

[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
auth_user = "sy_auth"
auth_query = "SELECT uname, phash FROM switchyard.user_lookup($1)"
auth_cache_ttl = "1m"
`, pg.Primary.Addr()))
	ctx := ctxT(t, 60*time.Second)
	found0, cached0, missing0 := lookupCount(t, "found"), lookupCount(t, "cached"), lookupCount(t, "not_found")

	// SCRAM, pgx: the server sees the client's own user.
	conn, err := pgx.Connect(ctx, p.dsn("pt_scram", "pt-pass", "app"))
	if err != nil {
		t.Fatalf("pgx as a passthrough user: %v", err)
	}
	var who string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != "pt_scram" {
		t.Fatalf("current_user = %q, %v; want pt_scram", who, err)
	}
	conn.Close(ctx)

	// More server connections than the login dialed: the pool logs in
	// again with the ClientKey it learned.
	pool, err := pgxpool.New(ctx, p.dsn("pt_scram", "pt-pass", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	pids := map[int32]bool{}
	var txs []pgx.Tx
	for i := 0; i < 3; i++ {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatalf("begin %d: %v", i, err)
		}
		txs = append(txs, tx)
		var pid int32
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid(), current_user").Scan(&pid, &who); err != nil || who != "pt_scram" {
			t.Fatalf("in transaction %d: user %q, %v", i, who, err)
		}
		pids[pid] = true
	}
	for _, tx := range txs {
		_ = tx.Rollback(ctx)
	}
	if len(pids) != 3 {
		t.Errorf("3 open transactions ran on %d server connections", len(pids))
	}

	// psql, with the password from the environment.
	host, port, _ := net.SplitHostPort(p.addr)
	cmd := exec.Command(filepath.Join(pg.BinDir, "psql"), "-X", "-A", "-t", "-h", host, "-p", port, "-U", "pt_scram", "-d", "app", "-c", "SELECT current_user")
	cmd.Env = append(os.Environ(), "PGPASSWORD=pt-pass", "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "pt_scram" {
		t.Fatalf("psql as a passthrough user: %v\n%s", err, out)
	}

	// md5: app_md5's verifier is md5, and so is the server's challenge.
	conn, err = pgx.Connect(ctx, p.dsn("app_md5", "app_md5", "app"))
	if err != nil {
		t.Fatalf("pgx as an md5 passthrough user: %v", err)
	}
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != "app_md5" {
		t.Fatalf("current_user = %q, %v; want app_md5", who, err)
	}
	conn.Close(ctx)

	// Wrong password, unknown user: the same failure as for [[users]].
	for _, c := range []struct{ user, pw string }{{"pt_scram", "wrong"}, {"nobody_here", "x"}, {"app_md5", "wrong"}} {
		_, err := pgconn.Connect(ctx, p.rawDSN(c.user, c.pw, "app"))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Errorf("%s with a wrong password: %v, want 28P01", c.user, err)
		}
	}

	if d := lookupCount(t, "found") - found0; d != 2 {
		t.Errorf("found look-ups: %v, want 2 (pt_scram, app_md5; the rest cached)", d)
	}
	if d := lookupCount(t, "cached") - cached0; d < 4 {
		t.Errorf("cached look-ups: %v, want at least 4", d)
	}
	if d := lookupCount(t, "not_found") - missing0; d != 1 {
		t.Errorf("not_found look-ups: %v, want 1", d)
	}
}

// TestPassthroughAuthQueryFails: a broken auth_query refuses the client
// with a message that says so (not a password failure), and counts the
// error.
func TestPassthroughAuthQueryFails(t *testing.T) {
	pg := testcluster.PG
	p := serveConfig(t, fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
shutdown_timeout = "5s"

[[users]]
name = "app"
password = "app"

[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
auth_user = "app"
auth_query = "SELECT usename, passwd FROM no_such_table WHERE usename = $1"
`, pg.Primary.Addr()))
	errs0 := lookupCount(t, "error")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := pgconn.Connect(ctx, p.rawDSN("someone", "pw", "app"))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeConnectionFailure || !strings.Contains(pe.Message, "auth_query") {
		t.Fatalf("login with a failing auth_query: %v; want %s naming auth_query", err, codeConnectionFailure)
	}
	if d := lookupCount(t, "error") - errs0; d != 1 {
		t.Errorf("error look-ups: %v, want 1", d)
	}
	// [[users]] still log in.
	conn, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatalf("a [[users]] user: %v", err)
	}
	conn.Close(ctx)
}

// TestPassthroughServerTLS: the connections a passthrough user's pool
// opens itself (not through pgconn) follow server_tls as the others do.
func TestPassthroughServerTLS(t *testing.T) {
	pg := testcluster.PG
	if err := pg.Exec(pg.Primary, "app", passthroughSetup); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, keys, wantSSL string
	}{
		{"prefer", `server_tls = "prefer"`, "true"},
		{"disable", `server_tls = "disable"`, "false"},
		{"verify-full", fmt.Sprintf("server_tls = \"verify-full\"\nserver_tls_ca = %q", pg.TLSCA), "true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := serveConfig(t, fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
shutdown_timeout = "5s"

[[users]]
name = "sy_auth"
password = "sy_auth"

[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
query_wait_timeout = "10s"
auth_user = "sy_auth"
auth_query = "SELECT uname, phash FROM switchyard.user_lookup($1)"
%s
`, pg.Primary.Addr(), tc.keys))
			ctx := ctxT(t, 30*time.Second)
			conn, err := pgx.Connect(ctx, p.dsn("pt_scram", "pt-pass", "app"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var ssl string
			if err := conn.QueryRow(ctx, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
				t.Fatal(err)
			}
			if ssl != tc.wantSSL {
				t.Errorf("passthrough server connection ssl = %s, want %s", ssl, tc.wantSSL)
			}
		})
	}
}

// TestDialServerPassTLS: the proxy's own startup for passthrough users
// checks the server's certificate under verify-full, and logs in with an
// md5 verifier in place of the password.
func TestDialServerPassTLS(t *testing.T) {
	pg := testcluster.PG
	wrongCA, _ := writeSelfSigned(t)
	sum := md5.Sum([]byte("app_md5" + "app_md5"))
	cred := passCred{md5: "md5" + hex.EncodeToString(sum[:])}
	dial := func(st config.Settings) (*serverConn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return dialServerPass(ctx, pg.Primary.Addr(), st, "app_md5", cred, "app")
	}
	for _, st := range []config.Settings{
		{ServerTLS: "prefer"}, {ServerTLS: "disable"}, {ServerTLS: "verify-full", ServerTLSCA: pg.TLSCA},
	} {
		sc, err := dial(st)
		if err != nil {
			t.Fatalf("%s: %v", st.ServerTLS, err)
		}
		_, isTLS := sc.conn.(*tls.Conn)
		if isTLS != (st.ServerTLS != "disable") {
			t.Errorf("%s: TLS %v", st.ServerTLS, isTLS)
		}
		if err := sc.ping(context.Background()); err != nil {
			t.Errorf("%s: ping: %v", st.ServerTLS, err)
		}
		sc.Close()
	}
	if _, err := dial(config.Settings{ServerTLS: "verify-full", ServerTLSCA: wrongCA}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("verify-full with a CA that did not sign: %v", err)
	}
	bad := passCred{md5: "md5" + strings.Repeat("0", 32)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := dialServerPass(ctx, pg.Primary.Addr(), config.Settings{ServerTLS: "disable"}, "app_md5", bad, "app")
	var pe *pgError
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("a wrong md5 verifier: %v, want the server's 28P01", err)
	}
}

// TestPassthroughSurvivesReload: a reload that replaces the cluster's pools
// keeps a passthrough user's session working as that user; one that takes
// auth_user away lets no new passthrough login in.
func TestPassthroughSurvivesReload(t *testing.T) {
	pg := testcluster.PG
	if err := pg.Exec(pg.Primary, "app", passthroughSetup); err != nil {
		t.Fatal(err)
	}
	src := func(extra string) string {
		return fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
shutdown_timeout = "5s"

[[users]]
name = "sy_auth"
password = "sy_auth"

[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
query_wait_timeout = "10s"
auth_query = "SELECT uname, phash FROM switchyard.user_lookup($1)"
%s
`, pg.Primary.Addr(), extra)
	}
	p := serveConfig(t, src("auth_user = \"sy_auth\"\npool_size = 3"))
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("pt_scram", "pt-pass", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	reload := func(extra string) {
		t.Helper()
		cfg, err := config.Parse([]byte(src(extra)), "test.toml")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	reload("auth_user = \"sy_auth\"\npool_size = 5") // new pools
	var who string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != "pt_scram" {
		t.Fatalf("after a reload: %q, %v", who, err)
	}
	reload("pool_size = 5") // passthrough off
	_, err = pgconn.Connect(ctx, p.rawDSN("pt_scram", "pt-pass", "app"))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("a passthrough login after auth_user went away: %v, want 28P01", err)
	}
}
