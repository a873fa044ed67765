package mysqlwire

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// Sharded clusters: the router's shard plan (router.ShardRouting) in
// MySQL's terms.
//
// A sharded cluster's map (shard.Map), key extractor and analyzer are
// built at (re)load and published behind one atomic pointer; the map's
// version grows with each reload that changes the cluster's sharding.
// When a command needs a server connection and the session holds none,
// the proxy extracts the statement's shard key (COM_QUERY text, or the
// prepared text with the COM_STMT_EXECUTE parameter values), and leases a
// connection on that shard: on its primary, or on one of its replicas for
// a read, under the same rules (and the same read-your-writes bookkeeping,
// per shard primary) as the unsharded read/write split (route.go). A
// transaction stays where it started: a later statement that names another
// shard is refused (1235) without being sent, so the server transaction
// is untouched and goes on. A BEGIN sent while the session holds no
// connection is answered by the proxy and sent ahead of the first
// statement that leases one (lazy BEGIN): the shard is not known before.
//
// Where each statement goes (one shard, any shard, a scatter, a write on
// every shard, refused and why) is the router's plan
// (router.ShardRouting.PlanShard), the same for PostgreSQL; this file
// reads the parameter values the plan asks for and turns the plan into
// leases, refusals and scatters. A scatter or an all-shard write runs in
// autocommit only, outside a transaction.
//
// Not done: session pooling and pinned sessions cannot move between
// shards (a statement for another shard is refused, as in a
// transaction); USE of another database is refused.

// shardSess is a session's sharding state. Session goroutine only.
type shardSess struct {
	rt  *router.ShardCluster // the map of the current lease
	cur int                  // the shard of the current lease (valid while leased)
	// next and nextRT: where the next lease goes, as the current command
	// decided (nextRT nil: shard 0 of the map in force).
	next   int
	nextRT *router.ShardCluster
	// begin is a BEGIN the proxy answered (a COM_QUERY packet), sent
	// ahead of the next statement that leases a connection; beginAn is
	// its analysis (a read-write BEGIN keeps the transaction on the
	// primary).
	begin   []byte
	beginAn *router.Analysis
	// setTxn is a SET TRANSACTION (for the next transaction) answered by
	// the proxy, sent ahead of the BEGIN or the statement it is for.
	setTxn []byte
	// holdBegin: the current statement names no table (SELECT 1, SET,
	// SHOW): it runs without the BEGIN, which waits for one that names a
	// shard.
	holdBegin bool
	// pools caches the primary pools of rt's shards (no global lock per
	// lease); poolsRT is the map they belong to.
	pools   []*pool.Pool
	poolsRT *router.ShardCluster
	// keyTypes answers router.KeyTypes for planRT, the map the statement
	// being planned uses; made once per session (shardLogin), so planning
	// allocates no closure per statement.
	keyTypes router.KeyTypes
	planRT   *router.ShardCluster
}

// shardLogin sets up a client of a sharded cluster. Its pool key is
// shard 0's; each lease swaps in the address and database of its shard.
func (s *session) shardLogin(c *config.Cluster) error {
	rt := s.srv.Shards.Get(c.Name)
	if rt == nil {
		return mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "database '%s' is sharded but has no usable shard map (see the proxy's log)", c.Database)
	}
	s.sh = &shardSess{rt: rt, cur: -1}
	s.sh.keyTypes = func(table, column string) (bool, error) { return s.keyType(s.sh.planRT, table, column) }
	s.homeDB, s.db = "", "" // each shard's connections open in the shard's database
	s.key.Addr, s.key.DB = rt.Primary(0), rt.Database(0)
	return nil
}

// shardKey is the pool key of shard i's primary.
func (s *session) shardKey(rt *router.ShardCluster, i int) frontend.PoolKey {
	k := s.key
	k.Addr, k.DB = rt.Primary(i), rt.Database(i)
	k.Settings, k.Cluster = rt.Cluster.Settings.PoolIdentity(), rt.Cluster.Name
	return k
}

// shardPool returns the pool of shard i's primary; nil when the proxy is
// shutting down.
func (s *session) shardPool(rt *router.ShardCluster, i int) *pool.Pool {
	sh := s.sh
	if sh.poolsRT != rt {
		sh.pools, sh.poolsRT = make([]*pool.Pool, rt.Map.Shards()), rt
		s.replicaPools = nil
	}
	if p := sh.pools[i]; p != nil {
		return p
	}
	p, err := s.srv.poolFor(s.shardKey(rt, i))
	if err != nil {
		return nil
	}
	sh.pools[i] = p
	return p
}

