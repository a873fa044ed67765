package mysqlwire

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/shard"
)

// Sharded clusters, the design of pgwire's shard.go for MySQL.
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
// Statements without a key: a SELECT outside a transaction runs on every
// shard and the rows are merged (shard_scatter.go); an UPDATE or DELETE
// runs on every shard, in autocommit only, when the cluster allows it
// (allow_all_shard_writes); anything else that would silently run on one
// shard only (DDL, several statements in one query, INSERT without the
// key column) is refused unless a /* switchyard:shard=N */ hint names the
// shard. Statements with no table at all (SELECT 1, SET, SHOW) run on the
// shard of the current lease, or on shard 0.
//
// Not done: session pooling and pinned sessions cannot move between
// shards (a statement for another shard is refused, as in a
// transaction); USE of another database is refused.

// shardRT is what a sharded cluster routes with; immutable once published.
type shardRT struct {
	cl *config.Cluster
	m  shard.Map
	x  *router.KeyExtractor
	// an judges read versus write; nil when no shard has replicas.
	an *router.Analyzer
}

type shardRTs map[string]*shardRT

// buildShards builds the maps of cfg's sharded MySQL clusters, keeping the
// map (and version) of a cluster whose sharding did not change. Nothing is
// published; an error leaves everything as it was.
func (s *Server) buildShards(cfg *config.Config) (shardRTs, error) {
	var old shardRTs
	if p := s.shards.Load(); p != nil {
		old = *p
	}
	out := make(shardRTs)
	for i := range cfg.Clusters {
		cl := &cfg.Clusters[i]
		if cl.Protocol != config.MySQL || cl.Sharding == nil {
			continue
		}
		if len(cl.Shards) == 0 {
			return nil, fmt.Errorf("cluster %q: sharded but no shards", cl.Name)
		}
		var an *router.Analyzer
		for _, sh := range cl.Shards {
			if len(sh.Replicas) > 0 {
				an = router.AnalyzerFor(router.MySQL, cl.Settings.WriteFunctions, cl.Settings.ReadOnlyFunctions)
				break
			}
		}
		version := uint64(1)
		if o := old[cl.Name]; o != nil {
			if sameSharding(o.cl, cl) {
				out[cl.Name] = &shardRT{cl: cl, m: o.m, x: o.x, an: an}
				continue
			}
			version = o.m.Version() + 1
		}
		m, err := shard.FromConfig(cl, version)
		if err != nil {
			return nil, err
		}
		out[cl.Name] = &shardRT{cl: cl, m: m, an: an, x: router.NewKeyExtractor(router.MySQL,
			router.KeySpec{Default: cl.Sharding.Key, Tables: cl.Sharding.Tables})}
	}
	return out, nil
}

