package mysqlwire

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// TestDrillShutdownUnderLoad: Shutdown (SIGTERM) while 8 clients run
// two-row transactions in a loop. Every transaction that had begun when the
// drain started commits; clients are turned away only between
// transactions; every row of every acknowledged COMMIT is on the server
// and no row of anything else.
func TestDrillShutdownUnderLoad(t *testing.T) {
	p := startProxy(t, "pool_size = 4")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.drain (id INT PRIMARY KEY, tx INT NOT NULL)")
	rootExec(t, "DELETE FROM app.drain")
	db := p.open(t, "")
	db.SetMaxOpenConns(8)

	const clients = 8
	var (
		committed  atomic.Int64 // acknowledged COMMITs
		midTxFail  atomic.Int64 // failures after the transaction's first statement succeeded
		boundary   atomic.Int64 // failures at BEGIN: turned away between transactions
		nextID     atomic.Int64
		mu         sync.Mutex
		ackedTx    = map[int64]bool{}
		firstError error
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					boundary.Add(1)
					return
				}
				id := nextID.Add(1)
				_, err = tx.ExecContext(ctx, "INSERT INTO drain VALUES (?, ?)", 2*id, id)
				if err != nil {
					// The proxy answers BEGIN itself and leases at the first
					// statement: a session turned away here had sent nothing.
					_ = tx.Rollback()
					boundary.Add(1)
					return
				}
				time.Sleep(time.Millisecond) // a transaction in flight when the drain starts
				if _, err = tx.ExecContext(ctx, "INSERT INTO drain VALUES (?, ?)", 2*id+1, id); err == nil {
					err = tx.Commit()
				} else {
					_ = tx.Rollback()
				}
				if err != nil {
					midTxFail.Add(1)
					mu.Lock()
					if firstError == nil {
						firstError = err
					}
					mu.Unlock()
					return
				}
				committed.Add(1)
				mu.Lock()
				ackedTx[id] = true
				mu.Unlock()
			}
		}()
	}
	for committed.Load() < 50 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	before := committed.Load()
	start := time.Now()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := p.srv.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	took := time.Since(start)
	wg.Wait() // every client meets the closed proxy at its next BEGIN or first statement

	// What the server has: per transaction, both rows or none.
	direct, err := sql.Open("mysql", testcluster.Maria.DSN(testcluster.Maria.Primary, "app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	rows, err := direct.Query("SELECT tx, COUNT(*) FROM drain GROUP BY tx")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	onServer := map[int64]int{}
	for rows.Next() {
		var tx int64
		var n int
		if err := rows.Scan(&tx, &n); err != nil {
			t.Fatal(err)
		}
		onServer[tx] = n
	}
	var lost, half, unacked int
	for tx := range ackedTx {
		if onServer[tx] != 2 {
			lost++
		}
	}
	for tx, n := range onServer {
		if n != 2 {
			half++
		}
		if !ackedTx[tx] {
			unacked++
		}
	}
	t.Logf("DRILL mysql shutdown under load: Shutdown after %d commits, %d clients in flight; drained in %v",
		before, clients, took.Round(time.Millisecond))
	t.Logf("  committed (acknowledged): %d; failed inside a transaction: %d; turned away between transactions: %d",
		committed.Load(), midTxFail.Load(), boundary.Load())
	t.Logf("  on the server: %s transactions; acknowledged but lost: %d; half-applied: %d; committed but not acknowledged: %d",
		fmt.Sprint(len(onServer)), lost, half, unacked)
	if n := midTxFail.Load(); n > 0 {
		t.Errorf("%d transactions failed after they had begun on a server (first: %v)", n, firstError)
	}
	if lost > 0 || half > 0 || unacked > 0 {
		t.Errorf("lost %d, half-applied %d, unacknowledged %d", lost, half, unacked)
	}
	if boundary.Load() != clients {
		t.Errorf("%d of %d clients were turned away; the rest should have been too", boundary.Load(), clients)
	}
}
