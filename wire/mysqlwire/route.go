package mysqlwire

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/lagmon"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
)

// Read/write splitting, the design of pgwire's route.go for MySQL.
//
// When a session needs a server connection and holds none (the first
// command of a transaction, or an autocommit statement), the proxy decides
// where it runs: router.Decide over the router analyzer's verdict on the
// statement text (COM_QUERY) or on the prepared statement's text, analysed
// once at COM_STMT_PREPARE (COM_STMT_EXECUTE). Reads go to a replica the
// replica set picks: healthy, within max_replica_lag, and, for a client
// that has written, one that has replayed the primary's GTID position
// sampled after that write committed (read-your-writes). Everything else
// goes to the primary, and so does every read no replica qualifies for.
// Inside a transaction the lease, and so the route, stays until the server
// clears SERVER_STATUS_IN_TRANS.
//
// Always on the primary: session pool mode, pinned sessions (their state
// lives on one connection), sessions with autocommit off (the server says
// so in the status flags: any statement may open a transaction that later
// writes), and commands without statement text (COM_INIT_DB,
// COM_FIELD_LIST, ...). A read-write START TRANSACTION / BEGIN takes the
// whole transaction to the primary; START TRANSACTION READ ONLY may go to a
// replica. The scanner in classify.go still decides session state and
// pins; the analyzer (a real parser) is the judge of read versus write.
//
// A write is remembered per lease: a lease on the primary that ran a
// statement the analyzer calls a write marks the client as having written
// when the lease ends (the server said IN_TRANS is clear, so the write is
// committed or rolled back). Its position is the first primary sample the
// lag monitor takes after that moment.

// Server flavors, learned from a server's version string.
const (
	flavorUnknown int32 = iota
	flavorMariaDB
	flavorMySQL
)

func flavorOf(version string) int32 {
	if strings.Contains(strings.ToLower(version), "mariadb") {
		return flavorMariaDB
	}
	return flavorMySQL
}

// clusterRT is the running machinery of one cluster with replicas: its lag
// monitor, replica set and analyzer. Built on (re)load, stopped when
// replaced.
type clusterRT struct {
	name   string
	mon    *lagmon.Monitor
	set    *replica.Set
	st     config.Settings
	an     *router.Analyzer
	probes []*gtidProbe
	// flavor is the primary's, once a probe has connected.
	flavor atomic.Int32

	// what it was built from, for sameAs
	primary, monUser, monPassword string
	replicas                      []string

	routed    *prometheus.CounterVec
	fallback  prometheus.Counter
	collector prometheus.Collector // lag metrics, once registered
}