// sameSharding says whether two configs of a cluster route every key to
// the same shard, on the same primary and database. Replicas may differ:
// they do not move keys.
func sameSharding(a, b *config.Cluster) bool {
	if !reflect.DeepEqual(a.Sharding, b.Sharding) || len(a.Shards) != len(b.Shards) {
		return false
	}
	for i := range a.Shards {
		x, y := a.Shards[i], b.Shards[i]
		x.Replicas, y.Replicas = nil, nil
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

func (s *Server) setShards(m shardRTs) {
	s.shards.Store(&m)
	for name, rt := range m {
		metrics.ShardMapVersion.WithLabelValues("mysql", name).Set(float64(rt.m.Version()))
	}
}

// shardRT returns the routing of a sharded cluster in force, or nil.
func (s *Server) shardRT(name string) *shardRT {
	if p := s.shards.Load(); p != nil {
		return (*p)[name]
	}
	return nil
}

func shardDB(cl *config.Cluster, i int) string {
	if db := cl.Shards[i].Database; db != "" {
		return db
	}
	if cl.ServerDatabase != "" {
		return cl.ServerDatabase
	}
	return cl.Database
}

// shardSess is a session's sharding state. Session goroutine only.
type shardSess struct {
	rt  *shardRT // the map of the current lease
	cur int      // the shard of the current lease (valid while leased)
	// next and nextRT: where the next lease goes, as the current command
	// decided (nextRT nil: shard 0 of the map in force).
	next   int
	nextRT *shardRT
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
	// key is SET switchyard.shard_key: the key of statements without one.
	key *router.KeyRef
	// pools caches the primary pools of rt's shards (no global lock per
	// lease); poolsRT is the map they belong to.
	pools   []*pool.Pool
	poolsRT *shardRT
	// ryw: the client's writes per shard primary address.
	ryw replica.WritesByPrimary
}

// shardLogin sets up a client of a sharded cluster. Its pool key is
// shard 0's; each lease swaps in the address and database of its shard.
func (s *session) shardLogin(c *config.Cluster) error {
	rt := s.srv.shardRT(c.Name)
	if rt == nil {
		return newSQLError(erNotSupportedYet, "42000", "database '%s' is sharded but has no usable shard map (see the proxy's log)", c.Database)
	}
	s.sh = &shardSess{rt: rt, cur: -1}
	s.homeDB, s.db = "", "" // each shard's connections open in the shard's database
	s.key.addr, s.key.db = c.Shards[0].Primary, shardDB(c, 0)
	return nil
}

// shardKey is the pool key of shard i's primary.
func (s *session) shardKey(rt *shardRT, i int) poolKey {
	k := s.key
	k.addr, k.db = rt.cl.Shards[i].Primary, shardDB(rt.cl, i)
	k.settings, k.cluster = rt.cl.Settings.PoolIdentity(), rt.cl.Name
	return k
}

// shardPool returns the pool of shard i's primary; nil when the proxy is
// shutting down.
func (s *session) shardPool(rt *shardRT, i int) *pool.Pool {
	sh := s.sh
	if sh.poolsRT != rt {
		sh.pools, sh.poolsRT = make([]*pool.Pool, rt.m.Shards()), rt
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
		if rt = s.srv.shardRT(s.cluster.Name); rt == nil {
			s.primaryPool = nil
			return nil, nil, nil
		}
		i = 0
	}
	p := s.shardPool(rt, i)
	ryw := s.sh.ryw.For(rt.cl.Shards[i].Primary)
	s.primaryPool, s.leaseRYW = p, ryw
	s.sh.rt, s.sh.cur = rt, i
	crt := s.srv.rts.Get(replica.ShardName(rt.cl.Name, i))
	if p == nil || crt == nil || s.cur == nil {
		return p, nil, crt
	}
	if s.sh.begin != nil && s.sh.beginAn != nil {
		return s.routeWith(crt, s.shardKey(rt, i), p, ryw, s.sh.beginAn, s.cur)
	}
	return s.routeWith(crt, s.shardKey(rt, i), p, ryw, s.cur)
}

// shardRekey follows a reload that closed the pools of the session's
// shards: the map in force takes over if it routes as the one the command
// was decided with.
func (s *session) shardRekey() bool {
	rt := s.srv.shardRT(s.cluster.Name)
	old := s.sh.nextRT
	if old == nil {
		old = s.sh.rt
	}
	if rt == nil || old == nil || rt.m.Version() != old.m.Version() {
		return false
	}
	if u := s.srv.cfg.Load().User(s.user.Name); u != nil {
		s.mu.Lock() // KILL reads key
		s.key.user, s.key.password = serverCreds(u)
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
		if rt := s.srv.shardRT(s.cluster.Name); rt != nil {
			return rt.an
		}
		return nil
	}
	return s.srv.analyzer(s.cluster.Name)
}

// keyVal is one key value from a COM_STMT_EXECUTE parameter.
type keyVal struct {
	null, isInt bool
	n           int64
	b           []byte
}

// paramFunc returns the value of the 1-based parameter n.
type paramFunc func(n int) (keyVal, error)

// decide finds where a statement goes: a shard.Direct, Multi (a key list
// over several shards) or All (no key), or nil when any shard will do.
// The error is an *SQLError to refuse the statement with.
func (rt *shardRT) decide(sql string, param paramFunc, sessKey *router.KeyRef) (*router.ShardKeys, shard.Route, error) {
	sk, err := rt.x.Extract(sql)
	if err != nil {
		return nil, nil, newSQLError(1064, "42000", "%v", err)
	}
	m := rt.m
	switch {
	case sk.ShardHint >= 0:
		if sk.ShardHint >= m.Shards() {
			return sk, nil, newSQLError(erNotSupportedYet, "42000", "switchyard:shard=%d: the cluster has %d shards (0 to %d)", sk.ShardHint, m.Shards(), m.Shards()-1)
		}
		return sk, shard.DirectTo(m, sk.ShardHint), nil
	case sk.Hint != nil:
		i, err := rt.keyShard(*sk.Hint, param)
		if err != nil {
			return sk, nil, err
		}
		return sk, shard.DirectTo(m, i), nil
	case sk.SetsKey:
		return sk, nil, newSQLError(erNotSupportedYet, "42000", "the statement changes the shard key column of %s, which could move rows to another shard; delete and insert the row instead", sk.Table)
	case sk.None:
		if sessKey != nil && (sk.Table != "" || sk.Kind == router.StmtOther) {
			i, err := rt.keyShard(*sessKey, nil)
			if err != nil {
				return sk, nil, err
			}
			return sk, shard.DirectTo(m, i), nil
		}
		switch sk.Kind {
		case router.StmtInsert:
			return sk, nil, newSQLError(erNotSupportedYet, "42000",
				"INSERT on sharded table %s without its shard key (%s: %s): name the key column and give it a value per row",
				sk.Table, rt.keyColumn(sk.Table), sk.NoKeyReason)
		case router.StmtUpdate, router.StmtDelete:
			return sk, shard.AllOf(m), nil
		case router.StmtSelect:
			if sk.Table != "" {
				return sk, shard.AllOf(m), nil
			}
		case router.StmtOther:
			if sk.MultiStatement {
				return sk, nil, newSQLError(erNotSupportedYet, "42000", "several statements in one query on a sharded database: send them one by one, or name the shard with /* switchyard:shard=N */")
			}
			switch w := firstWord(sql); w {
			case "create", "alter", "drop", "truncate", "rename", "call", "load", "grant", "revoke", "optimize", "repair", "analyze":
				return sk, nil, newSQLError(erNotSupportedYet, "42000", "%s on a sharded database would run on one shard only: name it with /* switchyard:shard=N */ (once per shard)", strings.ToUpper(w))
			}
		}
		return sk, nil, nil
	}
	first, multi := -1, false
	var shards []int
	for _, k := range sk.Keys {
		i, err := rt.keyShard(k, param)
		if err != nil {
			return sk, nil, err
		}
		if first >= 0 && i != first {
			multi = true
		}
		if first < 0 {
			first = i
		}
		shards = append(shards, i)
	}
	if first < 0 {
		return sk, nil, nil
	}
	if !multi {
		return sk, shard.DirectTo(m, first), nil
	}
	r, _ := shard.Collect(m, shards)
	if sk.Kind == router.StmtInsert {
		ms := r.(shard.Multi).Shards
		return sk, nil, newSQLError(erNotSupportedYet, "42000", "INSERT into %s writes rows of several shards (%s); insert the rows of each shard separately",
			sk.Table, joinInts(ms))
	}
	return sk, r, nil
}

func joinInts(xs []int) string {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(x))
	}
	return b.String()
}

