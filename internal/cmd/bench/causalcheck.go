package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	_ "github.com/lib/pq"
)

// The -causal-check mode is issue 14's bar tried from outside: the
// Switchyard binary with a config that sets nothing about read-your-writes
// (lag_poll_interval, max_replica_lag and causal_read_timeout at their
// defaults), real drivers over TCP, and the proxy's /metrics read over
// HTTP, for PostgreSQL (two streaming replicas) and MariaDB (one GTID
// replica):
//
//   - mix: 20 writers, each a connection of its own, in rounds of one
//     INSERT and nine reads of the writer's own rows (SELECT count(*) ...
//     WHERE client = <its id>), every statement autocommit. Every read
//     must count every row the writer inserted (0 stale), nothing may
//     fail, and at least half of the reads must be served by replicas.
//   - paused: one replica's replay paused (pg_wal_replay_pause(), STOP
//     SLAVE SQL_THREAD), 20 clients write a row and read it back at once,
//     -causal-check-pairs each (10,000 pairs), -causal-check-runs times;
//     for PostgreSQL once more per run with SET synchronous_commit = off
//     on each client. 0 stale.
//   - token: a writer's position carried to another connection (SHOW
//     switchyard.write_position on the writer, SET switchyard.read_after
//     on the reader, which reads the row right after), with healthy
//     replicas and with one replica paused. 0 stale.
//   - wait: the paused run again after a reload that sets
//     causal_read_timeout, so that reads wait for a replica.
//
// Every phase compares what the clients saw with what /metrics says
// happened (switchyard_causal_reads_total by served_by,
// switchyard_causal_checks_failed_total, switchyard_causal_read_wait_seconds).
// The driver varies by client: PostgreSQL pgx with its statement cache,
// pgx's simple protocol, lib/pq; MariaDB go-sql-driver/mysql's text
// protocol (interpolateParams) and its prepared statements.

const checkTable = "t_ryw_check"

// causalCheckDefaults is the checker's [defaults]: what a new user's
// config has (pool_size 20, lag_poll_interval 50ms, max_replica_lag 1s,
// causal_read_timeout 0).
const causalCheckDefaults = `pool_mode       = "transaction"
connect_timeout = "10s"
`

// rywConn is one client connection of the checker, whatever its driver.
type rywConn interface {
	// insert writes row id of client c.
	insert(ctx context.Context, id int64, c int) error
	// countClient counts client c's rows, and says which server port
	// answered.
	countClient(ctx context.Context, c int) (n, port int, err error)
	// countID counts the rows with id.
	countID(ctx context.Context, id int64) (n, port int, err error)
	// command runs a statement the proxy answers (switchyard.*) or a SET,
	// in the simple/text protocol.
	command(ctx context.Context, q string) error
	// value runs a one-value query in the simple/text protocol.
	value(ctx context.Context, q string) (string, error)
	close()
}

type pgxConn struct {
	c *pgx.Conn
}

func (p pgxConn) insert(ctx context.Context, id int64, c int) error {
	_, err := p.c.Exec(ctx, "INSERT INTO "+checkTable+" VALUES ($1, $2)", id, c)
	return err
}

func (p pgxConn) countClient(ctx context.Context, c int) (n, port int, err error) {
	err = p.c.QueryRow(ctx, "SELECT count(*), inet_server_port() FROM "+checkTable+" WHERE client = $1", c).Scan(&n, &port)
	return
}

func (p pgxConn) countID(ctx context.Context, id int64) (n, port int, err error) {
	err = p.c.QueryRow(ctx, "SELECT count(*), inet_server_port() FROM "+checkTable+" WHERE id = $1", id).Scan(&n, &port)
	return
}

func (p pgxConn) command(ctx context.Context, q string) error {
	_, err := p.c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
	return err
}

func (p pgxConn) value(ctx context.Context, q string) (v string, err error) {
	err = p.c.QueryRow(ctx, q, pgx.QueryExecModeSimpleProtocol).Scan(&v)
	return
}

func (p pgxConn) close() { p.c.Close(context.Background()) }

// sqlConn is a database/sql connection (lib/pq, go-sql-driver/mysql).
type sqlConn struct {
	db    *sql.DB
	c     *sql.Conn
	mysql bool
}

