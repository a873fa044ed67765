package main

import (
	"bufio"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"time"
)

// status is a test's outcome in one run.
type status int

const (
	stNotRun     status = iota // absent from the run
	stPass                     // passed
	stFail                     // failed
	stSkip                     // skipped
	stUnfinished               // started, never ended: its package timed out (a hang) or crashed
)

func (s status) String() string {
	switch s {
	case stPass:
		return "pass"
	case stFail:
		return "FAIL"
	case stSkip:
		return "skip"
	case stUnfinished:
		return "HANG/CRASH"
	}
	return "not run"
}

func (s status) failed() bool { return s == stFail || s == stUnfinished }

// maxOutputLines is how many of a test's last output lines are kept.
const maxOutputLines = 60

// testResult is one test or subtest in one run.
type testResult struct {
	Key     string // "pgconn.TestFoo/sub": see testKey
	Status  status
	Elapsed float64
	output  []string // last maxOutputLines lines
}

func (t *testResult) addOutput(line string) {
	if len(t.output) == maxOutputLines {
		copy(t.output, t.output[1:])
		t.output = t.output[:maxOutputLines-1]
	}
	t.output = append(t.output, line)
}

// runResult is what one `go test -json` run found.
type runResult struct {
	Target   string
	Tests    map[string]*testResult
	PkgFail  map[string]string // package → why the package as a whole failed
	PkgOut   map[string][]string
	Duration time.Duration
	// onPackage, if set, is told when a package's tests end.
	onPackage func(pkg, action string, elapsed float64)

	running   map[string]bool // tests a timeout panic named
	inRunning string          // the package whose "running tests:" list is being read
}

func newRunResult(target string) *runResult {
	return &runResult{Target: target, Tests: map[string]*testResult{}, PkgFail: map[string]string{}, PkgOut: map[string][]string{}}
}

// testEvent is one line of `go test -json` (cmd/test2json).
type testEvent struct {
	Action     string
	Package    string
	ImportPath string // build-output, build-fail
	Test       string
	Elapsed    float64
	Output     string
}

// modulePath is the module whose packages the keys are relative to.
const modulePath = "github.com/jackc/pgx/v5"

// pkgShort names a package of the module briefly: "pgx" for the root,
// else its path inside the module ("pgconn", "pgtype/zeronull").
func pkgShort(importPath string) string {
	if importPath == modulePath {
		return "pgx"
	}
	return strings.TrimPrefix(importPath, modulePath+"/")
}

// testKey is how a test is named in reports and in the known-failures
// file: short package, a dot, the test's full name ("pgxpool.TestFoo/bar").
func testKey(pkg, test string) string { return pkg + "." + test }

// splitKey undoes testKey: the package is everything before the first dot
// (the module's package paths have none).
func splitKey(key string) (pkg, test string) {
	pkg, test, _ = strings.Cut(key, ".")
	return pkg, test
}

// topLevel returns the key of the top-level test of key.
func topLevel(key string) string {
	pkg, test := splitKey(key)
	top, _, _ := strings.Cut(test, "/")
	return testKey(pkg, top)
}

// parseEvents reads a `go test -json` stream into r. Lines that are not
// JSON (a go command message) are kept as package-less output.
func parseEvents(rd io.Reader, r *runResult) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var ev testEvent
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			r.PkgOut[""] = appendCapped(r.PkgOut[""], string(line))
			continue
		}
		r.apply(ev)
	}
	r.finish()
	return sc.Err()
}

func appendCapped(lines []string, s string) []string {
	if len(lines) >= 4*maxOutputLines {
		lines = append(lines[:0], lines[len(lines)-2*maxOutputLines:]...)
	}
	return append(lines, s)
}

func (r *runResult) apply(ev testEvent) {
	switch ev.Action {
	case "build-output":
		pkg := pkgShort(strings.Fields(ev.ImportPath + " ")[0])
		r.PkgOut[pkg] = appendCapped(r.PkgOut[pkg], strings.TrimRight(ev.Output, "\n"))
		return
	case "build-fail":
		pkg := pkgShort(strings.Fields(ev.ImportPath + " ")[0])
		r.PkgFail[pkg] = "build failed"
		return
	}
	if ev.Package == "" {
		return
	}
	pkg := pkgShort(ev.Package)
	if ev.Test == "" {
		switch ev.Action {
		case "output":
			out := strings.TrimRight(ev.Output, "\n")
			r.PkgOut[pkg] = appendCapped(r.PkgOut[pkg], out)
			r.noteOutput(pkg, out)
			switch {
			case strings.HasPrefix(out, "panic: test timed out"):
			case strings.HasPrefix(out, "panic: ") && r.PkgFail[pkg] == "":
				r.PkgFail[pkg] = "crashed: " + out
			case strings.Contains(out, "[setup failed]") || strings.Contains(out, "[build failed]"):
				r.PkgFail[pkg] = "build failed"
			}
		case "fail":
			if r.PkgFail[pkg] == "" {
				r.PkgFail[pkg] = "failed"
			}
		}
		if r.onPackage != nil && (ev.Action == "pass" || ev.Action == "fail" || ev.Action == "skip") {
			r.onPackage(pkg, ev.Action, ev.Elapsed)
		}
		return
	}
	key := testKey(pkg, ev.Test)
	t := r.Tests[key]
	if t == nil {
		t = &testResult{Key: key, Status: stUnfinished}
		r.Tests[key] = t
	}
	switch ev.Action {
	case "run":
		t.Status = stUnfinished
	case "pass":
		t.Status, t.Elapsed = stPass, ev.Elapsed
	case "fail":
		t.Status, t.Elapsed = stFail, ev.Elapsed
	case "skip":
		t.Status, t.Elapsed = stSkip, ev.Elapsed
	case "output":
		out := strings.TrimRight(ev.Output, "\n")
		t.addOutput(out)
		r.noteOutput(pkg, out)
	}
}