func newClusterRT(cl *config.Cluster, cfg *config.Config, log *slog.Logger) *clusterRT {
	if len(cl.Replicas) == 0 || cl.Primary == "" {
		return nil
	}
	user, password := cl.MonitorUser, cl.MonitorPassword
	if user == "" && len(cfg.Users) > 0 {
		user, password = serverCreds(&cfg.Users[0])
	}
	rt := &clusterRT{
		name:        cl.Name,
		st:          cl.Settings,
		an:          router.AnalyzerFor(router.MySQL, cl.Settings.WriteFunctions, cl.Settings.ReadOnlyFunctions),
		primary:     cl.Primary,
		replicas:    slices.Clone(cl.Replicas),
		monUser:     cl.MonitorUser,
		monPassword: cl.MonitorPassword,
	}
	probeTLS := func(addr string) *serverTLS {
		t, err := newServerTLS(cl.Settings, addr)
		if err != nil {
			return &serverTLS{mode: cl.Settings.ServerTLS, err: err} // every dial fails with err
		}
		return t
	}
	prim := &gtidProbe{addr: cl.Primary, user: user, password: password, primary: true, rt: rt, tls: probeTLS(cl.Primary)}
	rt.probes = append(rt.probes, prim)
	probes := make(map[string]lagmon.Prober, len(cl.Replicas))
	for _, r := range cl.Replicas {
		pr := &gtidProbe{addr: r, user: user, password: password, rt: rt, tls: probeTLS(r)}
		rt.probes = append(rt.probes, pr)
		probes[r] = pr
	}
	rt.mon = lagmon.New(prim, probes, lagmon.Options{Interval: cl.Settings.LagPollInterval})
	rt.set = replica.NewSet(cl.Replicas, rt.mon, replica.Options{MaxLag: cl.Settings.MaxReplicaLag})
	rt.routed = metrics.Routed.MustCurryWith(prometheus.Labels{"protocol": "mysql", "cluster": cl.Name})
	rt.fallback = metrics.ReadFallbacks.WithLabelValues("mysql", cl.Name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	rt.mon.PollNow(ctx)
	cancel()
	if err := rt.mon.PrimaryErr(); err != nil {
		log.Warn("lag monitor cannot read the primary's GTID position; reads after writes go to the primary", "cluster", cl.Name, "err", err)
	}
	rt.mon.Start()
	return rt
}

// sameAs says whether rt still describes cl (same nodes and settings).
func (rt *clusterRT) sameAs(cl *config.Cluster) bool {
	return rt.primary == cl.Primary && rt.st == cl.Settings && slices.Equal(rt.replicas, cl.Replicas) &&
		rt.monUser == cl.MonitorUser && rt.monPassword == cl.MonitorPassword
}

// register exposes the monitor's lag metrics on the shared registry. It
// is called after the runtime it replaces has unregistered its own.
func (rt *clusterRT) register() {
	if rt.collector != nil {
		return
	}
	c := rt.mon.Collector(rt.name)
	if err := metrics.Registry.Register(c); err == nil {
		rt.collector = c
	}
}

func (rt *clusterRT) stop() {
	if rt == nil {
		return
	}
	if rt.collector != nil {
		metrics.Registry.Unregister(rt.collector)
		rt.collector = nil
	}
	rt.mon.Stop()
	for _, p := range rt.probes {
		p.close()
	}
}

// parsePosition reads a GTID position in the primary's flavor (or either,
// before a probe has learned it).
func (rt *clusterRT) parsePosition(s string) (lagmon.Position, error) {
	fl := flavorUnknown
	if rt != nil {
		fl = rt.flavor.Load()
	}
	if fl != flavorMySQL {
		if g, err := lagmon.ParseMariaDBGTID(s); err == nil || fl == flavorMariaDB {
			return g, err
		}
	}
	return lagmon.ParseMySQLGTID(s)
}

// buildRuntimes returns the runtimes for cfg's MySQL clusters: old ones
// whose nodes and settings are unchanged are kept, the others built anew;
// stale lists the old ones to stop.
func buildRuntimes(cfg *config.Config, old map[string]*clusterRT, log *slog.Logger) (rts map[string]*clusterRT, stale []*clusterRT) {
	rts = make(map[string]*clusterRT)
	for i := range cfg.Clusters {
		cl := &cfg.Clusters[i]
		if cl.Protocol != config.MySQL {
			continue
		}
		clusters := []config.Cluster{*cl}
		if cl.Sharding != nil {
			clusters = shardClusters(cl) // a runtime per shard with replicas
		}
		for j := range clusters {
			c := &clusters[j]
			if rt, ok := old[c.Name]; ok && rt.sameAs(c) {
				rts[c.Name] = rt
				continue
			}
			if rt := newClusterRT(c, cfg, log); rt != nil {
				rts[c.Name] = rt
			}
		}
	}
	for name, rt := range old {
		if rts[name] != rt {
			stale = append(stale, rt)
		}
	}
	return rts, stale
}

// runtime returns the routing machinery of a cluster; nil when it has no
// replicas. Lock-free: it is asked once per command.
func (s *Server) runtime(cluster string) *clusterRT {
	if m := s.rts.Load(); m != nil {
		return (*m)[cluster]
	}
	return nil
}

// gtidProbe reads a node's GTID position over a connection of its own, so
// the lag monitor never competes with clients for pool slots. MariaDB:
// @@gtid_binlog_pos on the primary, @@gtid_slave_pos (what the SQL thread
// has applied) on a replica; MySQL: @@gtid_executed on both.
type gtidProbe struct {
	addr, user, password string
	primary              bool
	rt                   *clusterRT
	tls                  *serverTLS

	mu     sync.Mutex
	be     *backend
	closed bool
}

func (p *gtidProbe) Probe(ctx context.Context) (lagmon.Position, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("%s: lag monitor stopped", p.addr)
	}
	if p.be == nil {
		be, err := dialBackend(ctx, dialParams{addr: p.addr, user: p.user, password: p.password, collation: defaultCollation, tls: p.tls})
		if err != nil {
			return nil, err
		}
		p.be = be
		if p.primary {
			p.rt.flavor.Store(flavorOf(be.version))
		}
	}
	mariadb := flavorOf(p.be.version) == flavorMariaDB
	q := "SELECT @@GLOBAL.gtid_executed"
	if mariadb {
		q = "SELECT @@GLOBAL.gtid_slave_pos"
		if p.primary {
			q = "SELECT @@GLOBAL.gtid_binlog_pos"
		}
	}
	v, _, err := p.be.queryValue(ctx, q)
	if err != nil {
		if p.be.broken {
			p.be.Close()
			p.be = nil
		}
		return nil, fmt.Errorf("%s: %s: %w", p.addr, q, err)
	}
	if mariadb {
		return lagmon.ParseMariaDBGTID(v)
	}
	return lagmon.ParseMySQLGTID(v)
}