func (s sqlConn) q(pg string) string {
	if !s.mysql {
		return pg
	}
	pg = strings.ReplaceAll(pg, "inet_server_port()", "@@port")
	for _, p := range []string{"$1", "$2"} {
		pg = strings.ReplaceAll(pg, p, "?")
	}
	return pg
}

func (s sqlConn) insert(ctx context.Context, id int64, c int) error {
	_, err := s.c.ExecContext(ctx, s.q("INSERT INTO "+checkTable+" VALUES ($1, $2)"), id, c)
	return err
}

func (s sqlConn) countClient(ctx context.Context, c int) (n, port int, err error) {
	err = s.c.QueryRowContext(ctx, s.q("SELECT count(*), inet_server_port() FROM "+checkTable+" WHERE client = $1"), c).Scan(&n, &port)
	return
}

func (s sqlConn) countID(ctx context.Context, id int64) (n, port int, err error) {
	err = s.c.QueryRowContext(ctx, s.q("SELECT count(*), inet_server_port() FROM "+checkTable+" WHERE id = $1"), id).Scan(&n, &port)
	return
}

func (s sqlConn) command(ctx context.Context, q string) error {
	_, err := s.c.ExecContext(ctx, q)
	return err
}

func (s sqlConn) value(ctx context.Context, q string) (v string, err error) {
	err = s.c.QueryRowContext(ctx, q).Scan(&v)
	return
}

func (s sqlConn) close() { s.c.Close(); s.db.Close() }

// checkProto is one protocol's side of the checker.
type checkProto struct {
	name     string // PostgreSQL, MariaDB
	label    string // the metrics' protocol label
	primary  int    // the primary's port
	paused   int    // the port of the replica whose replay a paused phase stops
	drivers  []string
	connect  func(ctx context.Context, driver string) (rywConn, error)
	setup    func() error // (re)creates the table on the primary
	caughtUp func() error // waits until every replica has replayed everything
	pause    func() error
	resume   func() error
}

func (e *env) checkProtos() []*checkProto {
	pg := &checkProto{
		name: "PostgreSQL", label: "postgres", primary: e.pg.Primary.Port, paused: e.pg.Replicas[0].Port,
		drivers: []string{"pgx", "pgx-simple", "lib/pq"},
		connect: func(ctx context.Context, driver string) (rywConn, error) {
			switch driver {
			case "lib/pq":
				db, err := sql.Open("postgres", pgDSN(e.syPGAddr))
				if err != nil {
					return nil, err
				}
				c, err := db.Conn(ctx)
				if err != nil {
					db.Close()
					return nil, err
				}
				return sqlConn{db: db, c: c}, nil
			}
			cfg, err := pgx.ParseConfig(pgDSN(e.syPGAddr))
			if err != nil {
				return nil, err
			}
			if driver == "pgx-simple" {
				cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
			}
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return pgxConn{c}, nil
		},
		setup: func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := pgx.Connect(ctx, pgDSN(e.pg.Primary.Addr()))
			if err != nil {
				return err
			}
			defer c.Close(ctx)
			_, err = c.Exec(ctx, "DROP TABLE IF EXISTS "+checkTable+"; CREATE TABLE "+checkTable+" (id bigint PRIMARY KEY, client int); CREATE INDEX ON "+checkTable+" (client)", pgx.QueryExecModeSimpleProtocol)
			return err
		},
		caughtUp: func() error { return e.pg.WaitReplicasCaughtUp(30 * time.Second) },
		pause:    func() error { return e.pg.Exec(e.pg.Replicas[0], dbName, "SELECT pg_wal_replay_pause()") },
		resume:   func() error { return e.pg.Exec(e.pg.Replicas[0], dbName, "SELECT pg_wal_replay_resume()") },
	}
	my := &checkProto{
		name: "MariaDB", label: "mysql", primary: e.maria.Primary.Port, paused: e.maria.Replicas[0].Port,
		drivers: []string{"text", "prepared"},
		connect: func(ctx context.Context, driver string) (rywConn, error) {
			dsn := dbUser + ":" + dbPassword + "@tcp(" + e.syMyAddr + ")/" + dbName
			if driver == "text" {
				dsn += "?interpolateParams=true"
			}
			db, err := sql.Open("mysql", dsn)
			if err != nil {
				return nil, err
			}
			c, err := db.Conn(ctx)
			if err != nil {
				db.Close()
				return nil, err
			}
			return sqlConn{db: db, c: c, mysql: true}, nil
		},
		setup: func() error {
			if err := e.maria.Exec(e.maria.Primary, "DROP TABLE IF EXISTS "+dbName+"."+checkTable); err != nil {
				return err
			}
			return e.maria.Exec(e.maria.Primary, "CREATE TABLE "+dbName+"."+checkTable+" (id BIGINT PRIMARY KEY, client INT, KEY (client))")
		},
		caughtUp: func() error { return e.maria.WaitReplicasCaughtUp(30 * time.Second) },
		pause:    func() error { return e.maria.Exec(e.maria.Replicas[0], "STOP SLAVE SQL_THREAD") },
		resume:   func() error { return e.maria.Exec(e.maria.Replicas[0], "START SLAVE SQL_THREAD") },
	}
	return []*checkProto{pg, my}
}