// noteOutput follows the test binary's timeout panic, which names the
// tests that were running when the package's time ran out:
//
//	panic: test timed out after 5m0s
//		running tests:
//			TestA (26s)
//			TestB/sub (3s)
func (r *runResult) noteOutput(pkg, out string) {
	switch {
	case strings.HasPrefix(out, "panic: test timed out"):
		r.PkgFail[pkg] = "timed out: " + strings.TrimPrefix(out, "panic: ")
		r.inRunning = ""
	case out == "\trunning tests:":
		r.inRunning = pkg
	case r.inRunning == pkg && strings.HasPrefix(out, "\t\t"):
		name, _, _ := strings.Cut(strings.TrimSpace(out), " ")
		if r.running == nil {
			r.running = map[string]bool{}
		}
		r.running[testKey(pkg, name)] = true
	default:
		r.inRunning = ""
	}
}

// finish settles the tests that never ended. In a package that timed out,
// those the timeout panic named were running (they hung, or the package's
// time ran out on them), and the others had only started (parallel tests
// waiting for their turn): they count as not run. In a package that
// crashed, every test that had not ended is unfinished.
func (r *runResult) finish() {
	for key, t := range r.Tests {
		if t.Status != stUnfinished {
			continue
		}
		pkg, _ := splitKey(key)
		if strings.HasPrefix(r.PkgFail[pkg], "timed out") && !r.running[key] {
			delete(r.Tests, key)
			continue
		}
		if r.PkgFail[pkg] == "" || r.PkgFail[pkg] == "failed" {
			r.PkgFail[pkg] = "did not finish (a crash?)"
		}
	}
}

// counts are the outcomes of a run, over top-level tests and over all
// tests and subtests.
type counts struct {
	Pass, Fail, Skip          int
	AllPass, AllFail, AllSkip int
	Packages                  int
	FailedPackages            []string
}

func (r *runResult) counts() counts {
	var c counts
	for key, t := range r.Tests {
		top := !strings.Contains(key[strings.Index(key, ".")+1:], "/")
		var p, f, s *int
		if top {
			p, f, s = &c.Pass, &c.Fail, &c.Skip
		} else {
			p, f, s = new(int), new(int), new(int)
		}
		switch {
		case t.Status == stPass:
			*p++
			c.AllPass++
		case t.Status.failed():
			*f++
			c.AllFail++
		case t.Status == stSkip:
			*s++
			c.AllSkip++
		}
	}
	pkgs := map[string]bool{}
	for key := range r.Tests {
		pkg, _ := splitKey(key)
		pkgs[pkg] = true
	}
	for pkg := range r.PkgFail {
		pkgs[pkg] = true
	}
	c.Packages = len(pkgs)
	for pkg := range r.PkgFail {
		c.FailedPackages = append(c.FailedPackages, pkg)
	}
	sort.Strings(c.FailedPackages)
	return c
}

// failedLeaves are the failed tests none of whose subtests failed: where a
// failure happened.
func (r *runResult) failedLeaves() []string {
	hasFailedChild := map[string]bool{}
	for key, t := range r.Tests {
		if !t.Status.failed() {
			continue
		}
		for k := key; ; {
			i := strings.LastIndex(k, "/")
			if i < 0 {
				break
			}
			k = k[:i]
			hasFailedChild[k] = true
		}
	}
	var out []string
	for key, t := range r.Tests {
		if t.Status.failed() && !hasFailedChild[key] {
			out = append(out, key)
		}
	}
	sort.Strings(out)
	return out
}

// status returns key's outcome: its own, or, for a test this run never
// reached, stNotRun.
func (r *runResult) status(key string) status {
	if t := r.Tests[key]; t != nil {
		return t.Status
	}
	return stNotRun
}
