package mysqlwire

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, false, true)) }

type testProxy struct {
	srv  *Server
	addr string
	ln   net.Listener
}

// startProxy runs a proxy in front of the test cluster's primary. extra is
// TOML appended to [defaults] (e.g. "pool_size = 2").
func startProxy(t testing.TB, defaults string, users ...string) *testProxy {
	t.Helper()
	ma := testcluster.Maria
	if !strings.Contains(defaults, "pool_size") {
		defaults += "\npool_size = 10"
	}
	if len(users) == 0 {
		users = []string{`[[users]]
name = "app"
password = "app"`}
	}
	toml := fmt.Sprintf(`
[proxy]
postgres_listen = ""
mysql_listen = "127.0.0.1:0"
admin_listen = ""
shutdown_timeout = "5s"

[defaults]
query_wait_timeout = "20s"
%s

%s

[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q

[[clusters]]
name = "orders0"
protocol = "mysql"
database = "orders"
server_database = "orders_0"
primary = %q
`, defaults, strings.Join(users, "\n\n"), ma.Primary.Addr(), ma.Primary.Addr())
	cfg, err := config.Parse([]byte(toml), "")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return serveProxy(t, cfg, slog.LevelWarn, true)
}

// serveProxy serves cfg on a free loopback port until the test ends,
// logging at level (info with -v). strict: the shutdown at the end must
// succeed and Serve must return ErrServerClosed.
func serveProxy(t testing.TB, cfg *config.Config, level slog.Level, strict bool) *testProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	p := &testProxy{srv: NewServer(cfg, log), addr: ln.Addr().String(), ln: ln}
	done := make(chan error, 1)
	go func() { done <- p.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := p.srv.Shutdown(ctx)
		serveErr := <-done
		if !strict {
			return
		}
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if !errors.Is(serveErr, ErrServerClosed) {
			t.Errorf("Serve returned %v", serveErr)
		}
	})
	return p
}

func (p *testProxy) dsn(user, pw, db, params string) string {
	d := fmt.Sprintf("%s:%s@tcp(%s)/%s", user, pw, p.addr, db)
	if params != "" {
		d += "?" + params
	}
	return d
}