// tally is what the clients of one phase saw.
type tally struct {
	reads, stale, errors, onReplica, onPaused atomic.Int64
	firstErr                                  atomic.Value // string
	firstStale                                atomic.Value // string
}

func (t *tally) fail(format string, a ...any) {
	t.errors.Add(1)
	t.firstErr.CompareAndSwap(nil, fmt.Sprintf(format, a...))
}

func (t *tally) read(p *checkProto, n, want, port int, what string) {
	t.reads.Add(1)
	if port != p.primary {
		t.onReplica.Add(1)
	}
	if port == p.paused {
		t.onPaused.Add(1)
	}
	if n != want {
		t.stale.Add(1)
		t.firstStale.CompareAndSwap(nil, fmt.Sprintf("%s: %d rows, want %d (port %d)", what, n, want, port))
	}
}

func (t *tally) String() string {
	reads := t.reads.Load()
	s := fmt.Sprintf("%d reads, %d stale, %d errors, %.1f%% served by replicas", reads, t.stale.Load(), t.errors.Load(),
		100*float64(t.onReplica.Load())/float64(max(reads, 1)))
	if v, ok := t.firstErr.Load().(string); ok {
		s += "; first error: " + v
	}
	if v, ok := t.firstStale.Load().(string); ok {
		s += "; first stale read: " + v
	}
	return s
}

// causalMetrics are the read-your-writes metrics of one protocol.
type causalMetrics struct {
	replica, checked, afterWait, primary float64 // switchyard_causal_reads_total by served_by
	checksFailed                         float64
	waits, waitSum                       float64 // switchyard_causal_read_wait_seconds
	waitBuckets                          map[string]float64
	present                              map[string]bool // metric families seen
}

func (m causalMetrics) needed() float64 { return m.replica + m.checked + m.afterWait + m.primary }

func (m causalMetrics) sub(o causalMetrics) causalMetrics {
	d := causalMetrics{
		replica: m.replica - o.replica, checked: m.checked - o.checked, afterWait: m.afterWait - o.afterWait,
		primary: m.primary - o.primary, checksFailed: m.checksFailed - o.checksFailed,
		waits: m.waits - o.waits, waitSum: m.waitSum - o.waitSum, waitBuckets: map[string]float64{}, present: m.present,
	}
	for le, v := range m.waitBuckets {
		d.waitBuckets[le] = v - o.waitBuckets[le]
	}
	return d
}

func (m causalMetrics) String() string {
	s := fmt.Sprintf("needed a position %.0f: replica %.0f, replica_checked %.0f, replica_after_wait %.0f, primary %.0f; checks failed %.0f; waits %.0f",
		m.needed(), m.replica, m.checked, m.afterWait, m.primary, m.checksFailed, m.waits)
	if m.waits > 0 {
		s += fmt.Sprintf(" (mean %v)", time.Duration(m.waitSum/m.waits*float64(time.Second)).Round(time.Microsecond))
	}
	return s
}

