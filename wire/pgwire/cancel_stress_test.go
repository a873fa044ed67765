package pgwire

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// pgx's CancelRequestContextWatcherHandler stress, as its own suite runs
// it: clients whose statements outlive a 4 ms context send cancel
// requests that race the statement's end; the next statement on each
// connection must be answered, whether the cancel hit, came too late or
// found the connection between statements. Before, a late cancel could
// leave a reader on a server connection its client no longer held, and
// the client's next statement hung ("relay read a server connection its
// client no longer holds"). (pgx's test closes the connection 1 s after
// the context ends; here 10 s, so that a busy machine's slow answer is
// not taken for a hang, while a hang still fails the test.)
func TestCancelRequestStress(t *testing.T) {
	p := startProxy(t, `pool_size = 10`)
	const clients, rounds = 10, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg, err := pgconn.ParseConfig(p.rawDSN("app", "app", "app"))
			if err != nil {
				errs <- err
				return
			}
			cfg.BuildContextWatcherHandler = func(conn *pgconn.PgConn) ctxwatch.Handler {
				return &pgconn.CancelRequestContextWatcherHandler{Conn: conn, CancelRequestDelay: 5 * time.Millisecond, DeadlineDelay: 10 * time.Second}
			}
			cfg.ConnectTimeout = 5 * time.Second
			c, err := pgconn.ConnectConfig(context.Background(), cfg)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(context.Background())
			for range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Millisecond)
				_, _ = c.Exec(ctx, "select 1, pg_sleep(0.010)").ReadAll()
				cancel()
				time.Sleep(100 * time.Millisecond)
				vctx, vcancel := context.WithTimeout(context.Background(), 10*time.Second)
				res := c.ExecParams(vctx, "select generate_series(1,$1)", [][]byte{[]byte("3")}, nil, nil, nil).Read()
				vcancel()
				// A cancel that reached the server only after the
				// statement it was meant for may still cancel this one:
				// pgx says so of PostgreSQL itself (its handler sleeps
				// 100 ms for it), and a busy machine stretches that. An
				// answer is what this test asks for; a hang is the bug.
				if sqlstate(res.Err) == "57014" {
					continue
				}
				if res.Err != nil || len(res.Rows) != 3 {
					errs <- fmt.Errorf("statement after a cancel: %v (%d rows)", res.Err, len(res.Rows))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
