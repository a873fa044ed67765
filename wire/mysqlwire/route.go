package mysqlwire

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/lagmon"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// Read/write splitting: the router's plan (router.PlanRead) and the
// replica choice (replica.Reads) in MySQL's terms.
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
// replica. The router's scanner (router.MySQLEffects) decides session
// state and pins; the analyzer (a real parser) is the judge of read versus write.
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

// newProbe is the lag monitor's prober of a node of cl (replica.Specs).
func newProbe(cl *config.Cluster, addr string, primary bool, user, password string) lagmon.Prober {
	t, err := frontend.NewServerTLS(cl.Settings, addr)
	if err != nil {
		t = &frontend.ServerTLS{Mode: cl.Settings.ServerTLS, Err: err} // every dial fails with err
	}
	return &gtidProbe{addr: addr, user: user, password: password, primary: primary, tls: t}
}

// parsePosition reads a GTID position in the flavor of rt's primary, as
// its last sample shows (either flavor before one, or without rt).
func parsePosition(rt *replica.Runtime, s string) (lagmon.Position, error) {
	fl := flavorUnknown
	if rt != nil {
		if p, _, _ := rt.Mon.Primary(); p != nil {
			fl = flavorMySQL
			if g, ok := p.(lagmon.GTIDSet); ok && g.MariaDB() {
				fl = flavorMariaDB
			}
		}
	}
	if fl != flavorMySQL {
		if g, err := lagmon.ParseMariaDBGTID(s); err == nil || fl == flavorMariaDB {
			return g, err
		}
	}
	return lagmon.ParseMySQLGTID(s)
}

// gtidProbe reads a node's GTID position over a connection of its own, so
// the lag monitor never competes with clients for pool slots. MariaDB:
// @@gtid_binlog_pos on the primary, @@gtid_slave_pos (what the SQL thread
// has applied) on a replica; MySQL: @@gtid_executed on both.
type gtidProbe struct {
	addr, user, password string
	primary              bool
	tls                  *frontend.ServerTLS

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
			// Not refused by the server, or refused because it is
			// shutting down: down.
			if se := (*mysqlproto.ServerError)(nil); !errors.As(err, &se) || se.Code == mysqlproto.ERServerShutdown {
				err = lagmon.Unreachable(err)
			}
			return nil, err
		}
		p.be = be
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
			err = lagmon.Unreachable(err)
		}
		return nil, fmt.Errorf("%s: %s: %w", p.addr, q, err)
	}
	if mariadb {
		return lagmon.ParseMariaDBGTID(v)
	}
	return lagmon.ParseMySQLGTID(v)
}

