// Package testcluster starts real database servers for tests: a PostgreSQL
// primary with streaming replicas and a MariaDB primary with GTID replicas,
// each on its own free loopback port, in a temporary directory that is
// removed again by Stop.
//
// Every server is a child process of the test binary, in its own process
// group, and (on Linux) gets SIGKILL when the test binary dies, so a crashed
// or timed-out test leaves no server running. Temporary directories left
// behind by a test binary that died are removed by the next start.
//
// Typical use, once per test binary:
//
//	func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, true, false)) }
//
// and then testcluster.PG (or testcluster.Maria) in the tests. Tests that
// stop or restart nodes of the shared clusters should not run in parallel
// with tests that use those nodes.
//
// Data directories are copies of templates made once per machine and user
// and kept in the user's cache directory (see cache.go): the first start
// takes a few seconds, later ones well under one. They live in /dev/shm when
// it has room, else in the temporary directory.
//
// When running as root, PostgreSQL runs as the OS user postgres (it refuses
// root) and MariaDB as root (--user=root).
//
// Long-lived clusters (`make demo` through internal/cmd/devcluster) use
// Options.Ports for fixed ports and Options.Dir for a directory of their
// own that Stop keeps.
//
// Environment:
//
//	SWITCHYARD_TESTCLUSTER_TRACE=1        print the time each start step takes
//	SWITCHYARD_TESTCLUSTER_CACHE=off|DIR  no template cache, or cache in DIR
//	SWITCHYARD_TESTCLUSTER_TMPDIR=DIR     put data directories in DIR
package testcluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options configures a cluster.
type Options struct {
	// Replicas is the number of replicas. 0 means the default: 2 for
	// PostgreSQL, 1 for MariaDB. A negative number means no replica.
	Replicas int
	// Log, if set, receives the servers' logs when starting fails.
	Log io.Writer
	// Ports, if set, are fixed loopback ports for the nodes: the primary's
	// first, then one per replica. With Replicas 0 the cluster has
	// len(Ports)-1 replicas; otherwise len(Ports) must be Replicas+1. A
	// port that is in use is an error (no retry on other ports). Unset:
	// free ports picked by the kernel.
	Ports []int
	// Dir, if set, is the directory the cluster lives in instead of a new
	// temporary one (for long-lived clusters such as `make demo`). It is
	// created if missing; what an earlier cluster left in it (node data
	// directories, logs) is removed first; only one cluster at a time may
	// use it; and Stop shuts the servers down cleanly and keeps it, with
	// the data and the logs. The servers' OS user (postgres, when running
	// as root) must be able to reach it, and its path must be at most
	// maxDirLen bytes long (unix socket paths are limited to ~107 bytes).
	Dir string
	// ServerArgs are extra options for every node's server command line
	// (MariaDB: e.g. "--performance-schema=ON", which is off by default
	// because it costs memory at every start).
	ServerArgs []string
}

// maxDirLen bounds the length of Options.Dir: the server sockets live in
// it, and a unix socket path has at most ~107 bytes.
const maxDirLen = 80

// replicaCount returns the number of replicas to start: o.Replicas, where
// 0 means def (or len(o.Ports)-1 when ports are given) and a negative
// number none.
func (o Options) replicaCount(def int) (int, error) {
	n := o.Replicas
	switch {
	case n == 0 && len(o.Ports) > 0:
		n = len(o.Ports) - 1
	case n == 0:
		n = def
	case n < 0:
		n = 0
	}
	if len(o.Ports) > 0 && len(o.Ports) != n+1 {
		return 0, fmt.Errorf("testcluster: %d ports given for a primary and %d replica(s); want %d", len(o.Ports), n, n+1)
	}
	return n, nil
}

// nodePorts returns the ports of n nodes: o.Ports, checked to be free, or
// free ports from the kernel.
func (o Options) nodePorts(n int) ([]int, error) {
	if len(o.Ports) == 0 {
		return freePorts(n)
	}
	if len(o.Ports) != n {
		return nil, fmt.Errorf("testcluster: %d ports for %d nodes", len(o.Ports), n)
	}
	seen := map[int]bool{}
	for _, p := range o.Ports {
		if p <= 0 || p > 65535 || seen[p] {
			return nil, fmt.Errorf("testcluster: bad or repeated port %d in %v", p, o.Ports)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(p)))
		if err != nil {
			return nil, fmt.Errorf("testcluster: port %d on %s: %w (another server, or an earlier cluster still running?): %v", p, loopback, errPortInUse, err)
		}
		l.Close()
	}
	return append([]int(nil), o.Ports...), nil
}

// errPortInUse: a port of Options.Ports is taken.
var errPortInUse = errors.New("is in use")

// rootDir returns the cluster's directory: o.Dir made ready (see
// Options.Dir; release must be called when the cluster stops), or a new
// temporary directory (release is nil).
func (o Options) rootDir(owner *runAs) (dir string, release func(), err error) {
	if o.Dir == "" {
		dir, err := makeRootDir(owner)
		return dir, nil, err
	}
	return prepareDir(o.Dir, owner)
}

