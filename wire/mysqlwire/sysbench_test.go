package mysqlwire

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// TestSysbench runs sysbench against the primary directly and through the
// proxy (pool_size = 10) and prints the ratio. It is a benchmark, not a
// CI test: set SWITCHYARD_SYSBENCH=1 (optionally SWITCHYARD_SYSBENCH_TIME
// in seconds, default 10).
func TestSysbench(t *testing.T) {
	if os.Getenv("SWITCHYARD_SYSBENCH") == "" {
		t.Skip("set SWITCHYARD_SYSBENCH=1 to run sysbench")
	}
	bin, err := exec.LookPath("sysbench")
	if err != nil {
		t.Skip("sysbench not installed")
	}
	secs := os.Getenv("SWITCHYARD_SYSBENCH_TIME")
	if secs == "" {
		secs = "10"
	}
	p := startProxy(t, "pool_size = 10")
	ma := testcluster.Maria
	direct := ma.Primary.Addr()
	run := func(addr, test, threads, cmd string) (string, error) {
		host, port, _ := net.SplitHostPort(addr)
		args := []string{test, "--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
			"--mysql-user=app", "--mysql-password=app", "--mysql-db=app", "--tables=4", "--table-size=10000",
			"--threads=" + threads, "--time=" + secs, "--report-interval=0", "--mysql-ssl=off", cmd}
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := run(direct, "oltp_read_write", "4", "cleanup"); err != nil {
		t.Logf("cleanup: %v %s", err, out)
	}
	if out, err := run(direct, "oltp_read_write", "4", "prepare"); err != nil {
		t.Fatalf("prepare: %v %s", err, out)
	}
	qps := regexp.MustCompile(`queries:\s+\d+\s+\(([\d.]+) per sec`)
	errs := regexp.MustCompile(`ignored errors:\s+(\d+)`)
	type res struct{ qps, errs float64 }
	measure := func(addr, test string) res {
		out, err := run(addr, test, "32", "run")
		if err != nil {
			t.Fatalf("%s via %s: %v\n%s", test, addr, err, out)
		}
		var r res
		if m := qps.FindStringSubmatch(out); m != nil {
			r.qps, _ = strconv.ParseFloat(m[1], 64)
		}
		if m := errs.FindStringSubmatch(out); m != nil {
			r.errs, _ = strconv.ParseFloat(m[1], 64)
		}
		return r
	}
	for _, test := range []string{"oltp_point_select", "oltp_read_write"} {
		d := measure(direct, test)
		x := measure(p.addr, test)
		msg := fmt.Sprintf("%s --threads=32: direct %.0f qps, proxy (pool_size 10) %.0f qps, ratio %.2f; ignored errors direct %.0f, proxy %.0f",
			test, d.qps, x.qps, x.qps/d.qps, d.errs, x.errs)
		t.Log(msg)
		fmt.Println(msg)
		if x.errs > 0 && test == "oltp_read_write" && d.errs == 0 {
			t.Errorf("%s: %0.f errors through the proxy", test, x.errs)
		}
	}
}
