package pgwire

import (
	"encoding/binary"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/shard"
	"github.com/switchyard/switchyard/wire/pgframe"
)

// Sharded clusters.
//
// A sharded cluster's map (shard.Map) and key extractor are built at
// (re)load and published behind one atomic pointer; the map's version is
// bumped by each reload that changes the sharding of the cluster. At the
// first request of a transaction (acquire) the proxy extracts the shard key
// of every statement in the request (simple Query text, or the Parse texts
// and Bind values of an extended batch), checks they agree on one shard,
// and leases that shard's primary. The transaction then stays there: a
// later statement that maps to another shard is refused (0A000) without
// being sent, so the server transaction is untouched. A BEGIN sent on its
// own is answered by the proxy and sent ahead of the first statement that
// names a shard (lazy BEGIN). SELECTs without a key outside a lease scatter
// to every shard (shard_scatter.go), in the simple and the extended
// protocol. Reads go to caught-up replicas of their shard where the
// shard has some (shard_replica.go).
//
// Where each statement goes (one shard, any shard, a scatter, a write on
// every shard, refused and why) is the router's plan
// (router.ShardRouting.PlanShard), the same for MySQL; this file reads the
// bind values the plan asks for (bindParams) and turns the plan into
// leases, refusals and scatters.

// clientShard is a client's sharding state. Main loop only.
type clientShard struct {
	rt    *router.ShardCluster // the routing of the current lease
	cur   int                  // the shard of the current lease
	begin []byte               // a BEGIN answered by the proxy, to send ahead of the next request
	// holdBegin: the current request only prepares statements; the
	// BEGIN waits for a request that names the shard.
	holdBegin bool
	// curKey is the primary of the lease's shard (the key of the
	// client's writes there, c.routing.ShardWrites). Under c.mu.
	curKey string
	// pools caches the pools of the routing in force. Main loop only.
	pools shardPools
}

// shardPools are the pools a client leases on a sharded cluster, for one
// routing (rt): looking one up in the server's table takes the server's
// lock and formats the pool key, which the hot path should not do per
// request. A reload publishes a new routing, so the cache is dropped
// with the routing its pools belong to.
type shardPools struct {
	rt       *router.ShardCluster
	user     *config.User
	primary  []*poolEntry
	replicas map[shardReplicaKey]*poolEntry
}

type shardReplicaKey struct {
	shard int
	addr  string
}

func (c *clientConn) shardPoolCache(rt *router.ShardCluster) *shardPools {
	pc := &c.sh.pools
	if pc.rt != rt || pc.user != c.poolUser {
		*pc = shardPools{rt: rt, user: c.poolUser, primary: make([]*poolEntry, len(rt.Cluster.Shards))}
	}
	return pc
}

// shardReplicaPool is the pool of replica addr of shard i.
func (c *clientConn) shardReplicaPool(rt *router.ShardCluster, i int, addr string) *poolEntry {
	pc := c.shardPoolCache(rt)
	k := shardReplicaKey{i, addr}
	if e := pc.replicas[k]; e != nil {
		return e
	}
	e := c.srv.poolFor(rt.Cluster, c.poolUser, addr, rt.Database(i))
	if pc.replicas == nil {
		pc.replicas = make(map[shardReplicaKey]*poolEntry)
	}
	pc.replicas[k] = e
	return e
}

// shardLogin sets up a client of a sharded cluster: its greeting comes
// from shard 0's primary.
func (c *clientConn) shardLogin(cl *config.Cluster, u *config.User) error {
	rt := c.srv.Shards.Get(cl.Name)
	if rt == nil || len(cl.Shards) == 0 {
		return newFatal(codeFeatureNotSupported, "database %q is sharded but has no shard map", cl.Database)
	}
	c.sh = &clientShard{rt: rt, cur: -1}
	c.primary = c.shardPool(rt, 0)
	return nil
}

func (c *clientConn) shardPool(rt *router.ShardCluster, i int) *poolEntry {
	pc := c.shardPoolCache(rt)
	if e := pc.primary[i]; e != nil {
		return e
	}
	e := c.srv.poolFor(rt.Cluster, c.poolUser, rt.Primary(i), rt.Database(i))
	pc.primary[i] = e
	return e
}

