// Command bench measures Switchyard against a direct connection and against
// PgBouncer on the same machine, in one run, and prints the ratios (`make
// bench`); with -memory it measures the memory of 10,000 idle clients in
// Switchyard and in PgBouncer (`make bench-memory`).
//
// It starts everything it needs and stops all of it at the end or on
// SIGINT/SIGTERM (a second signal kills everything at once): a PostgreSQL
// and a MariaDB server from internal/testcluster (no replicas), Switchyard
// (bin/switchyard with a generated config: transaction pooling, pool_size
// -pool-size) and PgBouncer (transaction mode, the same pool size, as the
// OS user postgres when run as root). Every child runs in its own process
// group with a parent-death signal, every step has a time limit, and
// everything listens on 127.0.0.1 only.
//
// The benchmark:
//   - pgbench (scale -scale, initialized once, directly) for every script
//     (select-only, tpcb-like) × protocol (simple, extended, prepared) ×
//     client count × target (direct, switchyard, pgbouncer), -T -time, -j
//     -jobs. The three targets run back to back for each load, so the
//     ratios compare runs made seconds apart. Each run lasts -time plus a
//     warm-up that grows with the clients (pgbench's -T includes
//     connecting them); TPS and p50/p99 come from pgbench's
//     per-transaction log (-l), over the transactions that completed in the
//     last -time of the run, once every client was running. A run with
//     failed transactions, aborted clients or a non-zero exit is shown as
//     failed with its reason, never as a number. PgBouncer 1.18 has no
//     prepared statements in transaction mode, so that combination is
//     "n/a" (-pgbouncer-prepared runs it anyway).
//   - sysbench oltp_point_select (and oltp_read_write with -sysbench-rw)
//     against MariaDB directly and through Switchyard's MySQL listener.
//
// With -shards it compares point selects through Switchyard on an
// unsharded database, a 1-shard and a 2-shard cluster (shards.go).
//
// The report (markdown) goes to stdout and to -out/bench-<date>.md.
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
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	switchyard, pgbouncer, sysbench string

	poolSize        int
	duration        time.Duration
	clients         []int
	scripts, modes  []string
	targets         []string
	scale, jobs     int
	sysbenchOn      bool
	sysbenchRW      bool
	sysbenchThreads int
	sysbenchTime    time.Duration

	pgbouncerPrepared bool
	floor             bool   // also run the loads the relay floor fits (relayfloor.go)
	rounds            int    // run the whole table this many times, one round after another; report medians
	relayFloor        string // -relay-floor: be the relay child instead
	out               string
	keep              bool

	shards bool
	quick  bool

	causal       bool // causal.go
	causalRounds int

	causalCheck bool // causalcheck.go
	checkRounds int
	checkPairs  int
	checkRuns   int
	checkOnly   string

	memory     bool
	memConns   int
	memWorkers int
	memWait    time.Duration
}

// quickTable is what -quick runs: the table of issue 17, the loads the
// bar is set on.
var quickTable = []struct {
	script, mode string
	clients      int
}{
	{"select-only", "simple", 1}, {"select-only", "simple", 16}, {"select-only", "simple", 64}, {"select-only", "simple", 256},
	{"select-only", "extended", 1}, {"select-only", "extended", 64},
	{"select-only", "prepared", 16},
	{"tpcb-like", "simple", 1}, {"tpcb-like", "simple", 64},
}

