package pgwire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/lagmon"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/pgframe"
)

// Read/write splitting.
//
// At the first message of a transaction the proxy decides where it runs
// (router.Decide over the analyses of the request). Reads go to a replica
// the replica set picks: healthy, within max_replica_lag, and, for a
// client that has written, one that has replayed the primary's position
// sampled after that write committed (read-your-writes). Everything else,
// and every read no replica qualifies for, goes to the primary.

// pgProbe reads a node's WAL position over a connection of its own, so
// the lag monitor never competes with clients for pool slots.
type pgProbe struct {
	addr, user, password, db string
	settings                 config.Settings
	primary                  bool
	mu                       sync.Mutex
	conn                     *pgconn.PgConn
}

func (p *pgProbe) Probe(ctx context.Context) (lagmon.Position, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.conn.IsClosed() {
		cfg, err := serverConfig(p.addr, p.settings, "application_name=switchyard_lagmon")
		if err != nil {
			return nil, err
		}
		cfg.User, cfg.Password, cfg.Database = p.user, p.password, p.db
		if p.conn, err = pgconn.ConnectConfig(ctx, cfg); err != nil {
			return nil, probeError(downgradeError(p.addr, p.settings, err))
		}
	}
	sql := "SELECT pg_catalog.pg_last_wal_replay_lsn()::text"
	if p.primary {
		// The insert position, not pg_current_wal_lsn() (the write
		// position): with synchronous_commit = off a commit is
		// acknowledged before its record is written, so a position
		// sampled after the acknowledgment covers the commit only if it
		// is the insert position (read-your-writes relies on it).
		sql = "SELECT pg_catalog.pg_current_wal_insert_lsn()::text"
	}
	res := p.conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		p.conn.Close(context.Background())
		p.conn = nil
		return nil, probeError(res.Err)
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 || res.Rows[0][0] == nil {
		return nil, fmt.Errorf("%s: no WAL position (is it a replica?)", p.addr)
	}
	lsn, err := lagmon.ParseLSN(string(res.Rows[0][0]))
	if p.primary && lsn%walPageSize == walShortPageHeader {
		// The insert position right after a page header: a replica that
		// has replayed up to the page boundary has everything before it,
		// and may stop there (an idle primary writes nothing further).
		lsn -= walShortPageHeader
	}
	return lsn, err
}

// WAL page geometry (PostgreSQL's defaults, XLOG_BLCKSZ and
// SizeOfXLogShortPHD): the insert position never points inside a header.
const (
	walPageSize        = 8192
	walShortPageHeader = 24
)

// probeError marks an error of a server that did not answer (no
// ErrorResponse) as lagmon.ErrUnreachable: the lag monitor then knows the
// primary is down rather than refusing to tell its position. A server
// that answers only to say it is going or not yet there (57P01-57P03:
// shutting down, crashed, starting up) serves nothing
// either: during a fast shutdown, which can take a second under load, it
// still accepts connections to refuse them with 57P03, and taking that
// for a live primary would leave the replicas' lag unknown and send reads
// to it, where they fail.
func probeError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case codeAdminShutdown, codeCrashShutdown, codeCannotConnectNow:
		default:
			return err
		}
	}
	return lagmon.Unreachable(err)
}

// Close closes the probe's connection when its runtime stops.
func (p *pgProbe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		p.conn.Close(context.Background())
		p.conn = nil
	}
	return nil
}

// newProbe is the lag monitor's prober of a node of cl (replica.Specs).
func newProbe(cl *config.Cluster, addr string, primary bool, user, password string) lagmon.Prober {
	return &pgProbe{addr: addr, user: user, password: password, db: clusterDB(cl), settings: cl.Settings, primary: primary}
}