// shardStmt is one statement of a request, with its bind values.
type shardStmt struct {
	sql     string
	bind    []byte   // the Bind message, nil for a Query or a Parse alone
	types   []uint32 // parameter type OIDs, where known
	isQuery bool
}

// requestStmts lists the statements of a request: held extended messages
// and the current one.
func (c *clientConn) requestStmts(typ byte, raw []byte) []shardStmt {
	var out []shardStmt
	var unnamed string
	var unnamedTypes []uint32
	haveUnnamed := false
	named := map[string]string{}
	namedTypes := map[string][]uint32{}
	add := func(typ byte, m []byte) {
		switch typ {
		case 'Q':
			out = append(out, shardStmt{sql: queryText(m), isQuery: true})
		case 'P':
			name, rest, ok := pgframe.CString(m[5:])
			if !ok {
				return
			}
			q, _, _ := pgframe.CString(rest)
			if len(name) == 0 {
				unnamed, haveUnnamed = string(q), true
				unnamedTypes = pgframe.ParseParamTypes(m)
			} else {
				named[string(name)] = string(q)
				namedTypes[string(name)] = pgframe.ParseParamTypes(m)
			}
			out = append(out, shardStmt{sql: string(q)})
		case 'B':
			_, rest, ok := pgframe.CString(m[5:])
			if !ok {
				return
			}
			stmt, _, ok := pgframe.CString(rest)
			if !ok {
				return
			}
			var sql string
			var types []uint32
			switch {
			case len(stmt) == 0 && haveUnnamed:
				sql, types = unnamed, unnamedTypes
			case len(stmt) == 0 && len(c.lastUnnamed) > 5:
				if _, r, ok := pgframe.CString(c.lastUnnamed[5:]); ok {
					q, _, _ := pgframe.CString(r)
					sql = string(q)
				}
				types = pgframe.ParseParamTypes(c.lastUnnamed)
				// Types the Parse left to the server, as the server
				// described them.
				c.mu.Lock()
				if d := c.unnamedDesc; d != nil && len(d.oids) > 0 {
					types = d.oids
				}
				c.mu.Unlock()
			default:
				if q, ok := named[string(stmt)]; ok {
					sql, types = q, namedTypes[string(stmt)]
				} else if g := c.stmts[string(stmt)]; g != nil {
					q, _, _ := pgframe.CString(g.parse[5+len(g.name)+1:])
					sql, types = string(q), g.paramTypes()
				}
			}
			out = append(out, shardStmt{sql: sql, bind: m, types: types})
		}
	}
	for b := c.pending; len(b) >= 5; {
		n := int(binary.BigEndian.Uint32(b[1:])) + 1
		add(b[0], b[:n])
		b = b[n:]
	}
	add(typ, raw)
	return out
}

// refusal is the router's refusal of a statement in PostgreSQL's codes.
func refusal(t router.Refused) *pgError {
	if t.Code == router.RefuseSyntax {
		return newError("42601", "%s", t.Reason)
	}
	return newError(codeFeatureNotSupported, "%s", t.Reason)
}

// bindParams reads shard keys from a Bind message: a binary value means
// what its type (from the Parse) says. Without a known type a 4-byte
// string and an int4 look alike, so such a key is refused rather than
// possibly misrouted.
type bindParams struct {
	bind  []byte
	types []uint32
}

func (b bindParams) KeyParam(n int) (router.KeyValue, error) {
	v, binaryFmt, ok := pgframe.BindParam(b.bind, n)
	switch {
	case !ok:
		return router.KeyValue{}, newError(codeProtocolViolation, "bind parameter $%d is missing", n)
	case v == nil:
		return router.KeyValue{Null: true}, nil
	case !binaryFmt:
		return router.KeyValue{Text: v}, nil
	}
	var oid uint32
	if n <= len(b.types) {
		oid = b.types[n-1]
	}
	switch oid {
	case 20, 21, 23: // int8, int2, int4
		x, isInt := shard.IntFromBinary(v)
		if !isInt {
			return router.KeyValue{}, newError(codeProtocolViolation, "binary parameter $%d is not a valid integer", n)
		}
		return router.KeyValue{Int: true, N: x}, nil
	case 25, 1043, 1042, 19, 17: // text, varchar, bpchar, name, bytea
		return router.KeyValue{Text: v}, nil
	}
	return router.KeyValue{}, newError(codeFeatureNotSupported,
		"shard key parameter $%d is in binary format of unknown or unsupported type (oid %d): declare it as an integer or text type, or send it as text", n, oid)
}