func (rt *shardRT) keyColumn(table string) string {
	if k, ok := rt.cl.Sharding.Tables[table]; ok {
		return k
	}
	for t, k := range rt.cl.Sharding.Tables {
		if strings.EqualFold(t, table) {
			return k
		}
	}
	return rt.cl.Sharding.Key
}

// keyShard maps one key reference to its shard, reading a parameter of a
// COM_STMT_EXECUTE.
func (rt *shardRT) keyShard(k router.KeyRef, param paramFunc) (int, error) {
	m := rt.m
	var i int
	var err error
	if k.Param == 0 {
		i, err = m.ShardOf(k.Literal)
	} else {
		if param == nil {
			return 0, newSQLError(erNotSupportedYet, "42000", "the shard key is a ? placeholder, which only a prepared statement can fill")
		}
		v, perr := param(k.Param)
		switch {
		case perr != nil:
			return 0, perr
		case v.null:
			err = shard.ErrNullKey
		case v.isInt:
			i, err = m.ShardOfInt(v.n)
		default:
			i, err = m.ShardOfBytes(v.b)
		}
	}
	if err != nil {
		return 0, newSQLError(erNotSupportedYet, "42000", "cannot route by shard key %s: %v", k, err)
	}
	return i, nil
}

// shardMap is the map the current command is decided with: the lease's
// while the session holds one (a transaction finishes on the map it
// started with), else the one in force.
func (s *session) shardMap() (*shardRT, error) {
	if s.lease != nil && s.sh.rt != nil {
		return s.sh.rt, nil
	}
	rt := s.srv.shardRT(s.cluster.Name)
	if rt == nil {
		return nil, newSQLError(erNotSupportedYet, "42000", "database '%s' is no longer sharded; reconnect", s.cluster.Database)
	}
	return rt, nil
}

