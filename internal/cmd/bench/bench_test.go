package main

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
)

const pgbenchOK = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: simple
number of clients: 64
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 51956
number of failed transactions: 0 (0.000%)
latency average = 8.084 ms
latency stddev = 6.576 ms
initial connection time = 1872.346 ms
tps = 6235.859167 (without initial connection time)
`

func TestParsePgbench(t *testing.T) {
	r := parsePgbench(pgbenchOK, "", nil)
	if !r.ok() || r.TPS != 6235.859167 || r.N != 51956 || r.ConnTime != 1872346*time.Microsecond {
		t.Fatalf("clean run: %+v", r)
	}

	aborted := `pgbench: error: client 3 script 0 aborted in command 1 query 0: ERROR:  prepared statement "P0_1" does not exist
pgbench: error: Run was aborted; the above results are incomplete.
`
	exit2 := errors.New("exit status 2")
	r = parsePgbench(pgbenchOK, aborted, exit2)
	if r.ok() || !strings.Contains(r.Failed, `prepared statement "P0_1" does not exist`) || !strings.Contains(r.Failed, "exit status 2") {
		t.Fatalf("aborted run: %+v", r)
	}

	failed := strings.Replace(pgbenchOK, "number of failed transactions: 0 (0.000%)", "number of failed transactions: 7 (0.010%)", 1)
	if r := parsePgbench(failed, "", nil); r.ok() || !strings.HasPrefix(r.Failed, "7 failed transactions") {
		t.Fatalf("failed transactions: %+v", r)
	}

	none := strings.Replace(pgbenchOK, "actually processed: 51956", "actually processed: 0", 1)
	none = strings.Replace(none, "tps = 6235.859167 (without initial connection time)\n", "", 1)
	if r := parsePgbench(none, "", nil); r.ok() || !r.noTxns {
		t.Fatalf("no transactions: %+v", r)
	}
	if r := parsePgbench("", "", errTimeout); r.ok() {
		t.Fatalf("timeout: %+v", r)
	}
	if r := parsePgbench("pgbench (15)\n", "", nil); r.ok() {
		t.Fatalf("no tps line: %+v", r)
	}
}

func TestReadPgbenchLogsAndWindow(t *testing.T) {
	dir := t.TempDir()
	// Two clients in two files; client 1 starts 1 s late. One "skipped"
	// line is ignored.
	var a, b strings.Builder
	const t0 = 1_700_000_000
	for i := 0; i < 20; i++ { // client 0: one transaction every 0.5 s, 1 ms each
		sec, usec := t0+i/2, (i%2)*500000
		a.WriteString(strconv.Itoa(0) + " " + strconv.Itoa(i) + " 1000 0 " + strconv.Itoa(sec) + " " + strconv.Itoa(usec) + "\n")
	}
	for i := 0; i < 18; i++ { // client 1: from t0+1, 3 ms each
		sec, usec := t0+1+i/2, (i%2)*500000
		b.WriteString(strconv.Itoa(1) + " " + strconv.Itoa(i) + " 3000 0 " + strconv.Itoa(sec) + " " + strconv.Itoa(usec) + "\n")
	}
	b.WriteString("1 99 skipped 0 1700000005 0\n")
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := []string{write("log.1", a.String()), write("log.1.1", b.String())}
	txns, failed, err := readPgbenchLogs(files)
	if err != nil || failed != 0 || len(txns) != 38 {
		t.Fatalf("read: %d txns, %d failed, %v", len(txns), failed, err)
	}
	// Last completion at t0+9.5 s; the first transaction started at
	// t0-1 ms, so the window may start at t0+1.999 s: want 4 s gives
	// (t0+5.5, t0+9.5].
	w, err := measureWindow(txns, 2, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if w.length != 4*time.Second || w.tps != 4 || w.p50 != 1 || w.p99 != 3 {
		t.Fatalf("window: %+v", w)
	}
	// want 8 s: limited by the settling time, (t0+1.999, t0+9.5].
	w, err = measureWindow(txns, 2, 8*time.Second)
	if err != nil || w.length != 7501*time.Millisecond {
		t.Fatalf("settle-limited window: %+v, %v", w, err)
	}
	// want 20 s: less than half of it is steady.
	if _, err := measureWindow(txns, 2, 20*time.Second); !errors.Is(err, errShortWindow) {
		t.Fatalf("a window shorter than half of what was wanted: %v", err)
	}
	// A client that never completed a transaction: an error, but a short
	// run is reported as such first.
	if _, err := measureWindow(txns, 3, 4*time.Second); err == nil || errors.Is(err, errShortWindow) {
		t.Fatalf("a missing client: %v", err)
	}
	if _, err := measureWindow(txns, 3, 20*time.Second); !errors.Is(err, errShortWindow) {
		t.Fatalf("a missing client in a short run: %v", err)
	}

	files = append(files, write("log.2", "0 0 failed 0 1700000001 0\n"))
	if _, failed, err := readPgbenchLogs(files); err != nil || failed != 1 {
		t.Fatalf("failed line: %d, %v", failed, err)
	}
	if _, _, err := readPgbenchLogs([]string{write("log.3", "0 0 abc 0 1700000001 0\n")}); err == nil {
		t.Fatal("a garbled line was accepted")
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for _, c := range []struct{ p, want float64 }{{0.5, 5}, {0.99, 10}, {0.1, 1}, {0, 1}} {
		if got := percentile(v, c.p); got != c.want {
			t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if !math.IsNaN(percentile(nil, 0.5)) {
		t.Error("percentile of nothing is not NaN")
	}
}

const sysbenchOK = `sysbench 1.0.20 (using system LuaJIT 2.1.0-beta3)

