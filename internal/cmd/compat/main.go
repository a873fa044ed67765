// Command compat runs the pgx v5 driver's own test suite twice, once
// directly against a test PostgreSQL and once through Switchyard in
// transaction pooling mode, and reports the difference (`make compat`).
//
// pgx is fetched through the Go module proxy at a pinned version (`go mod
// download`), copied to a writable directory of its own ($TMPDIR/
// switchyard-compat-pgx-<version>, kept between runs so that the build
// cache spares the compiling) and tested there with `go test -json`, a time limit per package (a hang is reported with the tests
// that were running, not waited on), and the PGX_TEST_* connection strings
// its CI uses, every one pointing at 127.0.0.1: the server directly, then
// the proxy. What the suite needs on the server is created as pgx's
// testsetup/postgresql_setup.sql does (database pgx_test, extensions
// hstore and ltree, domain uint64, users pgx_md5 (md5), pgx_scram (SCRAM),
// pgx_pw (plain password) and the "tricky" user). Connection strings for
// what this setup has not (TLS, client certificates, unix sockets, OAuth,
// CockroachDB) are left unset, so pgx skips those tests in both runs.
//
// It starts everything itself: PostgreSQL from internal/testcluster (no
// replicas) and bin/switchyard with a generated config (pool_size
// -pool-size, one pool per user). When run as root it runs all of that, and
// the tests, in a network namespace of its own that has only a loopback
// interface (-netns), so nothing the suite does can reach another host;
// pgx and its dependencies are downloaded before it enters it.
//
// Then it prints passed / failed / skipped for both runs, every test that
// fails through the proxy but passes directly, each matched against the
// known-failures file (-known: tests that cannot pass under transaction
// pooling by design, one reason each), runs the unexplained ones once more
// on their own through the proxy (to tell a flaky test from a bug), and
// finally checks the proxy's /status: every pool must be idle (active 0)
// once the clients are gone, else a server connection leaked.
//
// Exit status 0: every failure through the proxy is explained and no
// connection leaked; 1: otherwise (or the run could not be done); 2: bad
// flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type options struct {
	switchyard string
	pgxVersion string
	known      string
	pkgs       []string
	run, skip  string
	pkgTimeout time.Duration
	poolSize   int
	targets    []string
	netns      string
	keep       bool
	retry      bool
	idleWait   time.Duration
	verbose    bool

	// Set by the parent for the child it starts in a network namespace.
	work    string
	inNetns bool
}

const (
	targetDirect = "direct"
	targetProxy  = "switchyard"
)

// defaultPkgs are pgx's packages whose tests talk to a server.
var defaultPkgs = []string{"pgx", "pgconn", "pgproto3", "pgtype", "pgtype/zeronull", "pgxpool", "stdlib", "tracelog"}

// alwaysSkip are tests that would reach outside the loopback network
// (a DNS query for foo.invalid).
var alwaysSkip = []string{"TestConnectFailsWithResolveFailureAndFailedConnectionAttempts"}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("compat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.switchyard, "switchyard", "bin/switchyard", "the Switchyard binary")
	fs.StringVar(&o.pgxVersion, "pgx-version", "v5.12.0", "the version of github.com/jackc/pgx/v5 whose suite runs")
	fs.StringVar(&o.known, "known", "testdata/compat/pgx-known-failures.txt", "the known-failures file: tests that cannot pass under transaction pooling, one reason each")
	pkgs := fs.String("pkgs", strings.Join(defaultPkgs, ","), "comma-separated pgx packages to test (paths inside the module; pgx is the root)")
	fs.StringVar(&o.run, "run", "", "go test -run: only these tests")
	fs.StringVar(&o.skip, "skip", "", "go test -skip: also skip these tests")
	fs.DurationVar(&o.pkgTimeout, "pkg-timeout", 5*time.Minute, "go test -timeout: a package whose tests take longer is stopped and reported as hung, with the tests that were running")
	fs.IntVar(&o.poolSize, "pool-size", 10, "Switchyard pool_size")
	targets := fs.String("targets", targetDirect+","+targetProxy, "which runs: direct, switchyard or both")
	fs.StringVar(&o.netns, "netns", "auto", "run in a network namespace with only loopback: auto (when possible), on, off")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (go test JSON, proxy config and log)")
	fs.BoolVar(&o.retry, "retry", true, "run unexplained failures once more through the proxy, alone")
	fs.DurationVar(&o.idleWait, "idle-wait", 30*time.Second, "how long pools may take to become idle after the suite")
	fs.BoolVar(&o.verbose, "v", false, "print every package's result as it ends")
	fs.StringVar(&o.work, "work", "", "(internal) work directory prepared by the parent")
	fs.BoolVar(&o.inNetns, "in-netns", false, "(internal) running in the network namespace")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	for _, p := range strings.Split(*pkgs, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.pkgs = append(o.pkgs, p)
		}
	}
	for _, t := range strings.Split(*targets, ",") {
		switch t = strings.TrimSpace(t); t {
		case targetDirect, targetProxy:
			o.targets = append(o.targets, t)
		default:
			return nil, fmt.Errorf("-targets: %q is not direct or switchyard", t)
		}
	}
	switch {
	case len(o.pkgs) == 0:
		return nil, errors.New("-pkgs: no package")
	case o.netns != "auto" && o.netns != "on" && o.netns != "off":
		return nil, fmt.Errorf("-netns: %q is not auto, on or off", o.netns)
	case o.poolSize < 1:
		return nil, errors.New("-pool-size must be positive")
	case o.pkgTimeout < time.Second:
		return nil, errors.New("-pkg-timeout must be at least 1s")
	}
	if o.has(targetProxy) {
		if _, err := os.Stat(o.switchyard); err != nil {
			return nil, fmt.Errorf("-switchyard: %w (run make build)", err)
		}
		abs, err := filepath.Abs(o.switchyard)
		if err != nil {
			return nil, err
		}
		o.switchyard = abs
	}
	return o, nil
}

