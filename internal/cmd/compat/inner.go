package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// inner starts the server and the proxy, runs the suite, checks the pools
// and prints the report. Its result is the exit status.
func inner(ctx context.Context, o *options, known []knownFailure, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "compat: "+format+"\n", a...)
		return 1
	}
	if o.inNetns {
		fmt.Fprintln(stderr, "compat: in a network namespace of its own (loopback only)")
	}
	t0 := time.Now()
	pg, err := testcluster.StartPostgres(testcluster.Options{Replicas: -1, Log: stderr})
	if err != nil {
		return fail("start PostgreSQL: %v", err)
	}
	defer pg.Stop()
	if err := setupPostgres(ctx, pg); err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stderr, "compat: PostgreSQL at %s ready (%v)\n", pg.Primary.Addr(), time.Since(t0).Round(100*time.Millisecond))

	var px *proxy
	if o.has(targetProxy) {
		px, err = startSwitchyard(ctx, o, pg.Primary.Addr())
		if px != nil && px.p != nil {
			defer px.p.stop(syscall.SIGINT, 10*time.Second)
		}
		if err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(stderr, "compat: switchyard at %s (admin %s), transaction pooling, pool_size %d\n", px.addr, px.admin, o.poolSize)
	}

	results := map[string]*runResult{}
	for _, target := range o.targets {
		addr := pg.Primary.Addr()
		if target == targetProxy {
			addr = px.addr
		}
		fmt.Fprintf(stderr, "compat: running pgx %s's tests %s (%s)...\n", o.pgxVersion, via(target), strings.Join(o.pkgs, " "))
		r, err := runSuite(ctx, o, target, addr, o.run, o.pkgs, stderr)
		if err != nil {
			return fail("%s run: %v", target, err)
		}
		results[target] = r
		c := r.counts()
		fmt.Fprintf(stderr, "compat: %s: %d passed, %d failed, %d skipped in %v\n", target, c.Pass, c.Fail, c.Skip, r.Duration.Round(time.Second))
	}

	rep := &report{o: o, results: results, known: known}
	if d, p := results[targetDirect], results[targetProxy]; d != nil && p != nil {
		cmp := compare(d, p, known)
		if retry := cmp.retryTargets(); o.retry && len(retry) > 0 && ctx.Err() == nil {
			var pkgs, names []string
			for pkg, tests := range retry {
				pkgs = append(pkgs, pkg)
				for _, t := range tests {
					names = append(names, regexp.QuoteMeta(t))
				}
			}
			sort.Strings(pkgs)
			fmt.Fprintf(stderr, "compat: running %d failed tests once more through the proxy, alone...\n", len(names))
			r, err := runSuite(ctx, o, "retry", px.addr, "^("+strings.Join(names, "|")+")$", pkgs, stderr)
			if err != nil {
				return fail("retry run: %v", err)
			}
			cmp.applyRetry(r)
			rep.retry = r
		}
		rep.cmp = &cmp
	}
	if px != nil && ctx.Err() == nil {
		rep.pools, rep.poolsErr = waitIdle(ctx, px, o.idleWait)
		rep.pins = px.metricLines(ctx, "switchyard_session_pins_total", "switchyard_pinned_sessions", "switchyard_pool_wait_timeouts_total")
		rep.sessions, _ = serverSessions(pg)
		if px.p.exited() {
			rep.proxyDied = fmt.Sprintf("switchyard exited during the run (%v); its log:\n%s", px.p.err, px.p.logTail(4000))
		}
	}
	if ctx.Err() != nil {
		return fail("interrupted")
	}
	return rep.print(stdout)
}

func via(target string) string {
	if target == targetDirect {
		return "directly against PostgreSQL"
	}
	return "through Switchyard"
}

// runSuite runs go test -json on pkgs with the connection strings of addr
// and returns what it found. The raw JSON is kept in the work directory.
func runSuite(ctx context.Context, o *options, target, addr, runRE string, pkgs []string, stderr io.Writer) (*runResult, error) {
	args := []string{"test", "-json", "-count=1", "-timeout", o.pkgTimeout.String()}
	if runRE != "" {
		args = append(args, "-run", runRE)
	}
	skip := []string{}
	for _, s := range alwaysSkip {
		skip = append(skip, "^"+s+"$")
	}
	if o.skip != "" {
		skip = append(skip, o.skip)
	}
	args = append(args, "-skip", strings.Join(skip, "|"))
	args = append(args, pkgArgs(pkgs)...)
	env := baseEnv(append([]string{"GOPROXY=off", "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false"}, pgxEnv(addr)...)...)

	jsonPath := filepath.Join(o.work, target+".json")
	f, err := os.Create(jsonPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := newRunResult(target)
	pr, pw := io.Pipe()
	parsed := make(chan error, 1)
	go func() {
		r.onPackage = func(pkg, action string, elapsed float64) {
			if o.verbose || action != "pass" {
				fmt.Fprintf(stderr, "compat:   %s: %s %s (%.1fs)\n", target, pkg, action, elapsed)
			}
		}
		err := parseEvents(pr, r)
		_, _ = io.Copy(io.Discard, pr)
		parsed <- err
	}()
	// The whole run's limit: every package at its limit, one after the
	// other, and the build.
	limit := time.Duration(len(pkgs))*(o.pkgTimeout+time.Minute) + 10*time.Minute
	start := time.Now()
	errOut, runErr := runCmd(ctx, limit, o.pgxDir(), env, io.MultiWriter(f, pw), "go", args...)
	pw.Close()
	if err := <-parsed; err != nil {
		return nil, err
	}
	r.Duration = time.Since(start)
	if errOut != "" {
		r.PkgOut[""] = append(r.PkgOut[""], strings.Split(strings.TrimRight(errOut, "\n"), "\n")...)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if runErr != nil && len(r.Tests) == 0 {
		return nil, fmt.Errorf("%v\n%s", runErr, errOut)
	}
	if runErr != nil && strings.Contains(runErr.Error(), "timed out") {
		r.PkgFail[""] = runErr.Error()
	}
	return r, nil
}

// waitIdle polls /status until no pool has an active, dialing or waiting
// connection, or wait passes, and returns the last view.
func waitIdle(ctx context.Context, px *proxy, wait time.Duration) ([]poolStatus, error) {
	deadline := time.Now().Add(wait)
	for {
		pools, err := px.status(ctx)
		busy := err != nil
		for _, p := range pools {
			busy = busy || p.busy()
		}
		if !busy || time.Now().After(deadline) || ctx.Err() != nil {
			return pools, err
		}
		time.Sleep(250 * time.Millisecond)
	}
}
