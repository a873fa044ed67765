package testcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Postgres is a PostgreSQL primary with streaming replicas.
//
// Prepared on the primary (and so on every replica):
//   - databases app, orders_0, orders_1, owned by role app;
//   - role app, password "app", stored as SCRAM-SHA-256 (scram-sha-256 auth);
//   - role app_md5, password "app_md5", stored as MD5 (md5 auth);
//   - role app_trust, no password (trust auth);
//   - superuser postgres (trust auth over TCP, see SuperDSN).
//
// app_md5 and app_trust are members of app and have ALL on the databases and
// their schema public; tables and sequences any of the three create are
// usable by the others.
//
// The methods are safe for concurrent use.
type Postgres struct {
	Primary  Node
	Replicas []Node
	// BinDir holds the PostgreSQL programs (psql, pgbench, ...) of the
	// version that runs the cluster.
	BinDir string
	// TLSCA is a PEM file with the CA that signed the certificate every
	// node serves TLS with (for 127.0.0.1, ::1 and localhost). Clients
	// may connect with or without TLS.
	TLSCA string

	mu      sync.Mutex
	root    string
	release func() // set when root is Options.Dir: unlocks it
	as      *runAs
	nodes   map[int]*pgNode // by port
	stopped bool
	tls     tlsFiles
}

type pgNode struct {
	node    Node
	name    string // "primary", "replica1", ...
	primary bool
	srv     *server // nil while stopped
}

// pgSettings go into the primary's postgresql.conf (and reach the replicas
// through pg_basebackup). Port and socket directory are passed on the command
// line of each node.
//
// synchronous_commit stays on: with fsync=off a commit costs one write(2),
// and with it off a commit would return before its WAL is written, so
// pg_current_wal_lsn() right after a commit could be behind that commit and
// "replica caught up to the primary" would not mean "replica has my write".
const pgSettings = `
# --- testcluster ---
listen_addresses = '127.0.0.1'
max_connections = 300
shared_buffers = 32MB
fsync = off
synchronous_commit = on
full_page_writes = off
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
max_prepared_transactions = 20
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 100ms
wal_writer_delay = 10ms
checkpoint_timeout = 30min
password_encryption = 'scram-sha-256'
# Dynamic shared memory as files in the data directory: a server killed by
# SIGKILL (the test binary died) leaves nothing in /dev/shm.
dynamic_shared_memory_type = mmap
huge_pages = off
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
`

const pgHBA = `# testcluster
local     all          all                    trust
host      all          postgres  127.0.0.1/32 trust
host      all          app_trust 127.0.0.1/32 trust
host      all          app_md5   127.0.0.1/32 md5
host      all          all       127.0.0.1/32 scram-sha-256
host      replication  all       127.0.0.1/32 trust
`

// pgBinGlob is where Debian/Ubuntu install the PostgreSQL server programs.
var pgBinGlob = "/usr/lib/postgresql/*/bin"

// pgDatabases are created on the primary, owned by role app.
var pgDatabases = []string{"app", "orders_0", "orders_1"}

// findPostgres returns the bin directory of the highest installed
// PostgreSQL version that has initdb, postgres and pg_basebackup.
func findPostgres() (string, error) {
	var dirs []string
	if m, _ := filepath.Glob(pgBinGlob); len(m) > 0 {
		sort.Slice(m, func(i, j int) bool { return pgVersionOf(m[i]) > pgVersionOf(m[j]) })
		dirs = append(dirs, m...)
	}
	for _, d := range dirs {
		if hasAll(d, "initdb", "postgres", "pg_basebackup") {
			return d, nil
		}
	}
	if p, err := findBinary(nil, "initdb"); err == nil {
		d := filepath.Dir(p)
		if hasAll(d, "postgres", "pg_basebackup") {
			return d, nil
		}
	}
	return "", &errMissing{"PostgreSQL server programs (initdb, postgres, pg_basebackup) not found in /usr/lib/postgresql/*/bin or $PATH"}
}

func pgVersionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func hasAll(dir string, names ...string) bool {
	for _, n := range names {
		if fi, err := os.Stat(filepath.Join(dir, n)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// StartPostgres starts a primary and o.Replicas streaming replicas (each
// with its own physical replication slot, named like the replica:
// "replica1", ...), and returns when every node accepts connections and
// every replica is streaming. On error nothing is left running.
//
// The primary's data directory is a copy of a template made once per machine
// with initdb and the roles and databases above (see cache.go); each replica
// starts from a copy of the same cleanly shut down directory with
// standby.signal and primary_conninfo, which is what pg_basebackup -R would
// produce, only without a base backup from the running primary.
func StartPostgres(o Options) (*Postgres, error) {
	return startWithRetries(o, startPostgres(o))
}

func startPostgres(o Options) func(io.Writer) (*Postgres, string, error) {
	return func(logw io.Writer) (c *Postgres, cached string, err error) {
		nrep, err := o.replicaCount(2)
		if err != nil {
			return nil, "", err
		}
		if len(o.Ports) > 0 { // fail early, before any work
			if _, err := o.nodePorts(nrep + 1); err != nil {
				return nil, "", err
			}
		}
		bin, err := findPostgres()
		if err != nil {
			return nil, "", err
		}
		as, err := lookupRunAs("postgres")
		if err != nil {
			return nil, "", err
		}
		root, release, err := o.rootDir(as)
		if err != nil {
			return nil, "", err
		}
		c = &Postgres{BinDir: bin, root: root, release: release, as: as, nodes: map[int]*pgNode{}}
		defer func() {
			if err != nil {
				err = fmt.Errorf("testcluster: starting PostgreSQL: %w", err)
				dumpLogs(c.root, logw)
				c.Stop()
				c = nil
			}
		}()
		ctx := context.Background()
		tr := newTracer("postgres")

		key := templateKey("pg", filepath.Join(bin, "postgres"), pgInitdbArgs, pgSettings, pgHBA, pgRolesSQL, pgTemplate1SQL, strings.Join(pgDatabases, ","))
		tmpl, err := cachedTemplate(key, root, func(dir string) error { return c.buildTemplate(ctx, dir) })
		if err != nil {
			return c, "", err
		}
		if filepath.Dir(tmpl) != root {
			cached = tmpl
		}
		tr.mark("template ready")

		// Copy the template for every node; pick the ports.
		nodes := make([]*pgNode, nrep+1)
		errs := make([]error, len(nodes))
		ports, err := o.nodePorts(len(nodes))
		if err != nil {
			return c, cached, err
		}
		var wg sync.WaitGroup
		for i := range nodes {
			n := &pgNode{name: "primary", primary: i == 0, node: Node{Host: loopback, Dir: filepath.Join(root, fmt.Sprintf("n%d", i))}}
			if i > 0 {
				n.name = fmt.Sprintf("replica%d", i)
			}
			n.node.Port = ports[i]
			nodes[i] = n
			c.nodes[n.node.Port] = n
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				errs[i] = copyTree(tmpl, nodes[i].node.Dir, as)
			}(i)
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return c, cached, err
		}
		c.Primary = nodes[0].node
		for _, r := range nodes[1:] {
			c.Replicas = append(c.Replicas, r.node)
		}
		tr.mark("data directories copied")

		// Start all nodes at once. A replica starts from the same shutdown
		// checkpoint as the primary, so it accepts connections at once and
		// streams as soon as the primary and its slot exist.
		clear(errs)
		for i, n := range nodes {
			wg.Add(1)
			go func(i int, n *pgNode) {
				defer wg.Done()
				if !n.primary {
					if errs[i] = c.makeStandby(n); errs[i] == nil {
						errs[i] = c.startNode(ctx, n)
					}
					return
				}
				if errs[i] = c.startNode(ctx, n); errs[i] != nil || nrep == 0 {
					return
				}
				tr.mark("primary started")
				var slots []string
				for _, r := range nodes[1:] {
					slots = append(slots, fmt.Sprintf("pg_create_physical_replication_slot('%s', true)", r.name))
				}
				if err := c.exec(ctx, c.Primary, "postgres", "SELECT "+strings.Join(slots, ", ")); err != nil {
					errs[i] = fmt.Errorf("creating replication slots: %w", err)
				}
			}(i, n)
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return c, cached, err
		}
		tr.mark("all nodes started")
		if err := c.waitStreaming(ctx); err != nil {
			return c, cached, err
		}
		tr.mark("replicas streaming")
		return c, cached, nil
	}
}

const pgInitdbArgs = "-U postgres -A trust -E UTF8 --locale=C --no-sync --wal-segsize=1"

// buildTemplate makes a primary's data directory at dir: initdb, settings,
// pg_hba.conf, roles and databases, clean shutdown.
func (c *Postgres) buildTemplate(ctx context.Context, dir string) error {
	args := append([]string{"-D", dir}, strings.Fields(pgInitdbArgs)...)
	if err := runTool(ctx, c.as, filepath.Dir(dir), filepath.Join(c.BinDir, "initdb"), args...); err != nil {
		return err
	}
	if err := appendFile(filepath.Join(dir, "postgresql.conf"), pgSettings); err != nil {
		return err
	}
	hba := filepath.Join(dir, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte(pgHBA), 0o600); err != nil {
		return err
	}
	if err := c.as.chown(hba); err != nil {
		return err
	}
	n := &pgNode{name: "template", primary: true, node: Node{Host: loopback, Dir: dir}}
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	n.node.Port = ports[0]
	if err := c.startNode(ctx, n); err != nil {
		if n.srv != nil {
			_ = n.srv.stop(syscall.SIGQUIT)
		}
		return err
	}
	setupErr := c.exec(ctx, n.node, "postgres", pgRolesSQL)
	if setupErr == nil {
		setupErr = c.exec(ctx, n.node, "template1", pgTemplate1SQL)
	}
	// FILE_COPY (PostgreSQL 15+; older versions only have that) keeps the
	// databases' contents out of the WAL, and so out of the template.
	strategy := ""
	if pgVersionOf(c.BinDir) >= 15 {
		strategy = " STRATEGY file_copy"
	}
	if setupErr == nil {
		for _, db := range pgDatabases {
			if setupErr = c.exec(ctx, n.node, "postgres", "CREATE DATABASE "+db+" OWNER app"+strategy); setupErr != nil {
				break
			}
		}
	}
	if setupErr == nil {
		setupErr = c.exec(ctx, n.node, "postgres", "GRANT ALL ON DATABASE "+strings.Join(pgDatabases, ", ")+" TO app_md5, app_trust; CHECKPOINT")
	}
	// Fast shutdown: a shutdown checkpoint, so that copies start cleanly.
	stopErr := n.srv.stop(syscall.SIGINT)
	if setupErr != nil {
		return fmt.Errorf("setting up the primary: %w", setupErr)
	}
	if stopErr != nil {
		return stopErr
	}
	if n.srv.err != nil {
		return fmt.Errorf("template server did not shut down cleanly: %v\n%s", n.srv.err, n.srv.logTail())
	}
	return nil
}

// pgRolesSQL creates the roles.
const pgRolesSQL = `
SET password_encryption = 'scram-sha-256';
CREATE ROLE app LOGIN PASSWORD 'app';
SET password_encryption = 'md5';
CREATE ROLE app_md5 LOGIN PASSWORD 'app_md5';
RESET password_encryption;
CREATE ROLE app_trust LOGIN;
GRANT app TO app_md5, app_trust;
`

// pgTemplate1SQL prepares template1, so that in every database created from
// it (ours and those tests create) all three roles can use everything in
// schema public, whoever created it.
const pgTemplate1SQL = `
GRANT ALL ON SCHEMA public TO app, app_md5, app_trust;
ALTER DEFAULT PRIVILEGES FOR ROLE app, app_md5, app_trust GRANT ALL ON TABLES TO app, app_md5, app_trust;
ALTER DEFAULT PRIVILEGES FOR ROLE app, app_md5, app_trust GRANT ALL ON SEQUENCES TO app, app_md5, app_trust;
ALTER DEFAULT PRIVILEGES FOR ROLE app, app_md5, app_trust GRANT ALL ON FUNCTIONS TO app, app_md5, app_trust;
`

// makeStandby turns a copy of the primary's shut down data directory into a
// replica of the running primary (what pg_basebackup -R writes).
func (c *Postgres) makeStandby(r *pgNode) error {
	sig := filepath.Join(r.node.Dir, "standby.signal")
	if err := os.WriteFile(sig, nil, 0o600); err != nil {
		return err
	}
	if err := c.as.chown(sig); err != nil {
		return err
	}
	return appendFile(filepath.Join(r.node.Dir, "postgresql.auto.conf"), fmt.Sprintf(
		"primary_conninfo = 'host=%s port=%d user=postgres application_name=%s'\nprimary_slot_name = '%s'\n",
		loopback, c.Primary.Port, r.name, r.name))
}

// startNode starts the server of n and waits until it accepts connections.
func (c *Postgres) startNode(ctx context.Context, n *pgNode) error {
	c.mu.Lock()
	if c.tls.ca == "" {
		f, err := writeTLS(c.root, c.as)
		if err != nil {
			c.mu.Unlock()
			return err
		}
		c.tls, c.TLSCA = f, f.ca
	}
	tf := c.tls
	c.mu.Unlock()
	srv, err := startServer("postgres "+n.name+" "+n.node.Addr(), c.as, n.node.Dir,
		n.node.Dir+".log", filepath.Join(c.BinDir, "postgres"),
		"-D", n.node.Dir, "-p", strconv.Itoa(n.node.Port), "-k", n.node.Dir,
		"-c", "ssl=on", "-c", "ssl_cert_file="+tf.cert, "-c", "ssl_key_file="+tf.key)
	if err != nil {
		return err
	}
	c.mu.Lock()
	n.srv = srv
	c.mu.Unlock()
	return srv.waitReady(ctx, "accept connections", func(ctx context.Context) error {
		conn, err := pgconn.Connect(ctx, c.SuperDSN(n.node, "postgres"))
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
}

// waitStreaming waits until every running replica streams from the primary
// (if the primary runs).
func (c *Postgres) waitStreaming(ctx context.Context) error {
	c.mu.Lock()
	p := c.nodes[c.Primary.Port]
	var want int
	for _, r := range c.Replicas {
		if n := c.nodes[r.Port]; n != nil && n.srv != nil && !n.srv.exited() {
			want++
		}
	}
	c.mu.Unlock()
	if want == 0 || p == nil || p.srv == nil {
		return nil
	}
	return p.srv.waitReady(ctx, fmt.Sprintf("have %d streaming replica(s)", want), func(ctx context.Context) error {
		got, err := c.queryString(ctx, c.Primary, "postgres",
			"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
		if err != nil {
			return err
		}
		if n, _ := strconv.Atoi(got); n < want {
			return fmt.Errorf("%s of %d replicas streaming", got, want)
		}
		return nil
	})
}

func (c *Postgres) node(n Node) (*pgNode, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, errors.New("testcluster: cluster is stopped")
	}
	pn := c.nodes[n.Port]
	if pn == nil {
		return nil, fmt.Errorf("testcluster: no PostgreSQL node on port %d", n.Port)
	}
	return pn, nil
}

// Stop stops every node and removes the cluster's directory (with
// Options.Dir: shuts the nodes down cleanly and keeps the directory). It
// may be called more than once.
func (c *Postgres) Stop() {
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
	// Immediate shutdown when the data is thrown away anyway; a fast
	// (clean) one when the directory is kept.
	sig := syscall.SIGQUIT
	if c.release != nil {
		sig = syscall.SIGINT
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

// StopNode stops one node with a fast shutdown (like pg_ctl stop -m fast).
func (c *Postgres) StopNode(n Node) error {
	pn, err := c.node(n)
	if err != nil {
		return err
	}
	c.mu.Lock()
	srv := pn.srv
	pn.srv = nil
	c.mu.Unlock()
	if srv == nil {
		return fmt.Errorf("testcluster: postgres %s (%s) is not running", pn.name, n.Addr())
	}
	return srv.stop(syscall.SIGINT)
}

// StartNode starts a stopped node again, on the same port with the same
// data. It returns when the node accepts connections and, if it is a replica
// and the primary runs, when it streams; if it is the primary, when every
// running replica streams again.
func (c *Postgres) StartNode(n Node) error {
	pn, err := c.node(n)
	if err != nil {
		return err
	}
	c.mu.Lock()
	running := pn.srv != nil
	c.mu.Unlock()
	if running {
		return fmt.Errorf("testcluster: postgres %s (%s) is already running", pn.name, n.Addr())
	}
	ctx := context.Background()
	if err := c.startNode(ctx, pn); err != nil {
		c.mu.Lock()
		if pn.srv != nil {
			_ = pn.srv.stop(syscall.SIGQUIT)
			pn.srv = nil
		}
		c.mu.Unlock()
		return err
	}
	return c.waitStreaming(ctx)
}

// RestartNode is StopNode followed by StartNode.
func (c *Postgres) RestartNode(n Node) error {
	if err := c.StopNode(n); err != nil {
		return err
	}
	return c.StartNode(n)
}

// DSN returns a URL for user on node n:
// "postgres://user:password@127.0.0.1:port/db?sslmode=disable".
// An empty password is left out.
func (c *Postgres) DSN(n Node, user, password, db string) string {
	u := url.URL{Scheme: "postgres", Host: n.Addr(), Path: "/" + db, RawQuery: "sslmode=disable"}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

// SuperDSN returns the DSN of the superuser postgres (trust, no password).
func (c *Postgres) SuperDSN(n Node, db string) string {
	return c.DSN(n, "postgres", "", db)
}

// Exec runs sql (one or more statements, simple protocol) as the superuser
// in database db on node n.
func (c *Postgres) Exec(n Node, db, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return c.exec(ctx, n, db, sql)
}

func (c *Postgres) exec(ctx context.Context, n Node, db, sql string) error {
	conn, err := pgconn.Connect(ctx, c.SuperDSN(n, db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql).ReadAll()
	return err
}

// QueryString runs sql as the superuser in database db on node n and returns
// the first column of the first row, as text ("" for NULL). It is an error
// if there is no row.
func (c *Postgres) QueryString(n Node, db, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return c.queryString(ctx, n, db, sql)
}

func (c *Postgres) queryString(ctx context.Context, n Node, db, sql string) (string, error) {
	conn, err := pgconn.Connect(ctx, c.SuperDSN(n, db))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return "", err
	}
	for _, r := range results {
		if len(r.Rows) > 0 && len(r.Rows[0]) > 0 {
			return string(r.Rows[0][0]), nil
		}
	}
	return "", fmt.Errorf("testcluster: query returned no rows: %s", sql)
}

// WaitReplicasCaughtUp samples the primary's pg_current_wal_lsn() and waits
// until every running replica has replayed up to it. Stopped replicas are
// skipped.
func (c *Postgres) WaitReplicasCaughtUp(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	lsn, err := c.queryString(ctx, c.Primary, "postgres", "SELECT pg_current_wal_lsn()::text")
	if err != nil {
		return fmt.Errorf("testcluster: primary position: %w", err)
	}
	for _, r := range c.Replicas {
		pn, err := c.node(r)
		if err != nil {
			return err
		}
		c.mu.Lock()
		running := pn.srv != nil
		c.mu.Unlock()
		if !running {
			continue
		}
		var last string
		for {
			last, err = c.queryString(ctx, r, "postgres",
				"SELECT pg_last_wal_replay_lsn()::text || ' ' || (pg_last_wal_replay_lsn() >= '"+lsn+"'::pg_lsn)::text")
			if err == nil && strings.HasSuffix(last, " true") {
				break
			}
			select {
			case <-ctx.Done():
				if err != nil {
					last = err.Error()
				}
				return fmt.Errorf("testcluster: postgres %s (%s) did not replay up to %s within %v (replayed: %s)", pn.name, r.Addr(), lsn, timeout, last)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
