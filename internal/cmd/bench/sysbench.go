package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// plainDB is the database name of the Switchyard cluster without TLS
// toward MariaDB (server_database dbName).
const plainDB = dbName + "_plain"

type sbCase struct {
	test   string // oltp_point_select, oltp_read_write
	target string // direct, switchyard
}

func (e *env) sysbenchArgs(target string) []string {
	a, db := e.maria.Primary.Addr(), dbName
	switch target {
	case targetSwitchyard:
		a = e.syMyAddr
	case targetSwitchyardPlain:
		a, db = e.syMyAddr, plainDB
	case targetFloor:
		a = e.floorMyAddr
	}
	host, port, _ := net.SplitHostPort(a)
	return []string{
		"--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
		"--mysql-user=" + dbUser, "--mysql-password=" + dbPassword, "--mysql-db=" + db,
		"--tables=4", "--table-size=10000",
	}
}

// sysbenchPrepare creates the sysbench tables directly on MariaDB
// (oltp_read_write uses the same tables as oltp_point_select).
func (e *env) sysbenchPrepare(ctx context.Context) error {
	args := append(e.sysbenchArgs(targetDirect), "--threads=4", "oltp_point_select", "prepare")
	stdout, stderr, err := runTool(ctx, 5*time.Minute, e.toolEnv, e.o.sysbench, args...)
	if err != nil {
		return fmt.Errorf("sysbench prepare: %v\n%s%s", err, tail([]byte(stdout), 2000), tail([]byte(stderr), 2000))
	}
	return nil
}

func (e *env) sysbenchCleanup(ctx context.Context) {
	args := append(e.sysbenchArgs(targetDirect), "oltp_point_select", "cleanup")
	_, _, _ = runTool(ctx, time.Minute, e.toolEnv, e.o.sysbench, args...)
}

func (e *env) runSysbench(ctx context.Context, c sbCase) result {
	secs := int(e.o.sysbenchTime.Round(time.Second) / time.Second)
	args := append(e.sysbenchArgs(c.target),
		"--threads="+strconv.Itoa(e.o.sysbenchThreads), "--time="+strconv.Itoa(secs),
		"--histogram=on", "--percentile=99", "--report-interval=0",
		c.test, "run")
	load := e.sampleLoad()
	cs := startCPUSampler(e.proxyPID(c.target))
	stdout, stderr, err := runTool(ctx, e.o.sysbenchTime+2*time.Minute, e.toolEnv, e.o.sysbench, args...)
	samples := cs.finish()
	r := parseSysbench(stdout, stderr, err)
	r.Load = load
	if len(samples) >= 2 && r.ok() && r.N > 0 {
		// The whole run (sysbench's 16 logins are cheap).
		r.CPUPerTxn = (samples[len(samples)-1].cpu - samples[0].cpu).Seconds() / float64(r.N) * 1e6
	}
	return r
}

var (
	reSbTxn     = regexp.MustCompile(`(?m)^\s*transactions:\s+(\d+)\s+\(([0-9.]+) per sec\.\)`)
	reSbIgnored = regexp.MustCompile(`(?m)^\s*ignored errors:\s+(\d+)`)
	reSbFatal   = regexp.MustCompile(`(?m)^(?:FATAL|ERROR|error): ?(.*)$`)
	reSbHist    = regexp.MustCompile(`^\s*([0-9.]+)\s+\|\**\s+(\d+)\s*$`)
)

// parseSysbench reads sysbench's summary and latency histogram. A non-zero
// exit, a FATAL line or errors sysbench ignored (retried transactions) make
// the run a failure, with the first message sysbench gave.
func parseSysbench(stdout, stderr string, runErr error) result {
	reason := func() string {
		for _, s := range []string{stdout, stderr} {
			if m := reSbFatal.FindStringSubmatch(s); m != nil {
				return strings.TrimSpace(m[1])
			}
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
		return result{Failed: "sysbench " + msg}
	}
	if m := reSbFatal.FindStringSubmatch(stdout); m != nil {
		return result{Failed: strings.TrimSpace(m[1])}
	}
	m := reSbTxn.FindStringSubmatch(stdout)
	if m == nil {
		return result{Failed: "no transactions line in sysbench's output: " + reason()}
	}
	var r result
	r.N, _ = strconv.Atoi(m[1])
	r.TPS, _ = strconv.ParseFloat(m[2], 64)
	if r.N == 0 {
		return result{Failed: "no transactions"}
	}
	if m := reSbIgnored.FindStringSubmatch(stdout); m != nil && m[1] != "0" {
		return result{Failed: m[1] + " errors (ignored and retried by sysbench)"}
	}
	var vals []float64
	var counts []int
	for _, line := range strings.Split(stdout, "\n") {
		if m := reSbHist.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			n, _ := strconv.Atoi(m[2])
			vals, counts = append(vals, v), append(counts, n)
		}
	}
	if len(vals) == 0 {
		return result{Failed: "no latency histogram in sysbench's output"}
	}
	r.P50, r.P99 = histPercentile(vals, counts, 0.50), histPercentile(vals, counts, 0.99)
	return r
}

// histPercentile returns the nearest-rank p-quantile of a histogram given
// as ascending bucket values and their counts.
func histPercentile(vals []float64, counts []int, p float64) float64 {
	total := 0
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p * float64(total)))
	seen := 0
	for i, n := range counts {
		seen += n
		if seen >= rank {
			return vals[i]
		}
	}
	return vals[len(vals)-1]
}