// scrapeCausal reads /metrics from the proxy's admin listener.
func scrapeCausal(ctx context.Context, adminAddr, protocol string) (causalMetrics, error) {
	m := causalMetrics{waitBuckets: map[string]float64{}, present: map[string]bool{}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/metrics", nil)
	if err != nil {
		return m, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "switchyard_causal_") {
			continue
		}
		name, labels, v, ok := parseSample(line)
		if !ok || labels["protocol"] != protocol {
			continue
		}
		m.present[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")] = true
		switch name {
		case "switchyard_causal_reads_total":
			switch labels["served_by"] {
			case "replica":
				m.replica += v
			case "replica_checked":
				m.checked += v
			case "replica_after_wait":
				m.afterWait += v
			case "primary":
				m.primary += v
			default:
				return m, fmt.Errorf("unknown served_by in %q", line)
			}
		case "switchyard_causal_checks_failed_total":
			m.checksFailed += v
		case "switchyard_causal_read_wait_seconds_count":
			m.waits += v
		case "switchyard_causal_read_wait_seconds_sum":
			m.waitSum += v
		case "switchyard_causal_read_wait_seconds_bucket":
			m.waitBuckets[labels["le"]] += v
		}
	}
	return m, sc.Err()
}

// parseSample parses one sample line of the Prometheus text format
// (name{a="x",b="y"} value); label values here hold no quotes or commas.
func parseSample(line string) (name string, labels map[string]string, v float64, ok bool) {
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", nil, 0, false
	}
	head := line[:sp]
	labels = map[string]string{}
	if i := strings.IndexByte(head, '{'); i >= 0 {
		name = head[:i]
		for _, kv := range strings.Split(strings.TrimSuffix(head[i+1:], "}"), ",") {
			k, val, found := strings.Cut(kv, "=")
			if found {
				labels[k] = strings.Trim(val, `"`)
			}
		}
	} else {
		name = head
	}
	return name, labels, v, true
}

// consistency lists where /metrics disagrees with what the clients of a
// phase saw (t), all of whose reads needed a position.
func consistency(t *tally, d causalMetrics, waitAllowed bool) []string {
	var bad []string
	for _, f := range []string{"switchyard_causal_reads_total", "switchyard_causal_read_wait_seconds"} {
		if !d.present[f] {
			bad = append(bad, f+" missing from /metrics")
		}
	}
	reads := float64(t.reads.Load())
	onReplica := float64(t.onReplica.Load())
	if d.needed() != reads {
		bad = append(bad, fmt.Sprintf("reads that needed a position: metrics %.0f, clients %.0f", d.needed(), reads))
	}
	if got := d.replica + d.checked + d.afterWait; got != onReplica {
		bad = append(bad, fmt.Sprintf("served by replicas: metrics %.0f, clients %.0f", got, onReplica))
	}
	if d.primary != reads-onReplica {
		bad = append(bad, fmt.Sprintf("served by the primary: metrics %.0f, clients %.0f", d.primary, reads-onReplica))
	}
	if !waitAllowed && d.checksFailed > d.primary {
		bad = append(bad, fmt.Sprintf("%.0f checks failed but %.0f reads went to the primary", d.checksFailed, d.primary))
	}
	if d.waits < d.afterWait {
		bad = append(bad, fmt.Sprintf("%.0f reads served after a wait, %.0f waits in the histogram", d.afterWait, d.waits))
	}
	if d.waitBuckets["+Inf"] != d.waits {
		bad = append(bad, fmt.Sprintf("wait histogram: +Inf bucket %.0f, count %.0f", d.waitBuckets["+Inf"], d.waits))
	}
	if d.waits > 0 && (d.waitSum <= 0 || d.waitSum/d.waits > 5) {
		bad = append(bad, fmt.Sprintf("wait histogram: sum %.6fs over %.0f waits", d.waitSum, d.waits))
	}
	return bad
}

// checkReport collects the checker's verdicts.
type checkReport struct {
	b        strings.Builder
	failures []string
}

func (r *checkReport) line(format string, a ...any) {
	fmt.Fprintf(&r.b, format+"\n", a...)
}

func (r *checkReport) fail(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	r.failures = append(r.failures, s)
	r.line("  - FAIL: %s", s)
}

