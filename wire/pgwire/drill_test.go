//go:build drill

package pgwire

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// raiseNoFile lifts the soft limit on open files to the hard one.
func raiseNoFile(t *testing.T) uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	return rl.Cur
}

// TestDrillTenThousandClients: 10,000 clients connect at once and stay
// idle; every one gets in (or a clear 53300), some run a query, and the
// proxy's memory per idle client is reported. The clients run in a child
// process (TestDrillClientHolder) so that the proxy's process holds only
// its own 10,000 sockets under the open-file limit.
func TestDrillTenThousandClients(t *testing.T) {
	const n = 10000
	raiseNoFile(t)
	p := serveConfig(t, limitsConfig(fmt.Sprintf(`max_client_conns = %d`, n+10), `pool_size = 4`, ``))
	stop := neighbour(t, p)
	if c, _, err := rawLogin(p.addr); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)

	cmd := exec.Command(os.Args[0], "-test.run=^TestDrillClientHolder$", "-test.v", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), "SY_DRILL_ADDR="+p.addr, "SY_DRILL_N="+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	next := func() string {
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, "DRILL ") {
				return l
			}
		}
		t.Fatalf("client process ended: %v", lines.Err())
		return ""
	}
	connected := next()
	t.Log(connected)
	var ok, refused, failed, ms int
	if _, err := fmt.Sscanf(connected, "DRILL connected ok=%d refused=%d errors=%d ms=%d", &ok, &refused, &failed, &ms); err != nil {
		t.Fatalf("%q: %v", connected, err)
	}
	if ok+refused != n || failed != 0 {
		t.Fatalf("%d in, %d refused, %d failed otherwise; want all %d in or refused with 53300", ok, refused, failed, n)
	}
	if refused != 0 {
		t.Errorf("%d refused under max_client_conns = %d", refused, n+10)
	}
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	heap := (int64(m1.HeapInuse) - int64(m0.HeapInuse)) / int64(ok)
	stack := (int64(m1.StackInuse) - int64(m0.StackInuse)) / int64(ok)
	t.Logf("%d clients logged in at once in %d ms; proxy per idle client: heap in use %d B, goroutine stacks %d B (total %d MiB)",
		ok, ms, heap, stack, (int64(m1.HeapInuse)+int64(m1.StackInuse)-int64(m0.HeapInuse)-int64(m0.StackInuse))>>20)

	fmt.Fprintln(stdin, "query")
	queried := next()
	t.Log(queried)
	if !strings.Contains(queried, "failed=0") {
		t.Errorf("queries on idle clients: %s", queried)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("client process: %v", err)
	}
	waitCounts(t, p, 1)
	checkNeighbour(t, stop)
}

// TestDrillClientHolder is the client side of TestDrillTenThousandClients,
// run in a child process; it does nothing on its own.
func TestDrillClientHolder(t *testing.T) {
	addr := os.Getenv("SY_DRILL_ADDR")
	if addr == "" {
		t.Skip("the client side of TestDrillTenThousandClients")
	}
	raiseNoFile(t)
	n, _ := strconv.Atoi(os.Getenv("SY_DRILL_N"))
	start := time.Now()
	conns, refused, errs := idleClients(addr, n, 128)
	first := ""
	if len(errs) > 0 {
		first = errs[0].Error()
	}
	fmt.Printf("DRILL connected ok=%d refused=%d errors=%d ms=%d first_error=%q\n", len(conns), refused, len(errs), time.Since(start).Milliseconds(), first)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "query" {
			okq, failed := 0, 0
			var firstErr error
			for i := 0; i < len(conns); i += 100 {
				if err := rawQuery(conns[i], i); err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					okq++
				}
			}
			fmt.Printf("DRILL queried ok=%d failed=%d first_error=%v\n", okq, failed, firstErr)
		}
	}
	for _, c := range conns {
		c.Close()
	}
}
