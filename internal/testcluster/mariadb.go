package testcluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDB is a MariaDB primary with GTID replicas.
//
// Prepared on the primary (and replicated to every replica):
//   - databases app, orders_0, orders_1;
//   - user 'app'@'%', password "app" (mysql_native_password), ALL on those
//     databases and nothing global (so read_only applies to it on replicas);
//   - user 'repl'@'%', password "repl", REPLICATION SLAVE;
//   - root with no password over TCP (see RootDSN).
//
// MariaDB 10.11 has no caching_sha2_password server plugin, so there is no
// caching_sha2 user; test that plugin against MySQL if it matters.
//
// The methods are safe for concurrent use.
type MariaDB struct {
	Primary  Node
	Replicas []Node
	// TLSCA is a PEM file with the CA that signed the certificate every
	// node serves TLS with (for 127.0.0.1, ::1 and localhost). Clients
	// may connect with or without TLS.
	TLSCA string

	mu      sync.Mutex
	root    string
	release func() // set when root is Options.Dir: unlocks it
	mariadb string // the mariadbd binary
	nodes   map[int]*myNode
	stopped bool
	tls     tlsFiles

	serverArgs []string // Options.ServerArgs
}

type myNode struct {
	node     Node
	name     string
	primary  bool
	serverID int
	srv      *server
}

// myDatabases are created on the primary; user app gets ALL on them.
var myDatabases = []string{"app", "orders_0", "orders_1"}

var sbinDirs = []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/mysql/bin"}

func findMariaDB() (server, installDB string, err error) {
	// Not mysqld: that may be MySQL, which takes other options.
	server, err1 := findBinary(sbinDirs, "mariadbd")
	installDB, err2 := findBinary(sbinDirs, "mariadb-install-db")
	if err1 != nil || err2 != nil {
		return "", "", &errMissing{"MariaDB server programs (mariadbd, mariadb-install-db) not found in /usr/sbin, /usr/bin or $PATH"}
	}
	return server, installDB, nil
}

// InnoDB options used both to create the data directory and to run it:
// small, and without durability.
var myInnoDBArgs = []string{
	"--innodb-buffer-pool-size=32M",
	"--innodb-log-file-size=16M",
	"--innodb-log-buffer-size=4M",
	"--innodb-flush-log-at-trx-commit=0",
	"--innodb-doublewrite=0",
	"--innodb-flush-method=fsync", // no O_DIRECT: page cache, like fsync=off for PostgreSQL
}

// StartMariaDB starts a primary and o.Replicas replicas, creates the users
// and databases on the primary, points every replica at the primary (CHANGE
// MASTER TO ... MASTER_USE_GTID=slave_pos) and returns when the replicas have
// applied all of it. On error nothing is left running.
//
// Every node starts from a copy of a data directory made once per machine
// with mariadb-install-db (see cache.go).
func StartMariaDB(o Options) (*MariaDB, error) {
	return startWithRetries(o, startMariaDB(o))
}