var (
	allScripts = []string{"select-only", "tpcb-like"}
	allModes   = []string{"simple", "extended", "prepared"}
	allTargets = []string{targetDirect, targetSwitchyard, targetPgBouncer}
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.switchyard, "switchyard", "bin/switchyard", "the Switchyard binary to measure")
	fs.StringVar(&o.pgbouncer, "pgbouncer", "", "the PgBouncer binary (default: pgbouncer in PATH or /usr/sbin)")
	fs.StringVar(&o.sysbench, "sysbench-bin", "", "the sysbench binary (default: sysbench in PATH)")
	fs.IntVar(&o.poolSize, "pool-size", 20, "server connections per pool, Switchyard pool_size and PgBouncer default_pool_size")
	fs.DurationVar(&o.duration, "time", 10*time.Second, "length of each pgbench run (whole seconds)")
	clients := fs.String("clients", "1,16,64,256", "comma-separated pgbench client counts")
	scripts := fs.String("scripts", strings.Join(allScripts, ","), "comma-separated pgbench builtin scripts")
	modes := fs.String("modes", strings.Join(allModes, ","), "comma-separated pgbench protocols (-M)")
	targets := fs.String("targets", strings.Join(allTargets, ","), "comma-separated pgbench targets")
	fs.IntVar(&o.scale, "scale", 10, "pgbench scale factor")
	fs.IntVar(&o.jobs, "jobs", 2, "pgbench threads (-j)")
	fs.BoolVar(&o.sysbenchOn, "sysbench", true, "run sysbench against MariaDB directly and through Switchyard")
	fs.BoolVar(&o.sysbenchRW, "sysbench-rw", false, "also run sysbench oltp_read_write")
	fs.IntVar(&o.sysbenchThreads, "sysbench-threads", 32, "sysbench threads")
	fs.DurationVar(&o.sysbenchTime, "sysbench-time", 0, "length of each sysbench run (default: -time)")
	fs.BoolVar(&o.pgbouncerPrepared, "pgbouncer-prepared", false, "run pgbench -M prepared through PgBouncer too (1.18 cannot do it in transaction mode)")
	fs.BoolVar(&o.floor, "floor", true, "also run select-only simple loads of at most -pool-size clients and sysbench (threads at most -pool-size) through a 1:1 epoll relay that parses nothing and pools nothing: what relaying alone costs here (relayfloor.go)")
	fs.IntVar(&o.rounds, "rounds", 1, "run the whole table this many times, one round after another, and report each cell's median-TPS run (identical 5 s runs differ by up to ±25% on a shared 2-core machine)")
	fs.StringVar(&o.relayFloor, "relay-floor", "", "internal: serve the 1:1 relay for listen=target,... pairs (the floor rows' child process)")
	fs.StringVar(&o.out, "out", "bench-results", "directory for the report file (empty: none)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, proxy logs)")
	fs.BoolVar(&o.memory, "memory", false, "measure proxy memory with idle client connections instead")
	fs.BoolVar(&o.shards, "shards", false, "compare point selects (pgbench select-only, key aid) through Switchyard on an unsharded database, a 1-shard and a 2-shard cluster instead (uses -time, -clients, -modes, -scale, -jobs, -pool-size)")
	fs.BoolVar(&o.causal, "causal", false, "measure read-your-writes instead: the latency of a plain replica read, of a read that carries a position check, and of a read right after the client's own write, for PostgreSQL and MariaDB with replicas (causal.go)")
	fs.IntVar(&o.causalRounds, "causal-rounds", 1000, "-causal: reads of each kind per protocol")
	fs.BoolVar(&o.causalCheck, "causal-check", false, "check issue 14's read-your-writes bar from outside instead: 20 writers in a 90/10 mix with healthy replicas, write-then-read pairs with one replica's replay paused, the position token on another connection, and /metrics against what the clients saw, for PostgreSQL and MariaDB (causalcheck.go); fails when the bar does not hold")
	fs.IntVar(&o.checkRounds, "causal-check-rounds", 250, "-causal-check: rounds of 1 write + 9 reads per writer in the mix")
	fs.IntVar(&o.checkPairs, "causal-check-pairs", 10000, "-causal-check: write-then-read pairs per paused run (over 20 clients)")
	fs.StringVar(&o.checkOnly, "causal-check-only", "", "-causal-check: only this protocol (postgres or mysql)")
	fs.IntVar(&o.checkRuns, "causal-check-runs", 3, "-causal-check: paused runs per protocol (PostgreSQL: each also with synchronous_commit = off)")
	fs.BoolVar(&o.quick, "quick", false, "run only the table of issue 17 (select-only simple 1/16/64/256, extended 1/64, prepared 16, TPC-B-like simple 1/64, sysbench point-select 16 threads), 5 s per run unless -time says otherwise: about 5 minutes")
	fs.IntVar(&o.memConns, "conns", 10000, "-memory: idle client connections per proxy")
	fs.IntVar(&o.memWorkers, "workers", 32, "-memory: goroutines opening the connections")
	fs.DurationVar(&o.memWait, "settle", 5*time.Second, "-memory: wait this long with the connections open before reading RSS")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.relayFloor != "" {
		return o, nil // the relay child needs nothing else
	}
	var err error
	if o.clients, err = parseInts(*clients); err != nil {
		return nil, fmt.Errorf("-clients: %w", err)
	}
	if o.scripts, err = parseList(*scripts, allScripts); err != nil {
		return nil, fmt.Errorf("-scripts: %w", err)
	}
	if o.modes, err = parseList(*modes, allModes); err != nil {
		return nil, fmt.Errorf("-modes: %w", err)
	}
	if o.targets, err = parseList(*targets, allTargets); err != nil {
		return nil, fmt.Errorf("-targets: %w", err)
	}
	if o.quick {
		// The quick table's own shape; -time, -scale, -pool-size still apply.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["time"] {
			o.duration = 5 * time.Second
		}
		if !set["sysbench-threads"] {
			o.sysbenchThreads = 16
		}
	}
	if o.duration < time.Second {
		return nil, fmt.Errorf("-time must be at least 1s")
	}
	if o.sysbenchTime == 0 {
		o.sysbenchTime = o.duration
	}
	if o.sysbenchTime < time.Second {
		return nil, fmt.Errorf("-sysbench-time must be at least 1s")
	}
	if o.checkRounds < 1 || o.checkPairs < 20 || o.checkRuns < 1 {
		return nil, fmt.Errorf("-causal-check-rounds and -causal-check-runs must be positive, -causal-check-pairs at least 20")
	}
	if o.rounds < 1 {
		return nil, fmt.Errorf("-rounds must be positive")
	}
	if o.poolSize < 1 || o.scale < 1 || o.jobs < 1 || o.sysbenchThreads < 1 || o.memConns < 1 || o.memWorkers < 1 {
		return nil, fmt.Errorf("-pool-size, -scale, -jobs, -sysbench-threads, -conns and -workers must be positive")
	}
	if o.pgbouncer == "" {
		if o.pgbouncer, err = lookPath("pgbouncer"); err != nil {
			return nil, err
		}
	}
	if o.sysbenchOn && !o.memory && !o.shards && !o.causal && !o.causalCheck && o.sysbench == "" {
		if o.sysbench, err = lookPath("sysbench"); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(o.switchyard); err != nil {
		return nil, fmt.Errorf("-switchyard: %w (run make build)", err)
	}
	return o, nil
}