// shardStatement decides where the current statement (text sql, with
// param for a COM_STMT_EXECUTE) goes and prepares the lease for it. It
// returns the route when the statement needs several shards (the caller
// scatters it or writes on every shard), nil when it goes on to one lease.
// The error is an *SQLError to answer with; nothing was sent.
func (s *session) shardStatement(sql string, param paramFunc) (*router.ShardKeys, *shardRT, shard.Route, error) {
	rt, err := s.shardMap()
	if err != nil {
		return nil, nil, nil, err
	}
	sk, r, err := rt.decide(sql, param, s.sh.key)
	if err != nil {
		s.shardRefused()
		return sk, rt, nil, err
	}
	if s.lease != nil {
		cur := s.sh.cur
		why := "a transaction"
		if !s.inTx {
			why = "a session that keeps its server connection (" + s.keepReason() + ")"
		}
		switch r := r.(type) {
		case nil:
			return sk, rt, nil, nil
		case shard.Direct:
			if r.Shard == cur {
				shardStatementMetric(rt, cur)
				return sk, rt, nil, nil
			}
			s.shardRefused()
			return sk, rt, nil, newSQLError(erNotSupportedYet, "42000",
				"%s is on shard %d, and this statement is for shard %d: it must stay on one shard (commit first, or route the statement with its own connection)", why, cur, r.Shard)
		default:
			s.shardRefused()
			what := "without the shard key"
			if _, ok := r.(shard.Multi); ok {
				what = "with keys on several shards"
			}
			return sk, rt, nil, newSQLError(erNotSupportedYet, "42000",
				"%s %s inside %s would need several shards; it is on shard %d", strings.ToUpper(sk.Kind.String()), what, why, cur)
		}
	}
	s.sh.holdBegin = false
	switch r := r.(type) {
	case nil:
		s.sh.next, s.sh.nextRT = 0, rt
		if s.sh.begin != nil || s.sh.setTxn != nil {
			w := firstWord(sql)
			s.sh.holdBegin = sk.Kind == router.StmtSelect && sk.Table == "" || w == "set" || w == "show"
		}
		shardStatementMetric(rt, 0)
		return sk, rt, nil, nil
	case shard.Direct:
		s.sh.next, s.sh.nextRT = r.Shard, rt
		shardStatementMetric(rt, r.Shard)
		return sk, rt, nil, nil
	}
	if sk.Kind == router.StmtSelect {
		switch {
		case !sk.Mergeable:
			s.shardRefused()
			return sk, rt, nil, newSQLError(erNotSupportedYet, "42000",
				"SELECT on sharded table %s without one shard key (%s) would run on several shards, and its results cannot be merged: %s; add WHERE %s = ... or name the shard with /* switchyard:shard=N */",
				sk.Table, rt.keyColumn(sk.Table), sk.MergeReason, rt.keyColumn(sk.Table))
		case s.noAutocommit:
			s.shardRefused()
			return sk, rt, nil, newSQLError(erNotSupportedYet, "42000", "a SELECT without the shard key runs on every shard, which needs autocommit on")
		}
		return sk, rt, r, nil
	}
	// A write without a key, or with keys on several shards.
	where := "every shard"
	if m, ok := r.(shard.Multi); ok {
		where = "shards " + joinInts(m.Shards)
	}
	switch {
	case !rt.cl.Sharding.AllowAllShardWrites:
		s.shardRefused()
		if _, ok := r.(shard.Multi); ok {
			return sk, rt, nil, newSQLError(erNotSupportedYet, "42000", "%s on %s touches %s; split it per shard (or set allow_all_shard_writes)",
				strings.ToUpper(sk.Kind.String()), sk.Table, where)
		}
		return sk, rt, nil, newSQLError(erNotSupportedYet, "42000",
			"%s on sharded table %s without its shard key (%s: %s) would run on every shard: add WHERE %s = ..., or set allow_all_shard_writes = true in [clusters.sharding]",
			strings.ToUpper(sk.Kind.String()), sk.Table, rt.keyColumn(sk.Table), sk.NoKeyReason, rt.keyColumn(sk.Table))
	case s.sh.begin != nil || s.noAutocommit || s.pinned != "" || s.mode == config.PoolSession:
		s.shardRefused()
		return sk, rt, nil, newSQLError(erNotSupportedYet, "42000", "%s on %s runs on %s, each in its own transaction: only in autocommit, outside a transaction",
			strings.ToUpper(sk.Kind.String()), sk.Table, where)
	}
	return sk, rt, r, nil
}