func (p *testProxy) open(t testing.TB, params string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", p.dsn("app", "app", "app", params))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rootExec(t testing.TB, q string) {
	t.Helper()
	if err := testcluster.Maria.Exec(testcluster.Maria.Primary, q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func mysqlErrNum(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func TestQueryTextAndBinary(t *testing.T) {
	p := startProxy(t, "")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.tb (id INT PRIMARY KEY, name VARCHAR(100), note TEXT NULL, data LONGBLOB NULL)")
	rootExec(t, "DELETE FROM app.tb")
	big := strings.Repeat("x", 3<<20) // streamed: larger than the relay buffer
	// maxAllowedPacket=1000000 makes the driver send the blob with
	// COM_STMT_SEND_LONG_DATA.
	for _, params := range []string{"interpolateParams=true", "interpolateParams=false", "", "maxAllowedPacket=1000000"} {
		t.Run(params, func(t *testing.T) {
			longBefore := counterValue(commandCounters[mysqlproto.ComStmtSendLongData])
			defer func() {
				if strings.Contains(params, "maxAllowedPacket") && counterValue(commandCounters[mysqlproto.ComStmtSendLongData]) == longBefore {
					t.Error("no COM_STMT_SEND_LONG_DATA seen")
				}
			}()
			db := p.open(t, params)
			ctx := context.Background()
			if _, err := db.ExecContext(ctx, "DELETE FROM tb"); err != nil {
				t.Fatal(err)
			}
			res, err := db.ExecContext(ctx, "INSERT INTO tb (id, name, note, data) VALUES (?, ?, ?, ?), (?, ?, ?, ?)",
				1, "one", nil, []byte(big), 2, "two's \"quoted\"", "n", nil)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n != 2 {
				t.Fatalf("affected %d", n)
			}
			rows, err := db.QueryContext(ctx, "SELECT id, name, note, data FROM tb WHERE id >= ? ORDER BY id", 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for rows.Next() {
				var id int
				var name string
				var note sql.NullString
				var data []byte
				if err := rows.Scan(&id, &name, &note, &data); err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%d|%s|%v|%d", id, name, note.Valid, len(data)))
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
			want := fmt.Sprintf("1|one|false|%d;2|two's \"quoted\"|true|0", len(big))
			if s := strings.Join(got, ";"); s != want {
				t.Fatalf("got %s, want %s", s, want)
			}
			// Errors are relayed, and the session goes on.
			_, err = db.ExecContext(ctx, "INSERT INTO tb (id, name) VALUES (1, 'dup')")
			if mysqlErrNum(err) != 1062 {
				t.Fatalf("duplicate key: %v", err)
			}
			var n int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM tb").Scan(&n); err != nil || n != 2 {
				t.Fatalf("count %d, %v", n, err)
			}
		})
	}
}

func TestMultiStatementsAndResults(t *testing.T) {
	p := startProxy(t, "")
	db := p.open(t, "multiStatements=true")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.ms (id INT PRIMARY KEY)")
	rootExec(t, "DELETE FROM app.ms")
	if _, err := db.Exec("INSERT INTO ms VALUES (1); INSERT INTO ms VALUES (2); DELETE FROM ms WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query("SELECT 1; SELECT id FROM ms; SELECT 'a', 'b'")
	if err != nil {
		t.Fatal(err)
	}
	sets := 0
	for {
		for rows.Next() {
		}
		sets++
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if sets != 3 {
		t.Fatalf("%d result sets", sets)
	}
	// An error in the middle ends the response.
	_, err = db.Exec("SELECT 1; SELECT * FROM no_such_table; SELECT 2")
	if mysqlErrNum(err) != 1146 {
		t.Fatalf("want 1146, got %v", err)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM ms").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count %d, %v", n, err)
	}
}

func TestTransactions(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.tx (id INT PRIMARY KEY, v INT)")
	rootExec(t, "DELETE FROM app.tx")
	for _, params := range []string{"interpolateParams=true", ""} {
		db := p.open(t, params)
		db.SetMaxOpenConns(4)
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("INSERT INTO tx VALUES (?, ?)", 1, 1); err != nil {
			t.Fatal(err)
		}
		// Other clients keep working meanwhile (on the other connection).
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM tx").Scan(&n); err != nil || n != 0 {
			t.Fatalf("uncommitted row visible to another client: %d %v", n, err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		tx, err = db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("INSERT INTO tx VALUES (?, ?)", 2, 2); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow("SELECT COUNT(*) FROM tx").Scan(&n); err != nil || n != 1 {
			t.Fatalf("own row not visible in transaction: %d %v", n, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("SELECT COUNT(*) FROM tx").Scan(&n); err != nil || n != 1 {
			t.Fatalf("after commit %d, %v", n, err)
		}
		rootExec(t, "DELETE FROM app.tx")
	}
}

func TestManyClientsSmallPool(t *testing.T) {
	p := startProxy(t, "pool_size = 10")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.many (id INT AUTO_INCREMENT PRIMARY KEY, client INT, i INT)")
	rootExec(t, "TRUNCATE app.many")
	const clients, perClient = 300, 10
	db := p.open(t, "")
	db.SetMaxOpenConns(clients)
	db.SetMaxIdleConns(clients)
	ctx := context.Background()
	conns := make([]*sql.Conn, clients)
	for i := range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for j := 0; j < perClient; j++ {
				var err error
				if j%2 == 0 {
					_, err = c.ExecContext(ctx, "INSERT INTO many (client, i) VALUES (?, ?)", i, j)
				} else {
					var tx *sql.Tx
					if tx, err = c.BeginTx(ctx, nil); err == nil {
						if _, err = tx.Exec("INSERT INTO many (client, i) VALUES (?, ?)", i, j); err == nil {
							err = tx.Commit()
						} else {
							_ = tx.Rollback()
						}
					}
				}
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
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
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM many").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != clients*perClient {
		t.Fatalf("%d rows, want %d", n, clients*perClient)
	}
	for name, st := range p.srv.PoolStats() {
		if st.Open > 10 {
			t.Errorf("pool %s has %d connections open", name, st.Open)
		}
		t.Logf("%s: %+v", name, st)
	}
	t.Logf("%d clients x %d inserts in %v", clients, perClient, time.Since(start))
}

// killableDialer records the client sockets so a test can cut one.
type killableDialer struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (k *killableDialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		k.mu.Lock()
		k.conns = append(k.conns, c)
		k.mu.Unlock()
	}
	return c, err
}

func (k *killableDialer) killAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, like a killed process
		}
		c.Close()
	}
}

func TestClientKilledMidTransaction(t *testing.T) {
	p := startProxy(t, "pool_size = 2")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.lk (id INT PRIMARY KEY, v INT)")
	rootExec(t, "REPLACE INTO app.lk VALUES (1, 0)")
	var kd killableDialer
	mysql.RegisterDialContext("killable", kd.dial)
	victim, err := sql.Open("mysql", fmt.Sprintf("app:app@killable(%s)/app", p.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	tx, err := victim.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("UPDATE lk SET v = 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	kd.killAll()

	other := p.open(t, "")
	ctx := context.Background()
	c, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = 1"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.ExecContext(ctx, "UPDATE lk SET v = 2 WHERE id = 1"); err != nil {
		t.Fatalf("row still locked after the client died: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("update took %v", d)
	}
	var v int
	if err := c.QueryRowContext(ctx, "SELECT v FROM lk WHERE id = 1").Scan(&v); err != nil || v != 2 {
		t.Fatalf("v = %d, %v (the dead client's update must be rolled back)", v, err)
	}
}

func TestAuthErrors(t *testing.T) {
	p := startProxy(t, "")
	cases := []struct {
		user, pw, db string
		num          uint16
	}{
		{"app", "wrong", "app", 1045},
		{"nobody", "app", "app", 1045},
		{"app", "", "app", 1045},
		{"app", "app", "nope", 1049},
	}
	for _, c := range cases {
		db, err := sql.Open("mysql", p.dsn(c.user, c.pw, c.db, ""))
		if err != nil {
			t.Fatal(err)
		}
		err = db.Ping()
		db.Close()
		if got := mysqlErrNum(err); got != c.num {
			t.Errorf("%s/%s/%s: want error %d, got %v", c.user, c.pw, c.db, c.num, err)
		}
	}
	// caching_sha2_password from the client side.
	db, err := sql.Open("mysql", p.dsn("app", "app", "app", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
}

func TestMariaDBCommandLine(t *testing.T) {
	bin, err := execLookPath("mariadb", "mysql")
	if err != nil {
		t.Skip("no mariadb client")
	}
	p := startProxy(t, "pool_size = 2")
	host, port, _ := net.SplitHostPort(p.addr)
	out, err := runCmd(bin, "--protocol=TCP", "-h", host, "-P", port, "-uapp", "-papp", "app", "--batch", "-e",
		"CREATE TABLE IF NOT EXISTS cli (id INT); DELETE FROM cli; INSERT INTO cli VALUES (1),(2); SELECT SUM(id) AS s FROM cli; USE orders_0; SELECT DATABASE(); SELECT 'done'")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"s\n3\n", "orders_0", "done"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = runCmd(bin, "--protocol=TCP", "-h", host, "-P", port, "-uapp", "-pbad", "app", "-e", "SELECT 1")
	if err == nil || !strings.Contains(out, "1045") {
		t.Errorf("bad password: %v %s", err, out)
	}
}