// phase runs clients goroutines of work (each with a connection of its
// own, the drivers taken in turn) and returns what they saw and the
// metrics' change over it.
func (e *env) phase(ctx context.Context, p *checkProto, clients int, driverOf func(c int) int, work func(ctx context.Context, c int, conn rywConn, t *tally)) (*tally, causalMetrics, error) {
	before, err := scrapeCausal(ctx, e.syAdminAddr, p.label)
	if err != nil {
		return nil, causalMetrics{}, err
	}
	t := &tally{}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			driver := p.drivers[driverOf(c)%len(p.drivers)]
			conn, err := p.connect(ctx, driver)
			if err != nil {
				t.fail("client %d (%s): connect: %v", c, driver, err)
				return
			}
			defer conn.close()
			work(ctx, c, conn, t)
		})
	}
	wg.Wait()
	after, err := scrapeCausal(ctx, e.syAdminAddr, p.label)
	if err != nil {
		return nil, causalMetrics{}, err
	}
	return t, after.sub(before), ctx.Err()
}

func byClient(c int) int { return c }

// mix is the healthy-replicas run: rounds of one write and nine reads of
// the writer's own rows.
func (e *env) mix(ctx context.Context, p *checkProto, clients, rounds int) (*tally, causalMetrics, error) {
	return e.phase(ctx, p, clients, byClient, func(ctx context.Context, c int, conn rywConn, t *tally) {
		written := 0
		for i := range rounds {
			if err := conn.insert(ctx, int64(c)*1_000_000+int64(i), c); err != nil {
				t.fail("client %d insert: %v", c, err)
				return
			}
			written++
			for range 9 {
				n, port, err := conn.countClient(ctx, c)
				if err != nil {
					t.fail("client %d read: %v", c, err)
					return
				}
				t.read(p, n, written, port, fmt.Sprintf("client %d after %d writes", c, written))
			}
		}
	})
}

// pairs is the write-then-read run: each client inserts a row and reads
// it back at once, pairs times; init runs on each connection first.
func (e *env) pairs(ctx context.Context, p *checkProto, clients, pairs int, base int64, init string) (*tally, causalMetrics, error) {
	return e.phase(ctx, p, clients, byClient, func(ctx context.Context, c int, conn rywConn, t *tally) {
		if init != "" {
			if err := conn.command(ctx, init); err != nil {
				t.fail("client %d %s: %v", c, init, err)
				return
			}
		}
		for i := range pairs {
			id := base + int64(c)*1_000_000 + int64(i)
			if err := conn.insert(ctx, id, c); err != nil {
				t.fail("client %d insert: %v", c, err)
				return
			}
			n, port, err := conn.countID(ctx, id)
			if err != nil {
				t.fail("client %d read: %v", c, err)
				return
			}
			t.read(p, n, 1, port, fmt.Sprintf("client %d row %d", c, id))
			if i == 0 && strings.HasPrefix(init, "SET synchronous_commit") {
				// The setting holds on whichever server connection serves
				// the client (a read, possibly on a replica).
				v, err := conn.value(ctx, "SELECT current_setting('synchronous_commit') || ' ' || inet_server_port()")
				setting, port, _ := strings.Cut(v, " ")
				if err != nil || setting != "off" {
					t.fail("client %d: synchronous_commit = %q, %v", c, v, err)
					return
				}
				n, _ := strconv.Atoi(port)
				t.read(p, 0, 0, n, "") // a read after a write too, for the metrics
			}
		}
	})
}

