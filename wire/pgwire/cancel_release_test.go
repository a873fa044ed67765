package pgwire

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A cancel request holds the lease of its client's server connection until
// the server has the signal (Server.cancel: writers). When that client's
// statement ends, or the client leaves, while the cancel is on its way,
// the lease must still end once, by one hand, and only after the cancel
// went out: the next client of that server connection must neither lose
// its replies to a reader of the departed client nor get the departed
// client's cancel. Before, both happened (pgx's suite through the proxy:
// "relay from server panicked ... nil pointer dereference" in pool.Put,
// two tests hung, "NOT IDLE: a server connection leaked"): the departed
// client's cleanup started a reader on a connection whose release was
// left to the cancel, and the release after a departed client's ROLLBACK
// ignored the cancel still under way.
func TestCancelInFlightWhenClientLeaves(t *testing.T) {
	for _, tc := range []struct {
		name  string
		inTxn bool // the client leaves inside a transaction: the proxy rolls it back
	}{
		{"autocommit", false},
		{"in transaction", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, `pool_size = 1`)
			ctx := ctxT(t, 60*time.Second)
			entered, release := holdCancels(t)

			a, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.inTxn {
				if _, err := a.Exec(ctx, "BEGIN").ReadAll(); err != nil {
					t.Fatal(err)
				}
			}
			// A statement that runs while its cancel arrives (with room
			// for a busy machine's slow dial); the cancel stops in the
			// hook, so the statement ends by itself.
			res := a.Exec(ctx, "SELECT pg_sleep(1)")
			// The cancel goes once the proxy has the statement under way
			// (a cancel for a client with nothing under way is dropped;
			// on a busy machine 50 ms was sometimes not enough).
			waitUnderWay(t, p, a.PID())
			cancelDone := sendHeldCancel(t, a, entered)
			if _, err := res.ReadAll(); err != nil {
				t.Fatalf("statement whose cancel is held back: %v", err)
			}
			// The client leaves while its cancel is still on its way.
			if err := a.Close(ctx); err != nil {
				t.Logf("close: %v", err)
			}
			// The next client of the single server connection starts while
			// the cancel is held: it gets the connection only when the
			// cancel is out, and then all of its replies and none of the
			// old cancel (its first statement runs long enough for a
			// misdirected cancel to hit it).
			next := make(chan error, 1)
			go func() { next <- nextClient(ctx, p) }()
			time.Sleep(300 * time.Millisecond)
			close(release)
			if err := <-cancelDone; err != nil {
				t.Logf("cancel request: %v", err)
			}
			if err := <-next; err != nil {
				t.Fatal(err)
			}
			waitPoolFree(t, p, tc.name)
		})
	}
}

// nextClient runs statements on a new connection and says what went wrong.
func nextClient(ctx context.Context, p *testProxy) error {
	b, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		return err
	}
	defer b.Close(ctx)
	for i := 0; i < 20; i++ {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		sleep := 0.01
		if i == 0 {
			sleep = 0.6
		}
		var n int
		err := b.QueryRow(qctx, "SELECT 41 + $1::int FROM pg_sleep($2)", 1, sleep).Scan(&n)
		cancel()
		var pe *pgconn.PgError
		switch {
		case errors.As(err, &pe):
			return fmt.Errorf("next client, query %d: %s %s (a cancel meant for the departed client?)", i, pe.Code, pe.Message)
		case err != nil:
			return fmt.Errorf("next client, query %d: %v (its replies lost?)", i, err)
		case n != 42:
			return fmt.Errorf("next client, query %d: %d, want 42", i, n)
		}
	}
	return nil
}

// waitUnderWay waits until the proxy's client pid has a statement under
// way on a server connection, as a cancel request needs.
func waitUnderWay(t *testing.T, p *testProxy, pid uint32) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		c := p.srv.lookupClient(pid)
		if c == nil {
			continue
		}
		c.mu.Lock()
		busy := c.server != nil && c.outstanding > 0
		c.mu.Unlock()
		if busy {
			return
		}
	}
	t.Fatal("the statement never got under way through the proxy")
}

// A cancel that reaches the proxy while its statement runs, but the
// server only after that statement ended on its own and the client sent
// its next one, must not cancel the next one: the proxy holds the next
// request until the server has the cancel signal, which PostgreSQL drops
// while the backend waits for a command. (Directly, the race is the
// client's: pgx sleeps after a cancel for it.)
func TestLateCancelSparesNextStatement(t *testing.T) {
	p := startProxy(t, `pool_size = 1`)
	ctx := ctxT(t, 60*time.Second)
	entered, release := holdCancels(t)

	a, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	res := a.Exec(ctx, "SELECT pg_sleep(0.5)")
	waitUnderWay(t, p, a.PID())
	cancelDone := sendHeldCancel(t, a, entered)
	// The statement ends by itself: its cancel is held in the hook.
	if _, err := res.ReadAll(); err != nil {
		t.Fatalf("statement whose cancel is held back: %v", err)
	}
	// The next statement, long enough for the late cancel to hit it if
	// it were sent at once; the cancel goes out meanwhile.
	next := make(chan error, 1)
	go func() {
		_, err := a.Exec(ctx, "SELECT pg_sleep(0.5)").ReadAll()
		next <- err
	}()
	time.Sleep(200 * time.Millisecond)
	close(release)
	if err := <-cancelDone; err != nil {
		t.Logf("cancel request: %v", err)
	}
	if err := <-next; err != nil {
		t.Fatalf("the statement after a late cancel: %v (the cancel meant for the one before hit it)", err)
	}
	// The session goes on, and a cancel of a running statement still works.
	res = a.Exec(ctx, "SELECT pg_sleep(20)")
	waitUnderWay(t, p, a.PID()) // the hook lets it through now (release is closed)
	if err := a.CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	var pe *pgconn.PgError
	if _, err := res.ReadAll(); !errors.As(err, &pe) || pe.Code != "57014" {
		t.Fatalf("a cancelled statement: %v, want 57014", err)
	}
	waitPoolFree(t, p, "late cancel")
}

// holdCancels makes the proxy's cancel handling stop, once it holds the
// lease, until release is closed; entered gets a value each time it
// stops there.
func holdCancels(t *testing.T) (entered, release chan struct{}) {
	entered, release = make(chan struct{}, 1), make(chan struct{})
	testHookCancel = func() {
		entered <- struct{}{}
		<-release
	}
	t.Cleanup(func() { testHookCancel = nil })
	return entered, release
}

// sendHeldCancel sends a's cancel request and waits until the proxy's
// cancel handling holds it (holdCancels); the request's result comes on
// the channel once it is released.
func sendHeldCancel(t *testing.T, a *pgconn.PgConn, entered <-chan struct{}) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- a.CancelRequest(cctx)
	}()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the cancel request never reached the proxy's cancel handling")
	}
	return done
}
