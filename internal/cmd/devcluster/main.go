// Command devcluster starts the PostgreSQL (primary + replicas) and MariaDB
// (primary + replica) clusters of internal/testcluster and keeps them
// running until SIGINT or SIGTERM, then shuts them down. `make demo` runs it
// in the background with fixed ports and a state directory; tests and
// benchmarks may run it with neither (free ports, temporary directories).
//
// When the clusters are up it prints one KEY=VALUE line per fact to stdout,
// for scripts to read, and READY=1 last:
//
//	PG_PRIMARY=127.0.0.1:15432
//	PG_REPLICA1=127.0.0.1:15433
//	PG_BINDIR=/usr/lib/postgresql/15/bin
//	PG_DIR=/path/to/state/postgres
//	MY_PRIMARY=127.0.0.1:13306
//	MY_REPLICA1=127.0.0.1:13307
//	MY_DIR=/path/to/state/mariadb
//	READY=1
//
// Usage:
//
//	devcluster [-dir DIR] [-pg-ports P,P,P] [-mariadb-ports P,P] [-pidfile FILE]
//	           [-pg=false] [-mariadb=false] [-pg-replicas N] [-mariadb-replicas N]
//	           [-mariadb-arg=--OPTION ...]
//
// With -dir, PostgreSQL lives in DIR/postgres and MariaDB in DIR/mariadb;
// a start wipes what an earlier run left there, and a stop keeps the data
// and the server logs (DIR/*/n0.log is the primary's). When running as root
// PostgreSQL runs as the OS user postgres, which must be able to reach its
// directory; if it cannot (a repository under /root), or the path is too
// long for unix sockets, the directory is put under /var/tmp and
// DIR/postgres is a symbolic link to it.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/switchyard/switchyard/internal/testcluster"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devcluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pg := fs.Bool("pg", true, "start PostgreSQL")
	maria := fs.Bool("mariadb", true, "start MariaDB")
	pgReplicas := fs.Int("pg-replicas", 0, "PostgreSQL replicas (default 2, or as many as -pg-ports has after the primary's; -1: none)")
	myReplicas := fs.Int("mariadb-replicas", 0, "MariaDB replicas (default 1, or as many as -mariadb-ports has after the primary's; -1: none)")
	pgPorts := fs.String("pg-ports", "", "comma-separated fixed ports for the PostgreSQL primary and replicas (default: free ports)")
	myPorts := fs.String("mariadb-ports", "", "comma-separated fixed ports for the MariaDB primary and replicas (default: free ports)")
	dir := fs.String("dir", "", "state directory: the clusters live in DIR/postgres and DIR/mariadb and are kept after a stop (default: temporary directories, removed)")
	pidFile := fs.String("pidfile", "", "write this process's id to FILE while it runs")
	var myArgs argList
	fs.Var(&myArgs, "mariadb-arg", "an extra mariadbd option for every MariaDB node (repeatable), e.g. -mariadb-arg=--performance-schema=ON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "devcluster: "+format+"\n", a...)
		return 1
	}
	pgOpts := testcluster.Options{Replicas: *pgReplicas, Log: stderr}
	myOpts := testcluster.Options{Replicas: *myReplicas, Log: stderr, ServerArgs: myArgs}
	var err error
	if pgOpts.Ports, err = parsePorts(*pgPorts); err != nil {
		return fail("-pg-ports: %v", err)
	}
	if myOpts.Ports, err = parsePorts(*myPorts); err != nil {
		return fail("-mariadb-ports: %v", err)
	}

	// Signals are noted from the start; one that arrives while the
	// clusters start stops them as soon as they are up.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	signal.Ignore(syscall.SIGHUP)

	if *pidFile != "" {
		if err := writePidFile(*pidFile); err != nil {
			return fail("%v", err)
		}
		defer os.Remove(*pidFile)
	}
	if *dir != "" {
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			return fail("%v", err)
		}
		// PostgreSQL runs as postgres when this runs as root; MariaDB
		// runs as this user.
		if pgOpts.Dir, err = clusterDir(*dir, "postgres", os.Geteuid() == 0); err != nil {
			return fail("%v", err)
		}
		if myOpts.Dir, err = clusterDir(*dir, "mariadb", false); err != nil {
			return fail("%v", err)
		}
	}

	var (
		p            *testcluster.Postgres
		m            *testcluster.MariaDB
		pgErr, myErr error
		wg           sync.WaitGroup
	)
	if *pg {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, pgErr = testcluster.StartPostgres(pgOpts)
		}()
	}
	if *maria {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, myErr = testcluster.StartMariaDB(myOpts)
		}()
	}
	wg.Wait()
	stop := func() {
		var wg sync.WaitGroup
		if p != nil {
			wg.Add(1)
			go func() { defer wg.Done(); p.Stop() }()
		}
		if m != nil {
			wg.Add(1)
			go func() { defer wg.Done(); m.Stop() }()
		}
		wg.Wait()
	}
	if err := errors.Join(pgErr, myErr); err != nil {
		stop()
		return fail("%v", err)
	}
	if p != nil {
		fmt.Fprintf(stdout, "PG_PRIMARY=%s\n", p.Primary.Addr())
		for i, r := range p.Replicas {
			fmt.Fprintf(stdout, "PG_REPLICA%d=%s\n", i+1, r.Addr())
		}
		fmt.Fprintf(stdout, "PG_BINDIR=%s\n", p.BinDir)
		if pgOpts.Dir != "" {
			fmt.Fprintf(stdout, "PG_DIR=%s\n", pgOpts.Dir)
		}
	}
	if m != nil {
		fmt.Fprintf(stdout, "MY_PRIMARY=%s\n", m.Primary.Addr())
		for i, r := range m.Replicas {
			fmt.Fprintf(stdout, "MY_REPLICA%d=%s\n", i+1, r.Addr())
		}
		if myOpts.Dir != "" {
			fmt.Fprintf(stdout, "MY_DIR=%s\n", myOpts.Dir)
		}
	}
	fmt.Fprintln(stdout, "READY=1")
	if f, ok := stdout.(*os.File); ok {
		_ = f.Sync()
	}
	sig := <-sigs
	fmt.Fprintf(stderr, "devcluster: %v: stopping the servers\n", sig)
	stop()
	fmt.Fprintln(stderr, "devcluster: stopped")
	return 0
}