Running the test with following options:
Number of threads: 32

Latency histogram (values are in milliseconds)
       value  ------------- distribution ------------- count
       0.100 |**********                               10
       0.200 |****************************************  40
       0.500 |*************************                 49
      10.000 |*                                         1
 
SQL statistics:
    queries performed:
        read:                            100
        write:                           0
        other:                           0
        total:                           100
    transactions:                        100    (10.00 per sec.)
    queries:                             100    (10.00 per sec.)
    ignored errors:                      0      (0.00 per sec.)
    reconnects:                          0      (0.00 per sec.)

Latency (ms):
         min:                                    0.09
         99th percentile:                        0.50
`

func TestParseSysbench(t *testing.T) {
	r := parseSysbench(sysbenchOK, "", nil)
	if !r.ok() || r.TPS != 10 || r.N != 100 || r.P50 != 0.2 || r.P99 != 0.5 {
		t.Fatalf("clean run: %+v", r)
	}
	ignored := strings.Replace(sysbenchOK, "ignored errors:                      0 ", "ignored errors:                      3 ", 1)
	if r := parseSysbench(ignored, "", nil); r.ok() || !strings.HasPrefix(r.Failed, "3 errors") {
		t.Fatalf("ignored errors: %+v", r)
	}
	fatal := "FATAL: mysql_drv_query() returned error 2013 (Lost connection to server during query) for query 'SELECT c FROM sbtest1 WHERE id=?'\nFATAL: `thread_run' function failed\n"
	r = parseSysbench(fatal, "", errors.New("exit status 1"))
	if r.ok() || !strings.Contains(r.Failed, "Lost connection") {
		t.Fatalf("fatal: %+v", r)
	}
}

func TestHistPercentile(t *testing.T) {
	vals, counts := []float64{1, 2, 3}, []int{98, 1, 1}
	if got := histPercentile(vals, counts, 0.5); got != 1 {
		t.Errorf("p50 = %v", got)
	}
	if got := histPercentile(vals, counts, 0.99); got != 2 {
		t.Errorf("p99 = %v", got)
	}
	if got := histPercentile(vals, counts, 1); got != 3 {
		t.Errorf("p100 = %v", got)
	}
}

