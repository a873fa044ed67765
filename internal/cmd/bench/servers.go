package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard/switchyard/internal/testcluster"
)

const (
	loopback     = "127.0.0.1"
	readyTimeout = 60 * time.Second
	stopGrace    = 10 * time.Second
	dbUser       = "app"
	dbPassword   = "app"
	dbName       = "app"
)

// env is everything one run starts; cleanup stops all of it.
type env struct {
	o     *options
	work  string // temporary directory for configs, logs, pgbench logs
	procs procSet

	pg    *testcluster.Postgres
	maria *testcluster.MariaDB

	sy                              *proc
	syPGAddr, syMyAddr, syAdminAddr string
	pgb                             *proc
	pgbAddr                         string
	floorProc                       *proc // the relay floor child (relayfloor.go)
	floorPGAddr, floorMyAddr        string
	pgbDir                          string
	versions                        map[string]string
	pgSettingsNote                  string
	loadMin, loadMax                float64
	loadSamples                     int
	toolEnv                         []string
	noFile                          uint64 // RLIMIT_NOFILE of this process and its children
	cleanupOnce                     sync.Once
}

func newEnv(o *options) (*env, error) {
	work, err := os.MkdirTemp("", "sybench")
	if err != nil {
		return nil, err
	}
	return &env{o: o, work: work, versions: map[string]string{}, toolEnv: toolEnv("PGPASSWORD=" + dbPassword)}, nil
}

// cleanup stops the proxies, then the servers, and removes the temporary
// directories. Safe to call more than once.
func (e *env) cleanup() {
	e.cleanupOnce.Do(func() {
		if e.sy != nil {
			e.sy.stop(syscall.SIGINT, stopGrace)
		}
		if e.pgb != nil {
			e.pgb.stop(syscall.SIGTERM, stopGrace)
		}
		var wg sync.WaitGroup
		if e.pg != nil {
			wg.Add(1)
			go func() { defer wg.Done(); e.pg.Stop() }()
		}
		if e.maria != nil {
			wg.Add(1)
			go func() { defer wg.Done(); e.maria.Stop() }()
		}
		wg.Wait()
		if e.o.keep {
			fmt.Fprintf(os.Stderr, "bench: kept %s\n", e.work)
			return
		}
		os.RemoveAll(e.work)
		if e.pgbDir != "" {
			os.RemoveAll(e.pgbDir)
		}
	})
}

// startClusters starts PostgreSQL (and MariaDB when wanted), without
// replicas, in parallel.
func (e *env) startClusters(maria bool) error {
	var wg sync.WaitGroup
	var pgErr, myErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.pg, pgErr = testcluster.StartPostgres(testcluster.Options{Replicas: -1, Log: os.Stderr})
	}()
	if maria {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.maria, myErr = testcluster.StartMariaDB(testcluster.Options{Replicas: -1, Log: os.Stderr})
		}()
	}
	wg.Wait()
	if pgErr != nil {
		return fmt.Errorf("start PostgreSQL: %w", pgErr)
	}
	if myErr != nil {
		return fmt.Errorf("start MariaDB: %w", myErr)
	}
	return nil
}