func startMariaDB(o Options) func(io.Writer) (*MariaDB, string, error) {
	return func(logw io.Writer) (c *MariaDB, cached string, err error) {
		nrep, err := o.replicaCount(1)
		if err != nil {
			return nil, "", err
		}
		if len(o.Ports) > 0 { // fail early, before any work
			if _, err := o.nodePorts(nrep + 1); err != nil {
				return nil, "", err
			}
		}
		mariadbd, installDB, err := findMariaDB()
		if err != nil {
			return nil, "", err
		}
		// mariadbd runs as root with --user=root when the test runs as root
		// (it refuses root without that flag), else as the current user.
		root, release, err := o.rootDir(nil)
		if err != nil {
			return nil, "", err
		}
		c = &MariaDB{root: root, release: release, mariadb: mariadbd, nodes: map[int]*myNode{}, serverArgs: o.ServerArgs}
		defer func() {
			if err != nil {
				err = fmt.Errorf("testcluster: starting MariaDB: %w", err)
				dumpLogs(c.root, logw)
				c.Stop()
				c = nil
			}
		}()
		ctx := context.Background()
		tr := newTracer("mariadb")

		installArgs := append([]string{"--no-defaults", "--auth-root-authentication-method=normal",
			"--skip-test-db", "--skip-name-resolve", "--skip-log-bin"}, myInnoDBArgs...)
		if os.Geteuid() == 0 {
			installArgs = append(installArgs, "--user=root")
		}
		key := templateKey("mariadb", mariadbd, strings.Join(installArgs, " "))
		tmpl, err := cachedTemplate(key, root, func(dir string) error {
			return runTool(ctx, nil, root, installDB, append(installArgs, "--datadir="+dir)...)
		})
		if err != nil {
			return c, "", err
		}
		if filepath.Dir(tmpl) != root {
			cached = tmpl
		}
		tr.mark("template ready")

		nodes := make([]*myNode, nrep+1)
		errs := make([]error, len(nodes))
		ports, err := o.nodePorts(len(nodes))
		if err != nil {
			return c, cached, err
		}
		var wg sync.WaitGroup
		for i := range nodes {
			n := &myNode{name: "primary", primary: i == 0, serverID: i + 1,
				node: Node{Host: loopback, Dir: filepath.Join(root, fmt.Sprintf("n%d", i))}}
			if i > 0 {
				n.name = fmt.Sprintf("replica%d", i)
			}
			n.node.Port = ports[i]
			nodes[i] = n
			c.nodes[n.node.Port] = n
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				errs[i] = copyTree(tmpl, nodes[i].node.Dir, nil)
			}(i)
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return c, cached, err
		}
		c.Primary = nodes[0].node
		for _, n := range nodes[1:] {
			c.Replicas = append(c.Replicas, n.node)
		}
		tr.mark("data directories copied")

		// Start all nodes in parallel.
		clear(errs)
		for i, n := range nodes {
			wg.Add(1)
			go func(i int, n *myNode) {
				defer wg.Done()
				errs[i] = c.startNode(ctx, n)
			}(i, n)
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return c, cached, err
		}
		tr.mark("all started")

		setup := []string{
			"CREATE USER 'repl'@'%' IDENTIFIED BY 'repl'",
			"GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'",
			"CREATE USER 'app'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('app')",
		}
		for _, db := range myDatabases {
			setup = append(setup,
				"CREATE DATABASE `"+db+"`",
				"GRANT ALL ON `"+db+"`.* TO 'app'@'%'")
		}
		if err := c.exec(ctx, c.Primary, strings.Join(setup, ";\n")); err != nil {
			return c, cached, fmt.Errorf("setting up the primary: %w", err)
		}
		tr.mark("users and databases")
		for _, r := range c.Replicas {
			q := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE",
				loopback, c.Primary.Port)
			if err := c.exec(ctx, r, q); err != nil {
				return c, cached, fmt.Errorf("starting replication on %s: %w", r.Addr(), err)
			}
		}
		tr.mark("replication configured")
		if err := c.WaitReplicasCaughtUp(startTimeout); err != nil {
			return c, cached, err
		}
		tr.mark("replicas caught up")
		return c, cached, nil
	}
}