// tokens: client 2k writes and hands its position to client 2k+1, which
// reads the row right after with SET switchyard.read_after.
func (e *env) tokens(ctx context.Context, p *checkProto, clients, pairs int, base int64) (*tally, causalMetrics, error) {
	type handoff struct {
		id    int64
		token string
	}
	chans := make([]chan handoff, clients/2)
	for i := range chans {
		chans[i] = make(chan handoff)
	}
	// Writer and reader of a pair use the same driver, the pairs each
	// driver in turn.
	return e.phase(ctx, p, clients, func(c int) int { return c / 2 }, func(ctx context.Context, c int, conn rywConn, t *tally) {
		ch := chans[c/2]
		if c%2 == 0 {
			defer close(ch)
			for i := range pairs {
				id := base + int64(c)*1_000_000 + int64(i)
				if err := conn.insert(ctx, id, c); err != nil {
					t.fail("writer %d insert: %v", c, err)
					return
				}
				tok, err := conn.value(ctx, "SHOW switchyard.write_position")
				if err != nil {
					t.fail("writer %d SHOW switchyard.write_position: %v", c, err)
					return
				}
				select {
				case ch <- handoff{id, tok}:
				case <-ctx.Done():
					return
				}
			}
			return
		}
		for h := range ch {
			if !strings.Contains(h.token, "@") {
				t.fail("reader %d: token %q", c, h.token)
				continue
			}
			if err := conn.command(ctx, "SET switchyard.read_after = '"+h.token+"'"); err != nil {
				t.fail("reader %d SET switchyard.read_after = '%s': %v", c, h.token, err)
				continue
			}
			n, port, err := conn.countID(ctx, h.id)
			if err != nil {
				t.fail("reader %d read: %v", c, err)
				continue
			}
			t.read(p, n, 1, port, fmt.Sprintf("reader %d row %d with token %s", c, h.id, h.token))
		}
	})
}

// reload rewrites the proxy's config with defaults and sends it SIGHUP,
// then waits until /metrics shows... nothing to wait for: the next
// lease reads the new settings; a short pause lets the reload finish.
func (e *env) reloadCausal(defaults string) error {
	if err := writeCausalConfig(e, defaults); err != nil {
		return err
	}
	if err := syscall.Kill(e.sy.pid(), syscall.SIGHUP); err != nil {
		return err
	}
	time.Sleep(time.Second)
	return nil
}