// lookPath finds a program in PATH or the sbin directories.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (make deps installs it)", name)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseList(s string, allowed []string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		ok := false
		for _, a := range allowed {
			ok = ok || a == f
		}
		if !ok {
			return nil, fmt.Errorf("%q is not one of %s", f, strings.Join(allowed, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	if o.relayFloor != "" {
		fmt.Fprintf(stderr, "bench: relay floor: %v\n", relayFloor(o.relayFloor))
		return 1
	}
	e, err := newEnv(o)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	defer e.cleanup()

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
		fmt.Fprintf(stderr, "bench: %v: stopping (once more to kill everything at once)\n", s)
		cancel()
		if _, ok := <-sigs; ok {
			// The servers of internal/testcluster die with this process
			// (parent-death signal); the proxies are killed here.
			e.procs.killAll()
			os.Exit(130)
		}
	}()

	// 10,000 clients need 10,000 descriptors here and in each proxy.
	if n, err := raiseNoFile(65536); err != nil {
		fmt.Fprintf(stderr, "bench: raising RLIMIT_NOFILE: %v\n", err)
	} else {
		e.noFile = n
		fmt.Fprintf(stderr, "bench: RLIMIT_NOFILE %d (inherited by the servers and proxies)\n", n)
	}
	switch {
	case o.memory:
		err = runMemory(ctx, e, stdout, stderr)
	case o.shards:
		err = runShards(ctx, e, stdout, stderr)
	case o.causal:
		err = runCausal(ctx, e, stdout, stderr)
	case o.causalCheck:
		err = runCausalCheck(ctx, e, stdout, stderr)
	default:
		err = runBench(ctx, e, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// header is the report's preamble: where and with what it ran.
type header struct {
	title      string
	started    time.Time
	loadStart  string
	loadEnd    string
	versions   map[string]string
	extraLines []string
}

func (h header) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s, %s\n\n", h.title, h.started.Format("2006-01-02 15:04 MST"))
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Fprintf(&b, "- Machine: %d CPUs (nproc), %s, Linux %s; load average at start %s, at end %s. Clients, proxies and servers all share these CPUs.\n",
		runtime.NumCPU(), memTotal(), strings.TrimSpace(string(kernel)), h.loadStart, h.loadEnd)
	v := h.versions
	names := []struct{ key, label string }{
		{"postgres", "PostgreSQL"}, {"pgbouncer", "PgBouncer"}, {"mariadb", "MariaDB"}, {"go", "Go"},
		{"switchyard", "Switchyard"}, {"pgbench", "pgbench"}, {"sysbench", "sysbench"},
	}
	var vs []string
	for _, n := range names {
		if s, ok := v[n.key]; ok {
			vs = append(vs, n.label+" "+s)
		}
	}
	fmt.Fprintf(&b, "- Versions: %s.\n", strings.Join(vs, ", "))
	for _, l := range h.extraLines {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	return b.String()
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return fmt.Sprintf("%.0f GiB RAM", float64(kb)/(1<<20))
			}
		}
	}
	return "memory unknown"
}

func runBench(ctx context.Context, e *env, stdout, stderr io.Writer) error {
	o := e.o
	h := header{title: "Switchyard benchmark", started: time.Now(), versions: e.versions}
	h.loadStart, _ = loadAvg()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
	}
	var pgCases []pgCase
	if o.quick {
		for _, q := range quickTable {
			for _, t := range o.targets {
				pgCases = append(pgCases, pgCase{script: q.script, mode: q.mode, clients: q.clients, target: t})
			}
			if o.floorCase(q.script, q.mode, q.clients) {
				pgCases = append(pgCases, pgCase{script: q.script, mode: q.mode, clients: q.clients, target: targetFloor})
			}
		}
	}
	for _, s := range o.scripts {
		if o.quick {
			break
		}
		for _, m := range o.modes {
			for _, c := range o.clients {
				for _, t := range o.targets {
					pgCases = append(pgCases, pgCase{script: s, mode: m, clients: c, target: t})
				}
				if o.floorCase(s, m, c) {
					pgCases = append(pgCases, pgCase{script: s, mode: m, clients: c, target: targetFloor})
				}
			}
		}
	}
	sbTests := []string{}
	if o.sysbenchOn {
		sbTests = append(sbTests, "oltp_point_select")
		if o.sysbenchRW {
			sbTests = append(sbTests, "oltp_read_write")
		}
	}
	runs := 0
	for _, c := range pgCases {
		if !(c.target == targetPgBouncer && c.mode == "prepared" && !o.pgbouncerPrepared) {
			runs++
		}
	}
	est := time.Duration(0)
	for _, c := range pgCases {
		if !(c.target == targetPgBouncer && c.mode == "prepared" && !o.pgbouncerPrepared) {
			est += o.duration + warmupFor(c.clients) + time.Second
		}
	}
	sbTargets := []string{targetDirect, targetSwitchyard, targetSwitchyardPlain}
	if o.floor && o.sysbenchThreads <= o.poolSize {
		sbTargets = append(sbTargets, targetFloor)
	}
	est += time.Duration(len(sbTargets)*len(sbTests))*(o.sysbenchTime+3*time.Second) + time.Minute
	est *= time.Duration(o.rounds)
	logf("%d pgbench runs and %d sysbench runs (%d round(s)); about %v in all (load average %s)", runs*o.rounds, len(sbTargets)*len(sbTests)*o.rounds, o.rounds, est.Round(time.Minute), h.loadStart)

	logf("starting PostgreSQL%s", map[bool]string{true: " and MariaDB", false: ""}[o.sysbenchOn])
	if err := e.startClusters(o.sysbenchOn); err != nil {
		return err
	}
	if err := e.tunePostgres(); err != nil {
		return err
	}
	logf("PostgreSQL at %s (%s)", e.pg.Primary.Addr(), e.pgSettingsNote)
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := e.startSwitchyard(ctx, o.sysbenchOn, 10100); err != nil {
		return err
	}
	logf("Switchyard pid %d: PostgreSQL %s, MySQL %s", e.sy.pid(), e.syPGAddr, e.syMyAddr)
	if err := e.startPgBouncer(ctx, 10100); err != nil {
		return err
	}
	logf("PgBouncer pid %d at %s", e.pgb.pid(), e.pgbAddr)
	if o.floor {
		if err := e.startFloor(ctx, o.sysbenchOn); err != nil {
			return err
		}
		logf("relay floor pid %d at %s (PostgreSQL) %s (MariaDB)", e.floorProc.pid(), e.floorPGAddr, e.floorMyAddr)
	}
	e.collectVersions(runtime.Version())

	logf("pgbench -i -s %d", o.scale)
	if err := e.pgbenchInit(ctx); err != nil {
		return err
	}
	if err := e.pgbenchWarmup(ctx, o.targets); err != nil {
		return err
	}

	pgTargets := o.targets
	if o.floor {
		pgTargets = append(pgTargets[:len(pgTargets):len(pgTargets)], targetFloor)
	}
	pg := newPgResults(pgTargets)
	for round := range o.rounds {
		for i, c := range pgCases {
			if ctx.Err() != nil {
				break
			}
			var r result
			if c.target == targetSwitchyard && e.sy.exited() {
				r = result{Failed: fmt.Sprintf("Switchyard is not running (exited: %v)", e.sy.err)}
			} else {
				r = e.runPgbench(ctx, c, round*len(pgCases)+i)
			}
			pg.add(c, r)
			logf("[%d/%d] %s: %s", round*len(pgCases)+i+1, o.rounds*len(pgCases), c, oneLine(r))
		}
	}

	sb := &sbResults{targets: sbTargets}
	if o.sysbenchOn && ctx.Err() == nil {
		logf("sysbench prepare (directly on MariaDB)")
		if err := e.sysbenchPrepare(ctx); err != nil {
			return err
		}
		var sbCases []sbCase
		for _, test := range sbTests {
			for _, t := range sb.targets {
				sbCases = append(sbCases, sbCase{test: test, target: t})
			}
		}
		for range o.rounds {
			for _, c := range sbCases {
				if ctx.Err() != nil {
					break
				}
				var r result
				if (c.target == targetSwitchyard || c.target == targetSwitchyardPlain) && e.sy.exited() {
					r = result{Failed: fmt.Sprintf("Switchyard is not running (exited: %v)", e.sy.err)}
				} else {
					r = e.runSysbench(ctx, c)
				}
				sb.add(c, r)
				logf("sysbench %s %s: %s", c.test, c.target, oneLine(r))
			}
		}
		e.sysbenchCleanup(ctx)
	}
	h.loadEnd, _ = loadAvg()

	h.extraLines = []string{
		fmt.Sprintf("1-minute load average sampled before each run: %.1f to %.1f (per row in the tables: `load`). The machine is shared with other engineers' test runs, so absolute numbers are noisy; the ratios compare runs made seconds apart.", e.loadMin, e.loadMax),
		fmt.Sprintf("Pool: %d server connections, transaction pooling, in both proxies (Switchyard `pool_size`, PgBouncer `default_pool_size`); SCRAM-SHA-256 client auth in both; TLS toward the server in both (Switchyard `server_tls = prefer`, PgBouncer `server_tls_sslmode = prefer`); query_wait_timeout 60 s in both.", o.poolSize),
		fmt.Sprintf("PostgreSQL: internal/testcluster server, no replicas, %s (data in a RAM-backed directory).", e.pgSettingsNote),
		fmt.Sprintf("pgbench: scale %d, -j %d, -n (the vacuum pgbench would do runs directly before each TPC-B run, plus a CHECKPOINT before every run); the targets run back to back for each load. Each run lasts %d s plus a warm-up of 2 s + 30 ms per client, because pgbench's -T includes connecting the clients (256 SCRAM logins to fresh backends take seconds here). TPS, p50 and p99 (nearest rank) come from pgbench's per-transaction log (-l): the transactions that completed in the last %d s of the run, or from %v after the connected clients started if that is later. A run where connecting left less than half of that is run again once with a warm-up fitted to its connection time (listed under the table).", o.scale, o.jobs, int(o.duration/time.Second), int(o.duration/time.Second), settleAfterStart),
		"Ratios: TPS ÷ X > 1 means more throughput than X; p99 ÷ X < 1 means a lower tail latency than X.",
		"`1:1 relay (floor)`: the same load through a relay that does the least a proxy can: one thread, one epoll loop, each client connection paired with its own server connection, bytes copied as they arrive; no parsing, no pool, no TLS of its own (pgbench negotiates TLS with PostgreSQL through it, as in the direct run; sysbench has none, as in the direct run). Its CPU per transaction is what relaying alone costs; its TPS what a bare relay reaches, a bound for a proxy only where its one thread keeps up with the load. It runs only where the proxies open as many server connections as clients (clients ≤ pool size), so the servers do the same work (relayfloor.go).",
		"proxy CPU µs/txn: the proxy process's user+system CPU time (from /proc, sampled every 100 ms) over the measured window, divided by the transactions in it: what the proxy itself costs per transaction, the figure a loaded machine distorts least. CPU ÷ PgBouncer < 1 means Switchyard spends less.",
	}
	if o.sysbenchOn {
		h.extraLines = append(h.extraLines, fmt.Sprintf("sysbench: --tables=4 --table-size=10000 --threads=%d --time=%d, prepared directly on MariaDB; p50/p99 from sysbench's latency histogram (--histogram=on). The direct run has no TLS; Switchyard's main row has TLS toward MariaDB (server_tls = prefer, as in the pgbench runs), the row `switchyard, server_tls=disable` none, as the direct run.", o.sysbenchThreads, int(o.sysbenchTime/time.Second)))
	}

	var rep strings.Builder
	rep.WriteString(h.String())
	if ctx.Err() != nil {
		rep.WriteString("\n**Interrupted: the tables are incomplete.**\n")
	}
	rep.WriteString("\n## pgbench (PostgreSQL)\n\n")
	rep.WriteString(pg.table())
	rep.WriteString("\nGeometric mean over the client counts:\n\n")
	rep.WriteString(pg.summary())
	if o.sysbenchOn {
		rep.WriteString("\n## sysbench (MariaDB)\n\n")
		rep.WriteString(sb.table(o.sysbenchThreads))
	}
	rep.WriteString(e.proxyLogNote())
	fmt.Fprint(stdout, rep.String())
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return writeReport(o.out, "bench", h.started, rep.String(), logf)
}