// shardRoute is route for a sharded session: the shard the command
// decided, its primary or (for a read) one of its replicas.
func (s *session) shardRoute() (*pool.Pool, *replica.Node, *replica.Runtime) {
	rt, i := s.sh.nextRT, s.sh.next
	if rt == nil {
		if rt = s.srv.Shards.Get(s.cluster.Name); rt == nil {
			s.primaryPool = nil
			return nil, nil, nil
		}
		i = 0
	}
	p := s.shardPool(rt, i)
	ryw := s.routing.ShardWrites.For(rt.Primary(i))
	s.primaryPool, s.leaseRYW = p, ryw
	s.sh.rt, s.sh.cur = rt, i
	crt := rt.Replicas[i]
	if p == nil || crt == nil || s.cur == nil {
		return p, nil, crt
	}
	if s.sh.begin != nil && s.sh.beginAn != nil {
		return s.routeWith(crt, s.shardKey(rt, i), p, ryw, s.sh.beginAn, s.cur)
	}
	return s.routeWith(crt, s.shardKey(rt, i), p, ryw, s.cur)
}

// shardRekey follows a reload that closed the pools of the session's
// shards (nothing was sent yet): the command decided for shard i of
// nextRT runs on the pool the config in force has for that shard's
// primary and database. A reload that only changes sharding keys or
// connection settings (a new map version) moves no row, so that is the
// same shard; one that puts another server or database at i ends it.
func (s *session) shardRekey() bool {
	rt := s.srv.Shards.Get(s.cluster.Name)
	if rt == nil || s.sh.nextRT != nil && !rt.SameServer(s.sh.nextRT, s.sh.next) {
		return false
	}
	if u := s.srv.Config().User(s.user.Name); u != nil {
		s.mu.Lock() // KILL reads key
		s.key.User, s.key.Password = u.ServerCreds()
		_, s.key.Pass = passHash(s.key.Password)
		s.mu.Unlock()
	}
	s.sh.poolsRT, s.sh.pools, s.replicaPools = nil, nil, nil
	if s.sh.nextRT != nil {
		s.sh.nextRT = rt
	}
	p, _, _ := s.shardRoute()
	s.primaryPool = p
	return p != nil
}

// analyzer is the read/write analyzer of the session's cluster, nil when
// routing does not depend on it (no replicas).
func (s *session) analyzer() *router.Analyzer {
	if s.sh != nil {
		if rt := s.srv.Shards.Get(s.cluster.Name); rt != nil {
			return rt.Analyzer
		}
		return nil
	}
	return s.srv.Ans.For(s.cluster.Name)
}

// refusal is the router's refusal of a statement in MySQL's codes.
func refusal(t router.Refused) *mysqlproto.SQLError {
	if t.Code == router.RefuseSyntax {
		return mysqlproto.NewSQLError(1064, "42000", "%s", t.Reason)
	}
	return mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "%s", t.Reason)
}

// shardMap is the map the current command is decided with: the lease's
// while the session holds one (a transaction finishes on the map it
// started with), else the one in force.
func (s *session) shardMap() (*router.ShardCluster, error) {
	if s.lease != nil && s.sh.rt != nil {
		return s.sh.rt, nil
	}
	rt := s.srv.Shards.Get(s.cluster.Name)
	if rt == nil {
		return nil, mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "database '%s' is no longer sharded; reconnect", s.cluster.Database)
	}
	return rt, nil
}

// shardStatement decides where the current statement (text sql, with
// param for a COM_STMT_EXECUTE) goes (router.ShardRouting.PlanShard) and
// prepares the lease for it. It returns the target when the statement
// needs several shards (the caller scatters it or writes on every shard),
// nil when it goes on to one lease. The error is an *mysqlproto.SQLError
// to answer with; nothing was sent.
func (s *session) shardStatement(sql string, params router.Params) (*router.ShardKeys, *router.ShardCluster, router.ShardTarget, error) {
	rt, err := s.shardMap()
	if err != nil {
		return nil, nil, nil, err
	}
	sess := router.ShardSession{Key: s.routing.Key, Lease: -1, NoAutocommit: s.noAutocommit,
		InTxn: s.sh.begin != nil || s.keeps() != router.HoldNone}
	if s.lease != nil {
		sess.Lease, sess.Hold, sess.Pin = s.sh.cur, s.keeps(), s.pinned
		if s.inTx {
			sess.Hold = router.HoldTxn // a transaction says it first
		}
	}
	s.sh.planRT, sess.KeyTypes = rt, s.sh.keyTypes
	t, sk, err := rt.PlanShard(sql, params, sess)
	if r, ok := t.(router.Refused); ok && err == nil {
		err = refusal(r)
	}
	if err != nil {
		s.srv.Shards.Refused(s.cluster.Name)
		return sk, rt, nil, err
	}
	if s.lease != nil {
		if _, anyShard := t.(router.AnyShard); !anyShard {
			rt.Routed(s.sh.cur)
		}
		return sk, rt, nil, nil
	}
	s.sh.holdBegin = false
	switch t := t.(type) {
	case router.AnyShard:
		s.sh.next, s.sh.nextRT = 0, rt
		if s.sh.begin != nil || s.sh.setTxn != nil {
			w := router.FirstWord(sql)
			s.sh.holdBegin = sk.Kind == router.StmtSelect && (sk.Table == "" || sk.Catalog) || w == "set" || w == "show"
		}
		rt.Routed(0)
		return sk, rt, nil, nil
	case router.OneShard:
		s.sh.next, s.sh.nextRT = t.Shard, rt
		rt.Routed(t.Shard)
		return sk, rt, nil, nil
	}
	// Several shards: a SELECT to merge, or a write on each shard in its
	// own transaction, where the plan allows it (router.ShardSession).
	return sk, rt, t, nil
}