func (c *MariaDB) startNode(ctx context.Context, n *myNode) error {
	c.mu.Lock()
	if c.tls.ca == "" {
		f, err := writeTLS(c.root, nil)
		if err != nil {
			c.mu.Unlock()
			return err
		}
		c.tls, c.TLSCA = f, f.ca
	}
	tf := c.tls
	c.mu.Unlock()
	d := n.node.Dir
	args := []string{
		"--no-defaults",
		"--datadir=" + d,
		"--socket=" + d + ".sock",
		"--pid-file=" + d + ".pid",
		"--port=" + strconv.Itoa(n.node.Port),
		"--bind-address=" + loopback,
		"--skip-name-resolve",
		"--server-id=" + strconv.Itoa(n.serverID),
		"--gtid-domain-id=0",
		"--log-bin=mysql-bin",
		"--binlog-format=ROW",
		"--sync-binlog=0",
		"--relay-log=relay-bin",
		"--max-connections=300",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
		"--log-warnings=1",
	}
	args = append(args, myInnoDBArgs...)
	args = append(args, c.serverArgs...)
	args = append(args, "--ssl-ca="+tf.ca, "--ssl-cert="+tf.cert, "--ssl-key="+tf.key)
	if !n.primary {
		args = append(args, "--read-only=ON", "--log-slave-updates=ON")
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	srv, err := startServer("mariadbd "+n.name+" "+n.node.Addr(), nil, c.root, d+".log", c.mariadb, args...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	n.srv = srv
	c.mu.Unlock()
	return srv.waitReady(ctx, "accept connections", func(ctx context.Context) error {
		db, err := c.open(n.node, "")
		if err != nil {
			return err
		}
		defer db.Close()
		return db.PingContext(ctx)
	})
}

// open returns a one-connection database/sql handle for root on n.
func (c *MariaDB) open(n Node, db string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "tcp"
	cfg.Addr = n.Addr()
	cfg.DBName = db
	cfg.MultiStatements = true
	cfg.Timeout = 5 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	d := sql.OpenDB(conn)
	d.SetMaxOpenConns(1)
	return d, nil
}

func (c *MariaDB) node(n Node) (*myNode, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, errors.New("testcluster: cluster is stopped")
	}
	mn := c.nodes[n.Port]
	if mn == nil {
		return nil, fmt.Errorf("testcluster: no MariaDB node on port %d", n.Port)
	}
	return mn, nil
}

// Stop kills every node and removes the cluster's directory (with
// Options.Dir: shuts the nodes down cleanly and keeps the directory). It
// may be called more than once.
func (c *MariaDB) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	var srvs []*server
	for _, n := range c.nodes {
		if n.srv != nil {
			srvs = append(srvs, n.srv)
		}
	}
	c.mu.Unlock()
	sig := syscall.SIGKILL // the data is thrown away anyway
	if c.release != nil {
		sig = syscall.SIGTERM // kept: shut down cleanly
	}
	var wg sync.WaitGroup
	for _, s := range srvs {
		wg.Add(1)
		go func(s *server) {
			defer wg.Done()
			_ = s.stop(sig)
		}(s)
	}
	wg.Wait()
	switch {
	case c.release != nil:
		c.release()
	case c.root != "":
		os.RemoveAll(c.root)
	}
}

// StopNode shuts one node down cleanly (SIGTERM).
func (c *MariaDB) StopNode(n Node) error {
	mn, err := c.node(n)
	if err != nil {
		return err
	}
	c.mu.Lock()
	srv := mn.srv
	mn.srv = nil
	c.mu.Unlock()
	if srv == nil {
		return fmt.Errorf("testcluster: mariadb %s (%s) is not running", mn.name, n.Addr())
	}
	return srv.stop(syscall.SIGTERM)
}

// StartNode starts a stopped node again, on the same port with the same
// data. It returns when the node accepts connections and, if the primary
// runs, when the node's (or every running replica's) replication threads
// run again.
func (c *MariaDB) StartNode(n Node) error {
	mn, err := c.node(n)
	if err != nil {
		return err
	}
	c.mu.Lock()
	running := mn.srv != nil
	c.mu.Unlock()
	if running {
		return fmt.Errorf("testcluster: mariadb %s (%s) is already running", mn.name, n.Addr())
	}
	ctx := context.Background()
	if err := c.startNode(ctx, mn); err != nil {
		c.mu.Lock()
		if mn.srv != nil {
			_ = mn.srv.stop(syscall.SIGKILL)
			mn.srv = nil
		}
		c.mu.Unlock()
		return err
	}
	return c.waitReplicating(ctx)
}

// RestartNode is StopNode followed by StartNode.
func (c *MariaDB) RestartNode(n Node) error {
	if err := c.StopNode(n); err != nil {
		return err
	}
	return c.StartNode(n)
}

// running returns the replicas that run, and whether the primary runs.
func (c *MariaDB) running() (reps []*myNode, primaryUp bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.nodes[c.Primary.Port]; p != nil && p.srv != nil {
		primaryUp = true
	}
	for _, r := range c.Replicas {
		if n := c.nodes[r.Port]; n != nil && n.srv != nil {
			reps = append(reps, n)
		}
	}
	return reps, primaryUp
}