// batchAnalyses gathers the verdicts on the statements of the request that
// opens a transaction: held extended-protocol messages and the current one.
func (c *clientConn) batchAnalyses(typ byte, raw []byte) []*router.Analysis {
	as := c.asBuf[:0]
	add := func(typ byte, m []byte) {
		switch typ {
		case 'F':
			// A fast-path function call (large objects, say): its OID does
			// not say whether it writes, so it may.
			as = append(as, fnCallAnalysis)
		case 'Q':
			as = append(as, c.queryAnalysis(m))
		case 'P':
			if _, rest, ok := pgframe.CString(m[5:]); ok {
				if q, _, ok := pgframe.CString(rest); ok {
					as = append(as, c.an.Analyze(unsafeString(q)))
				}
			}
		case 'B':
			if _, rest, ok := pgframe.CString(m[5:]); ok {
				if stmt, _, ok := pgframe.CString(rest); ok && len(stmt) > 0 {
					if g := c.stmts[string(stmt)]; g != nil {
						as = append(as, c.stmtAnalysis(g))
					}
				} else if ok && c.unnamedAn != nil && !pgframe.HasParse(c.pending) {
					as = append(as, c.unnamedAn)
				}
			}
		}
	}
	for b := c.pending; len(b) >= 5; {
		n := int(binary.BigEndian.Uint32(b[1:])) + 1
		add(b[0], b[:n])
		b = b[n:]
	}
	add(typ, raw)
	c.asBuf = as
	return as
}

// fnCallAnalysis is the verdict on a FunctionCall message.
var fnCallAnalysis = &router.Analysis{Class: router.Write, Statements: 1, MustPrimary: true, Reason: "FunctionCall"}

// route picks the pool for the transaction that starts with this request.
func (c *clientConn) route(typ byte, raw []byte) (*poolEntry, *replica.Node) {
	rt := c.rt
	c.reads.Forget() // a read riding this lease counts where Pick says, or nowhere
	if rt == nil || c.keeps() != router.HoldNone {
		c.leaseWrites = true
		return c.primary, nil
	}
	as := c.batchAnalyses(typ, raw)
	why, toReplica := router.PlanRead(rt, c.pref(), as)
	c.leaseWrites = !toReplica
	if !toReplica {
		return c.primary, nil
	}
	n := c.reads.Pick(rt, &c.routing.Writes, c.routing.ReadAfter, why, &c.mu, c.canCheck(typ, as), c.executes(typ)) // with a position check when it can (causal.go)
	if n == nil {
		return c.primary, nil
	}
	e := c.replicaPools[n.Name]
	if e == nil {
		e = c.srv.poolFor(c.poolCl, c.poolUser, n.Name, c.primaryDB())
		if c.replicaPools == nil {
			c.replicaPools = make(map[string]*poolEntry)
		}
		c.replicaPools[n.Name] = e
	}
	return e, n
}

// repool follows a reload: the session's cluster and user as the config
// in force describes them, and their pools (a reload that changes a
// cluster's settings replaces its pools and closes the old ones). It
// reports whether the database is still served as it was at login
// (sharded or not); when not, the session keeps what it has and the
// next lease says why.
func (c *clientConn) repool() bool {
	cfg := c.srv.Config()
	cl, u := cfg.Cluster(config.Postgres, c.cluster.Database), cfg.User(c.user.Name)
	if u == nil && cl != nil && cl.Settings.AuthUser != "" && c.srv.pass.of(c.user) != nil {
		u = c.user // a passthrough user stays one while the cluster has auth_user
	}
	if cl == nil || u == nil || (cl.Sharding != nil) != (c.sh != nil) {
		return false
	}
	var primary *poolEntry
	var rt *replica.Runtime
	if c.sh != nil {
		srt := c.srv.Shards.Get(cl.Name)
		if srt == nil {
			return false
		}
		primary = c.srv.poolFor(srt.Cluster, u, srt.Primary(0), srt.Database(0))
	} else {
		n := frontend.Nodes(cl)[0]
		primary, rt = c.srv.poolFor(cl, u, n.Addr, n.DB), c.srv.Rts.Get(cl.Name)
	}
	c.mu.Lock()
	c.cfgSeen, c.poolCl, c.poolUser, c.primary = cfg, cl, u, primary
	if an := c.srv.Ans.For(cl.Name); an != nil && an != c.an {
		// Other function lists: the request in hand is judged again.
		c.an, c.qRaw = an, nil
	}
	clear(c.replicaPools) // pools of the config now in force
	if c.sh == nil {
		c.rt = rt
	}
	c.mu.Unlock()
	return true
}