func (o *options) has(target string) bool {
	for _, t := range o.targets {
		if t == target {
			return true
		}
	}
	return false
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "compat: %v\n", err)
		return 2
	}
	known, err := readKnown(o.known)
	if err != nil {
		fmt.Fprintf(stderr, "compat: %v\n", err)
		return 2
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		fmt.Fprintf(stderr, "compat: %v: stopping (once more to exit at once)\n", s)
		cancel()
		if _, ok := <-sigs; ok {
			os.Exit(130) // children die with this process (parent-death signal)
		}
	}()

	if o.inNetns {
		if err := loopbackUp(); err != nil {
			fmt.Fprintf(stderr, "compat: network namespace: %v\n", err)
			return 1
		}
		return inner(ctx, o, known, stdout, stderr)
	}

	start := time.Now()
	work := o.work
	if work == "" {
		if work, err = os.MkdirTemp("", "switchyard-compat-"); err != nil {
			fmt.Fprintf(stderr, "compat: %v\n", err)
			return 1
		}
		// The servers run as the OS user postgres when this runs as
		// root; the directory must be reachable.
		_ = os.Chmod(work, 0o755)
		o.work = work
		defer func() {
			if o.keep {
				fmt.Fprintf(stderr, "compat: kept %s\n", work)
				return
			}
			os.RemoveAll(work)
		}()
	}
	if err := lockPgx(o, stderr); err != nil {
		fmt.Fprintf(stderr, "compat: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "compat: preparing pgx %s in %s (logs in %s)\n", o.pgxVersion, o.pgxDir(), work)
	if err := preparePgx(ctx, o); err != nil {
		fmt.Fprintf(stderr, "compat: %v\n", err)
		return 1
	}
	code := -1
	if o.netns != "off" {
		code, err = runInNetns(ctx, args, o, stdout, stderr)
		switch {
		case err != nil && o.netns == "on":
			fmt.Fprintf(stderr, "compat: -netns on: %v\n", err)
			return 1
		case err != nil:
			fmt.Fprintf(stderr, "compat: no network namespace (%v); running in this one: every connection string points at 127.0.0.1\n", err)
			code = -1
		}
	}
	if code < 0 {
		code = inner(ctx, o, known, stdout, stderr)
	}
	fmt.Fprintf(stderr, "compat: done in %v\n", time.Since(start).Round(time.Second))
	return code
}

// runInNetns runs this program again, on the prepared work directory, in
// a network namespace of its own, and returns its exit status. An error
// means the namespace could not be made (not root).
func runInNetns(ctx context.Context, args []string, o *options, stdout, stderr io.Writer) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, exe, append(append([]string{}, args...), "-work", o.work, "-switchyard", o.switchyard, "-in-netns")...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = netnsAttr()
	// On an interrupt the child gets the signal too (same process group)
	// and stops by itself; Cancel only if it does not.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Minute
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return max(ee.ExitCode(), 1), nil
	}
	if err != nil {
		return 1, nil
	}
	return 0, nil
}

func readKnown(path string) ([]knownFailure, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("known failures: %w", err)
	}
	defer f.Close()
	return parseKnown(f, path)
}