// keyType answers router.KeyTypes: whether table's key column holds
// numbers, from the shards' information_schema (every shard has the same
// schema), once per table and map. It asks on a connection of its own,
// from a shard other than the one whose connection the session holds (so
// a pool of one connection cannot wait on itself), and never on the
// session's: the lookup must not change what the client's connection
// reports (FOUND_ROWS(), warnings). A table or column the server does not
// know is not numeric (the statement fails there), and not cached.
func (s *session) keyType(rt *router.ShardCluster, table, column string) (bool, error) {
	if numeric, ok := rt.KeyType(table, column); ok {
		return numeric, nil
	}
	if rt.Map.Shards() < 2 || strings.ContainsAny(table+column+rt.Database(0)+rt.Database(1), "\\'") {
		return false, nil // one shard holds every key; or a name not to quote
	}
	i := 0
	if s.lease != nil && s.sh.cur == 0 {
		i = 1
	}
	p := s.shardPool(rt, i)
	if p == nil {
		return false, mysqlproto.NewSQLError(mysqlproto.ERServerShutdown, "08S01", "switchyard is shutting down")
	}
	ls, err := p.Get(s.specCtx)
	if err != nil {
		return false, fmt.Errorf("looking up the type of %s.%s: %w", table, column, err)
	}
	be := ls.Conn.(*backend)
	q := "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '" + rt.Database(i) +
		"' AND TABLE_NAME = '" + table + "' AND COLUMN_NAME = '" + column + "'"
	typ, found, err := be.queryValue(context.Background(), q)
	p.Put(ls, !be.broken)
	if err != nil {
		return false, fmt.Errorf("looking up the type of %s.%s: %w", table, column, err)
	}
	if !found {
		return false, nil
	}
	switch strings.ToLower(typ) {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "float", "double", "real":
		rt.SetKeyType(table, column, true)
		return true, nil
	}
	rt.SetKeyType(table, column, false)
	return false, nil
}

// shardLocalTxn answers BEGIN / START TRANSACTION while the session holds
// no server connection, and the COMMIT or ROLLBACK of such a BEGIN that
// nothing followed. Anything else: handled is false.
func (s *session) shardLocalTxn(text []byte, rs uint8) (handled bool, err error) {
	if s.lease != nil || s.mode == config.PoolSession {
		return false, nil
	}
	switch router.FirstWord(unsafeString(text)) { // the fast path: no copy
	case "begin", "start", "commit", "rollback", "set":
	default:
		return false, nil
	}
	switch _, act := router.LocalTxn(router.MySQL, string(text), s.sh.begin != nil); act {
	case router.LocalSetNext:
		// For the next transaction, whose shard is not known yet.
		s.sh.setTxn = append([]byte{mysqlproto.ComQuery}, text...)
	case router.LocalBegin:
		s.sh.begin = append([]byte{mysqlproto.ComQuery}, text...)
		s.sh.beginAn = nil
		if an := s.analyzer(); an != nil {
			s.sh.beginAn = an.Analyze(string(text))
		}
	case router.LocalEnd:
		s.sh.begin, s.sh.beginAn, s.sh.setTxn = nil, nil, nil
	default:
		return false, nil
	}
	return true, s.sendOK(rs)
}

// withBegin wraps a command builder so that a BEGIN the proxy answered is
// sent first, on the connection the lease got.
func (s *session) withBegin(build func(*backend) ([]byte, error)) func(*backend) ([]byte, error) {
	if s.sh == nil {
		return build
	}
	return func(be *backend) ([]byte, error) {
		if s.sh.holdBegin {
			return build(be)
		}
		for _, q := range [][]byte{s.sh.setTxn, s.sh.begin} {
			if q == nil {
				continue
			}
			if err := be.roundTrip(q); err != nil {
				var se *mysqlproto.ServerError
				if errors.As(err, &se) {
					s.sh.begin, s.sh.beginAn, s.sh.setTxn = nil, nil, nil
					return nil, se
				}
				return nil, serverIOError{err}
			}
			// The statement may fail, and an ERR carries no status: the
			// lease must stay for the transaction the BEGIN opened.
			s.inTx = be.status&mysqlproto.StatusInTrans != 0
		}
		s.sh.begin, s.sh.beginAn, s.sh.setTxn = nil, nil, nil
		return build(be)
	}
}

// Status is the MySQL front end's section of the admin /status view: the
// shard maps in force (frontend.Runtime.ShardStatus).
func (s *Server) Status() any { return map[string]any{"shards": s.ShardStatus()} }