func runCausalCheck(ctx context.Context, e *env, stdout, stderr io.Writer) error {
	o := e.o
	h := header{title: "Switchyard read-your-writes check (issue 14's bar, from outside)", started: time.Now(), versions: e.versions}
	h.loadStart, _ = loadAvg()
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", a...) }
	if err := startCausal(ctx, e, causalCheckDefaults, logf); err != nil {
		return err
	}
	r := &checkReport{}
	const clients = 20
	for _, p := range e.checkProtos() {
		if o.checkOnly != "" && o.checkOnly != p.label {
			continue
		}
		if err := p.setup(); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if err := p.caughtUp(); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		time.Sleep(200 * time.Millisecond) // a few polls: the replicas are known healthy
		r.line("\n## %s (drivers, by client in turn: %s)\n", p.name, strings.Join(p.drivers, ", "))

		// The mix, healthy replicas.
		logf("%s: mix, %d writers x %d rounds (load %s)", p.name, clients, o.checkRounds, loadNow())
		t, d, err := e.mix(ctx, p, clients, o.checkRounds)
		if err != nil {
			return err
		}
		share := float64(t.onReplica.Load()) / float64(max(t.reads.Load(), 1))
		r.line("- mix, healthy replicas, %d writers x %d rounds of 1 write + 9 reads of their own rows (load %s): %s", clients, o.checkRounds, loadNow(), t)
		r.line("  - metrics: %s", d)
		if t.stale.Load() != 0 || t.errors.Load() != 0 {
			r.fail("%s mix: %d stale, %d errors", p.name, t.stale.Load(), t.errors.Load())
		}
		if share < 0.5 {
			r.fail("%s mix: %.1f%% of reads on replicas, want at least 50%%", p.name, 100*share)
		}
		for _, b := range consistency(t, d, false) {
			r.fail("%s mix metrics: %s", p.name, b)
		}

		// The token, healthy replicas.
		base := int64(100_000_000)
		t, d, err = e.tokens(ctx, p, clients, o.checkPairs/5, base)
		if err != nil {
			return err
		}
		r.line("- token (SHOW switchyard.write_position on the writer, SET switchyard.read_after on another connection, read at once), healthy replicas, %d pairs: %s", t.reads.Load(), t)
		r.line("  - metrics: %s", d)
		if t.stale.Load() != 0 || t.errors.Load() != 0 || t.reads.Load() == 0 {
			r.fail("%s token: %d reads, %d stale, %d errors", p.name, t.reads.Load(), t.stale.Load(), t.errors.Load())
		}
		for _, b := range consistency(t, d, false) {
			r.fail("%s token metrics: %s", p.name, b)
		}

		// One replica paused.
		inits := []string{""}
		if p.label == "postgres" {
			inits = append(inits, "SET synchronous_commit = off")
		}
		for run := range o.checkRuns {
			for _, init := range inits {
				base += 100_000_000
				what := "paused"
				if init != "" {
					what += ", " + init
				}
				if err := e.pausedRun(ctx, p, r, what, func() (*tally, causalMetrics, error) {
					return e.pairs(ctx, p, clients, o.checkPairs/clients, base, init)
				}, logf, run); err != nil {
					return err
				}
			}
		}
		base += 100_000_000
		if err := e.pausedRun(ctx, p, r, "paused, token", func() (*tally, causalMetrics, error) {
			return e.tokens(ctx, p, clients, o.checkPairs/5, base)
		}, logf, 0); err != nil {
			return err
		}
	}

	// causal_read_timeout: reads wait for a replica.
	if err := e.reloadCausal(causalCheckDefaults + "causal_read_timeout = \"200ms\"\n"); err != nil {
		return err
	}
	r.line("\n## causal_read_timeout = 200ms (after a reload)\n")
	for _, p := range e.checkProtos() {
		if o.checkOnly != "" && o.checkOnly != p.label {
			continue
		}
		base := int64(900_000_000)
		if err := e.pausedRun(ctx, p, r, p.name+" paused, with a wait", func() (*tally, causalMetrics, error) {
			return e.pairs(ctx, p, clients, 50, base, "")
		}, logf, 0); err != nil {
			return err
		}
	}

	h.loadEnd, _ = loadAvg()
	h.extraLines = []string{
		fmt.Sprintf("Switchyard built from this tree, config defaults for read-your-writes (lag_poll_interval 50ms, max_replica_lag 1s, causal_read_timeout 0 until the last part). PostgreSQL: primary and 2 streaming replicas; MariaDB: primary and 1 GTID replica. Paused runs: %d write-then-read pairs each, %d runs.", o.checkPairs/clients*clients, o.checkRuns),
	}
	var b strings.Builder
	b.WriteString(h.String())
	b.WriteString(r.b.String())
	if len(r.failures) == 0 {
		b.WriteString("\nVerdict: every line of the bar holds.\n")
	} else {
		fmt.Fprintf(&b, "\nVerdict: %d failures:\n", len(r.failures))
		for _, f := range r.failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	b.WriteString(e.proxyLogNote())
	fmt.Fprint(stdout, b.String())
	if err := writeReport(o.out, "causal-check", h.started, b.String(), logf); err != nil {
		return err
	}
	if len(r.failures) > 0 {
		return errors.New("the read-your-writes bar does not hold")
	}
	return nil
}

// pausedRun runs a phase with p's replica paused (resumed and caught up
// after), and reports it.
func (e *env) pausedRun(ctx context.Context, p *checkProto, r *checkReport, what string, run func() (*tally, causalMetrics, error), logf func(string, ...any), n int) error {
	if err := p.caughtUp(); err != nil {
		return err
	}
	if err := p.pause(); err != nil {
		return err
	}
	logf("%s: %s, run %d (load %s)", p.name, what, n+1, loadNow())
	t, d, err := run()
	if rerr := p.resume(); err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	r.line("- %s, run %d (load %s): %s; %d on the paused replica", what, n+1, loadNow(), t, t.onPaused.Load())
	r.line("  - metrics: %s", d)
	if t.stale.Load() != 0 || t.errors.Load() != 0 || t.reads.Load() == 0 {
		r.fail("%s %s run %d: %d reads, %d stale, %d errors", p.name, what, n+1, t.reads.Load(), t.stale.Load(), t.errors.Load())
	}
	for _, b := range consistency(t, d, strings.Contains(what, "wait")) {
		r.fail("%s %s run %d metrics: %s", p.name, what, n+1, b)
	}
	if strings.Contains(what, "wait") && p.label == "postgres" && d.afterWait == 0 {
		r.fail("%s %s: no read was served by a replica after a wait", p.name, what)
	}
	return p.caughtUp()
}

func loadNow() string {
	s, _ := loadAvg()
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return s
}
