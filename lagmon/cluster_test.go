package lagmon_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/lagmon"
)

// These tests run the Monitor against the real test clusters, with the
// simplest Probers that work: the wire packages have their own.

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, true, true)) }

// pgProber reads an LSN with one query on its own connection. A Monitor
// never runs two probes of a node at once, so one pgx.Conn is enough.
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

func (p *pgProber) close() {
	if p.conn != nil {
		p.conn.Close(context.Background())
	}
}

type myProber struct {
	db    *sql.DB
	query string
}

func (p *myProber) Probe(ctx context.Context) (lagmon.Position, error) {
	var s string
	if err := p.db.QueryRowContext(ctx, p.query).Scan(&s); err != nil {
		return nil, err
	}
	return lagmon.ParseMariaDBGTID(s)
}

// waitFor polls cond every 10ms until it holds, failing after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkPausedReplica writes on the primary while replica paused cannot
// replay and other (if not "") can, and checks what the Monitor says: other
// catches up to the write, paused stays behind with a growing lag until
// resume runs, then catches up and shows no lag.
func checkPausedReplica(t *testing.T, m *lagmon.Monitor, paused, other string, write, resume func() error) {
	m.PollNow(context.Background())
	m.Start()
	defer m.Stop()
	waitFor(t, 5*time.Second, "replicas healthy with no lag", func() bool {
		for _, name := range m.Names() {
			if st := m.Replica(name); !st.Healthy || st.Lag != 0 {
				return false
			}
		}
		return true
	})

	if err := write(); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	var need lagmon.Position
	waitFor(t, 2*time.Second, "a primary sample after the write", func() bool {
		var ok bool
		need, ok = m.PrimaryAfter(committed)
		return ok
	})
	if other != "" {
		waitFor(t, 5*time.Second, "the running replica caught up to "+need.String(), func() bool { return m.CaughtUp(other, need) })
	}

	time.Sleep(300 * time.Millisecond)
	st := m.Replica(paused)
	if m.CaughtUp(paused, need) || st.Position.AtLeast(need) {
		t.Fatalf("paused replica caught up to %v: %+v", need, st)
	}
	if !st.Healthy || st.Lag < 200*time.Millisecond {
		t.Fatalf("paused replica after 300ms: %+v, want healthy with lag >= 200ms", st)
	}
	t.Logf("paused replica: position %v, lag %v, lag bytes %d; primary needs %v", st.Position, st.Lag, st.LagBytes, need)

	if err := resume(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the resumed replica caught up", func() bool { return m.CaughtUp(paused, need) })
	waitFor(t, 5*time.Second, "the resumed replica without lag", func() bool { return m.Replica(paused).Lag == 0 })
}

func TestPostgresReplayPause(t *testing.T) {
	pg := testcluster.PG
	if len(pg.Replicas) < 2 {
		t.Fatalf("need 2 PostgreSQL replicas, have %d", len(pg.Replicas))
	}
	primary := &pgProber{dsn: pg.SuperDSN(pg.Primary, "app"), query: "SELECT pg_current_wal_lsn()::text"}
	defer primary.close()
	reps := map[string]lagmon.Prober{}
	for _, r := range pg.Replicas[:2] {
		p := &pgProber{dsn: pg.SuperDSN(r, "app"), query: "SELECT pg_last_wal_replay_lsn()::text"}
		defer p.close()
		reps[r.Addr()] = p
	}
	m := lagmon.New(primary, reps, lagmon.Options{Interval: 20 * time.Millisecond})
	paused, other := pg.Replicas[0], pg.Replicas[1]

	if err := pg.Exec(paused, "app", "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() error {
		resumed = true
		return pg.Exec(paused, "app", "SELECT pg_wal_replay_resume()")
	}
	defer func() {
		if !resumed {
			_ = resume()
		}
	}()
	write := func() error {
		return pg.Exec(pg.Primary, "app", "CREATE TABLE IF NOT EXISTS lagmon_probe (i int); INSERT INTO lagmon_probe VALUES (1)")
	}
	checkPausedReplica(t, m, paused.Addr(), other.Addr(), write, resume)
}

func TestMariaDBSQLThreadStopped(t *testing.T) {
	my := testcluster.Maria
	if len(my.Replicas) < 1 {
		t.Fatal("need a MariaDB replica")
	}
	open := func(n testcluster.Node, query string) *myProber {
		db, err := sql.Open("mysql", my.RootDSN(n, "app"))
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { db.Close() })
		return &myProber{db: db, query: query}
	}
	primary := open(my.Primary, "SELECT @@gtid_binlog_pos")
	r := my.Replicas[0]
	m := lagmon.New(primary, map[string]lagmon.Prober{r.Addr(): open(r, "SELECT @@gtid_slave_pos")},
		lagmon.Options{Interval: 20 * time.Millisecond})

	if err := my.Exec(r, "STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() error {
		resumed = true
		return my.Exec(r, "START SLAVE SQL_THREAD")
	}
	defer func() {
		if !resumed {
			_ = resume()
		}
	}()
	write := func() error {
		return my.Exec(my.Primary, "CREATE TABLE IF NOT EXISTS app.lagmon_probe (i int); INSERT INTO app.lagmon_probe VALUES (1)")
	}
	checkPausedReplica(t, m, r.Addr(), "", write, resume)
}