func TestTables(t *testing.T) {
	p := newPgResults(allTargets)
	p.add(pgCase{"select-only", "simple", 1, targetDirect}, result{TPS: 1000, P50: 1, P99: 2})
	p.add(pgCase{"select-only", "simple", 1, targetSwitchyard}, result{TPS: 800, P50: 1.2, P99: 3})
	p.add(pgCase{"select-only", "simple", 1, targetPgBouncer}, result{TPS: 900, P50: 1.1, P99: 2.5})
	p.add(pgCase{"select-only", "prepared", 1, targetDirect}, result{TPS: 1000, P50: 1, P99: 2})
	p.add(pgCase{"select-only", "prepared", 1, targetSwitchyard}, result{Failed: "exit status 2: a | b"})
	p.add(pgCase{"select-only", "prepared", 1, targetPgBouncer}, result{NA: pgbouncerNoPrepared})
	tab := p.table()
	for _, want := range []string{
		"| select-only | simple | 1 | **switchyard** | 800 | 1.200 | 3.000 | 0.80 | 1.50 | 0.89 | 1.20 |",
		"| select-only | simple | 1 | pgbouncer | 900 | 1.100 | 2.500 | 0.90 | 1.25 |  |  |",
		`**failed**: exit status 2: a \| b`,
		"| " + pgbouncerNoPrepared + " |",
	} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	sum := p.summary()
	if !strings.Contains(sum, "| select-only | simple | 0.80 (1 of 1 loads) | 0.89 (1 of 1 loads) |") ||
		!strings.Contains(sum, "| select-only | prepared | — | — |") {
		t.Errorf("summary:\n%s", sum)
	}
}

func TestSwitchyardConfig(t *testing.T) {
	c := switchyardConfig("127.0.0.1:1", "", "127.0.0.1:3", 20, 10100, "127.0.0.1:4", "")
	for _, want := range []string{`postgres_listen  = "127.0.0.1:1"`, `mysql_listen     = ""`, "pool_size          = 20", `primary  = "127.0.0.1:4"`} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
	if strings.Contains(c, `name     = "my"`) {
		t.Errorf("config has a MySQL cluster without a MySQL primary:\n%s", c)
	}
	c = switchyardConfig("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", 20, 10100, "127.0.0.1:4", "127.0.0.1:5")
	if _, err := config.Parse([]byte(c), "bench.toml"); err != nil {
		t.Fatalf("generated config does not load: %v\n%s", err, c)
	}
	for _, want := range []string{`name     = "my"`, `database        = "` + plainDB + `"`, `server_tls      = "disable"`} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
}

func TestCPUBetween(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := []cpuSample{
		{t0, 0},
		{t0.Add(100 * time.Millisecond), 50 * time.Millisecond},
		{t0.Add(200 * time.Millisecond), 100 * time.Millisecond},
		{t0.Add(300 * time.Millisecond), 150 * time.Millisecond},
	}
	cpu, span, ok := cpuBetween(s, t0.Add(150*time.Millisecond), t0.Add(250*time.Millisecond))
	if !ok || cpu != 100*time.Millisecond || span != 200*time.Millisecond {
		t.Fatalf("got %v over %v (%v), want 100ms over 200ms", cpu, span, ok)
	}
	if _, _, ok := cpuBetween(s, t0.Add(-time.Second), t0.Add(250*time.Millisecond)); ok {
		t.Fatal("a window starting before the first sample was measured")
	}
	if _, _, ok := cpuBetween(s, t0, t0.Add(time.Second)); ok {
		t.Fatal("a window ending after the last sample was measured")
	}
}

func TestProcCPU(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Busy until the CPU time moves (a clock tick, 10 ms, on a loaded
	// machine may take a while): it must, well within the bound.
	x := 0
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); {
		for i := 0; i < 1e6; i++ {
			x++
		}
		after, err := procCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			return
		}
	}
	t.Fatalf("CPU time did not grow over 20 s of a busy loop (%d iterations)", x)
}