func (p *gtidProbe) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.be != nil {
		p.be.Close()
		p.be = nil
	}
}

// analyze records the verdict on the statement the session is about to
// send (text of a COM_QUERY, or a prepared statement's analysis) for
// routing and for read-your-writes. writes says whether running it counts
// as a write (false for COM_STMT_PREPARE, which only prepares).
func (s *session) setCommand(a *router.Analysis, writes bool) {
	s.cur = a
	s.curWrites = writes && a != nil && a.Class == router.Write
}

// needsAnalysis says whether the verdict on the next command matters: it
// decides a route (no lease yet) or may mark a primary lease as writing.
func (s *session) needsAnalysis() bool {
	return s.lease == nil || (s.leaseNode == nil && !s.leaseWrites)
}

// route picks the pool for the transaction that starts with the current
// command: the primary's, or a replica's with the node the replica set
// picked (the caller ends it with rt.set.Done). It also sets
// s.primaryPool, where a read goes when its replica fails.
func (s *session) route() (*pool.Pool, *replica.Node, *clusterRT) {
	if s.sh != nil {
		return s.shardRoute()
	}
	rt := s.srv.runtime(s.cluster.Name)
	s.primaryPool, s.leaseRYW = s.pool, &s.ryw
	if rt == nil {
		return s.pool, nil, nil
	}
	if rt.st != s.key.settings {
		s.rekey() // a reload changed the cluster: replica pools follow its settings
		s.primaryPool = s.pool
	}
	return s.routeWith(rt, s.key, s.pool, &s.ryw, s.cur)
}

// routeWith is route for one primary (a cluster's or a shard's): key is
// the primary pool's key, primary its pool, ryw the client's writes there,
// as the analyses of the statements that start the transaction.
func (s *session) routeWith(rt *clusterRT, key poolKey, primary *pool.Pool, ryw *rywState, as ...*router.Analysis) (*pool.Pool, *replica.Node, *clusterRT) {
	if len(as) == 0 || as[len(as)-1] == nil || s.mode != config.PoolTransaction || s.pinned != "" || s.noAutocommit || s.hold > 0 {
		return primary, nil, rt
	}
	// A hint or SET switchyard.target = replica does not send a write (or
	// a locking read) where it cannot run: Decide re-checks them.
	t, why := router.Decide(s.pref, as)
	if _, ok := t.(router.Replica); !ok {
		rt.routed.WithLabelValues("primary", why).Inc()
		return primary, nil, rt
	}
	need, known := s.needPosition(rt, ryw)
	var n *replica.Node
	if known {
		n = rt.set.Pick(need)
	}
	if n == nil && (need != nil || !known) && rt.st.CausalReadTimeout > 0 {
		// Wait for the write's position to be sampled and for a replica
		// to replay it, up to causal_read_timeout.
		deadline := time.Now().Add(rt.st.CausalReadTimeout)
		step := max(rt.st.LagPollInterval/2, time.Millisecond)
		for n == nil && time.Now().Before(deadline) {
			time.Sleep(step)
			if need, known = s.needPosition(rt, ryw); known {
				n = rt.set.Pick(need)
			}
		}
	}
	if n == nil {
		reason := "no_replica"
		if !known || need != nil {
			reason = "read_your_writes"
		}
		rt.fallback.Inc()
		rt.routed.WithLabelValues("primary", reason).Inc()
		return primary, nil, rt
	}
	rk := replicaKey{addr: n.Name, db: key.db}
	p := s.replicaPools[rk]
	if p == nil {
		k := key
		k.addr = n.Name
		var err error
		if p, err = s.srv.poolFor(k); err != nil {
			rt.set.Done(n)
			rt.fallback.Inc()
			rt.routed.WithLabelValues("primary", "no_replica").Inc()
			return primary, nil, rt
		}
		if s.replicaPools == nil {
			s.replicaPools = make(map[replicaKey]*pool.Pool)
		}
		s.replicaPools[rk] = p
	}
	rt.routed.WithLabelValues("replica", why).Inc()
	return p, n, rt
}