// requestPlan is the router's plan of a request's statements
// (router.ShardRouting.PlanRequest) for sess, with the statement that
// decided it; a refusal is the error.
func (c *clientConn) requestPlan(rt *router.ShardCluster, sts []shardStmt, sess router.ShardSession) (router.ShardTarget, *router.ShardKeys, shardStmt, error) {
	var buf [4]router.RequestStmt
	rs := buf[:0]
	for _, st := range sts {
		r := router.RequestStmt{SQL: st.sql, Runs: st.isQuery || st.bind != nil}
		if st.bind != nil {
			r.Params = bindParams{st.bind, st.types}
		}
		rs = append(rs, r)
	}
	t, sk, i, err := rt.PlanRequest(rs, sess)
	var st shardStmt
	if i >= 0 {
		st = sts[i]
	}
	if r, ok := t.(router.Refused); ok && err == nil {
		err = refusal(r)
	}
	return t, sk, st, err
}

// shardAcquire picks the pool for the transaction that starts with this
// request: the shard's primary, or a replica of the shard for reads (then
// node is the replica picked). Hook in acquire; it makes c.primary and
// c.rt the shard's, for acquire's fallback from an unreachable replica
// and for the end of the lease.
func (c *clientConn) shardAcquire(typ byte, raw []byte) (*poolEntry, *replica.Node, error) {
	rt := c.srv.Shards.Get(c.cluster.Name)
	if rt == nil {
		return nil, nil, newError(codeFeatureNotSupported, "database %q is no longer sharded; reconnect", c.cluster.Database)
	}
	t, _, _, err := c.requestPlan(rt, c.requestStmts(typ, raw), c.shardSession(false))
	s := -1
	switch t := t.(type) {
	case router.OneShard:
		s = t.Shard
	case router.ScatterShards, router.WriteShards:
		// The plan allows it here (router.ShardSession), but it is not
		// one the scatter runs (shard_scatter.go's scatterRequest).
		err = newError(codeFeatureNotSupported, "a statement without the shard key runs on every shard only when sent alone (one statement, one Sync), outside a transaction")
	}
	if err != nil {
		c.shardRefused()
		return nil, nil, err
	}
	c.sh.holdBegin = false
	if s < 0 {
		s = 0
		c.sh.holdBegin = c.sh.begin != nil && prepareOnly(c.requestStmts(typ, raw))
	}
	c.sh.rt, c.sh.cur = rt, s
	rt.Routed(s)
	e, node, rep, write := c.shardRead(rt, s, c.shardAnalyses(typ, raw))
	primary := c.shardPool(rt, s)
	c.mu.Lock()
	c.primary, c.rt = primary, rep
	c.sh.curKey = rt.Primary(s)
	c.leaseWrites = write
	c.mu.Unlock()
	return e, node, nil
}

// shardSession is the client's routing state for the plan; leased: the
// request joins the lease (on shard c.sh.cur), which it may not leave.
func (c *clientConn) shardSession(leased bool) router.ShardSession {
	sess := router.ShardSession{Key: c.routing.Key, Lease: -1, InTxn: c.sh.begin != nil}
	if leased {
		sess.Lease = c.sh.cur
		sess.Hold, sess.Pin = c.keeps(), c.pinReason
	}
	return sess
}

// shardLeaseErr says why a request sent during a lease cannot join it
// (the plan's refusal: another shard, or several); nil when it can.
func (c *clientConn) shardLeaseErr(typ byte, raw []byte) error {
	_, _, _, err := c.requestPlan(c.sh.rt, c.requestStmts(typ, raw), c.shardSession(true))
	return err
}