// waitReplicating waits until both replication threads of every running
// replica run (when the primary runs).
func (c *MariaDB) waitReplicating(ctx context.Context) error {
	reps, up := c.running()
	if !up {
		return nil
	}
	for _, r := range reps {
		err := r.srv.waitReady(ctx, "replicate from the primary", func(ctx context.Context) error {
			st, err := c.slaveStatus(ctx, r.node)
			if err != nil {
				return err
			}
			if st["Slave_IO_Running"] != "Yes" || st["Slave_SQL_Running"] != "Yes" {
				return fmt.Errorf("Slave_IO_Running=%s Slave_SQL_Running=%s Last_IO_Error=%q Last_SQL_Error=%q",
					st["Slave_IO_Running"], st["Slave_SQL_Running"], st["Last_IO_Error"], st["Last_SQL_Error"])
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// slaveStatus returns SHOW SLAVE STATUS of n as column → value.
func (c *MariaDB) slaveStatus(ctx context.Context, n Node) (map[string]string, error) {
	db, err := c.open(n, "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, errors.New("replication is not configured")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	st := make(map[string]string, len(cols))
	for i, col := range cols {
		st[col] = vals[i].String
	}
	return st, rows.Err()
}

// DSN returns a go-sql-driver/mysql DSN: "user:password@tcp(127.0.0.1:port)/db".
func (c *MariaDB) DSN(n Node, user, password, db string) string {
	return user + ":" + password + "@tcp(" + n.Addr() + ")/" + db
}

// RootDSN returns the DSN of root (no password).
func (c *MariaDB) RootDSN(n Node, db string) string {
	return c.DSN(n, "root", "", db)
}

// Exec runs sql (one or more statements) as root on node n.
func (c *MariaDB) Exec(n Node, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return c.exec(ctx, n, sql)
}

func (c *MariaDB) exec(ctx context.Context, n Node, q string) error {
	db, err := c.open(n, "")
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, q)
	return err
}

// QueryString runs sql as root on node n and returns the first column of the
// first row as text ("" for NULL). It is an error if there is no row.
func (c *MariaDB) QueryString(n Node, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return c.queryString(ctx, n, sql)
}

func (c *MariaDB) queryString(ctx context.Context, n Node, q string) (string, error) {
	db, err := c.open(n, "")
	if err != nil {
		return "", err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", err
		}
		return "", fmt.Errorf("testcluster: query returned no rows: %s", q)
	}
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	vals := make([]any, len(cols))
	var first sql.NullString
	vals[0] = &first
	for i := 1; i < len(vals); i++ {
		vals[i] = new(sql.RawBytes)
	}
	if err := rows.Scan(vals...); err != nil {
		return "", err
	}
	return first.String, nil
}

var gtidPosRE = regexp.MustCompile(`^[0-9,\- ]*$`)

// WaitReplicasCaughtUp samples the primary's @@gtid_binlog_pos and waits
// (MASTER_GTID_WAIT) until every running replica has applied it. Stopped
// replicas are skipped.
func (c *MariaDB) WaitReplicasCaughtUp(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	pos, err := c.queryString(ctx, c.Primary, "SELECT @@gtid_binlog_pos")
	if err != nil {
		return fmt.Errorf("testcluster: primary position: %w", err)
	}
	if !gtidPosRE.MatchString(pos) {
		return fmt.Errorf("testcluster: unexpected @@gtid_binlog_pos %q", pos)
	}
	if pos == "" {
		return nil
	}
	reps, _ := c.running()
	for _, r := range reps {
		secs := time.Until(deadline).Seconds()
		if secs < 0.001 {
			secs = 0.001
		}
		res, err := c.queryString(ctx, r.node, fmt.Sprintf("SELECT MASTER_GTID_WAIT('%s', %.3f)", pos, secs))
		if err == nil && res == "0" {
			continue
		}
		if err == nil {
			err = errors.New("timed out")
		}
		detail := ""
		if st, serr := c.slaveStatus(context.Background(), r.node); serr == nil {
			detail = fmt.Sprintf(" (Gtid_IO_Pos=%s Slave_IO_Running=%s Slave_SQL_Running=%s Last_IO_Error=%q Last_SQL_Error=%q)",
				st["Gtid_IO_Pos"], st["Slave_IO_Running"], st["Slave_SQL_Running"], st["Last_IO_Error"], st["Last_SQL_Error"])
		}
		return fmt.Errorf("testcluster: mariadb %s (%s) did not apply %s within %v: %v%s", r.name, r.node.Addr(), pos, timeout, err, detail)
	}
	return nil
}