// Close closes the probe's connection when its runtime stops.
func (p *gtidProbe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.be != nil {
		p.be.Close()
		p.be = nil
	}
	return nil
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
func (s *session) route() (*pool.Pool, *replica.Node, *replica.Runtime) {
	if s.sh != nil {
		return s.shardRoute()
	}
	if cfg := s.srv.Config(); cfg != s.cfgSeen {
		// A reload: replica pools of the config now in force (a replica
		// that left and came back has a new pool), and the primary's
		// when the cluster's connections changed, with replicas or
		// without (the old pool drains: no transaction may start there).
		s.cfgSeen, s.replicaPools = cfg, nil
		if c := cfg.ClusterByName(s.key.Cluster); c != nil && c.Settings.PoolIdentity() != s.key.Settings {
			s.rekey()
		}
	}
	rt := s.srv.Rts.Get(s.cluster.Name)
	s.primaryPool, s.leaseRYW = s.pool, &s.routing.Writes
	if rt == nil {
		return s.pool, nil, nil
	}
	return s.routeWith(rt, s.key, s.pool, &s.routing.Writes, s.cur)
}

// routeWith is route for one primary (a cluster's or a shard's): key is
// the primary pool's key, primary its pool, ryw the client's writes there,
// as the analyses of the statements that start the transaction.
func (s *session) routeWith(rt *replica.Runtime, key frontend.PoolKey, primary *pool.Pool, ryw *replica.Writes, as ...*router.Analysis) (*pool.Pool, *replica.Node, *replica.Runtime) {
	if len(as) == 0 || as[len(as)-1] == nil || s.mode != config.PoolTransaction || s.pinned != "" || s.noAutocommit || s.hold > 0 || s.diagPrimary {
		return primary, nil, rt
	}
	// A hint or SET switchyard.target = replica does not send a write (or
	// a locking read) where it cannot run: the plan re-checks them.
	why, toReplica := router.PlanRead(rt, s.routing.Pref, as)
	if !toReplica {
		return primary, nil, rt
	}
	// A read of an unsharded cluster can carry a check (causal.go). A
	// COM_STMT_PREPARE goes where its statement would run, with the same
	// position (it must see the client's tables), but it reads nothing:
	// the read-your-writes metrics count its COM_STMT_EXECUTE.
	n := s.reads.Pick(rt, ryw, s.routing.ReadAfter, why, nil, s.sh == nil, !s.preparing)
	if n == nil {
		return primary, nil, rt
	}
	rk := replicaKey{addr: n.Name, db: key.DB}
	p := s.replicaPools[rk]
	if p == nil {
		k := key
		k.Addr = n.Name
		var err error
		if p, err = s.srv.poolFor(k); err != nil {
			rt.Set.Done(n)
			rt.Fallback("no_replica")
			return primary, nil, rt
		}
		if s.replicaPools == nil {
			s.replicaPools = make(map[replicaKey]*pool.Pool)
		}
		s.replicaPools[rk] = p
	}
	return p, n, rt
}

// keeps says why the session keeps its server connection now (the
// checks of "may the connection go back", "may a lost connection's
// command be retried elsewhere", "must it be reset" read it): s.pinned
// says why it is pinned, s.hold what a HoldNextTxn is.
func (s *session) keeps() router.Hold {
	switch {
	case s.mode == config.PoolSession:
		return router.HoldSession
	case s.pinned != "":
		return router.HoldPinned
	case s.inTx:
		return router.HoldTxn
	case s.hold > 0:
		return router.HoldNextTxn
	}
	return router.HoldNone
}

// replicaKey names a session's cached replica pool: a replica may serve
// several shards, each in its own database.
type replicaKey struct{ addr, db string }

// leaseEnded books the end of a lease for routing: the replica's load, the
// moment of a write for read-your-writes, and whether the server left
// autocommit off.
func (s *session) leaseEnded(be *backend) {
	if s.leaseNode != nil {
		s.leaseRT.Set.Done(s.leaseNode)
	} else if s.leaseWrites && s.leaseRYW != nil {
		s.leaseRYW.Wrote(time.Now())
	}
	if be != nil && !be.broken {
		s.noAutocommit = be.status&mysqlproto.StatusAutocommit == 0
	}
	s.leaseNode, s.leaseRT, s.leaseWrites = nil, nil, false
}

// Error numbers of the proxy's own session commands.
const (
	erUnknownSystemVariable = 1193 // ER_UNKNOWN_SYSTEM_VARIABLE, HY000
	erWrongValueForVar      = 1231 // ER_WRONG_VALUE_FOR_VAR, 42000
)

// proxyCommand answers the session commands of the proxy itself
// (router.ParseProxyCommand, applied by router.SessionRouting.Apply): SET
// switchyard.target, SET switchyard.read_after, SHOW
// switchyard.write_position and SET / SHOW switchyard.shard_key. They
// never reach a server, in or out of a transaction (a server would reject
// the names). handled is false for any other text.
func (s *session) proxyCommand(text []byte, rs uint8) (handled bool, err error) {
	if !router.IsProxyCommand(unsafeString(text)) {
		return false, nil
	}
	cmd := router.ParseProxyCommand(string(text))
	if cmd.ResetStmt {
		return false, nil // not MySQL's syntax: the server says so
	}
	rt := s.srv.Rts.Get(s.cluster.Name)
	env := router.SessionEnv{
		Cluster: s.cluster.Name, Database: s.cluster.Database, Config: s.srv.Config(),
		Sharded: s.sh != nil, Replicas: rt,
		ParsePosition: func(v string) (lagmon.Position, error) { return parsePosition(rt, v) },
	}
	if s.sh != nil {
		env.Shards = s.srv.Shards.Get(s.cluster.Name)
	}
	ans, cerr := s.routing.Command(cmd, env, s.reads.SetWantPosition, s.log) // its position handed on: causal.go
	switch {
	case ans.Pass:
		return false, nil
	case cerr != nil:
		return true, s.sendErr(rs, commandError(cerr))
	case ans.Show:
		return true, s.sendValue(rs, ans.Column, ans.Value)
	}
	return true, s.sendOK(rs)
}

// commandError is a refused proxy command in MySQL's words.
func commandError(e *router.CommandError) *mysqlproto.SQLError {
	switch e.Kind {
	case router.CmdUnknownName:
		return mysqlproto.NewSQLError(erUnknownSystemVariable, "HY000", "Unknown system variable '%s'", e.Name)
	case router.CmdNotSharded:
		return mysqlproto.NewSQLError(erWrongValueForVar, "42000", "Variable '%s' can't be set: database '%s' is not sharded", e.Name, e.Database)
	case router.CmdNoLongerSharded:
		return mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "database '%s' is no longer sharded; reconnect", e.Database)
	case router.CmdNoPosition:
		return mysqlproto.NewSQLError(mysqlproto.ERUnknown, "HY000", "switchyard: %s", e.Reason)
	case router.CmdTokenSharded:
		return mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "%s: read-your-writes tokens are not supported on sharded database '%s': a session reads its own writes on their shard already; read with /* switchyard:primary */ where another session's writes must show", e.Name, e.Database)
	}
	return mysqlproto.NewSQLError(erWrongValueForVar, "42000", "Variable '%s' can't be set to the value of '%s': %s", e.Name, e.Value, e.Reason)
}

// unsafeString views b as a string without a copy, for the analyzer (which
// copies what it keeps); b must not change while the string is used.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// sendValue answers with a result set of one row and one text column.
func (s *session) sendValue(seq uint8, column, value string) error {
	col := mysqlproto.AppendTextColumn(nil, column, defaultCollation)
	return s.writeResultSet(seq, [][]byte{col}, [][]byte{mysqlproto.AppendLenEncString(nil, value)})
}