const dirLockFile = "lock"

// prepareDir makes dir ready for a cluster that keeps it: created,
// locked against a second cluster, emptied of the nodes an earlier cluster
// left (only the names this package creates are removed), mode 0700, owned
// by owner.
func prepareDir(dir string, owner *runAs) (string, func(), error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	if len(dir) > maxDirLen {
		return "", nil, fmt.Errorf("testcluster: directory %s: path longer than %d bytes (the server sockets live there, and unix socket paths are short); use a shorter one", dir, maxDirLen)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	if owner != nil && !worldSearchable(filepath.Dir(dir)) {
		return "", nil, fmt.Errorf("testcluster: directory %s: the %s OS user the server runs as cannot reach it (a directory on the way is not searchable by others); use a directory elsewhere, or chmod o+x the parents", dir, owner.name)
	}
	lock, err := os.OpenFile(filepath.Join(dir, dirLockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		who := ""
		if b, err := os.ReadFile(filepath.Join(dir, ownerFile)); err == nil {
			who = " (pid " + strings.TrimSpace(string(b)) + ")"
		}
		return "", nil, fmt.Errorf("testcluster: directory %s is in use by another cluster%s", dir, who)
	}
	release := func() {
		os.Remove(filepath.Join(dir, ownerFile))
		_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
		lock.Close()
	}
	fail := func(err error) (string, func(), error) {
		release()
		return "", nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fail(err)
	}
	for _, e := range entries {
		if !leftByCluster(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			// A PostgreSQL server killed with its owner leaves its
			// System V interlock segment behind.
			removeStaleShm(filepath.Join(p, "postmaster.pid"))
		}
		if err := os.RemoveAll(p); err != nil {
			return fail(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fail(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fail(err)
	}
	if err := owner.chown(dir); err != nil {
		return fail(err)
	}
	return dir, release, nil
}

// leftByCluster reports whether name is something a cluster creates in its
// directory: node data directories n0, n1, ... and their logs, sockets and
// pid files (n0.log, ...), and the template.
func leftByCluster(name string) bool {
	if name == "template" || name == ownerFile {
		return true
	}
	base, _, _ := strings.Cut(name, ".")
	if len(base) < 2 || base[0] != 'n' {
		return false
	}
	_, err := strconv.Atoi(base[1:])
	return err == nil
}

// Node is one server of a cluster.
type Node struct {
	Host string // always "127.0.0.1"
	Port int
	Dir  string // the server's data directory
}

// Addr returns "127.0.0.1:port".
func (n Node) Addr() string { return net.JoinHostPort(n.Host, strconv.Itoa(n.Port)) }

const (
	loopback       = "127.0.0.1"
	startTimeout   = 60 * time.Second
	stopTimeout    = 60 * time.Second
	toolTimeout    = 120 * time.Second
	rootDirPrefix  = "sytc"
	ownerFile      = "owner.pid"
	maxBindRetries = 4
)

// freePorts asks the kernel for n distinct free TCP ports on the loopback
// address. Another process may take one before the server binds it; then
// the cluster start is tried again (errPortTaken).
func freePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", loopback+":0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// runAs describes the OS user the servers run as. A nil *runAs means the
// current user.
type runAs struct {
	name     string
	uid, gid uint32
}

func (r *runAs) credential() *syscall.Credential {
	if r == nil {
		return nil
	}
	return &syscall.Credential{Uid: r.uid, Gid: r.gid, Groups: []uint32{}}
}

func (r *runAs) chown(path string) error {
	if r == nil {
		return nil
	}
	return os.Lchown(path, int(r.uid), int(r.gid))
}

// lookupRunAs returns the OS user the given server must run as when the test
// runs as root, or nil when no switch is needed.
func lookupRunAs(name string) (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root, and the %q OS user to run the server as does not exist (%v); run scripts/install-deps.sh or `make test`", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("OS user %q has a non-numeric uid/gid %q/%q", name, u.Uid, u.Gid)
	}
	return &runAs{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}

// makeRootDir creates the cluster's temporary directory: short (unix socket
// paths are limited to ~107 bytes), mode 0700, owned by owner, and marked
// with the pid of this process so that a later run can remove it if this
// process dies without cleaning up.
func makeRootDir(owner *runAs) (string, error) {
	base := baseDir(owner)
	seen := map[string]bool{}
	for _, d := range []string{base, "/dev/shm", os.TempDir(), "/tmp"} {
		if !seen[d] {
			seen[d] = true
			removeStaleRootDirs(d)
		}
	}
	dir, err := os.MkdirTemp(base, rootDirPrefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := owner.chown(dir); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// tmpDirEnv names a directory for the clusters' data, overriding baseDir's
// choice.
const tmpDirEnv = "SWITCHYARD_TESTCLUSTER_TMPDIR"

// baseDir picks where the clusters' data directories go: the RAM-backed
// /dev/shm when it has room (creating and copying data directories costs
// half the CPU there, and no disk I/O, which matters on busy machines), else
// the temporary directory. The path must be short (unix socket paths are
// limited to ~107 bytes) and reachable by the servers' OS user.
func baseDir(owner *runAs) string {
	usable := func(d string) bool {
		return d != "" && len(d) <= 40 && isDir(d) && (owner == nil || worldSearchable(d))
	}
	if d := os.Getenv(tmpDirEnv); usable(d) {
		return d
	}
	var st syscall.Statfs_t
	if usable("/dev/shm") && syscall.Statfs("/dev/shm", &st) == nil &&
		uint64(st.Bavail)*uint64(st.Bsize) >= 4<<30 && syscall.Access("/dev/shm", 2 /* W_OK */) == nil {
		return "/dev/shm"
	}
	if d := os.TempDir(); usable(d) {
		return d
	}
	return "/tmp"
}

// worldSearchable reports whether every directory on the way to dir can be
// entered by any user.
func worldSearchable(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
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

// removeStaleRootDirs removes cluster directories whose owning process is
// gone (a test binary that crashed or was killed; its servers died with it).
func removeStaleRootDirs(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), rootDirPrefix) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or not readable, or being created
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			// PostgreSQL servers killed with the test binary leave their
			// (tiny) System V interlock segment behind.
			pids, _ := filepath.Glob(filepath.Join(dir, "*", "postmaster.pid"))
			for _, p := range pids {
				removeStaleShm(p)
			}
			os.RemoveAll(dir)
		}
	}
}

// copyTree copies the directory src to dst (which must not exist), keeping
// modes, and chowns everything to owner.
func copyTree(src, dst string, owner *runAs) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(path, target, info.Mode().Perm(), info.Size()); err != nil {
				return err
			}
		case d.Type()&os.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		default:
			return nil // sockets, pipes: skip
		}
		return owner.chown(target)
	})
}