// argList is a repeatable string flag.
type argList []string

func (a *argList) String() string     { return strings.Join(*a, " ") }
func (a *argList) Set(v string) error { *a = append(*a, v); return nil }

// parsePorts reads "15432,15433,15434".
func parsePorts(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var ports []int
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("%q is not a port number", f)
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// writePidFile writes this process's id to path, unless a devcluster
// process named there still runs.
func writePidFile(path string) error {
	if b, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && pid != os.Getpid() && isDevcluster(pid) {
			return fmt.Errorf("already running as pid %d (pid file %s)", pid, path)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

func isDevcluster(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return true // no /proc: assume it is
	}
	arg0, _, _ := strings.Cut(string(b), "\x00")
	return strings.Contains(filepath.Base(arg0), "devcluster")
}

// maxDir is the longest cluster directory path used as is: the server
// sockets live in it (testcluster allows 80 bytes).
const maxDir = 80

// clusterDir returns the directory for one cluster: base/name, or, when
// that path is too long for unix sockets or (others) a server running as
// another OS user could not reach it, a directory under /var/tmp that
// base/name links to.
func clusterDir(base, name string, others bool) (string, error) {
	base, err := filepath.Abs(base)
	if err != nil {
		return "", err
	}
	want := filepath.Join(base, name)
	if fi, err := os.Lstat(want); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		// Placed elsewhere by an earlier run.
		target, err := filepath.EvalSymlinks(want)
		if err == nil {
			return target, nil
		}
		if err := os.Remove(want); err != nil { // dangling
			return "", err
		}
	}
	if len(want) <= maxDir && (!others || reachable(base)) {
		return want, nil
	}
	if _, err := os.Lstat(want); err == nil {
		return want, nil // a real directory: testcluster says what is wrong with it
	}
	tmp := "/var/tmp"
	if fi, err := os.Stat(tmp); err != nil || !fi.IsDir() {
		tmp = os.TempDir()
	}
	sum := sha256.Sum256([]byte(base))
	alt := filepath.Join(tmp, "switchyard-devcluster-"+hex.EncodeToString(sum[:])[:8], name)
	if err := os.MkdirAll(filepath.Dir(alt), 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(filepath.Dir(alt), 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(alt, want); err != nil {
		return "", err
	}
	return alt, nil
}

// reachable reports whether every directory from / to dir can be entered
// by any user.
func reachable(dir string) bool {
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}