// replicaKey names a session's cached replica pool: a replica may serve
// several shards, each in its own database.
type replicaKey struct{ addr, db string }

// rywState is what read-your-writes knows of a client's writes on one
// primary (the cluster's, or one shard's).
type rywState struct {
	writeAt  time.Time       // when the client's last write ended, until its position is sampled
	writePos lagmon.Position // the primary position that includes the client's last write
}

// needPosition is what a replica must have replayed to serve this client:
// its last write (read-your-writes) and any position the application
// handed over (SET switchyard.read_after). known is false while the
// position of a write is not sampled yet; the read goes to the primary.
func (s *session) needPosition(rt *clusterRT, ryw *rywState) (need lagmon.Position, known bool) {
	if !ryw.writeAt.IsZero() && rt.st.ReadYourWrites {
		pos, ok := rt.mon.PrimaryAfter(ryw.writeAt)
		if !ok {
			return nil, false
		}
		ryw.writePos, ryw.writeAt = pos, time.Time{}
	}
	need = ryw.writePos
	if s.readAfter != nil && (need == nil || !need.AtLeast(s.readAfter)) {
		need = s.readAfter
	}
	return need, true
}

// leaseEnded books the end of a lease for routing: the replica's load, the
// moment of a write for read-your-writes, and whether the server left
// autocommit off.
func (s *session) leaseEnded(be *backend) {
	if s.leaseNode != nil {
		s.leaseRT.set.Done(s.leaseNode)
	} else if s.leaseWrites && s.leaseRYW != nil {
		s.leaseRYW.writeAt = time.Now()
	}
	if be != nil && !be.broken {
		s.noAutocommit = be.status&statusAutocommit == 0
	}
	s.leaseNode, s.leaseRT, s.leaseWrites = nil, nil, false
}

// writePosition answers SHOW switchyard.write_position: a token the
// application can carry to another connection (SET switchyard.read_after).
// It waits (up to 2s) for the position of the client's last write to be
// sampled.
func (s *session) writePosition() string {
	rt := s.srv.runtime(s.cluster.Name)
	if rt == nil {
		return ""
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, known := s.needPosition(rt, &s.ryw)
		if known || time.Now().After(deadline) {
			if s.ryw.writePos == nil {
				return ""
			}
			return fleet.Token(s.cluster.Name, s.ryw.writePos.String())
		}
		time.Sleep(max(rt.st.LagPollInterval/2, time.Millisecond))
	}
}

// Error numbers of the proxy's own session commands.
const (
	erUnknownSystemVariable = 1193 // ER_UNKNOWN_SYSTEM_VARIABLE, HY000
	erWrongValueForVar      = 1231 // ER_WRONG_VALUE_FOR_VAR, 42000
)

// proxyCommand answers the session commands of the proxy itself:
// SET switchyard.target = 'primary'|'replica'|'auto',
// SET switchyard.read_after = '<GTID position>' (empty: none) and
// SHOW switchyard.write_position. They never reach a server, in or out of
// a transaction (a server would reject the names). handled is false for
// any other text.
func (s *session) proxyCommand(text []byte, rs uint8) (handled bool, err error) {
	if !mayBeProxyCommand(text) {
		return false, nil
	}
	t := strings.TrimSpace(string(text))
	t = strings.TrimSpace(strings.TrimRight(t, "; \t\r\n"))
	lower := strings.ToLower(t)
	switch {
	case lower == "show switchyard.write_position":
		return true, s.sendValue(rs, "write_position", s.writePosition())
	case lower == "show switchyard.shard_key":
		v := ""
		if s.sh != nil && s.sh.key != nil {
			v = fmt.Sprint(s.sh.key.Literal)
		}
		return true, s.sendValue(rs, "shard_key", v)
	case strings.HasPrefix(lower, "set switchyard.") || strings.HasPrefix(lower, "set session switchyard."):
	default:
		return false, nil
	}
	name, value := parseProxySet(t)
	switch name {
	case "switchyard.target":
		p, ok := router.ParsePreference(strings.ToLower(value))
		if !ok {
			return true, s.sendErr(rs, newSQLError(erWrongValueForVar, "42000",
				"Variable 'switchyard.target' can't be set to the value of '%s' (primary, replica or auto)", value))
		}
		s.pref = p
	case "switchyard.shard_key":
		return true, s.shardProxyCommand(value, rs)
	case "switchyard.read_after":
		if value == "" || strings.EqualFold(value, "default") {
			s.readAfter = nil
			break
		}
		tok, terr := s.parseToken(value)
		if terr != nil {
			return true, s.sendErr(rs, newSQLError(erWrongValueForVar, "42000",
				"Variable 'switchyard.read_after' can't be set to the value of '%s': %v", value, terr))
		}
		pos, perr := s.srv.runtime(s.cluster.Name).parsePosition(tok)
		if perr != nil {
			return true, s.sendErr(rs, newSQLError(erWrongValueForVar, "42000",
				"Variable 'switchyard.read_after' can't be set to the value of '%s': not a position from SHOW switchyard.write_position (%v)", value, perr))
		}
		s.readAfter = pos
	default:
		return true, s.sendErr(rs, newSQLError(erUnknownSystemVariable, "HY000", "Unknown system variable '%s'", name))
	}
	return true, s.sendOK(rs)
}