// proxyLogNote reports what Switchyard logged (it runs at -log-level
// warn, so anything there is worth a look) and whether it exited.
func (e *env) proxyLogNote() string {
	if e.sy == nil {
		return ""
	}
	b, _ := os.ReadFile(e.sy.logPath)
	text := strings.TrimSpace(string(b))
	var s strings.Builder
	if e.sy.exited() {
		fmt.Fprintf(&s, "\nSwitchyard exited during the run: %v.\n", e.sy.err)
	}
	if text == "" {
		s.WriteString("\nSwitchyard logged nothing at level warn or above.\n")
		return s.String()
	}
	lines := strings.Split(text, "\n")
	fmt.Fprintf(&s, "\nSwitchyard logged %d lines at level warn or above; the first ones:\n\n```\n", len(lines))
	for i, l := range lines {
		if i == 10 {
			break
		}
		if len(l) > 400 {
			l = l[:400] + "…"
		}
		s.WriteString(l + "\n")
	}
	s.WriteString("```\n")
	return s.String()
}

func writeReport(dir, prefix string, started time.Time, text string, logf func(string, ...any)) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, prefix+"-"+started.Format("20060102-150405")+".md")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	logf("wrote %s", path)
	return nil
}

func oneLine(r result) string {
	switch {
	case r.NA != "":
		return r.NA
	case r.Failed != "":
		return "FAILED: " + mdEscape(r.Failed)
	}
	s := fmt.Sprintf("%.0f tps, p50 %s ms, p99 %s ms (load %.1f)", r.TPS, fmtMS(r.P50), fmtMS(r.P99), r.Load)
	if r.Window > 0 {
		s += fmt.Sprintf("; window %.1f s, pgbench's own tps %.0f, connecting took %v", r.Window.Seconds(), r.PgbenchTPS, r.ConnTime.Round(time.Millisecond))
	}
	if r.Note != "" {
		s += "; " + r.Note
	}
	return s
}
