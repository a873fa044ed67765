//go:build drill

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// TestDrillSIGTERMDrainUnderPgbench runs the real proxy binary in front of
// a PostgreSQL primary, drives it with pgbench -c 16 -T 10 (TPC-B like),
// and sends SIGTERM halfway. The drain must let every transaction that had
// begun finish: pgbench reports no failed transaction, and every
// transaction it counts is in pgbench_history while no transaction is
// there that it did not count (one committed but never acknowledged).
// Clients whose connection the drain closes between transactions abort;
// their number is reported.
func TestDrillSIGTERMDrainUnderPgbench(t *testing.T) {
	pg, err := testcluster.StartPostgres(testcluster.Options{Replicas: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	dir := t.TempDir()
	bin := filepath.Join(dir, "switchyard")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the drill builds the proxy with the go command: %v", err)
	}
	build := exec.Command(goBin, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	port := freePort(t)
	const shutdownTimeout = 20 * time.Second
	cfgPath := filepath.Join(dir, "drill.toml")
	cfg := fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:%d"
mysql_listen = ""
admin_listen = ""
shutdown_timeout = "%s"
[defaults]
pool_size = 20
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
`, port, shutdownTimeout, pg.Primary.Addr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	pgbench := filepath.Join(pg.BinDir, "pgbench")
	env := append(os.Environ(), "PGPASSWORD=app", "PGSSLMODE=disable")
	initCmd := exec.Command(pgbench, "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Primary.Port), "-U", "app", "app")
	initCmd.Env = env
	if out, err := initCmd.CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}

	var proxyLog bytes.Buffer
	proxy := exec.Command(bin, "-config", cfgPath, "-log-level", "warn")
	proxy.Stdout, proxy.Stderr = &proxyLog, &proxyLog
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- proxy.Wait() }()
	t.Cleanup(func() {
		_ = proxy.Process.Kill()
		<-exited
	})
	waitListening(t, port)

	const clients, seconds = 16, 10
	bench := exec.Command(pgbench, "-n", "-c", strconv.Itoa(clients), "-j", "2", "-T", strconv.Itoa(seconds),
		"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "app", "app")
	bench.Env = env
	var out, errOut bytes.Buffer
	bench.Stdout, bench.Stderr = &out, &errOut
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(seconds * time.Second / 2)
	termAt := time.Now()
	if err := proxy.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var proxyErr error
	var drained time.Duration
	select {
	case proxyErr = <-exited:
		drained = time.Since(termAt)
		exited <- proxyErr // for the cleanup
	case <-time.After(shutdownTimeout + 10*time.Second):
		t.Fatalf("the proxy did not exit within shutdown_timeout (%v) + 10s of SIGTERM", shutdownTimeout)
	}
	benchErr := bench.Wait()

	processed := pgbenchInt(out.String(), `number of transactions actually processed: (\d+)`)
	failed := pgbenchInt(out.String(), `number of failed transactions: (\d+)`)
	aborts := regexp.MustCompile(`client \d+ (?:script \d+ )?aborted in command (\d+)[^\n]*`).FindAllStringSubmatch(errOut.String(), -1)
	byCommand := map[string]int{}
	for _, a := range aborts {
		byCommand[a[1]]++
	}
	history, err := pg.QueryString(pg.Primary, "app", `SELECT count(*) FROM pgbench_history`)
	if err != nil {
		t.Fatal(err)
	}
	hist, _ := strconv.Atoi(history)
	t.Logf("DRILL SIGTERM drain under pgbench: injected SIGTERM %v into pgbench -c %d -T %d (shutdown_timeout %v)",
		time.Duration(seconds*time.Second/2), clients, seconds, shutdownTimeout)
	t.Logf("  proxy exited %v after SIGTERM (%v)", drained.Round(time.Millisecond), proxyErr)
	t.Logf("  pgbench: %d transactions processed, %d failed, %d clients aborted (by script command: %v), exit %v",
		processed, failed, len(aborts), byCommand, benchErr)
	t.Logf("  pgbench_history rows: %d (committed transactions); committed but not acknowledged: %d, acknowledged but lost: %d",
		hist, max(hist-processed, 0), max(processed-hist, 0))
	if len(aborts) > 0 {
		t.Logf("  first abort: %s", aborts[0][0])
	}
	if testing.Verbose() {
		t.Logf("pgbench output:\n%s\n%s", out.String(), errOut.String())
	}
	if proxyErr != nil {
		t.Errorf("the proxy exited with %v\n%s", proxyErr, proxyLog.String())
	}
	if processed <= 0 {
		t.Fatalf("pgbench processed no transaction:\n%s\n%s", out.String(), errOut.String())
	}
	if failed != 0 {
		t.Errorf("pgbench reports %d failed transactions", failed)
	}
	if hist != processed {
		t.Errorf("pgbench_history has %d rows, pgbench counted %d transactions: a transaction in flight at SIGTERM was cut", hist, processed)
	}
	if len(aborts) > clients {
		t.Errorf("%d aborts for %d clients", len(aborts), clients)
	}
}

// pgbenchInt reads the first number re finds in pgbench's report, -1 if
// it is not there.
func pgbenchInt(s, re string) int {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(m[1]))
	if err != nil {
		return -1
	}
	return n
}
