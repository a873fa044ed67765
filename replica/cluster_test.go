package replica_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/lagmon"
	"github.com/switchyard/switchyard/replica"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, true, false)) }

// pgProber reads an LSN with one query on its own connection (the wire
// package has the real one).
type pgProber struct {
	dsn, query string
	conn       *pgx.Conn
}

func (p *pgProber) Probe(ctx context.Context) (lagmon.Position, error) {
	if p.conn == nil || p.conn.IsClosed() {
		c, err := pgx.Connect(ctx, p.dsn)
		if err != nil {
			return nil, err
		}
		p.conn = c
	}
	var s *string
	if err := p.conn.QueryRow(ctx, p.query).Scan(&s); err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errors.New("no position (NULL)")
	}
	return lagmon.ParseLSN(*s)
}

// TestPausedReplicaLeavesAndRejoins: with replay paused on one replica and
// a write on the primary, that replica stops getting reads once it lags
// more than MaxLag and never gets a read that needs the write; after replay
// resumes it gets reads again within a few poll intervals.
func TestPausedReplicaLeavesAndRejoins(t *testing.T) {
	pg := testcluster.PG
	if len(pg.Replicas) < 2 {
		t.Fatalf("need 2 replicas, have %d", len(pg.Replicas))
	}
	probe := func(n testcluster.Node, q string) *pgProber {
		p := &pgProber{dsn: pg.SuperDSN(n, "app"), query: q}
		t.Cleanup(func() {
			if p.conn != nil {
				p.conn.Close(context.Background())
			}
		})
		return p
	}
	paused, other := pg.Replicas[0].Addr(), pg.Replicas[1].Addr()
	poll := 20 * time.Millisecond
	mon := lagmon.New(probe(pg.Primary, "SELECT pg_current_wal_lsn()::text"), map[string]lagmon.Prober{
		paused: probe(pg.Replicas[0], "SELECT pg_last_wal_replay_lsn()::text"),
		other:  probe(pg.Replicas[1], "SELECT pg_last_wal_replay_lsn()::text"),
	}, lagmon.Options{Interval: poll})
	mon.PollNow(context.Background())
	mon.Start()
	defer mon.Stop()
	set := replica.NewSet([]string{paused, other}, mon, replica.Options{MaxLag: 150 * time.Millisecond})

	count := func(need lagmon.Position) map[string]int {
		got := map[string]int{}
		for range 20 {
			n := set.Pick(need)
			if n == nil {
				got["primary"]++
				continue
			}
			got[n.Name]++
			set.Done(n)
		}
		return got
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not within 5s: %s; status %+v", what, set.Status())
			}
			time.Sleep(poll / 2)
		}
	}
	waitFor("reads spread over both replicas", func() bool {
		got := count(nil)
		return got[paused] == 10 && got[other] == 10
	})

	if err := pg.Exec(pg.Replicas[0], "app", "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		resumed = true
		if err := pg.Exec(pg.Replicas[0], "app", "SELECT pg_wal_replay_resume()"); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		if !resumed {
			resume()
		}
	}()
	if err := pg.Exec(pg.Primary, "app", "CREATE TABLE IF NOT EXISTS replica_probe (i int); INSERT INTO replica_probe VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	var need lagmon.Position
	waitFor("a primary position after the write", func() bool {
		var ok bool
		need, ok = mon.PrimaryAfter(committed)
		return ok
	})
	waitFor("reads needing the write on the running replica", func() bool { return count(need)[other] == 20 })
	if got := count(need); got[other] != 20 {
		t.Fatalf("reads needing the write: %v", got)
	}
	waitFor("the paused replica out of all reads (lag > MaxLag)", func() bool { return count(nil)[other] == 20 })
	if st := set.Status()[0]; st.Eligible || st.Lag <= 150*time.Millisecond || st.LagBytes <= 0 {
		t.Fatalf("paused replica: %+v", st)
	}

	resume()
	resumedAt := time.Now()
	waitFor("the resumed replica back in", func() bool {
		got := count(need)
		return got[paused] == 10 && got[other] == 10
	})
	t.Logf("the resumed replica got reads again after %v", time.Since(resumedAt).Round(time.Millisecond))
	if set.AllOut() {
		t.Fatal("AllOut with two good replicas")
	}
}