// shardCheckInLease checks a request sent during a lease (a transaction
// under way) against the lease's shard, and refuses it without sending it
// when it belongs elsewhere. Hook in forward; it reports whether the
// message was handled.
func (c *clientConn) shardCheckInLease(typ byte, raw []byte) bool {
	if typ != 'Q' && typ != 'B' {
		return false
	}
	c.mu.Lock()
	leased := c.server != nil
	c.mu.Unlock()
	if !leased {
		return false
	}
	sts := c.requestStmts(typ, raw)
	if typ == 'B' {
		// Held messages are already sent during a lease; only this Bind.
		if len(sts) == 0 { // a malformed Bind: the server answers it
			return false
		}
		sts = sts[len(sts)-1:]
	}
	_, _, _, err := c.requestPlan(c.sh.rt, sts, c.shardSession(true))
	if err == nil {
		return false
	}
	c.shardRefused()
	return c.refuseInLease(typ, err)
}

// refuseInLease answers a Query or Bind with an error in place of the
// server, leaving the server's transaction as it is: the error goes out
// ahead of the ReadyForQuery of a Sync (sent now for a Query, the client's
// own for a Bind, whose batch is skipped up to it).
func (c *clientConn) refuseInLease(typ byte, err error) bool {
	msg, _ := toErrorResponse(err).Encode(nil)
	c.mu.Lock()
	sc := c.server
	if sc == nil {
		c.mu.Unlock()
		return false
	}
	c.expects.push(expect{kind: typ, act: actSynth, msg: msg})
	if typ == 'B' {
		c.srvSkipping = true
		c.unsynced = true
		c.mu.Unlock()
		return true
	}
	c.expects.push(expect{kind: 'S'})
	c.outstanding++
	c.writers++
	c.mu.Unlock()
	_, werr := sc.bw.Write([]byte{'S', 0, 0, 0, 4})
	if werr == nil {
		werr = sc.bw.Flush()
	}
	if werr != nil {
		sc.conn.Close()
	}
	c.finishWrite()
	return true
}

// shardLocalTxn answers BEGIN (and a COMMIT or ROLLBACK of a BEGIN that
// nothing followed) without a server, outside a lease: the shard of the
// transaction is not known until a statement names it. Hook in forward.
func (c *clientConn) shardLocalTxn(text string, a *router.Analysis) bool {
	// Only a single BEGIN/COMMIT/ROLLBACK the parser accepted is answered
	// here (router.LocalTxn): anything else (a malformed BEGIN, COMMIT
	// AND CHAIN, ROLLBACK TO SAVEPOINT) goes to a server, which reports it.
	if a.Class != router.TxnBegin && a.Class != router.TxnEnd || a.ParseError != "" || a.Statements != 1 {
		return false
	}
	v, act := router.LocalTxn(router.Postgres, text, c.sh.begin != nil)
	tag, status := "BEGIN", byte('T')
	switch {
	case act == router.LocalBegin:
		c.sh.begin = []byte(text)
		if v == router.TxnStartVerb {
			tag = "START TRANSACTION"
		}
	case act != router.LocalEnd:
		return false
	case v == router.TxnCommitVerb:
		tag, status, c.sh.begin = "COMMIT", 'I', nil
	default:
		tag, status, c.sh.begin = "ROLLBACK", 'I', nil
	}
	c.answer(pgframe.AppendCommandComplete(nil, tag), status)
	return true
}

// shardSendBegin sends a BEGIN the proxy answered ahead of the first
// request of the lease; its replies are dropped. The caller holds a
// writers reservation on sc.
func (c *clientConn) shardSendBegin(sc *serverConn) error {
	q := c.sh.begin
	c.sh.begin = nil
	c.mu.Lock()
	c.expects.push(expect{kind: 'Q', act: actCapture})
	c.outstanding++
	c.mu.Unlock()
	n := 4 + len(q) + 1
	_, err := sc.bw.Write([]byte{'Q', byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	if err == nil {
		sc.bw.Write(q)
		err = sc.bw.WriteByte(0)
	}
	return err
}

// shardRefused books a refused request: a BEGIN the proxy answered is
// given up with it, as the client's transaction cannot go on.
func (c *clientConn) shardRefused() {
	c.srv.Shards.Refused(c.cluster.Name)
	// A BEGIN the proxy answered never reached a server: the client is
	// told 'I' with the error, and the transaction is over.
	c.sh.begin = nil
}

// prepareOnly says whether a request only parses (and describes)
// statements: it can run on any shard outside the client's transaction.
func prepareOnly(sts []shardStmt) bool {
	for _, st := range sts {
		if st.isQuery || st.bind != nil {
			return false
		}
	}
	return true
}
