package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// result is one measurement: a number, or why there is none.
type result struct {
	TPS      float64
	P50, P99 float64 // latency in milliseconds
	N        int     // transactions measured
	// pgbench only: its own TPS over the whole run without the initial
	// connection time, that connection time, and the measured window.
	PgbenchTPS       float64
	Window, ConnTime time.Duration
	Note             string // how the number came about, when that is unusual

	warmup      time.Duration // pgbench: the warm-up the run had
	retryWarmup time.Duration // pgbench: run again with this warm-up
	noTxns      bool          // pgbench: no transaction completed
	Failed      string        // why the run failed: shown instead of numbers
	NA          string        // why the combination cannot run at all
	Load        float64       // 1-minute load average when it started
	// CPUPerTxn is the proxy's CPU time per transaction in µs over the
	// measured window (cpu.go); 0 for direct runs or when unknown.
	CPUPerTxn float64
}

func (r result) ok() bool { return r.Failed == "" && r.NA == "" }

// Target names, in the order they run and are shown.
const (
	targetDirect     = "direct"
	targetSwitchyard = "switchyard"
	targetPgBouncer  = "pgbouncer"
	// targetSwitchyardPlain: sysbench through Switchyard to a cluster of
	// the same MariaDB database with server_tls = "disable", as the direct
	// run (which has no TLS): what TLS toward the server costs.
	targetSwitchyardPlain = "switchyard, server_tls=disable"
)

// pgbouncerNoPrepared is what a PgBouncer -M prepared cell says: PgBouncer
// learned protocol-level prepared statements in transaction mode in 1.21.
const pgbouncerNoPrepared = "n/a (PgBouncer 1.18: no prepared statements in transaction mode)"

type pgCase struct {
	script  string // pgbench builtin: select-only, tpcb-like
	mode    string // -M: simple, extended, prepared
	clients int
	target  string
}

func (c pgCase) String() string {
	return fmt.Sprintf("%s %s c=%d %s", c.script, c.mode, c.clients, c.target)
}

// pgTargetAddr is where a target listens.
func (e *env) pgTargetAddr(target string) string {
	switch target {
	case targetSwitchyard:
		return e.syPGAddr
	case targetPgBouncer:
		return e.pgbAddr
	case targetFloor:
		return e.floorPGAddr
	default:
		return e.pg.Primary.Addr()
	}
}

// proxyPID is the process whose CPU a run through target measures; 0
// for direct runs.
func (e *env) proxyPID(target string) int {
	switch {
	case (target == targetSwitchyard || target == targetSwitchyardPlain) && e.sy != nil:
		return e.sy.pid()
	case target == targetPgBouncer && e.pgb != nil:
		return e.pgb.pid()
	case target == targetFloor && e.floorProc != nil:
		return e.floorProc.pid()
	}
	return 0
}

func (e *env) pgbenchPath() string { return filepath.Join(e.pg.BinDir, "pgbench") }

// pgbenchArgs are the connection arguments for target.
func (e *env) pgbenchConn(target string) []string {
	host, port, _ := net.SplitHostPort(e.pgTargetAddr(target))
	return []string{"-h", host, "-p", port, "-U", dbUser}
}

// pgbenchInit creates the pgbench tables directly on PostgreSQL, owned by
// the benchmark user.
func (e *env) pgbenchInit(ctx context.Context) error {
	args := append([]string{"-i", "-q", "-s", strconv.Itoa(e.o.scale)}, e.pgbenchConn(targetDirect)...)
	args = append(args, dbName)
	_, stderr, err := runTool(ctx, 10*time.Minute, e.toolEnv, e.pgbenchPath(), args...)
	if err != nil {
		return fmt.Errorf("pgbench -i: %v\n%s", err, tail([]byte(stderr), 3000))
	}
	return nil
}