// keepReason says why the session holds its server connection between
// transactions.
func (s *session) keepReason() string {
	switch {
	case s.pinned != "":
		return "pinned: " + s.pinned
	case s.mode == config.PoolSession:
		return "session pooling"
	}
	return "SET TRANSACTION for the next transaction"
}

// shardRefused books a statement refused by shard routing.
func (s *session) shardRefused() {
	metrics.ShardRefused.WithLabelValues("mysql", s.cluster.Name).Inc()
}

func shardStatementMetric(rt *shardRT, i int) {
	metrics.ShardStatements.WithLabelValues("mysql", rt.cl.Name, strconv.Itoa(i)).Inc()
}

// shardLocalTxn answers BEGIN / START TRANSACTION while the session holds
// no server connection, and the COMMIT or ROLLBACK of such a BEGIN that
// nothing followed. Anything else: handled is false.
func (s *session) shardLocalTxn(text []byte, rs uint8) (handled bool, err error) {
	if s.lease != nil || s.mode == config.PoolSession {
		return false, nil
	}
	w := firstWord(unsafeString(text))
	switch w {
	case "begin", "start", "commit", "rollback", "set":
	default:
		return false, nil
	}
	t := strings.ToLower(strings.Join(strings.Fields(strings.TrimRight(stripLeadingComments(string(text)), "; \t\r\n")), " "))
	switch {
	case strings.HasPrefix(t, "set transaction "):
		// For the next transaction, whose shard is not known yet.
		s.sh.setTxn = append([]byte{comQuery}, text...)
	case t == "begin" || t == "begin work" || strings.HasPrefix(t, "start transaction"):
		s.sh.begin = append([]byte{comQuery}, text...)
		s.sh.beginAn = nil
		if an := s.analyzer(); an != nil {
			s.sh.beginAn = an.Analyze(string(text))
		}
	case s.sh.begin == nil:
		return false, nil
	case t == "commit" || t == "commit work" || t == "rollback" || t == "rollback work":
		s.sh.begin, s.sh.beginAn, s.sh.setTxn = nil, nil, nil
	default:
		return false, nil
	}
	return true, s.sendOK(rs)
}

