package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// memResult is one proxy's memory with idle clients.
type memResult struct {
	target   string
	pid      int
	opened   int
	failed   int
	firstErr string
	openTime time.Duration
	base     int64 // VmRSS before the clients connect
	loaded   int64 // VmRSS with them connected and idle
	after    int64 // VmRSS after they closed
	extra    string
}

func (m memResult) perConn() float64 {
	if m.opened == 0 {
		return 0
	}
	return float64(m.loaded-m.base) / float64(m.opened)
}

func runMemory(ctx context.Context, e *env, stdout, stderr io.Writer) error {
	o := e.o
	h := header{title: "Switchyard memory with idle clients", started: time.Now(), versions: e.versions}
	h.loadStart, _ = loadAvg()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
	}
	logf("starting PostgreSQL (load average %s)", h.loadStart)
	if err := e.startClusters(false); err != nil {
		return err
	}
	maxClients := o.memConns + 100
	if err := e.startSwitchyard(ctx, false, maxClients); err != nil {
		return err
	}
	if err := e.startPgBouncer(ctx, maxClients); err != nil {
		return err
	}
	e.collectVersions(runtime.Version())
	logf("Switchyard pid %d at %s, PgBouncer pid %d at %s", e.sy.pid(), e.syPGAddr, e.pgb.pid(), e.pgbAddr)

	var results []memResult
	for _, t := range []struct {
		name string
		p    *proc
		addr string
	}{{targetSwitchyard, e.sy, e.syPGAddr}, {targetPgBouncer, e.pgb, e.pgbAddr}} {
		if ctx.Err() != nil {
			break
		}
		m, err := e.measureIdle(ctx, t.name, t.p, t.addr, logf)
		if err != nil {
			return err
		}
		results = append(results, m)
	}
	h.loadEnd, _ = loadAvg()
	h.extraLines = []string{
		fmt.Sprintf("Each proxy in turn: %d client connections from %d goroutines (pgconn, SCRAM-SHA-256 login, sslmode=disable), each runs `SELECT 1` once and then stays idle; after %v, VmRSS of the proxy process from /proc/<pid>/status. Per connection = (RSS with the clients − RSS before) ÷ connections.", o.memConns, o.memWorkers, o.memWait),
		fmt.Sprintf("Pool: %d server connections, transaction pooling, in both proxies; RLIMIT_NOFILE %d for this process and, inherited, for the proxies.", o.poolSize, e.noFile),
	}
	var rep strings.Builder
	rep.WriteString(h.String())
	if ctx.Err() != nil {
		rep.WriteString("\n**Interrupted: the table is incomplete.**\n")
	}
	rep.WriteString("\n| proxy | idle clients | open time | RSS before | RSS with clients | per idle client | RSS after they closed |\n|---|--:|--:|--:|--:|--:|--:|\n")
	for _, m := range results {
		clients := fmt.Sprint(m.opened)
		if m.failed > 0 {
			clients += fmt.Sprintf(" (**%d failed**: %s)", m.failed, mdEscape(m.firstErr))
		}
		fmt.Fprintf(&rep, "| %s | %s | %.1f s | %s | %s | %.1f KiB | %s |\n", m.target, clients, m.openTime.Seconds(),
			mib(m.base), mib(m.loaded), m.perConn()/1024, mib(m.after))
	}
	if len(results) == 2 && results[0].opened > 0 && results[1].opened > 0 {
		sy, pb := results[0], results[1]
		fmt.Fprintf(&rep, "\nSwitchyard ÷ PgBouncer: RSS with clients %.2f, per idle client %.2f.\n",
			float64(sy.loaded)/float64(pb.loaded), sy.perConn()/pb.perConn())
	}
	for _, m := range results {
		if m.extra != "" {
			fmt.Fprintf(&rep, "\n%s with the clients connected: %s.\n", m.target, m.extra)
		}
	}
	rep.WriteString(e.proxyLogNote())
	fmt.Fprint(stdout, rep.String())
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return writeReport(o.out, "bench-memory", h.started, rep.String(), logf)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// measureIdle opens the idle clients to one proxy, reads its RSS, and
// closes them again.
func (e *env) measureIdle(ctx context.Context, name string, p *proc, addr string, logf func(string, ...any)) (memResult, error) {
	o := e.o
	m := memResult{target: name, pid: p.pid()}
	var err error
	if m.base, err = vmRSS(p.pid()); err != nil {
		return m, err
	}
	cfg, err := pgconn.ParseConfig(pgDSN(addr))
	if err != nil {
		return m, err
	}
	cfg.ConnectTimeout = 60 * time.Second
	logf("%s: opening %d connections (RSS before: %s)", name, o.memConns, mib(m.base))

	// The whole step is bounded: the logins, the wait, the closing.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	conns := make([]*pgconn.PgConn, o.memConns)
	var (
		next     atomic.Int64
		failed   atomic.Int64
		errOnce  sync.Once
		firstErr string
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < o.memWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) || sctx.Err() != nil {
					return
				}
				c, err := pgconn.ConnectConfig(sctx, cfg.Copy())
				if err == nil {
					_, err = c.Exec(sctx, "SELECT 1").ReadAll()
					if err != nil {
						c.Close(context.Background())
					}
				}
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err.Error() })
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	m.openTime = time.Since(start)
	for _, c := range conns {
		if c != nil {
			m.opened++
		}
	}
	m.failed, m.firstErr = int(failed.Load()), firstErr
	logf("%s: %d open (%d failed) in %.1f s; waiting %v", name, m.opened, m.failed, m.openTime.Seconds(), o.memWait)
	select {
	case <-time.After(o.memWait):
	case <-sctx.Done():
	}
	if m.loaded, err = vmRSS(p.pid()); err != nil {
		return m, fmt.Errorf("%s: %w (did it exit? %s)", name, err, p.logTail(2000))
	}
	if name == targetSwitchyard {
		m.extra = e.switchyardRuntimeStats()
	}
	logf("%s: RSS with %d idle clients: %s (%.1f KiB per client)", name, m.opened, mib(m.loaded), m.perConn()/1024)

	// Close them all, a few at a time, each with a time limit.
	var cwg sync.WaitGroup
	sem := make(chan struct{}, o.memWorkers)
	for _, c := range conns {
		if c == nil {
			continue
		}
		cwg.Add(1)
		sem <- struct{}{}
		go func(c *pgconn.PgConn) {
			defer cwg.Done()
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.Close(cctx)
			ccancel()
			<-sem
		}(c)
	}
	cwg.Wait()
	time.Sleep(2 * time.Second)
	m.after, _ = vmRSS(p.pid())
	return m, nil
}

// switchyardRuntimeStats reads a few Go runtime gauges from Switchyard's
// /metrics, to tell live heap from memory the runtime holds on to.
func (e *env) switchyardRuntimeStats() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.syAdminAddr+"/metrics", nil)
	if err != nil {
		return ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	want := map[string]string{
		"go_goroutines":                 "goroutines",
		"go_memstats_heap_inuse_bytes":  "heap in use",
		"go_memstats_stack_inuse_bytes": "stacks",
		"go_memstats_sys_bytes":         "obtained from the OS",
	}
	got := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 {
			if label, ok := want[f[0]]; ok {
				got[f[0]] = label
				var v float64
				if _, err := fmt.Sscan(f[1], &v); err == nil {
					if f[0] == "go_goroutines" {
						got[f[0]] = fmt.Sprintf("%s %.0f", label, v)
					} else {
						got[f[0]] = fmt.Sprintf("%s %s", label, mib(int64(v)))
					}
				}
			}
		}
	}
	var parts []string
	for _, k := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes"} {
		if s, ok := got[k]; ok {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "Go runtime (from /metrics): " + strings.Join(parts, ", ")
}
