package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// TestShutdownDrainsBothProtocolsAtOnce: SIGTERM's drain (proxy.shutdown)
// while a PostgreSQL transaction is open must not leave the MySQL side
// serving. The drains ran one after the other: the MySQL listener went on
// accepting new logins, and its transactions in flight waited their turn,
// as long as a PostgreSQL transaction was open.
func TestShutdownDrainsBothProtocolsAtOnce(t *testing.T) {
	var pg *testcluster.Postgres
	var my *testcluster.MariaDB
	var pgErr, myErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pg, pgErr = testcluster.StartPostgres(testcluster.Options{Replicas: -1}) }()
	go func() { defer wg.Done(); my, myErr = testcluster.StartMariaDB(testcluster.Options{Replicas: -1}) }()
	wg.Wait()
	if pg != nil {
		t.Cleanup(pg.Stop)
	}
	if my != nil {
		t.Cleanup(my.Stop)
	}
	if pgErr != nil || myErr != nil {
		t.Fatal(pgErr, myErr)
	}
	pgPort, myPort := freePort(t), freePort(t)
	path := filepath.Join(t.TempDir(), "switchyard.toml")
	os.WriteFile(path, []byte(fmt.Sprintf(`[proxy]
postgres_listen = "127.0.0.1:%d"
mysql_listen = "127.0.0.1:%d"
admin_listen = ""

[[users]]
name = "app"
password = "app"

[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q

[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q
`, pgPort, myPort, pg.Primary.Addr(), my.Primary.Addr())), 0o600)
	cfg, err := loadConfig(path, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := start(cfg, path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	waitListening(t, pgPort)
	waitListening(t, myPort)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://app:app@127.0.0.1:%d/app?sslmode=disable", pgPort))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	if _, err := pc.Exec(ctx, "CREATE TABLE IF NOT EXISTS drain_both (x int); BEGIN; INSERT INTO drain_both VALUES (1)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", fmt.Sprintf("app:app@tcp(127.0.0.1:%d)/app", myPort))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS drain_both (x int)"); err != nil {
		t.Fatal(err)
	}
	mtx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mtx.ExecContext(ctx, "INSERT INTO drain_both VALUES (1)"); err != nil {
		t.Fatal(err)
	}

	drained := make(chan struct{})
	go func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		p.shutdown(sctx)
		close(drained)
	}()

	// The MySQL listener stops accepting while the PostgreSQL transaction
	// is still open.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", myPort), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the MySQL listener still accepts 5s into the drain, while a PostgreSQL transaction is open")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Both transactions in flight finish.
	if err := mtx.Commit(); err != nil {
		t.Fatalf("MySQL COMMIT during the drain: %v", err)
	}
	if _, err := pc.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		t.Fatalf("PostgreSQL COMMIT during the drain: %v", err)
	}
	select {
	case <-drained:
	case <-time.After(15 * time.Second):
		t.Fatal("the drain did not end after both transactions committed")
	}
	if n, err := my.QueryString(my.Primary, "SELECT COUNT(*) FROM app.drain_both"); err != nil || n != "1" {
		t.Fatalf("MySQL rows committed in the drain: %q, %v", n, err)
	}
}
