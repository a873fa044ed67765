package mysqlwire

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/pool"
)

// poolCounts sums the proxy's pools.
func poolCounts(p *testProxy) (active, open, waiting int) {
	for _, st := range p.srv.PoolStats() {
		active += st.Active
		open += st.Open
		waiting += st.Waiting
	}
	return
}

func poolTotals(p *testProxy) (t pool.Stats) {
	for _, st := range p.srv.PoolStats() {
		t.Closed += st.Closed
		t.Dials += st.Dials
	}
	return t
}

// waitActiveZero waits (bounded) until no server connection is leased and
// returns how long that took.
func waitActiveZero(t *testing.T, p *testProxy, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		active, _, waiting := poolCounts(p)
		if active == 0 && waiting == 0 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("pool still has %d active, %d waiting after %v: the departed session's slot is not free", active, waiting, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rootDB is a root connection to the primary, for looking at the server
// side of what the proxy does.
func rootDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", testcluster.Maria.RootDSN(testcluster.Maria.Primary, "app"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rootValue(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	var v sql.NullString
	if err := db.QueryRow(q).Scan(&v); err != nil {
		t.Fatalf("root: %s: %v", q, err)
	}
	if !v.Valid {
		return "NULL"
	}
	return v.String
}

// waitServerQuiet waits (bounded) until no connection of the pool's server
// user runs anything, and then checks that the server holds no more of
// them than the pool has open (no forgotten connection holding state).
func waitServerQuiet(t *testing.T, p *testProxy, root *sql.DB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		busy := rootValue(t, root, "SELECT GROUP_CONCAT(CONCAT(id, ':', command, ':', COALESCE(info, ''))) FROM information_schema.processlist WHERE user = 'app' AND (command <> 'Sleep' OR info IS NOT NULL)")
		if busy == "NULL" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server connections of the pool still busy: %s", busy)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A connection the proxy closed (a scatter cut off by its budget, a
	// pool of a stopped proxy) leaves the processlist a moment later, on
	// a busy machine up to seconds later; a leaked one never does.
	deadline = time.Now().Add(5 * time.Second)
	for {
		_, open, _ := poolCounts(p)
		var n int
		if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'app'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n <= open {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("server has %d connections of user app, the pool has %d open: %s", n, open,
				rootValue(t, root, "SELECT GROUP_CONCAT(CONCAT(id, ':', COALESCE(db, ''), ':', command, ':', time, ':', COALESCE(state, ''), ':', host)) FROM information_schema.processlist WHERE user = 'app'"))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func wantSQLErr(t *testing.T, c *sql.Conn, q string, num uint16) {
	t.Helper()
	rows, err := c.QueryContext(context.Background(), q)
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	if err == nil || mysqlErrNum(err) != num {
		t.Errorf("%s: got %v, want error %d (old session state visible to the next client)", q, err, num)
	}
}

// quitConn sends COM_QUIT on c's driver connection and closes it.
func quitConn(t *testing.T, c *sql.Conn) {
	t.Helper()
	_ = c.Raw(func(dc any) error { return dc.(io.Closer).Close() })
	_ = c.Close()
}

// TestPinnedSessionEndMatrix: every pin reason x every way a client
// leaves, on a pool of one server connection. Each time: the pool's slot
// is free at once, the server runs nothing for the pool and keeps no
// connection the pool does not know, and the next client (on the same
// server connection) sees none of the old state.
func TestPinnedSessionEndMatrix(t *testing.T) {
	// sess shares app's pool (same server user) in session pooling mode.
	p := startProxy(t, "pool_size = 1", `[[users]]
name = "app"
password = "app"`, `[[users]]
name = "sess"
password = "sess"
server_user = "app"
server_password = "app"
pool_mode = "session"`)
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.pm_t (id INT PRIMARY KEY) ENGINE=InnoDB")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.pm_other (id INT PRIMARY KEY) ENGINE=InnoDB")
	rootExec(t, "DELETE FROM app.pm_t")
	root := rootDB(t)
	ctx := context.Background()

	reasons := []struct {
		name string
		pin  func(t *testing.T, c *sql.Conn)
	}{
		{"temporary table", func(t *testing.T, c *sql.Conn) { execSQL(t, c, "CREATE TEMPORARY TABLE pm_tmp (id INT)") }},
		{"GET_LOCK", func(t *testing.T, c *sql.Conn) {
			if got := queryString(t, c, "SELECT GET_LOCK('pm_lock', 0)"); got != "1" {
				t.Fatalf("GET_LOCK = %s", got)
			}
		}},
		{"user variable", func(t *testing.T, c *sql.Conn) { execSQL(t, c, "SET @pm_x = 42") }},
		{"LOCK TABLES", func(t *testing.T, c *sql.Conn) { execSQL(t, c, "LOCK TABLES pm_t WRITE") }},
		{"SQL PREPARE", func(t *testing.T, c *sql.Conn) { execSQL(t, c, "PREPARE pm_stmt FROM 'SELECT 1'") }},
		{"HANDLER", func(t *testing.T, c *sql.Conn) { execSQL(t, c, "HANDLER pm_t OPEN") }},
		{"XA transaction", func(t *testing.T, c *sql.Conn) { execSQL(t, c, "XA START 'pm_xa'") }},
		{"SET in a prepared statement", func(t *testing.T, c *sql.Conn) {
			// interpolateParams=false: COM_STMT_PREPARE + COM_STMT_EXECUTE.
			execSQL(t, c, "SET autocommit = ?", 0)
			execSQL(t, c, "SET time_zone = ?", "+03:00")
		}},
		{"session pooling", func(t *testing.T, c *sql.Conn) {
			execSQL(t, c, "CREATE TEMPORARY TABLE pm_tmp (id INT)")
			execSQL(t, c, "SET @pm_x = 1, autocommit = 0, time_zone = '+02:00'")
			queryString(t, c, "SELECT GET_LOCK('pm_lock', 0)")
		}},
	}
	leaves := []string{"COM_QUIT", "TCP close", "in a transaction", "mid-statement"}

	n := 0
	for _, r := range reasons {
		for _, leave := range leaves {
			n++
			id := 1000 + n
			t.Run(strings.ReplaceAll(r.name+"/"+leave, " ", "_"), func(t *testing.T) {
				waitActiveZero(t, p, 5*time.Second)
				var kd killableDialer
				dial := fmt.Sprintf("pinm%d", n)
				mysql.RegisterDialContext(dial, kd.dial)
				user := "app"
				if r.name == "session pooling" {
					user = "sess"
				}
				dbA, err := sql.Open("mysql", fmt.Sprintf("%s:%s@%s(%s)/app?interpolateParams=false", user, user, dial, p.addr))
				if err != nil {
					t.Fatal(err)
				}
				defer dbA.Close()
				a := conn(t, dbA)
				r.pin(t, a)
				before := poolTotals(p)
				if active, _, _ := poolCounts(p); active != 1 {
					t.Fatalf("pinned session holds %d server connections, want 1", active)
				}
				switch leave {
				case "COM_QUIT":
					quitConn(t, a)
				case "TCP close":
					kd.killAll()
				case "in a transaction":
					if r.name != "XA transaction" { // in one already
						execSQL(t, a, "BEGIN")
					}
					execSQL(t, a, fmt.Sprintf("INSERT INTO pm_t VALUES (%d)", id))
					quitConn(t, a)
				case "mid-statement":
					done := make(chan error, 1)
					go func() {
						_, err := a.ExecContext(ctx, "SELECT SLEEP(30)")
						done <- err
					}()
					deadline := time.Now().Add(10 * time.Second)
					for rootValue(t, root, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'app' AND info = 'SELECT SLEEP(30)'") != "1" {
						if time.Now().After(deadline) {
							t.Fatal("SELECT SLEEP(30) never showed up on the server")
						}
						time.Sleep(20 * time.Millisecond)
					}
					kd.killAll()
					if err := <-done; err == nil {
						t.Fatal("SELECT SLEEP(30) succeeded on a closed connection")
					}
				}
				took := waitActiveZero(t, p, 3*time.Second)
				t.Logf("pool slot free after %v", took)
				if leave == "mid-statement" {
					// Killed before the slot was free: the server runs
					// nothing for the departed client once another could
					// have its slot.
					if got := rootValue(t, root, "SELECT COUNT(*) FROM information_schema.processlist WHERE info = 'SELECT SLEEP(30)' AND command <> 'Killed'"); got != "0" {
						t.Errorf("the departed client's statement still runs on the server after its pool slot was freed")
					}
				}
				if after := poolTotals(p); leave != "mid-statement" && (after.Closed != before.Closed || after.Dials != before.Dials) {
					// COM_RESET_CONNECTION proved the connection clean: it
					// is kept, not replaced.
					t.Errorf("server connection replaced (closed %d -> %d, dials %d -> %d), want reset and kept",
						before.Closed, after.Closed, before.Dials, after.Dials)
				}
				waitServerQuiet(t, p, root)

				// Seen from another server session.
				if got := rootValue(t, root, "SELECT IS_FREE_LOCK('pm_lock')"); got != "1" {
					t.Errorf("user lock still held: IS_FREE_LOCK = %s", got)
				}
				if got := rootValue(t, root, fmt.Sprintf("SELECT COUNT(*) FROM pm_t WHERE id = %d", id)); got != "0" {
					t.Errorf("the departed client's uncommitted insert was committed")
				}
				rc, err := root.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := rc.ExecContext(ctx, "SET SESSION lock_wait_timeout = 2"); err != nil {
					t.Fatal(err)
				}
				if _, err := rc.ExecContext(ctx, "INSERT INTO pm_t VALUES (1)"); err != nil {
					t.Errorf("pm_t still locked: %v", err)
				} else if _, err := rc.ExecContext(ctx, "DELETE FROM pm_t WHERE id = 1"); err != nil {
					t.Error(err)
				}
				rc.Close()

				// The next client, on the same (only) server connection. No
				// statement of the departed client runs (a connection the
				// pool is dialing or resetting meanwhile is not one).
				dbB := p.open(t, "")
				b := conn(t, dbB)
				for q, want := range map[string]string{
					"SELECT @@autocommit":            "1",
					"SELECT @@in_transaction":        "0",
					"SELECT @pm_x":                   "NULL",
					"SELECT @@time_zone":             "SYSTEM",
					"SELECT IS_FREE_LOCK('pm_lock')": "1",
					"SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'app' AND command = 'Query' AND id <> CONNECTION_ID()": "0",
				} {
					if got := queryString(t, b, q); got != want {
						t.Errorf("next client: %s = %s, want %s", q, got, want)
					}
				}
				wantSQLErr(t, b, "SELECT COUNT(*) FROM pm_tmp", 1146) // no such table
				wantSQLErr(t, b, "EXECUTE pm_stmt", 1243)             // unknown prepared statement
				wantSQLErr(t, b, "HANDLER pm_t READ FIRST", 1109)     // unknown table in HANDLER
				queryString(t, b, "SELECT COUNT(*) FROM pm_other")    // no LOCK TABLES in force
				quitConn(t, b)
				dbB.Close()
				waitActiveZero(t, p, 3*time.Second)
			})
		}
	}
}

// TestPreparedSetAutocommitNotHandedOn: go-sql-driver with
// interpolateParams=false sends SET autocommit=? as a prepared statement.
// The client keeps its autocommit-off session (and its time_zone); no other
// client is handed that server connection, so another client's
// acknowledged autocommit write is never left in a transaction that a
// session end rolls back. A procedure that turns autocommit off (invisible
// in the SQL text) is caught by the server's status flags.
func TestPreparedSetAutocommitNotHandedOn(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.pm_ac (id INT PRIMARY KEY) ENGINE=InnoDB")
	rootExec(t, "DELETE FROM app.pm_ac")
	rootExec(t, "CREATE OR REPLACE PROCEDURE app.pm_ac_off() SET autocommit = 0")
	root := rootDB(t)

	dbA := p.open(t, "interpolateParams=false")
	a := conn(t, dbA)
	execSQL(t, a, "SET autocommit = ?", 0)
	execSQL(t, a, "SET time_zone = ?", "+03:00")
	execSQL(t, a, "INSERT INTO pm_ac VALUES (1)")
	execSQL(t, a, "COMMIT")

	dbB := p.open(t, "interpolateParams=false")
	b := conn(t, dbB)
	if got := queryString(t, b, "SELECT @@autocommit"); got != "1" {
		t.Errorf("client b was handed a server connection with autocommit = %s", got)
	}
	if got := queryString(t, b, "SELECT @@time_zone"); got != "SYSTEM" {
		t.Errorf("client b sees time_zone %s", got)
	}
	execSQL(t, b, "INSERT INTO pm_ac VALUES (?)", 3) // acknowledged, autocommit
	if got := queryString(t, b, "SELECT @@in_transaction"); got != "0" {
		t.Errorf("client b's autocommit insert left a transaction open")
	}
	quitConn(t, b)

	// a keeps its own session.
	if got := queryString(t, a, "SELECT @@autocommit"); got != "0" {
		t.Errorf("client a lost its autocommit = 0: %s", got)
	}
	if got := queryString(t, a, "SELECT @@time_zone"); got != "+03:00" {
		t.Errorf("client a lost its time_zone: %s", got)
	}
	execSQL(t, a, "INSERT INTO pm_ac VALUES (2)") // never committed
	quitConn(t, a)
	waitActiveZero(t, p, 3*time.Second)
	waitServerQuiet(t, p, root)
	if got := rootValue(t, root, "SELECT GROUP_CONCAT(id ORDER BY id) FROM pm_ac"); got != "1,3" {
		t.Errorf("rows %s, want 1,3 (a's commit and b's acknowledged insert, not a's open transaction)", got)
	}

	// Autocommit turned off where the proxy cannot read it.
	c := conn(t, p.open(t, ""))
	execSQL(t, c, "CALL pm_ac_off()")
	for i := 0; i < 3; i++ {
		d := conn(t, p.open(t, ""))
		if got := queryString(t, d, "SELECT @@autocommit"); got != "1" {
			t.Errorf("a client was handed a server connection with autocommit = %s", got)
		}
		quitConn(t, d)
	}
	quitConn(t, c)
	waitActiveZero(t, p, 3*time.Second)

	// A prepared SET without parameters is tracked like the text
	// protocol's: no pin, replayed on whichever connection serves.
	e := conn(t, p.open(t, "interpolateParams=false"))
	st, err := e.PrepareContext(context.Background(), "SET time_zone = '+04:00'")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Exec(); err != nil {
		t.Fatal(err)
	}
	st.Close()
	// The lease goes back just after the reply is flushed; a pin would
	// keep it.
	waitActiveZero(t, p, 2*time.Second)
	f := conn(t, p.open(t, ""))
	execSQL(t, f, "BEGIN")
	if got := queryString(t, f, "SELECT @@time_zone"); got != "SYSTEM" {
		t.Errorf("another client sees time_zone %s", got)
	}
	if got := queryString(t, e, "SELECT @@time_zone"); got != "+04:00" {
		t.Errorf("the client lost its prepared SET: time_zone %s", got)
	}
	execSQL(t, f, "COMMIT")
}

// TestShutdownClosesIdlePinnedClients: a drain does not wait
// shutdown_timeout for clients that hold a pinned server connection but
// sit idle outside a transaction; their server connections are reset or
// closed, and what they held (a user lock) is released.
func TestShutdownClosesIdlePinnedClients(t *testing.T) {
	p := startProxy(t, "pool_size = 3")
	root := rootDB(t)
	db := p.open(t, "interpolateParams=false")
	a, b, c := conn(t, db), conn(t, db), conn(t, db)
	if got := queryString(t, a, "SELECT GET_LOCK('pm_drain', 0)"); got != "1" {
		t.Fatalf("GET_LOCK = %s", got)
	}
	execSQL(t, b, "CREATE TEMPORARY TABLE pm_drain_tmp (id INT)")
	execSQL(t, c, "SET @pm_v = 1")
	if active, _, _ := poolCounts(p); active != 3 {
		t.Fatalf("%d active, want 3 pinned", active)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v after %v (waited for idle pinned clients)", err, time.Since(start))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for rootValue(t, root, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'app'") != "0" {
		if time.Now().After(deadline) {
			t.Fatal("server connections of the pool left after shutdown")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := rootValue(t, root, "SELECT IS_FREE_LOCK('pm_drain')"); got != "1" {
		t.Errorf("user lock still held after shutdown")
	}
	if _, err := a.ExecContext(context.Background(), "SELECT 1"); err == nil {
		t.Errorf("a client was not closed by the shutdown")
	}
}