// findBinary looks for the first of names in dirs, then in PATH.
func findBinary(dirs []string, names ...string) (string, error) {
	for _, d := range dirs {
		for _, n := range names {
			p := filepath.Join(d, n)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", strings.Join(names, " / "))
}

// errMissing marks errors about server binaries that are not installed.
type errMissing struct{ msg string }

func (e *errMissing) Error() string { return e.msg }

// IsMissingBinary reports whether err says that a server binary is not
// installed (the fix is `make test`, which installs the packages).
func IsMissingBinary(err error) bool {
	var m *errMissing
	return errors.As(err, &m)
}

// dumpLogs writes the end of every server log under root to w.
func dumpLogs(root string, w io.Writer) {
	matches, _ := filepath.Glob(filepath.Join(root, "*.log"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		fmt.Fprintf(w, "==== %s\n%s\n", m, tail(b, 20000))
	}
}

// traceOn enables timing traces of cluster starts on stderr
// (SWITCHYARD_TESTCLUSTER_TRACE=1).
var traceOn = os.Getenv("SWITCHYARD_TESTCLUSTER_TRACE") != ""

type tracer struct {
	what  string
	start time.Time
}

func newTracer(what string) *tracer { return &tracer{what: what, start: time.Now()} }

func (t *tracer) mark(step string) {
	if traceOn {
		var self syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
		fmt.Fprintf(os.Stderr, "testcluster: %s: %-28s %6.0f ms  (this process: %v CPU so far)\n", t.what, step,
			float64(time.Since(t.start).Microseconds())/1000, time.Duration(self.Utime.Nano()+self.Stime.Nano()).Round(time.Millisecond))
	}
}

// errPortTaken: a server could not bind the free port it was given because
// another process took it in the meantime. The start is tried again.
var errPortTaken = errors.New("port taken by another process")

// startWithRetries runs attempt, which starts a whole cluster (on failure:
// stops what it started, writes the server logs to logw, and returns which
// cached template it used, if any). It tries again with new ports when a
// port was taken, and once more with a rebuilt template if a cached one was
// used (it may be broken). The logs of the last failure go to o.Log.
func startWithRetries[T any](o Options, attempt func(logw io.Writer) (T, string, error)) (T, error) {
	dropped := false
	for i := 0; ; i++ {
		var logs bytes.Buffer
		c, cached, err := attempt(&logs)
		switch {
		case err == nil:
			return c, nil
		case errors.Is(err, errPortTaken) && i < maxBindRetries && len(o.Ports) == 0:
			continue // fixed ports: trying again would meet the same port
		case cached != "" && !dropped && !errors.Is(err, errPortInUse) && !(len(o.Ports) > 0 && errors.Is(err, errPortTaken)):
			dropTemplate(cached)
			dropped = true
			continue
		}
		if o.Log != nil {
			_, _ = o.Log.Write(logs.Bytes())
		}
		return c, err
	}
}
