package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// report is everything a run found; print writes it and returns the exit
// status.
type report struct {
	o        *options
	results  map[string]*runResult
	known    []knownFailure
	cmp      *comparison
	retry    *runResult
	pools    []poolStatus
	poolsErr error
	pins     []string
	sessions string

	proxyDied string
}

// outputLines is how many of a failed test's last output lines are shown.
const outputLines = 12

func (rep *report) print(w io.Writer) int {
	o := rep.o
	var problems []string
	fmt.Fprintf(w, "\n== pgx %s test suite: directly vs through Switchyard (transaction pooling, pool_size %d)\n\n", o.pgxVersion, o.poolSize)
	fmt.Fprintf(w, "%-12s %8s %8s %8s   %-32s %s\n", "", "passed", "failed", "skipped", "with subtests (pass/fail/skip)", "time")
	for _, target := range o.targets {
		r := rep.results[target]
		if r == nil {
			continue
		}
		c := r.counts()
		fmt.Fprintf(w, "%-12s %8d %8d %8d   %-32s %v\n", target, c.Pass, c.Fail, c.Skip,
			fmt.Sprintf("%d/%d/%d", c.AllPass, c.AllFail, c.AllSkip), r.Duration.Round(time.Second))
	}
	fmt.Fprintln(w)

	// Packages that did not run to their end.
	for _, target := range o.targets {
		r := rep.results[target]
		if r == nil {
			continue
		}
		for _, pkg := range sortedKeys(r.PkgFail) {
			why := r.PkgFail[pkg]
			if why == "failed" {
				continue // its failed tests are listed below
			}
			name := pkg
			if name == "" {
				name = "(go test)"
			}
			fmt.Fprintf(w, "%s: package %s: %s\n", target, name, why)
			if target == targetProxy || strings.HasPrefix(why, "build") || pkg == "" {
				problems = append(problems, fmt.Sprintf("%s: package %s: %s", target, name, why))
				for _, line := range lastLines(r.PkgOut[pkg], 30) {
					fmt.Fprintf(w, "    | %s\n", line)
				}
			}
		}
	}
	if rep.proxyDied != "" {
		fmt.Fprintln(w, rep.proxyDied)
		problems = append(problems, "switchyard exited during the run")
	}

	if c := rep.cmp; c != nil {
		var regs, both, notDirect []finding
		for _, f := range c.Findings {
			switch f.Category {
			case catRegression:
				regs = append(regs, f)
			case catBoth:
				both = append(both, f)
			default:
				notDirect = append(notDirect, f)
			}
		}
		fmt.Fprintf(w, "Tests that fail through Switchyard but pass directly: %d\n", len(regs))
		for _, f := range regs {
			switch f.verdict() {
			case vHung:
				fmt.Fprintf(w, "  HUNG        %s: never finished through the proxy (its package timed out or crashed)\n", f.Key)
				problems = append(problems, f.Key+": hung")
				rep.printOutput(w, f)
			case vKnown:
				fmt.Fprintf(w, "  known       %s: %s (%s:%d)\n", f.Key, f.Known.Reason, o.known, f.Known.Line)
			case vFlaky:
				fmt.Fprintf(w, "  FLAKY       %s: failed in the suite, passed when run again alone through the proxy\n", f.Key)
				rep.printOutput(w, f)
			default:
				note := ""
				if f.Retried {
					note = " (failed again when run alone)"
				}
				fmt.Fprintf(w, "  UNEXPLAINED %s%s\n", f.Key, note)
				problems = append(problems, f.Key+": unexplained failure")
				rep.printOutput(w, f)
			}
		}
		if len(both) > 0 {
			fmt.Fprintf(w, "\nTests that fail directly too (the environment, not the proxy): %d\n", len(both))
			for _, f := range both {
				fmt.Fprintf(w, "  %s\n", f.Key)
			}
		}
		if len(notDirect) > 0 {
			fmt.Fprintf(w, "\nTests that fail through Switchyard and were skipped or not run directly: %d\n", len(notDirect))
			for _, f := range notDirect {
				fmt.Fprintf(w, "  %s (directly: %s)\n", f.Key, f.Direct)
			}
		}
		if len(c.NotRun) > 0 {
			n := 0
			for _, keys := range c.NotRun {
				n += len(keys)
			}
			fmt.Fprintf(w, "\nTests that pass directly but never ran through Switchyard (their package stopped early): %d\n", n)
			for _, pkg := range sortedKeys(c.NotRun) {
				keys := c.NotRun[pkg]
				fmt.Fprintf(w, "  %s: %d, e.g. %s\n", pkg, len(keys), strings.Join(keys[:min(3, len(keys))], ", "))
			}
			problems = append(problems, fmt.Sprintf("%d tests never ran through the proxy", n))
		}
		if slow := slowTests(rep.results[targetDirect], rep.results[targetProxy]); len(slow) > 0 {
			fmt.Fprintf(w, "\nTests much slower through Switchyard (at least 10 s and 5x their direct time; a wait, or a test that passes by timing out): %d\n", len(slow))
			for _, s := range slow {
				fmt.Fprintf(w, "  %s: %.1fs directly, %.1fs through the proxy\n", s.key, s.direct, s.proxy)
			}
		}
		if len(c.Stale) > 0 {
			fmt.Fprintf(w, "\nKnown-failure entries whose tests did not fail through Switchyard this time (fixed: remove them; or flaky, as noted there): %d\n", len(c.Stale))
			for _, k := range c.Stale {
				fmt.Fprintf(w, "  %s (%s:%d)\n", k.Key, o.known, k.Line)
			}
		}
		fmt.Fprintln(w)
	}

	if rep.results[targetProxy] != nil {
		fmt.Fprintln(w, "Pools after the run (GET /status):")
		if rep.poolsErr != nil {
			fmt.Fprintf(w, "  /status: %v\n", rep.poolsErr)
			problems = append(problems, "no /status after the run")
		}
		leaked := false
		for _, p := range rep.pools {
			mark := "idle"
			if p.busy() {
				mark = "NOT IDLE: a server connection leaked"
				leaked = true
			}
			fmt.Fprintf(w, "  %s/%s %s: active %d, idle %d, dialing %d, waiting %d, leases %d, wait timeouts %d: %s\n",
				p.Cluster, p.Node, p.User, p.Active, p.Idle, p.Dialing, p.Waiting, p.Leases, p.Timeouts, mark)
		}
		if leaked {
			problems = append(problems, fmt.Sprintf("pools not idle %v after the suite ended", rep.o.idleWait))
		}
		if rep.sessions != "" {
			fmt.Fprintf(w, "Server sessions in %s: %s\n", pgxDB, rep.sessions)
			if strings.Contains(rep.sessions, "idle in transaction") {
				problems = append(problems, "a server connection was left in a transaction")
			}
		}
		if len(rep.pins) > 0 {
			fmt.Fprintln(w, "Pins and wait timeouts (GET /metrics):")
			for _, l := range rep.pins {
				fmt.Fprintf(w, "  %s\n", l)
			}
		}
		fmt.Fprintln(w)
	}

	if len(problems) == 0 {
		fmt.Fprintln(w, "compat: OK: every failure through Switchyard is explained, and every pool is idle")
		return 0
	}
	fmt.Fprintf(w, "compat: FAILED (%d):\n", len(problems))
	for _, p := range problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
	return 1
}

func (rep *report) printOutput(w io.Writer, f finding) {
	for _, line := range lastLines(f.Output, outputLines) {
		fmt.Fprintf(w, "      | %s\n", line)
	}
}

// lastLines returns the last n non-empty lines.
func lastLines(lines []string, n int) []string {
	var out []string
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if strings.TrimSpace(lines[i]) != "" {
			out = append(out, lines[i])
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type slowTest struct {
	key           string
	direct, proxy float64
}

// slowTests are the top-level tests that took at least 10 s and five
// times as long through the proxy as directly, slowest first.
func slowTests(direct, proxy *runResult) []slowTest {
	var out []slowTest
	for key, p := range proxy.Tests {
		d := direct.Tests[key]
		if d == nil || strings.Contains(key, "/") || p.Status.failed() || d.Status.failed() {
			continue
		}
		if p.Elapsed >= 10 && p.Elapsed >= 5*d.Elapsed {
			out = append(out, slowTest{key, d.Elapsed, p.Elapsed})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].proxy > out[j].proxy })
	return out
}
