package testcluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m, true, true)) }

const wait = 20 * time.Second

func pgConnect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func pgQuery(t *testing.T, conn *pgx.Conn, q string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

func TestPostgresReplication(t *testing.T) {
	c := PG
	if len(c.Replicas) != 2 {
		t.Fatalf("want 2 replicas, got %d", len(c.Replicas))
	}
	if err := c.Exec(c.Primary, "app", "CREATE TABLE repl_t (id int PRIMARY KEY, v text); INSERT INTO repl_t VALUES (1, 'hello')"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicasCaughtUp(wait); err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Replicas {
		v, err := c.QueryString(r, "app", "SELECT v FROM repl_t WHERE id = 1")
		if err != nil || v != "hello" {
			t.Fatalf("replica %s: got %q, %v", r.Addr(), v, err)
		}
		if v, err := c.QueryString(r, "app", "SELECT pg_is_in_recovery()"); err != nil || v != "t" {
			t.Fatalf("replica %s: pg_is_in_recovery = %q, %v", r.Addr(), v, err)
		}
		if err := c.Exec(r, "app", "INSERT INTO repl_t VALUES (2, 'x')"); err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Fatalf("write on replica %s: want a read-only error, got %v", r.Addr(), err)
		}
	}
	n, err := c.QueryString(c.Primary, "postgres", "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
	if err != nil || n != "2" {
		t.Fatalf("streaming replicas: %q, %v", n, err)
	}
	if _, err := c.QueryString(c.Primary, "app", "SELECT 1 WHERE false"); err == nil {
		t.Fatal("QueryString with no row: want an error")
	}
}

func TestPostgresRoles(t *testing.T) {
	c := PG
	// Each role authenticates with its own method; all three can use what
	// the others created.
	app := pgConnect(t, c.DSN(c.Primary, "app", "app", "orders_0"))
	md5 := pgConnect(t, c.DSN(c.Primary, "app_md5", "app_md5", "orders_0"))
	trust := pgConnect(t, c.DSN(c.Primary, "app_trust", "", "orders_0"))
	ctx := context.Background()
	if _, err := app.Exec(ctx, "CREATE TABLE roles_t (id serial PRIMARY KEY, who text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := md5.Exec(ctx, "INSERT INTO roles_t (who) VALUES ('md5')"); err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Exec(ctx, "CREATE TABLE roles_t2 (id int); INSERT INTO roles_t (who) VALUES ('trust')"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(ctx, "INSERT INTO roles_t2 VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if got := pgQuery(t, app, "SELECT string_agg(who, ',' ORDER BY id) FROM roles_t"); got != "md5,trust" {
		t.Fatalf("got %q", got)
	}
	for role, prefix := range map[string]string{"app": "SCRAM-SHA-256$", "app_md5": "md5", "app_trust": ""} {
		pw, err := c.QueryString(c.Primary, "postgres", "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '"+role+"'")
		if err != nil || !strings.HasPrefix(pw, prefix) || (prefix == "" && pw != "") {
			t.Errorf("role %s: stored password %.16q, %v", role, pw, err)
		}
	}
	// Wrong passwords are refused (the methods are not trust).
	for _, u := range []string{"app", "app_md5"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := pgx.Connect(ctx, c.DSN(c.Primary, u, "wrong", "app"))
		cancel()
		if err == nil || !strings.Contains(err.Error(), "password authentication failed") {
			t.Errorf("%s with a wrong password: %v", u, err)
		}
	}
	for _, db := range []string{"app", "orders_0", "orders_1"} {
		owner, err := c.QueryString(c.Replicas[0], "postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '"+db+"'")
		if err != nil || owner != "app" {
			t.Errorf("database %s on a replica: owner %q, %v", db, owner, err)
		}
	}
}

func TestPostgresRestart(t *testing.T) {
	c := PG
	conn := pgConnect(t, c.DSN(c.Primary, "app", "app", "app"))
	if err := c.RestartNode(c.Primary); err != nil {
		t.Fatal(err)
	}
	// The old connection is gone, a new one works, on the same port.
	if err := conn.Ping(context.Background()); err == nil {
		t.Fatal("connection survived a restart of the primary")
	}
	if err := c.Exec(c.Primary, "app", "CREATE TABLE restart_t (id int); INSERT INTO restart_t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicasCaughtUp(wait); err != nil {
		t.Fatal(err)
	}
	r := c.Replicas[1]
	if err := c.StopNode(r); err != nil {
		t.Fatal(err)
	}
	if err := c.StopNode(r); err == nil {
		t.Fatal("stopping a stopped node: want an error")
	}
	if err := c.Exec(c.Primary, "app", "INSERT INTO restart_t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicasCaughtUp(wait); err != nil { // skips the stopped one
		t.Fatal(err)
	}
	if err := c.StartNode(r); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicasCaughtUp(wait); err != nil {
		t.Fatal(err)
	}
	if v, err := c.QueryString(r, "app", "SELECT sum(id) FROM restart_t"); err != nil || v != "3" {
		t.Fatalf("restarted replica: %q, %v", v, err)
	}
	if v, err := c.QueryString(c.Primary, "postgres", "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"); err != nil || v != "2" {
		t.Fatalf("streaming after restarts: %q, %v", v, err)
	}
}

func myOpen(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMariaDBReplication(t *testing.T) {
	c := Maria
	if len(c.Replicas) != 1 {
		t.Fatalf("want 1 replica, got %d", len(c.Replicas))
	}
	app := myOpen(t, c.DSN(c.Primary, "app", "app", "app"))
	if _, err := app.Exec("CREATE TABLE repl_t (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec("INSERT INTO repl_t VALUES (1, 'héllo')"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicasCaughtUp(wait); err != nil {
		t.Fatal(err)
	}
	r := c.Replicas[0]
	if v, err := c.QueryString(r, "SELECT v FROM app.repl_t WHERE id = 1"); err != nil || v != "héllo" {
		t.Fatalf("replica: %q, %v", v, err)
	}
	// app is not SUPER: read_only applies to it on the replica.
	rapp := myOpen(t, c.DSN(r, "app", "app", "app"))
	_, err := rapp.Exec("INSERT INTO repl_t VALUES (2, 'x')")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1290 {
		t.Fatalf("write as app on the replica: want error 1290 (read-only), got %v", err)
	}
	if _, err := myOpen(t, c.DSN(c.Primary, "app", "wrong", "app")).Exec("SELECT 1"); !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("wrong password: want error 1045, got %v", err)
	}
	for _, db := range []string{"app", "orders_0", "orders_1"} {
		if _, err := myOpen(t, c.DSN(r, "app", "app", db)).Exec("SELECT 1"); err != nil {
			t.Errorf("database %s on the replica as app: %v", db, err)
		}
	}
	if v, err := c.QueryString(c.Primary, "SELECT @@server_id"); err != nil || v != "1" {
		t.Fatalf("server_id: %q, %v", v, err)
	}
	if _, err := c.QueryString(c.Primary, "SELECT 1 FROM DUAL WHERE 1 = 0"); err == nil {
		t.Fatal("QueryString with no row: want an error")
	}
}

func TestMariaDBRestart(t *testing.T) {
	c := Maria
	r := c.Replicas[0]
	if err := c.RestartNode(c.Primary); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(c.Primary, "CREATE TABLE app.restart_t (id int); INSERT INTO app.restart_t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicasCaughtUp(wait); err != nil {
		t.Fatal(err)
	}
	if err := c.StopNode(r); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(c.Primary, "INSERT INTO app.restart_t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartNode(r); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicasCaughtUp(wait); err != nil {
		t.Fatal(err)
	}
	if v, err := c.QueryString(r, "SELECT sum(id) FROM app.restart_t"); err != nil || v != "3" {
		t.Fatalf("restarted replica: %q, %v", v, err)
	}
	if v, err := c.QueryString(r, "SELECT @@read_only"); err != nil || v != "1" {
		t.Fatalf("read_only after restart: %q, %v", v, err)
	}
}

// A cluster without replicas; Stop twice.
func TestPrimaryOnlyAndStopTwice(t *testing.T) {
	pg, err := StartPostgres(Options{Replicas: -1, Log: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	dir := pg.Primary.Dir
	if len(pg.Replicas) != 0 {
		t.Fatalf("replicas: %v", pg.Replicas)
	}
	if err := pg.WaitReplicasCaughtUp(wait); err != nil {
		t.Fatal(err)
	}
	if v, err := pg.QueryString(pg.Primary, "app", "SELECT current_user"); err != nil || v != "postgres" {
		t.Fatalf("%q, %v", v, err)
	}
	pg.Stop()
	pg.Stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("data directory still there after Stop: %v", err)
	}
	if err := pg.Exec(pg.Primary, "app", "SELECT 1"); err == nil {
		t.Fatal("Exec after Stop: want an error")
	}

	my, err := StartMariaDB(Options{Replicas: -1, Log: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	if err := my.WaitReplicasCaughtUp(wait); err != nil {
		t.Fatal(err)
	}
	my.Stop()
	my.Stop()
	if err := my.StartNode(my.Primary); err == nil {
		t.Fatal("StartNode after Stop: want an error")
	}
}

func TestDSN(t *testing.T) {
	n := Node{Host: "127.0.0.1", Port: 5433}
	if got, want := (&Postgres{}).DSN(n, "app", "p@ss/w", "app"), "postgres://app:p%40ss%2Fw@127.0.0.1:5433/app?sslmode=disable"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got, want := (&Postgres{}).SuperDSN(n, "postgres"), "postgres://postgres@127.0.0.1:5433/postgres?sslmode=disable"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got, want := (&MariaDB{}).DSN(n, "app", "app", "app"), "app:app@tcp(127.0.0.1:5433)/app"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got, want := (&MariaDB{}).RootDSN(n, ""), "root:@tcp(127.0.0.1:5433)/"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestMainMissingBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var buf bytes.Buffer
	oldGlob, oldDirs, oldStderr := pgBinGlob, sbinDirs, stderr
	pgBinGlob, sbinDirs, stderr = "/nonexistent/*/bin", nil, &buf
	defer func() { pgBinGlob, sbinDirs, stderr = oldGlob, oldDirs, oldStderr }()
	if code := Main(nil, true, true); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	out := buf.String()
	for _, want := range []string{"PostgreSQL server programs", "MariaDB server programs", "make test"} {
		if !strings.Contains(out, want) {
			t.Errorf("message lacks %q:\n%s", want, out)
		}
	}
	if _, err := StartPostgres(Options{}); !IsMissingBinary(err) {
		t.Errorf("StartPostgres: want a missing-binary error, got %v", err)
	}
}

// go test -run '^$' -bench Start ./internal/testcluster
func BenchmarkStartPostgres(b *testing.B) {
	for b.Loop() {
		c, err := StartPostgres(Options{Log: os.Stderr})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		c.Stop()
		b.StartTimer()
	}
}

func BenchmarkStartMariaDB(b *testing.B) {
	for b.Loop() {
		c, err := StartMariaDB(Options{Log: os.Stderr})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		c.Stop()
		b.StartTimer()
	}
}

// TestTLS: every node serves TLS with a certificate the cluster's CA signed
// for 127.0.0.1, and plain connections keep working.
func TestTLS(t *testing.T) {
	for _, n := range append([]Node{PG.Primary}, PG.Replicas...) {
		dsn := strings.Replace(PG.DSN(n, "app", "app", "app"), "sslmode=disable", "sslmode=verify-full&sslrootcert="+url.QueryEscape(PG.TLSCA), 1)
		conn := pgConnect(t, dsn)
		if got := pgQuery(t, conn, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); got != "true" {
			t.Errorf("postgres %s: ssl = %s, want true", n.Addr(), got)
		}
	}
	pem, err := os.ReadFile(Maria.TLSCA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in", Maria.TLSCA)
	}
	if err := mysql.RegisterTLSConfig("testcluster", &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range append([]Node{Maria.Primary}, Maria.Replicas...) {
		db := myOpen(t, Maria.DSN(n, "app", "app", "app")+"?tls=testcluster")
		var name, cipher string
		if err := db.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
			t.Fatal(err)
		}
		if cipher == "" {
			t.Errorf("mariadb %s: no TLS cipher in use", n.Addr())
		}
	}
}