// tunePostgres gives the test server room for 256 direct clients next to
// both proxies' pools (testcluster's max_connections = 300 is just enough)
// and a shared_buffers that holds the pgbench data set (scale 10: ~160 MB;
// testcluster uses 32 MB), then restarts it.
func (e *env) tunePostgres() error {
	for _, q := range []string{
		"ALTER SYSTEM SET max_connections = 400",
		"ALTER SYSTEM SET shared_buffers = '256MB'",
	} {
		if err := e.pg.Exec(e.pg.Primary, "postgres", q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	if err := e.pg.RestartNode(e.pg.Primary); err != nil {
		return fmt.Errorf("restart PostgreSQL: %w", err)
	}
	var settings []string
	for _, name := range []string{"max_connections", "shared_buffers", "fsync", "synchronous_commit"} {
		v, err := e.pg.QueryString(e.pg.Primary, "postgres", "SHOW "+name)
		if err != nil {
			return err
		}
		settings = append(settings, name+"="+v)
	}
	e.pgSettingsNote = strings.Join(settings, ", ")
	return nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", loopback+":0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func addr(port int) string { return net.JoinHostPort(loopback, strconv.Itoa(port)) }

// pgDSN is a pgconn URL for the benchmark user at addr.
func pgDSN(addr string) string {
	return "postgres://" + dbUser + ":" + dbPassword + "@" + addr + "/" + dbName + "?sslmode=disable&connect_timeout=10"
}

// waitPG polls until a login and SELECT 1 through addr work, p exits, or
// readyTimeout passes.
func waitPG(ctx context.Context, p *proc, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("%s exited while starting (%v); its log:\n%s", p.name, p.err, p.logTail(4000))
		}
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgconn.Connect(cctx, pgDSN(addr))
		if err == nil {
			_, err = conn.Exec(cctx, "SELECT 1").ReadAll()
			conn.Close(cctx)
		}
		ccancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not accept a login at %s within %v (last error: %v); its log:\n%s", p.name, addr, readyTimeout, last, p.logTail(4000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitTCP polls until addr accepts a TCP connection.
func waitTCP(ctx context.Context, p *proc, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		if p.exited() {
			return fmt.Errorf("%s exited while starting (%v); its log:\n%s", p.name, p.err, p.logTail(4000))
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not accept on %s: %v", p.name, addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// switchyardConfig is the proxy's config for this run: both listeners (or
// only PostgreSQL), transaction pooling with the run's pool size, one user.
func switchyardConfig(pgListen, myListen, adminListen string, poolSize, maxClients int, pgPrimary, myPrimary string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# generated by internal/cmd/bench
[proxy]
postgres_listen  = %q
mysql_listen     = %q
admin_listen     = %q
max_client_conns = %d
shutdown_timeout = "5s"

[defaults]
pool_mode          = "transaction"
pool_size          = %d
min_pool_size      = 0
# As PgBouncer's query_wait_timeout below: 256 clients queue for the pool.
query_wait_timeout = "60s"
connect_timeout    = "10s"

[[users]]
name     = %q
password = %q

[[clusters]]
name     = "pg"
protocol = "postgres"
database = %q
primary  = %q
`, pgListen, myListen, adminListen, maxClients, poolSize, dbUser, dbPassword, dbName, pgPrimary)
	if myPrimary != "" {
		fmt.Fprintf(&b, `
[[clusters]]
name     = "my"
protocol = "mysql"
database = %q
primary  = %q

# The same database without TLS toward the server, as sysbench's direct
# run: what TLS costs on both ends.
[[clusters]]
name            = "my_plain"
protocol        = "mysql"
database        = %q
server_database = %q
primary         = %q
server_tls      = "disable"
`, dbName, myPrimary, plainDB, dbName, myPrimary)
	}
	return b.String()
}

// startSwitchyard starts bin/switchyard with a generated config and waits
// until a PostgreSQL login through it works (and the MySQL listener, when
// there is one, accepts).
func (e *env) startSwitchyard(ctx context.Context, withMySQL bool, maxClients int) error {
	ports := make([]int, 3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	e.syPGAddr = addr(ports[0])
	myListen, myPrimary := "", ""
	if withMySQL {
		e.syMyAddr = addr(ports[1])
		myListen, myPrimary = e.syMyAddr, e.maria.Primary.Addr()
	}
	e.syAdminAddr = addr(ports[2])
	cfgPath := filepath.Join(e.work, "switchyard.toml")
	cfg := switchyardConfig(e.syPGAddr, myListen, e.syAdminAddr, e.o.poolSize, maxClients, e.pg.Primary.Addr(), myPrimary)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	p, err := e.procs.start("switchyard", filepath.Join(e.work, "switchyard.log"), nil, toolEnv(), e.o.switchyard, "-config", cfgPath, "-log-level", "warn")
	if err != nil {
		return err
	}
	e.sy = p
	return waitListening(ctx, p, e.syPGAddr, e.syMyAddr)
}

// waitListening waits until a PostgreSQL login through pgAddr works and,
// unless myAddr is empty, myAddr accepts.
func waitListening(ctx context.Context, p *proc, pgAddr, myAddr string) error {
	if err := waitPG(ctx, p, pgAddr); err != nil {
		return err
	}
	if myAddr != "" {
		return waitTCP(ctx, p, myAddr)
	}
	return nil
}

// pgbouncerUser is the OS user PgBouncer runs as: it refuses to run as
// root, so postgres when this runs as root, else the current user (nil).
func pgbouncerUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PgBouncer refuses root: need the OS user postgres to run it as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("OS user postgres: odd uid/gid %s/%s", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// pgbouncerINI configures PgBouncer as Switchyard is configured: transaction
// pooling, the same pool size, one database, SCRAM for clients, no logging
// per connection (Switchyard logs at warn).
func pgbouncerINI(port, poolSize, maxClients int, pgPrimary testcluster.Node, dir string) string {
	return fmt.Sprintf(`; generated by internal/cmd/bench
[databases]
%s = host=%s port=%d dbname=%s

[pgbouncer]
listen_addr = %s
listen_port = %d
listen_backlog = 4096
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = transaction
default_pool_size = %d
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = %d
query_wait_timeout = 60
server_connect_timeout = 10
; As Switchyard's default server_tls = "prefer" (and PgBouncer's own default
; since 1.21): both proxies encrypt toward the server the test cluster
; serves TLS on, so neither is measured without the cost of TLS.
server_tls_sslmode = prefer
log_connections = 0
log_disconnections = 0
logfile = %s
ignore_startup_parameters = extra_float_digits
`, dbName, pgPrimary.Host, pgPrimary.Port, dbName, loopback, port, filepath.Join(dir, "userlist.txt"), poolSize, maxClients, filepath.Join(dir, "pgbouncer.log"))
}

// startPgBouncer starts PgBouncer in front of the test PostgreSQL and waits
// until a login through it works.
func (e *env) startPgBouncer(ctx context.Context, maxClients int) error {
	cred, err := pgbouncerUser()
	if err != nil {
		return err
	}
	// Its own directory: the postgres user must be able to read the ini
	// and write the log, and /tmp is reachable by everyone.
	dir, err := os.MkdirTemp("", "sybench-pgbouncer")
	if err != nil {
		return err
	}
	e.pgbDir = dir
	port, err := freePort()
	if err != nil {
		return err
	}
	e.pgbAddr = addr(port)
	files := map[string]string{
		"pgbouncer.ini": pgbouncerINI(port, e.o.poolSize, maxClients, e.pg.Primary, dir),
		"userlist.txt":  fmt.Sprintf("%q %q\n", dbUser, dbPassword),
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			return err
		}
		if cred != nil {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return err
			}
		}
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	p, err := e.procs.start("pgbouncer", filepath.Join(dir, "stderr.log"), cred, toolEnv(), e.o.pgbouncer, filepath.Join(dir, "pgbouncer.ini"))
	if err != nil {
		return err
	}
	e.pgb = p
	if err := waitPG(ctx, p, e.pgbAddr); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
		return fmt.Errorf("%w\npgbouncer.log:\n%s", err, tail(log, 4000))
	}
	return nil
}

// collectVersions records what runs in this benchmark, from the running
// servers where possible.
func (e *env) collectVersions(goVersion string) {
	v := e.versions
	v["go"] = goVersion
	if s, err := e.pg.QueryString(e.pg.Primary, "postgres", "SHOW server_version"); err == nil {
		v["postgres"] = s
	}
	if e.maria != nil {
		if s, err := e.maria.QueryString(e.maria.Primary, "SELECT VERSION()"); err == nil {
			v["mariadb"] = s
		}
	}
	first := func(bin string, args ...string) string {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			return "unknown (" + err.Error() + ")"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	v["pgbouncer"] = strings.TrimPrefix(first(e.o.pgbouncer, "--version"), "PgBouncer ")
	v["switchyard"] = strings.TrimPrefix(first(e.o.switchyard, "version"), "switchyard ")
	v["pgbench"] = strings.TrimPrefix(first(filepath.Join(e.pg.BinDir, "pgbench"), "--version"), "pgbench (PostgreSQL) ")
	if e.o.sysbench != "" {
		v["sysbench"] = strings.TrimPrefix(first(e.o.sysbench, "--version"), "sysbench ")
	}
}

// loadAvg returns /proc/loadavg's first three fields and the 1-minute one.
func loadAvg() (string, float64) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown", 0
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown", 0
	}
	one, _ := strconv.ParseFloat(f[0], 64)
	return strings.Join(f[:3], " "), one
}

// sampleLoad notes the 1-minute load average before a measurement.
func (e *env) sampleLoad() float64 {
	_, one := loadAvg()
	if e.loadSamples == 0 || one < e.loadMin {
		e.loadMin = one
	}
	if e.loadSamples == 0 || one > e.loadMax {
		e.loadMax = one
	}
	e.loadSamples++
	return one
}

// raiseNoFile raises RLIMIT_NOFILE to want (soft and hard; raising the hard
// limit needs root) or as far as allowed. Calling syscall.Setrlimit also
// makes Go's os/exec pass the raised limit on to children (it otherwise
// restores the limit the process started with), so the proxies and servers
// started later inherit it.
func raiseNoFile(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Max < want {
		try := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &try); err == nil {
			return want, nil
		}
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// vmRSS reads VmRSS of pid in bytes.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS line in /proc/" + strconv.Itoa(pid) + "/status")
}
