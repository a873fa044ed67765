package pgwire

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A panic while the relay books a server reply (c.mu held) ends that
// client's session with an error and frees its server connection; the
// proxy serves the next client on the same single pool slot. Before, the
// recover took c.mu again: the client hung for ever and its server
// connection stayed leased (pgx's suite through the proxy: "NOT IDLE: a
// server connection leaked", tests hung until the package timed out).
func TestRelayPanicWhileBooking(t *testing.T) {
	p := startProxy(t, `pool_size = 1`)
	ctx := ctxT(t, 60*time.Second)
	var armed atomic.Bool
	testHookReply = func(typ byte, raw []byte) {
		if typ == 'C' && armed.Load() && bytes.Contains(raw, []byte("SELECT")) {
			armed.Store(false)
			panic("test: a bug while booking a reply")
		}
	}
	t.Cleanup(func() { testHookReply = nil })
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		armed.Store(true)
		done := make(chan error, 1)
		go func() {
			var n int
			done <- conn.QueryRow(ctx, `SELECT 41 + 1`, mode).Scan(&n)
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "08006") && !strings.Contains(err.Error(), "closed") && !strings.Contains(err.Error(), "EOF") {
				t.Errorf("%v: query whose reply panicked the relay: %v; want a connection error", mode, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%v: the client hangs after a panic in the relay", mode)
		}
		conn.Close(ctx)
		waitPoolFree(t, p, mode.String())
		// The single slot serves the next client.
		other, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := other.QueryRow(ctx, `SELECT 41 + 1`, mode).Scan(&n); err != nil || n != 42 {
			t.Fatalf("%v: next client: %d, %v", mode, n, err)
		}
		other.Close(ctx)
	}
}