// stripLeadingComments drops blanks and comments before the first word.
func stripLeadingComments(sql string) string {
	for {
		sql = strings.TrimLeft(sql, " \t\r\n")
		switch {
		case strings.HasPrefix(sql, "--") || strings.HasPrefix(sql, "#"):
			i := strings.IndexByte(sql, '\n')
			if i < 0 {
				return ""
			}
			sql = sql[i+1:]
		case strings.HasPrefix(sql, "/*") && !strings.HasPrefix(sql, "/*!") && !strings.HasPrefix(sql, "/*M!"):
			i := strings.Index(sql, "*/")
			if i < 0 {
				return ""
			}
			sql = sql[i+2:]
		default:
			return sql
		}
	}
}

// firstWord is the first keyword of sql, lower case, after blanks and
// comments.
func firstWord(sql string) string {
	sql = strings.TrimLeft(stripLeadingComments(sql), "(")
	end := 0
	for end < len(sql) && (sql[end] >= 'a' && sql[end] <= 'z' || sql[end] >= 'A' && sql[end] <= 'Z' || sql[end] == '_') {
		end++
	}
	return strings.ToLower(sql[:end])
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
				var se *serverError
				if errors.As(err, &se) {
					s.sh.begin, s.sh.beginAn, s.sh.setTxn = nil, nil, nil
					return nil, se
				}
				return nil, serverIOError{err}
			}
			// The statement may fail, and an ERR carries no status: the
			// lease must stay for the transaction the BEGIN opened.
			s.inTx = be.status&statusInTrans != 0
		}
		s.sh.begin, s.sh.beginAn, s.sh.setTxn = nil, nil, nil
		return build(be)
	}
}

// shardProxyCommand answers SET switchyard.shard_key.
func (s *session) shardProxyCommand(value string, rs uint8) error {
	if s.sh == nil {
		return s.sendErr(rs, newSQLError(erWrongValueForVar, "42000", "Variable 'switchyard.shard_key' can't be set: database '%s' is not sharded", s.cluster.Database))
	}
	if value == "" || strings.EqualFold(value, "default") {
		s.sh.key = nil
		return s.sendOK(rs)
	}
	k := router.SessionKey(value)
	if rt := s.srv.shardRT(s.cluster.Name); rt != nil {
		if _, err := rt.keyShard(k, nil); err != nil {
			return s.sendErr(rs, newSQLError(erWrongValueForVar, "42000", "Variable 'switchyard.shard_key' can't be set to the value of '%s': %v", value, err))
		}
	}
	s.sh.key = &k
	return s.sendOK(rs)
}

// shardMulti runs a statement that needs several shards: a SELECT is
// scattered and merged, a write runs on each shard (allow_all_shard_writes).
func (s *session) shardMulti(sql string, sk *router.ShardKeys, rt *shardRT, r shard.Route, rs uint8, binaryRows bool,
	limitParam func(int) (int64, error), build func(be *backend, withoutOffset bool) ([]byte, error)) error {
	if sk.Kind == router.StmtSelect {
		return s.scatter(rt, sql, sk, r, rs, binaryRows, limitParam, build)
	}
	return s.allShardWrite(rt, r, rs, func(be *backend) ([]byte, error) { return build(be, false) })
}

// Status is the MySQL front end's section of the admin /status view: the
// shard maps in force (version, and per shard its primary, database,
// range and replicas with whether each takes reads now).
func (s *Server) Status() any {
	var shards []map[string]any
	if p := s.shards.Load(); p != nil {
		for name, rt := range *p {
			for i, sh := range rt.cl.Shards {
				row := map[string]any{
					"cluster": name, "kind": rt.cl.Sharding.Kind, "key": rt.cl.Sharding.Key,
					"map_version": rt.m.Version(), "shard": i, "primary": sh.Primary,
					"database": shardDB(rt.cl, i),
				}
				if len(sh.Range) == 2 {
					row["range"] = fmt.Sprintf("[%v, %v)", sh.Range[0], sh.Range[1])
				}
				if crt := s.rts.Get(replica.ShardName(name, i)); crt != nil {
					var reps []map[string]any
					for _, st := range crt.Set.Status() {
						reps = append(reps, map[string]any{"replica": st.Name, "eligible": st.Eligible})
					}
					row["replicas"] = reps
				}
				shards = append(shards, row)
			}
		}
	}
	return map[string]any{"shards": shards}
}