func (c *clientConn) primaryDB() string { return clusterDB(c.poolCl) }

// leaseEndedLocked books the end of a lease for routing: the replica's
// load, and the moment of a write for read-your-writes.
func (c *clientConn) leaseEndedLocked() {
	if c.leaseNode != nil {
		c.rt.Set.Done(c.leaseNode) // sharded: c.rt is the lease's shard's
		c.leaseNode = nil
	} else if c.leaseWrites && c.sh != nil {
		c.shardWroteLocked(time.Now())
	} else if c.leaseWrites && c.rt != nil {
		c.routing.Writes.Wrote(time.Now())
	}
	c.leaseWrites = false
}

// proxyCommandParse reports whether a Parse message prepares one of the
// proxy's own commands (SET/RESET/SHOW switchyard.*).
func proxyCommandParse(raw []byte) bool {
	_, rest, ok := pgframe.CString(raw[5:])
	if !ok {
		return false
	}
	text, _, ok := pgframe.CString(rest)
	return ok && router.IsProxyCommand(unsafeString(text))
}

// switchyardCommand answers the session commands of the proxy itself
// (router.ParseProxyCommand, applied by router.SessionRouting.Apply): SET
// switchyard.target, SET switchyard.read_after, SHOW
// switchyard.write_position, and for a sharded database SET and SHOW
// switchyard.shard_key.
func (c *clientConn) switchyardCommand(text string) bool {
	if !router.IsProxyCommand(text) {
		return false
	}
	cmd := router.ParseProxyCommand(text)
	env := router.SessionEnv{
		Cluster: c.cluster.Name, Database: c.cluster.Database, Config: c.srv.Config(),
		Sharded: c.sh != nil, Lock: &c.mu,
		ParsePosition: func(s string) (lagmon.Position, error) { return lagmon.ParseLSN(s) },
	}
	if c.sh == nil {
		env.Replicas = c.rt // a sharded client's c.rt is its lease's shard's
	} else {
		env.Shards = c.srv.Shards.Get(c.cluster.Name)
	}
	ans, cerr := c.routing.Command(cmd, env, c.reads.SetWantPosition, c.log) // its position handed on: causal.go
	var out []byte
	switch {
	case ans.Pass:
		return false // the server says the name is unknown
	case cerr != nil:
		out, _ = toErrorResponse(commandError(cerr)).Encode(nil)
	case ans.Show:
		out = pgframe.AppendCommandComplete(pgframe.AppendTextValue(nil, ans.Column, ans.Value), "SHOW")
	case cmd.ResetStmt:
		out = pgframe.AppendCommandComplete(nil, "RESET")
	default:
		out = pgframe.AppendCommandComplete(nil, "SET")
	}
	c.answer(out, c.localStatus())
	return true
}

// commandError is a refused proxy command in PostgreSQL's words.
func commandError(e *router.CommandError) *pgError {
	switch e.Kind {
	case router.CmdUnknownName:
		return newError("42704", "unrecognized configuration parameter %q", e.Name)
	case router.CmdNotSharded:
		return newError("42704", "%s: database %q is not sharded", e.Name, e.Database)
	case router.CmdNoLongerSharded:
		return newError(codeFeatureNotSupported, "database %q is no longer sharded; reconnect", e.Database)
	case router.CmdNoPosition:
		return newError("55000", "switchyard: %s", e.Reason)
	case router.CmdTokenSharded:
		return newError(codeFeatureNotSupported, "%s: read-your-writes tokens are not supported on sharded database %q: a session reads its own writes on their shard already; read with /* switchyard:primary */ where another session's writes must show", e.Name, e.Database)
	}
	return newError("22023", "invalid value for %s: %q: %s", e.Name, e.Value, e.Reason)
}