// mayBeProxyCommand is the allocation-free test in front of proxyCommand:
// SET or SHOW, optionally SESSION, then "switchyard.".
func mayBeProxyCommand(b []byte) bool {
	word := func() []byte {
		for len(b) > 0 && isSpace(b[0]) {
			b = b[1:]
		}
		i := 0
		for i < len(b) && !isSpace(b[i]) {
			i++
		}
		w := b[:i]
		b = b[i:]
		return w
	}
	w := word()
	if !bytes.EqualFold(w, []byte("set")) && !bytes.EqualFold(w, []byte("show")) {
		return false
	}
	w = word()
	if bytes.EqualFold(w, []byte("session")) {
		w = word()
	}
	return len(w) > len("switchyard.") && bytes.EqualFold(w[:len("switchyard.")], []byte("switchyard."))
}

// unsafeString views b as a string without a copy, for the analyzer (which
// copies what it keeps); b must not change while the string is used.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// parseProxySet reads "SET [SESSION] switchyard.x = v" (or := v); quotes
// around v are removed.
func parseProxySet(t string) (name, value string) {
	rest := strings.TrimSpace(t[len("set"):])
	if len(rest) > 8 && strings.EqualFold(rest[:8], "session ") {
		rest = strings.TrimSpace(rest[8:])
	}
	i := strings.IndexAny(rest, " \t=:")
	if i < 0 {
		return strings.ToLower(rest), ""
	}
	name = strings.ToLower(rest[:i])
	rest = strings.TrimSpace(rest[i:])
	rest = strings.TrimPrefix(rest, ":")
	rest = strings.TrimSpace(strings.TrimPrefix(rest, "="))
	if len(rest) >= 2 && (rest[0] == '\'' || rest[0] == '"' || rest[0] == '`') && rest[len(rest)-1] == rest[0] {
		rest = rest[1 : len(rest)-1]
	}
	return name, rest
}

// sendValue answers with a result set of one row and one text column.
func (s *session) sendValue(seq uint8, column, value string) error {
	deof := s.caps&capDeprecateEOF != 0
	b := appendLenEnc(s.scratch[:0], 1)
	var err error
	if seq, err = s.writePacket(seq, b); err != nil {
		return err
	}
	b = appendLenEncString(s.scratch[:0], "def")
	b = appendLenEncString(b, "") // schema
	b = appendLenEncString(b, "") // table
	b = appendLenEncString(b, "") // org_table
	b = appendLenEncString(b, column)
	b = appendLenEncString(b, "") // org_name
	b = append(b, 0x0c)
	b = append(b, defaultCollation, 0)
	b = append(b, 0, 0, 1, 0) // column length 65536
	b = append(b, 0xfd)       // MYSQL_TYPE_VAR_STRING
	b = append(b, 0, 0, 0x1f) // flags; decimals (31: not fixed)
	b = append(b, 0, 0)       // filler
	if seq, err = s.writePacket(seq, b); err != nil {
		return err
	}
	if !deof {
		if seq, err = s.writePacket(seq, appendEOF(s.scratch[:0], s.status())); err != nil {
			return err
		}
	}
	if seq, err = s.writePacket(seq, appendLenEncString(s.scratch[:0], value)); err != nil {
		return err
	}
	if deof {
		_, err = s.writePacket(seq, appendOK(s.scratch[:0], s.caps, hdrEOF, 0, 0, s.status(), 0))
	} else {
		_, err = s.writePacket(seq, appendEOF(s.scratch[:0], s.status()))
	}
	return err
}
