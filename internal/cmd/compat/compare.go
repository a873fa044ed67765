package main

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
)

// knownFailure is one line of the known-failures file: a test that cannot
// pass under transaction pooling by design, and why.
type knownFailure struct {
	Key    string // "pgconn.TestFoo" or "pgconn.TestFoo/sub"
	Reason string
	Line   int
}

// parseKnown reads the known-failures file: one test per line, as
// "<package>.<Test>[/<subtest>...] <reason>", the package as go test's
// path inside the module ("pgx" for the root package); '#' starts a
// comment line. Every entry needs a reason.
func parseKnown(rd io.Reader, name string) ([]knownFailure, error) {
	var out []knownFailure
	seen := map[string]int{}
	sc := bufio.NewScanner(rd)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, reason, _ := strings.Cut(line, " ")
		if k2, r2, ok := strings.Cut(line, "\t"); ok && len(k2) < len(key) {
			key, reason = k2, r2
		}
		reason = strings.TrimSpace(reason)
		pkg, test := splitKey(key)
		switch {
		case pkg == "" || !strings.HasPrefix(test, "Test"):
			return nil, fmt.Errorf("%s:%d: %q is not <package>.<TestName> (e.g. pgconn.TestConnLISTEN)", name, n, key)
		case reason == "":
			return nil, fmt.Errorf("%s:%d: %s has no reason", name, n, key)
		case seen[key] != 0:
			return nil, fmt.Errorf("%s:%d: %s is listed already on line %d", name, n, key, seen[key])
		}
		seen[key] = n
		out = append(out, knownFailure{Key: key, Reason: reason, Line: n})
	}
	return out, sc.Err()
}

// explain returns the entry that covers key: the test itself or one of
// the tests it is a subtest of.
func explain(known []knownFailure, key string) *knownFailure {
	var best *knownFailure
	for i := range known {
		k := &known[i]
		if (k.Key == key || strings.HasPrefix(key, k.Key+"/")) && (best == nil || len(k.Key) > len(best.Key)) {
			best = k
		}
	}
	return best
}

// finding is a test that fails through the proxy.
type finding struct {
	Key      string
	Proxy    status // through the proxy
	Direct   status // directly
	Known    *knownFailure
	Retried  bool
	RetryOK  bool // passed when run again on its own through the proxy
	Output   []string
	Category category
}

type category int

const (
	catRegression   category = iota // passes directly, fails through the proxy
	catBoth                         // fails directly too: the environment, not the proxy
	catNotRunDirect                 // skipped or not reached directly
)

// comparison is what the proxy run shows next to the direct run.
type comparison struct {
	Findings []finding
	// NotRun are tests that passed directly but never ran through the
	// proxy (their package hung or crashed before them), by package.
	NotRun map[string][]string
	// Stale are known-failure entries whose tests passed through the proxy.
	Stale []knownFailure
}

// compare lists the failed leaves of the proxy run with their direct
// outcome and their known-failures entry.
func compare(direct, proxy *runResult, known []knownFailure) comparison {
	var c comparison
	for _, key := range proxy.failedLeaves() {
		f := finding{Key: key, Proxy: proxy.status(key), Direct: direct.status(key), Known: explain(known, key)}
		if t := proxy.Tests[key]; t != nil {
			f.Output = t.output
		}
		switch {
		case f.Direct == stPass:
			f.Category = catRegression
		case f.Direct.failed():
			f.Category = catBoth
		default:
			f.Category = catNotRunDirect
			// A subtest the direct run never reached: judge by its
			// top-level test.
			if direct.status(topLevel(key)) == stPass {
				f.Category = catRegression
			}
		}
		c.Findings = append(c.Findings, f)
	}
	c.NotRun = map[string][]string{}
	for key, t := range direct.Tests {
		if t.Status == stPass && proxy.status(key) == stNotRun && !strings.Contains(key, "/") {
			pkg, _ := splitKey(key)
			c.NotRun[pkg] = append(c.NotRun[pkg], key)
		}
	}
	for _, keys := range c.NotRun {
		sort.Strings(keys)
	}
	for _, k := range known {
		matched := false
		for key, t := range proxy.Tests {
			if (key == k.Key || strings.HasPrefix(key, k.Key+"/")) && t.Status.failed() {
				matched = true
				break
			}
		}
		if !matched {
			c.Stale = append(c.Stale, k)
		}
	}
	return c
}

// verdict is what a regression (a test that passes directly and fails
// through the proxy) amounts to.
type verdict int

const (
	vHung        verdict = iota // never finished: no entry explains a hang
	vKnown                      // listed in the known-failures file
	vFlaky                      // passed when run again alone
	vUnexplained                // none of the above
)

func (f finding) verdict() verdict {
	switch {
	case f.Proxy == stUnfinished:
		return vHung
	case f.Known != nil:
		return vKnown
	case f.RetryOK:
		return vFlaky
	}
	return vUnexplained
}

// unexplained are the regressions that hung, or that no known-failures
// entry covers and that did not pass when run again.
func (c comparison) unexplained() []finding {
	var out []finding
	for _, f := range c.Findings {
		if v := f.verdict(); f.Category == catRegression && (v == vHung || v == vUnexplained) {
			out = append(out, f)
		}
	}
	return out
}

// retryTargets are the top-level tests to run once more through the
// proxy, by package: those of unexplained regressions (not hangs: they
// would only hang again).
func (c comparison) retryTargets() map[string][]string {
	out := map[string][]string{}
	seen := map[string]bool{}
	for _, f := range c.Findings {
		if f.Category != catRegression || f.Known != nil || f.Proxy == stUnfinished {
			continue
		}
		top := topLevel(f.Key)
		if seen[top] {
			continue
		}
		seen[top] = true
		pkg, test := splitKey(top)
		out[pkg] = append(out[pkg], test)
	}
	for _, tests := range out {
		sort.Strings(tests)
	}
	return out
}

// applyRetry marks the findings whose test passed when run again.
func (c *comparison) applyRetry(retry *runResult) {
	for i := range c.Findings {
		f := &c.Findings[i]
		if f.Category != catRegression || f.Known != nil || f.Proxy == stUnfinished {
			continue
		}
		st := retry.status(f.Key)
		if st == stNotRun {
			st = retry.status(topLevel(f.Key))
		}
		if st == stNotRun {
			continue
		}
		f.Retried = true
		f.RetryOK = st == stPass
	}
}