// pgbenchWarmup runs a short select-only load through every target, so
// that the first measured run does not pay for cold caches and empty pools.
func (e *env) pgbenchWarmup(ctx context.Context, targets []string) error {
	for _, t := range targets {
		args := append([]string{"-n", "-S", "-T", "2", "-c", strconv.Itoa(max(e.o.poolSize, 4)), "-j", strconv.Itoa(e.o.jobs)}, e.pgbenchConn(t)...)
		args = append(args, dbName)
		stdout, stderr, err := runTool(ctx, 2*time.Minute, e.toolEnv, e.pgbenchPath(), args...)
		if err != nil {
			return fmt.Errorf("warm-up through %s: %v\n%s%s", t, err, tail([]byte(stdout), 1000), tail([]byte(stderr), 2000))
		}
	}
	return nil
}

// prepareRun does what pgbench does before a run unless -n, directly on
// the server and the same for every target, so it is not timed through a
// proxy: vacuum the small tables and empty the history (TPC-B like), then
// a checkpoint so none starts during the run.
func (e *env) prepareRun(script string) error {
	var stmts []string
	if script == "tpcb-like" {
		stmts = append(stmts, "VACUUM pgbench_branches", "VACUUM pgbench_tellers", "TRUNCATE pgbench_history")
	}
	stmts = append(stmts, "CHECKPOINT")
	for _, q := range stmts {
		if err := e.pg.Exec(e.pg.Primary, dbName, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// warmupFor is how much longer than the measured window a pgbench run with
// c clients lasts at first. pgbench's -T includes the time its clients take
// to connect (256 SCRAM logins to fresh backends take several seconds on a
// busy 2-core machine), and a fresh backend is slow for its first second or
// two; measured naively, a direct run with many clients would be mostly
// warm-up.
func warmupFor(clients int) time.Duration {
	return (2*time.Second + time.Duration(clients)*30*time.Millisecond).Round(time.Second)
}

// settleAfterStart is left out of the measurement after pgbench's clients
// start their first transactions (all at once, once all are connected).
const settleAfterStart = 2 * time.Second

// maxWarmup bounds the warm-up of a retried run.
const maxWarmup = time.Minute

// runPgbench measures one combination: pgbench runs for a warm-up plus the
// window, and TPS and latencies come from the transactions its
// per-transaction log shows completing in the window (see measureWindow).
// When connecting the clients left too little of the run, it runs once
// more with a warm-up fitted to the connection time it saw.
func (e *env) runPgbench(ctx context.Context, c pgCase, seq int) result {
	if c.target == targetPgBouncer && c.mode == "prepared" && !e.o.pgbouncerPrepared {
		return result{NA: pgbouncerNoPrepared}
	}
	warm := warmupFor(c.clients)
	r := e.pgbenchOnce(ctx, c, seq, warm)
	if r.retryWarmup == 0 || ctx.Err() != nil {
		return r
	}
	first := r.Failed
	r = e.pgbenchOnce(ctx, c, seq, r.retryWarmup)
	r.Note = fmt.Sprintf("run again with a %v warm-up instead of %v: %s", r.warmup, warm, first)
	return r
}

func (e *env) pgbenchOnce(ctx context.Context, c pgCase, seq int, warm time.Duration) result {
	if err := e.prepareRun(c.script); err != nil {
		return result{Failed: "preparing the run: " + err.Error()}
	}
	dir := filepath.Join(e.work, fmt.Sprintf("pgbench-%03d", seq))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return result{Failed: err.Error()}
	}
	defer os.RemoveAll(dir)
	prefix := filepath.Join(dir, "log")
	total := e.o.duration + warm
	args := []string{
		"-n", "-b", c.script, "-M", c.mode,
		"-T", strconv.Itoa(int(total / time.Second)), "-c", strconv.Itoa(c.clients), "-j", strconv.Itoa(e.o.jobs),
		"-l", "--log-prefix=" + prefix,
	}
	args = append(args, e.pgbenchConn(c.target)...)
	args = append(args, dbName)
	load := e.sampleLoad()
	cs := startCPUSampler(e.proxyPID(c.target))
	stdout, stderr, err := runTool(ctx, total+2*time.Minute, e.toolEnv, e.pgbenchPath(), args...)
	samples := cs.finish()
	r := parsePgbench(stdout, stderr, err)
	r.Load, r.warmup = load, warm
	if r.noTxns {
		// Connecting took the whole run, for how long is unknown.
		r.retryWarmup = min(max(3*warm, warm+15*time.Second), maxWarmup)
		return r
	}
	if !r.ok() {
		return r
	}
	files, _ := filepath.Glob(prefix + ".*")
	txns, failedLines, err := readPgbenchLogs(files)
	switch {
	case err != nil:
		r.Failed = "reading the latency log: " + err.Error()
	case failedLines > 0:
		r.Failed = fmt.Sprintf("%d failed transactions in the latency log", failedLines)
	default:
		w, err := measureWindow(txns, c.clients, e.o.duration)
		if err != nil {
			r.Failed = err.Error()
			if errors.Is(err, errShortWindow) {
				need := (r.ConnTime + settleAfterStart + 3*time.Second).Truncate(time.Second) + time.Second
				r.retryWarmup = min(max(need, warm+5*time.Second), maxWarmup)
			}
			break
		}
		r.PgbenchTPS = r.TPS
		r.TPS, r.P50, r.P99, r.Window = w.tps, w.p50, w.p99, w.length
		if cpu, span, ok := cpuBetween(samples, w.from, w.to); ok && w.tps > 0 {
			r.CPUPerTxn = cpu.Seconds() / span.Seconds() / w.tps * 1e6
		}
	}
	return r
}

// txn is one line of a pgbench per-transaction log.
type txn struct {
	client int
	end    int64   // completion time, µs since the epoch
	lat    float64 // µs
}

type window struct {
	tps, p50, p99 float64 // p50, p99 in ms
	length        time.Duration
	from, to      time.Time
}

// errShortWindow: connecting the clients left too little of the run.
var errShortWindow = errors.New("too little of the run left after connecting")

// measureWindow picks the measured window of a run: its last want, but
// starting no earlier than settleAfterStart after the clients started
// (pgbench connects every client, then starts them all at once; the
// earliest transaction start in the log is that moment), and returns
// throughput and latency quantiles over the transactions that completed in
// it. A window shorter than half of want is errShortWindow; a client that
// completed no transaction at all in a long enough run is an error.
func measureWindow(txns []txn, clients int, want time.Duration) (window, error) {
	if len(txns) == 0 {
		return window{}, errors.New("no transactions in the latency log")
	}
	seen := map[int]bool{}
	start, end := int64(math.MaxInt64), int64(0)
	for _, t := range txns {
		seen[t.client] = true
		start = min(start, t.end-int64(t.lat))
		end = max(end, t.end)
	}
	from := max(end-want.Microseconds(), start+settleAfterStart.Microseconds())
	length := time.Duration(end-from) * time.Microsecond
	if length < want/2 {
		// Checked first: clients that never got a turn in a run this short
		// say nothing about starvation.
		return window{}, fmt.Errorf("%w: the clients ran for %v after connecting, %v of it after the %v settling time",
			errShortWindow, (time.Duration(end-start) * time.Microsecond).Round(time.Millisecond), max(length, 0).Round(time.Millisecond), settleAfterStart)
	}
	if len(seen) < clients {
		return window{}, fmt.Errorf("only %d of %d clients completed a transaction in %v", len(seen), clients, (time.Duration(end-start) * time.Microsecond).Round(time.Millisecond))
	}
	var lat []float64
	for _, t := range txns {
		if t.end > from {
			lat = append(lat, t.lat)
		}
	}
	return window{
		tps:    float64(len(lat)) / length.Seconds(),
		p50:    percentile(lat, 0.50) / 1000,
		p99:    percentile(lat, 0.99) / 1000,
		length: length,
		from:   time.UnixMicro(from),
		to:     time.UnixMicro(end),
	}, nil
}

var (
	reTPS       = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	reProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	reConnTime  = regexp.MustCompile(`(?m)^initial connection time = ([0-9.]+) ms`)
	reFailed    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
	reErrorLine = regexp.MustCompile(`(?m)^pgbench: (?:error|fatal): (.*)$`)
)

// parsePgbench reads pgbench's summary. Anything short of a clean run
// (non-zero exit, failed transactions, aborted clients, no tps line) is a
// failure with the first reason pgbench gave.
func parsePgbench(stdout, stderr string, runErr error) result {
	reason := func() string {
		if m := reErrorLine.FindStringSubmatch(stderr); m != nil {
			return m[1]
		}
		if m := reErrorLine.FindStringSubmatch(stdout); m != nil {
			return m[1]
		}
		return strings.TrimSpace(tail([]byte(stderr), 300))
	}
	if runErr != nil {
		msg := runErr.Error()
		if r := reason(); r != "" {
			msg += ": " + r
		}
		if errors.Is(runErr, errTimeout) || errors.Is(runErr, context.Canceled) {
			return result{Failed: msg}
		}
		return result{Failed: "pgbench " + msg}
	}
	var r result
	if m := reFailed.FindStringSubmatch(stdout); m != nil && m[1] != "0" {
		r.Failed = m[1] + " failed transactions"
		if s := reason(); s != "" {
			r.Failed += ": " + s
		}
		return r
	}
	if m := reProcessed.FindStringSubmatch(stdout); m != nil && m[1] == "0" {
		return result{Failed: "no transaction completed: connecting the clients took the whole run", noTxns: true}
	}
	m := reTPS.FindStringSubmatch(stdout)
	if m == nil {
		why := reason()
		if why == "" {
			why = strings.TrimSpace(tail([]byte(stdout), 300))
		}
		return result{Failed: "no tps in pgbench's output: " + why}
	}
	r.TPS, _ = strconv.ParseFloat(m[1], 64)
	if m := reConnTime.FindStringSubmatch(stdout); m != nil {
		ms, _ := strconv.ParseFloat(m[1], 64)
		r.ConnTime = time.Duration(ms * float64(time.Millisecond))
	}
	if m := reProcessed.FindStringSubmatch(stdout); m != nil {
		r.N, _ = strconv.Atoi(m[1])
	}
	if r.N == 0 {
		return result{Failed: "no transactions processed"}
	}
	if s := reErrorLine.FindStringSubmatch(stderr); s != nil {
		// Exit 0 but a client reported an error: not a clean number.
		return result{Failed: s[1]}
	}
	return r
}

// readPgbenchLogs reads pgbench per-transaction logs ("client_id
// transaction_no time script_no time_epoch time_us ...", time the latency
// in µs or "failed"/"skipped") and returns the transactions and the number
// of failed ones.
func readPgbenchLogs(files []string) ([]txn, int, error) {
	var txns []txn
	failed := 0
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, 0, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 6 {
				continue
			}
			switch fields[2] {
			case "failed":
				failed++
				continue
			case "skipped":
				continue
			}
			client, err1 := strconv.Atoi(fields[0])
			lat, err2 := strconv.ParseFloat(fields[2], 64)
			sec, err3 := strconv.ParseInt(fields[4], 10, 64)
			usec, err4 := strconv.ParseInt(fields[5], 10, 64)
			if err := errors.Join(err1, err2, err3, err4); err != nil {
				f.Close()
				return nil, 0, fmt.Errorf("%s: bad line %q", name, sc.Text())
			}
			txns = append(txns, txn{client: client, end: sec*1e6 + usec, lat: lat})
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, 0, err
		}
	}
	return txns, failed, nil
}

// percentile returns the nearest-rank p-quantile of v (sorting v).
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	if !slices.IsSorted(v) {
		slices.Sort(v)
	}
	i := int(math.Ceil(p*float64(len(v)))) - 1
	return v[min(max(i, 0), len(v)-1)]
}