// The -causal-check verdict on metrics: /metrics lines parsed per
// protocol, and held against what the clients saw.
func TestCausalCheckMetrics(t *testing.T) {
	name, labels, v, ok := parseSample(`switchyard_causal_reads_total{cluster="pg",protocol="postgres",served_by="replica_checked"} 42`)
	if !ok || name != "switchyard_causal_reads_total" || labels["served_by"] != "replica_checked" || labels["protocol"] != "postgres" || v != 42 {
		t.Fatalf("parseSample: %q %v %v %v", name, labels, v, ok)
	}
	present := map[string]bool{"switchyard_causal_reads_total": true, "switchyard_causal_read_wait_seconds": true}
	tl := &tally{}
	p := &checkProto{primary: 1, paused: 3}
	for range 7 {
		tl.read(p, 1, 1, 2, "") // on a replica
	}
	for range 3 {
		tl.read(p, 1, 1, 1, "") // on the primary
	}
	good := causalMetrics{replica: 5, checked: 2, primary: 3, checksFailed: 3, waits: 1, waitSum: 0.002,
		waitBuckets: map[string]float64{"+Inf": 1}, present: present}
	if bad := consistency(tl, good, false); len(bad) != 0 {
		t.Fatalf("consistent metrics found wanting: %v", bad)
	}
	for _, m := range []causalMetrics{
		{replica: 5, checked: 2, primary: 5, checksFailed: 3, waitBuckets: map[string]float64{}, present: present}, // counted twice
		{replica: 7, checked: 0, primary: 2, waitBuckets: map[string]float64{}, present: present},                  // one uncounted
		{replica: 5, checked: 2, primary: 3, checksFailed: 4, waitBuckets: map[string]float64{}, present: present}, // a failed check went nowhere
		{replica: 5, afterWait: 2, primary: 3, waits: 1, waitBuckets: map[string]float64{"+Inf": 1}, waitSum: 1, present: present},
		{replica: 5, checked: 2, primary: 3, waitBuckets: map[string]float64{}, present: map[string]bool{}}, // missing
	} {
		if bad := consistency(tl, m, false); len(bad) == 0 {
			t.Errorf("%+v: no inconsistency found", m)
		}
	}
}

// With rounds, a cell reports its median-TPS run, ignoring failed rounds,
// and lists every round's TPS; one round reports that run as it is.
func TestMedianOfRounds(t *testing.T) {
	one := result{TPS: 5, P99: 1}
	if got := median([]result{one}); got != one {
		t.Fatalf("one round: %+v; want %+v", got, one)
	}
	rs := []result{{TPS: 10, P99: 1}, {Failed: "boom"}, {TPS: 30, P99: 3}, {TPS: 20, P99: 2}}
	got := median(rs)
	if got.TPS != 20 || got.P99 != 2 {
		t.Fatalf("median of %+v = %+v; want the TPS 20 run", rs, got)
	}
	if want := "median of 4 rounds (TPS 10, failed, 30, 20)"; got.Note != want {
		t.Fatalf("note %q; want %q", got.Note, want)
	}
	if got := median([]result{{TPS: 10}, {TPS: 40}}); got.TPS != 10 {
		t.Fatalf("even count: TPS %v; want the lower middle, 10", got.TPS)
	}
	if got := median([]result{{Failed: "a"}, {Failed: "b"}}); got.Failed != "b" {
		t.Fatalf("all failed: %+v; want the last failure", got)
	}
	p := newPgResults([]string{targetDirect})
	c := pgCase{"select-only", "simple", 1, targetDirect}
	for _, tps := range []float64{3, 1, 2} {
		p.add(c, result{TPS: tps})
	}
	if r := p.row(pgKey{"select-only", "simple", 1})[targetDirect]; r.TPS != 2 {
		t.Fatalf("pgResults after 3 rounds reports TPS %v; want the median 2", r.TPS)
	}
}
