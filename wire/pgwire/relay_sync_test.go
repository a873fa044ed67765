package pgwire

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// The main loop relays a lone request's replies itself (relaySync), and
// between the statements of a transaction nothing reads the server
// connection. What a pump reading there would have noticed at once must
// still reach the client: a server connection terminated while its client
// sits idle in a transaction fails that client's next statement with an
// error (no hang, no answer from a server that is gone), and the pool slot
// comes back; a statement slower than syncRelayWait, and rows larger than
// the read buffer, are handed to a pump and arrive whole.
func TestSyncRelayIdleInTransaction(t *testing.T) {
	p := startProxy(t, `pool_size = 1`)
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var pid int
	if _, err := conn.Exec(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	// Slower than syncRelayWait: a pump takes over mid-statement.
	var slept string
	if err := conn.QueryRow(ctx, `SELECT pg_sleep(0.2)::text`).Scan(&slept); err != nil {
		t.Fatal(err)
	}
	// Rows larger than the server read buffer (32 KiB).
	var big string
	if err := conn.QueryRow(ctx, `SELECT repeat('x', 100000)`).Scan(&big); err != nil || len(big) != 100000 {
		t.Fatalf("large row: %d bytes, %v", len(big), err)
	}
	if got, err := testcluster.PG.QueryString(testcluster.PG.Primary, "app", `SELECT pg_terminate_backend(`+strconv.Itoa(pid)+`)`); err != nil || got != "t" {
		t.Fatalf("pg_terminate_backend: %q, %v", got, err)
	}
	time.Sleep(100 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		var one int
		done <- conn.QueryRow(ctx, `SELECT 1`).Scan(&one)
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a statement on a terminated server connection succeeded")
		}
		if s := err.Error(); !strings.Contains(s, "57P01") && !strings.Contains(s, "08006") {
			t.Errorf("error %v; want the server's 57P01 or the proxy's 08006", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the statement after the server connection was terminated hangs")
	}
	// The only pool slot is free again: another client is served.
	other, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	var one int
	if err := other.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		t.Fatalf("next client: %v", err)
	}
}
