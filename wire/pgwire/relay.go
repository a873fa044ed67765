package pgwire

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/pgframe"
)

var contextBackground = context.Background()

// errSink passes writes on until the first error and then swallows them,
// so a relay can keep draining the server after the client went away.
type errSink struct {
	w   io.Writer
	err error
}

func (s *errSink) Write(p []byte) (int, error) {
	if s.err == nil {
		_, s.err = s.w.Write(p)
	}
	return len(p), nil
}

// run is the main loop of a logged-in client: read a message, route it,
// write it to the leased server. It returns when the client leaves or must
// be closed.
func (c *clientConn) run() {
	for {
		if err := c.idleWait(); err != nil {
			c.clientLeft(err)
			return
		}
		typ, raw, err := c.rd.Next()
		if err != nil {
			c.clientLeft(err)
			return
		}
		c.qRaw = nil // a new message: the last verdict is not its own
		if c.skipToSync {
			switch typ {
			case 'S':
				c.skipToSync = false
				c.sendFromProxy(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			case 'X':
				c.clientLeft(nil)
				return
			}
			continue
		}
		switch typ {
		case 'X':
			c.clientLeft(nil)
			return
		case 'Q', 'P', 'B', 'D', 'E', 'C', 'H', 'S', 'F', 'd', 'c', 'f':
			if !c.forward(typ, raw) {
				return
			}
		default:
			c.sendFromProxy(toErrorResponse(newFatal(codeProtocolViolation, "invalid frontend message type %q", typ)))
			c.clientLeft(nil)
			return
		}
	}
}

// sendFromProxy writes messages the proxy produced; it waits for a running
// pump to finish so they never interleave with relayed results.
func (c *clientConn) sendFromProxy(msgs ...pgproto3.BackendMessage) {
	c.flushServer()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.send(msgs...)
}

// flushServer sends what the main loop left in the leased server's buffer.
// forward defers the flush while the client has another message queued,
// expecting that message to be forwarded too; when it is answered by the
// proxy instead, the pump would wait for replies to requests the server
// never got while the proxy waits for the pump. So every reply the proxy
// composes flushes first. Main loop only.
func (c *clientConn) flushServer() {
	c.mu.Lock()
	sc := c.server
	if sc == nil || sc.bw.Buffered() == 0 {
		c.mu.Unlock()
		return
	}
	c.writers++
	c.mu.Unlock()
	if err := sc.bw.Flush(); err != nil {
		sc.conn.Close() // the reader sees it on its read and tells the client
		c.finishWriteAs(needFailed)
		return
	}
	c.finishWriteAs(needAny)
}

// queryAnalysis is the verdict on a Query message. The message in hand is
// looked at by several steps (local answers, routing, session state); the
// verdict is computed once per message and kept for the next step.
func (c *clientConn) queryAnalysis(raw []byte) *router.Analysis {
	if c.qRaw != nil && &c.qRaw[0] == &raw[0] && len(c.qRaw) == len(raw) {
		return c.qAn
	}
	c.qRaw, c.qAn = raw, c.an.Analyze(queryText(raw))
	return c.qAn
}

// localStatus is the transaction status of a client the proxy answers
// without a server: 'T' while a BEGIN the proxy answered is open (sharded
// clusters send it later, with the first statement), else 'I'.
func (c *clientConn) localStatus() byte {
	if c.sh != nil && c.sh.begin != nil {
		return 'T'
	}
	return 'I'
}

// answer sends a reply the proxy composed itself, closed by ReadyForQuery
// with status. A failed write shows up as the main loop's next read error.
func (c *clientConn) answer(out []byte, status byte) {
	out = append(out, 'Z', 0, 0, 0, 5, status)
	c.flushServer()
	c.wmu.Lock()
	bw := c.writer()
	if _, err := bw.Write(out); err == nil {
		_ = bw.Flush()
	}
	c.wmu.Unlock()
}

// answerRows answers as answer does with head, rows and tail in a row,
// each written as it is (a scatter's merged rows, which are not copied
// again into one buffer).
func (c *clientConn) answerRows(head []byte, rows [][]byte, tail []byte, status byte) {
	if len(rows) == 0 {
		c.answer(append(head, tail...), status)
		return
	}
	c.flushServer()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	bw := c.writer()
	if _, err := bw.Write(head); err != nil {
		return
	}
	for _, r := range rows {
		if _, err := bw.Write(r); err != nil {
			return
		}
	}
	if _, err := bw.Write(append(tail, 'Z', 0, 0, 0, 5, status)); err == nil {
		_ = bw.Flush()
	}
}

// forward sends one client message toward a server, leasing one at the
// first message that needs an answer. It returns false when the session
// is over.
func (c *clientConn) forward(typ byte, raw []byte) bool {
	c.mu.Lock()
	for c.cancelling > 0 {
		// A cancel request of this client is on its way to the server:
		// nothing more goes there before it (Server.cancel).
		c.waitLeaseLocked()
	}
	if c.server != nil {
		c.awaitPositionLocked() // read-your-writes (causal.go)
	}
	if onReplica := c.server != nil && c.leaseNode != nil; onReplica || c.sh != nil {
		unsynced := c.unsynced
		c.mu.Unlock()
		switch {
		case onReplica && !unsynced:
			if held, ok := c.replicaRequest(typ, raw); held {
				return ok
			}
		case c.sh != nil && c.shardCheckInLease(typ, raw): // sharding: a transaction stays on its shard
			return true
		case onReplica && c.replicaMidBatch(typ, raw):
			return true
		}
		c.mu.Lock()
	}
	if c.broken {
		c.mu.Unlock()
		return false
	}
	if c.stmtDropAll || len(c.stmtDrops) > 0 {
		c.applyStmtDropsLocked()
	}
	if c.closing && c.heldIdleLocked() {
		// Shutdown: a session that keeps its server connection between
		// transactions (pinned, or session pooling) is idle now, and is
		// closed as an idle client is.
		c.mu.Unlock()
		c.dropServer()
		c.sendFromProxy(toErrorResponse(newFatal(codeAdminShutdown, "terminating connection due to administrator command")))
		return false
	}
	leased := false // this request opened the lease
	if c.server == nil {
		closing := c.closing
		c.mu.Unlock()
		if closing {
			c.sendFromProxy(toErrorResponse(newFatal(codeAdminShutdown, "terminating connection due to administrator command")))
			return false
		}
		switch typ {
		case 'd', 'c', 'f':
			// Copy messages after the server left copy mode: PostgreSQL
			// ignores them too.
			return true
		case 'P', 'B', 'D', 'E', 'C':
			// Held until Sync or Flush, so no server is leased while a
			// client trickles in the parts of one request.
			if !c.pendingRoom(raw) {
				return false
			}
			if typ == 'P' && len(c.pending) == 0 && proxyCommandParse(raw) {
				// PostgreSQL would take SET switchyard.x as a setting of its
				// own and the proxy would never see it: say so instead.
				c.sendFromProxy(toErrorResponse(newError(codeFeatureNotSupported,
					"switchyard.* commands are answered by the proxy in the simple query protocol only; send this one as a simple query (pgx: QueryExecModeSimpleProtocol, or PgConn().Exec)")))
				c.skipToSync = true
				return true
			}
			c.pending = append(c.pending, raw...)
			return true
		}
		if typ == 'S' && c.prepareFromCache() {
			return true
		}
		if typ == 'S' && c.sh != nil && c.shardScatterExt(raw) { // sharding: scatter in the extended protocol
			return true
		}
		if typ == 'Q' {
			a := c.queryAnalysis(raw)
			if a.Deallocate != nil && c.answerLocally(a) {
				return true
			}
			if c.switchyardCommand(queryText(raw)) {
				// handled: a proxy command
				return true
			}
			if c.sh != nil && (c.shardLocalTxn(queryText(raw), a) || c.shardScatter(raw)) { // sharding
				return true
			}
		}
		if err := c.acquire(typ, raw); err != nil {
			c.leaseAlive = false
			c.pending = c.pending[:0]
			var pe *pgError
			fatal := errors.As(err, &pe) && pe.Severity == "FATAL"
			if fatal || typ == 'H' {
				c.skipToSync = !fatal
				c.sendFromProxy(toErrorResponse(err))
			} else {
				c.sendFromProxy(toErrorResponse(err), &pgproto3.ReadyForQuery{TxStatus: 'I'})
			}
			c.log.Info("could not lease a server connection", "err", err)
			return !fatal
		}
		leased = true
		c.mu.Lock()
	}
	// Reserve the connection in the same critical section that found it:
	// while writers > 0 the pump does not hand it back to the pool.
	sc := c.server
	if sc == nil { // the server failed right after the lease; the pump told the client
		c.mu.Unlock()
		return false
	}
	c.writers++
	// A lone request that opened its lease on a reused connection, with no
	// transaction or session state to lose, may be sent again elsewhere if
	// that connection proves dead before any of it ran (deadOnArrival);
	// once, and not a request whose sending changed the client's statement
	// names (a named Parse, a Close).
	c.redoable = leased && !c.leaseAlive && c.sh == nil && !c.reads.Checking() && c.lease.Reused() &&
		c.keeps() == router.HoldNone && c.txStatus == 'I' &&
		(typ == 'Q' && len(c.pending) == 0 || typ == 'S' && resendable(c.pending))
	c.leaseAlive = false
	c.mu.Unlock()
	if !leased && c.reads.Kept() && c.executes(typ) {
		// A read on the lease of a request that only described (its
		// Execute came before that lease was returned) counts where
		// that lease went (read-your-writes metrics).
		c.reads.Ride(c.rt)
	}
	pending := c.pending // sendPending empties it; a retry sends it again
	flush := !c.rd.FullFrameBuffered()
	var err error
	if c.sh != nil && c.sh.begin != nil && !c.sh.holdBegin { // sharding: the BEGIN the proxy answered
		err = c.shardSendBegin(sc)
	}
	if c.reads.Checking() && c.leaseNode != nil { // read-your-writes: a position check in the same round trip (causal.go)
		flush = true
		var done, ok bool
		if done, ok, err = c.checkedSend(sc, typ, raw); done {
			return ok
		}
	} else {
		c.reads.Drop()
		if err == nil && len(c.pending) > 0 {
			err = c.sendPending(sc)
		}
		if err == nil {
			err = c.sendMsg(sc, typ, raw, flush)
		}
	}
	switch {
	case err != nil:
		// The reader sees the same failure on its read and tells the client.
		sc.conn.Close()
		c.finishWriteAs(needFailed)
	case flush:
		c.finishWriteAs(needSync)
		if c.redo {
			// The connection was dead before the request reached it:
			// the request goes again, on a connection alive now.
			c.redo, c.redoable = false, false
			c.pending, c.leaseAlive = pending, true
			return c.forward(typ, raw)
		}
	default:
		c.finishWrite()
	}
	c.redoable = false
	return true
}

// resendable says whether the extended-protocol messages held until a
// Sync can be sent again as they are: sending them changes none of the
// client's statement names (no named Parse, no Close).
func resendable(pending []byte) bool {
	for b := pending; len(b) >= 5; {
		n := int(binary.BigEndian.Uint32(b[1:])) + 1
		if n > len(b) {
			return false
		}
		switch b[0] {
		case 'C':
			return false
		case 'P':
			if n < 6 || b[5] != 0 {
				return false
			}
		}
		b = b[n:]
	}
	return true
}

// pendingRoom says whether raw may join the messages held until Sync;
// when it may not, the client is told and counted, and must be closed.
func (c *clientConn) pendingRoom(raw []byte) bool {
	if len(c.pending)+len(raw) <= maxClientMsg {
		return true
	}
	metrics.LimitRefusals.WithLabelValues("postgres", "pending_messages").Inc()
	c.log.Warn("client closed: extended-protocol messages without Sync over the cap", "limit", maxClientMsg)
	c.sendFromProxy(toErrorResponse(newFatal(codeProgramLimitExceeded, "extended-protocol batch without Sync exceeds %d bytes", maxClientMsg)))
	return false
}

// replicaRequest routes a request a client sends while its lease is on a
// replica (a pipeline: back-to-back Queries, or several Sync-terminated
// batches written without waiting), as the first request of a lease is
// routed: the messages of an extended-protocol request are held until its
// Sync (or Flush), and a request that may not run on a replica is not
// sent there. For that one the main loop waits until the replica has
// answered what it owes and its lease ended; the caller then leases anew.
// A lease still held then is a read-only transaction on the replica, where
// PostgreSQL refuses a write as it would on the primary. Sharded, a request
// for another shard than the lease's leaves it the same way (inside such a
// transaction it is refused, as shardCheckInLease does). held reports that
// the message was dealt with; ok is false when the session is over.
func (c *clientConn) replicaRequest(typ byte, raw []byte) (held, ok bool) {
	switch typ {
	case 'P', 'B', 'D', 'E', 'C':
		if !c.pendingRoom(raw) {
			return true, false
		}
		c.pending = append(c.pending, raw...)
		if !c.rd.FullFrameBuffered() {
			// Requests already sent wait for no more messages.
			c.flushServer()
		}
		return true, true
	case 'S', 'H', 'Q', 'F':
	default:
		return false, true
	}
	as := c.batchAnalyses(typ, raw)
	if len(as) == 0 {
		return false, true // a Sync or Flush alone
	}
	t, _ := router.Decide(c.pref(), as)
	stay := t == (router.Replica{})
	if stay && c.sh != nil {
		stay = c.shardLeaseErr(typ, raw) == nil
	}
	if stay {
		return false, true
	}
	c.flushServer()
	c.mu.Lock()
	for c.server != nil && c.leaseNode != nil && (c.outstanding > 0 || c.unsynced) {
		c.waitLeaseLocked()
	}
	leased := c.server != nil
	c.mu.Unlock()
	if leased && c.sh != nil {
		if err := c.shardLeaseErr(typ, raw); err != nil {
			c.shardRefused()
			c.refuseHeld(typ, err)
			return true, true
		}
	}
	return false, true
}

// refuseHeld answers a request held during a lease (its messages in
// c.pending and the one in hand, typ) with err instead of sending it,
// leaving the server's transaction as it is.
func (c *clientConn) refuseHeld(typ byte, err error) {
	c.pending = c.pending[:0]
	if typ != 'H' {
		c.refuseInLease(typ, err) // err, then a Sync's ReadyForQuery
		return
	}
	// After a Flush the client waits for its replies before it sends the
	// Sync: skip to that Sync, and have the server answer something now
	// for the error to go out with.
	if !c.refuseInLease('B', err) {
		return
	}
	c.mu.Lock()
	sc := c.server
	if sc == nil {
		c.mu.Unlock()
		return
	}
	c.expects.push(expect{kind: 'C', act: actDrop})
	c.writers++
	c.mu.Unlock()
	_, werr := sc.bw.Write(noopClose)
	if werr == nil {
		_, werr = sc.bw.Write([]byte{'H', 0, 0, 0, 4})
	}
	if werr == nil {
		werr = sc.bw.Flush()
	}
	if werr != nil {
		sc.conn.Close()
		c.finishWriteAs(needFailed)
		return
	}
	c.finishWriteAs(needAny)
}

// replicaMidBatch refuses a statement that may not run on a replica when
// it comes in an extended-protocol batch that is already on one (the
// client sent a Flush, not a Sync, after its first part): the batch is
// one implicit transaction and cannot move. It reports whether it did.
func (c *clientConn) replicaMidBatch(typ byte, raw []byte) bool {
	if typ != 'B' && typ != 'Q' && typ != 'F' {
		return false
	}
	as := c.batchAnalyses(typ, raw)
	if len(as) == 0 {
		return false
	}
	if must, _ := router.MustPrimary(as); !must {
		return false
	}
	reason := ""
	for _, a := range as {
		if a != nil && a.MustPrimary && reason == "" {
			reason = a.Reason
		}
	}
	return c.refuseInLease(typ, newError(codeFeatureNotSupported,
		"this extended-protocol batch runs on a replica since its first part (sent before a Flush), and a statement that must run on the primary (%s) cannot join it: end the batch with Sync before it", reason))
}

// prepareFromCache answers a request of named Parses and a Sync, outside a
// transaction, without a server when every statement in it is one a
// server has accepted before.
func (c *clientConn) prepareFromCache() bool {
	b := c.pending
	if len(b) == 0 {
		return false
	}
	var gs [8]*gstmt
	var names [8][]byte
	n := 0
	c.mu.Lock()
	scope := c.stmtScopeLocked()
	c.mu.Unlock()
	for len(b) >= 5 {
		size := int(binary.BigEndian.Uint32(b[1:])) + 1
		if b[0] != 'P' || n == len(gs) {
			return false
		}
		name, rest, ok := pgframe.CString(b[5:size])
		if !ok || len(name) == 0 {
			return false
		}
		g := c.srv.stmts.lookup(rest, scope)
		if g == nil || !g.ok.Load() || c.stmts[string(name)] != nil || c.stmtRoom(name, rest) != nil {
			return false // a refusal (a name in use, no room) is answered by sendMsg, in order
		}
		for _, prev := range names[:n] {
			if string(prev) == string(name) {
				return false
			}
		}
		gs[n], names[n] = g, name
		n++
		b = b[size:]
	}
	out := make([]byte, 0, n*5+6)
	for i := 0; i < n; i++ {
		c.stmts[string(names[i])] = gs[i]
		out = append(out, parseComplete...)
	}
	c.pending = c.pending[:0]
	c.answer(out, c.localStatus())
	return true
}

// sendPending sends the extended-protocol messages held before the lease.
func (c *clientConn) sendPending(sc *serverConn) error {
	b := c.pending
	var err error
	for len(b) >= 5 && err == nil {
		n := int(binary.BigEndian.Uint32(b[1:])) + 1
		err = c.sendMsg(sc, b[0], b[:n], false)
		b = b[n:]
	}
	if cap(c.pending) > 64<<10 {
		c.pending = nil
	} else {
		c.pending = c.pending[:0]
	}
	return err
}

// sendMsg sends one client message to the leased server sc: it books what
// the server will answer, maps statement names to their global names, and
// injects the Parse a statement needs on this connection. flush sends the
// buffered messages on their way. The caller holds a writers reservation
// on sc.
func (c *clientConn) sendMsg(sc *serverConn, typ byte, raw []byte, flush bool) error {
	var an *router.Analysis        // what the message runs
	var qa *router.Analysis        // 'Q': the verdict on the query
	refused := ""                  // 'P': a proxy statement name the text refers to
	var refusedAn *router.Analysis // 'P': the verdict on that text
	switch typ {
	case 'Q':
		an = c.queryAnalysis(raw)
		qa = an
		c.collect(an)
	case 'F':
		an = fnCallAnalysis
	case 'P':
		if name, rest, ok := pgframe.CString(raw[5:]); ok {
			q, _, _ := pgframe.CString(rest)
			var pa *router.Analysis
			if len(name) == 0 {
				pa = c.an.Analyze(unsafeString(q))
				c.unnamedAn = pa
			}
			if mentionsProxyName(q) {
				if pa == nil {
					pa = c.an.Analyze(unsafeString(q))
				}
				refused, refusedAn = reservedIn(pa.StatementNames), pa
			}
		}
	case 'B':
		if _, rest, ok := pgframe.CString(raw[5:]); ok {
			if stmt, _, ok := pgframe.CString(rest); ok {
				if len(stmt) == 0 {
					an = c.unnamedAn
				} else if g := c.stmts[string(stmt)]; g != nil {
					an = c.stmtAnalysis(g)
				}
				c.collect(an)
			}
		}
	}
	var pre [3][]byte // sent before the message: Close of an evicted statement, injected Parse
	npre := 0
	body := raw
	var prefix, suffix []byte // with rename: the message is prefix + rename + \0 + suffix
	rename := ""
	skip := false

	c.mu.Lock()
	q := &c.expects
	chain := c.chainNext
	if typ == 'Q' || typ == 'E' {
		c.chainNext = false
	}
	ensure := func(g *gstmt) {
		if g.ok.Load() {
			// In use after a server accepted it: a later request, not
			// the Describe that came with its Parse.
			g.touch()
		}
		if sc.stmts.has(g) {
			return
		}
		if ev := sc.stmts.add(g); ev != nil {
			pre[npre] = pgframe.AppendCloseStatement(nil, ev.name)
			npre++
			q.push(expect{kind: 'C', act: actDrop, g: ev, evict: true})
		}
		pre[npre] = g.parse
		npre++
		q.push(expect{kind: 'P', act: actDrop, g: g})
	}
	ensureUnnamed := func() {
		if !c.unnamedLease && len(c.lastUnnamed) > 0 {
			pre[npre] = c.lastUnnamed
			npre++
			q.push(expect{kind: 'P', act: actDrop})
			c.unnamedLease = true
		}
	}
	switch {
	case c.srvSkipping && typ != 'S':
		// After an error the server ignores everything up to Sync; not
		// sending it keeps the books (and the statement caches) true.
		skip = true
	case typ == 'P' && refused != "":
		// SQL naming a proxy statement (EXECUTE sy_3): the server is
		// sent a Parse that fails, and the client hears why.
		body = refusedParse
		c.unnamedAn = nil // nothing of it runs, nothing of it pins
		q.push(expect{kind: 'P', swap: 'E', swapMsg: stmtRefused(refused, refusedAn)})
	case typ == 'P':
		name, rest, ok := pgframe.CString(raw[5:])
		switch {
		case !ok:
			q.push(expect{kind: 'P'}) // malformed: the server says so
		case len(name) == 0:
			c.unnamedDealloc = stmtName{}
			if d := c.unnamedAn.Deallocate; d != nil && c.unnamedAn.Statements == 1 && !d.All && len(c.unnamedAn.Sets) == 0 && c.stmts[d.Name] != nil {
				// DEALLOCATE of the client's own name (psycopg 3 with
				// libpq < 17 evicts its statements so): as for a Query
				// below, the server knows the statement by its global
				// name. A Bind of it makes sure the connection has the
				// statement, and its Execute's command tag drops the
				// client's name (noteStmtTagLocked).
				g := c.stmts[d.Name]
				c.unnamedDealloc = stmtName{g, d.Name}
				body = deallocParse(g.name, rest)
			}
			c.lastUnnamed = append(c.lastUnnamed[:0], body...)
			if c.sh != nil { // only shard routing reads it: no allocation per Parse elsewhere
				c.unnamedDesc = &unnamedDesc{}
			}
			c.unnamedLease = true
			q.push(expect{kind: 'P'})
		case c.stmts[string(name)] != nil:
			// PostgreSQL refuses a second statement under a name in use,
			// and skips the rest of the request up to its Sync: so does
			// the proxy. The name keeps its statement. (In a transaction
			// block the server's transaction is not failed by this. A
			// name whose Parse is still unanswered counts as in use: a
			// pipeline that prepares a name again right behind a Parse
			// of it that fails is refused where the server would not.)
			msg, _ := toErrorResponse(newError(codeDuplicatePStatement, "prepared statement \"%s\" already exists", name)).Encode(nil)
			q.push(expect{kind: 'P', act: actSynth, msg: msg})
			skip = true
			c.srvSkipping = true
		default:
			if perr := c.stmtRoom(name, rest); perr != nil {
				// Refused in the server's place, which skips the rest of
				// the batch up to its Sync like after its own errors.
				msg, _ := toErrorResponse(perr).Encode(nil)
				q.push(expect{kind: 'P', act: actSynth, msg: msg})
				c.srvSkipping = true
				skip = true
				break
			}
			g := c.srv.stmts.get(rest, c.stmtScopeLocked(), c.srv.Config().Proxy.StatementRegistrySize)
			cname := string(name)
			c.stmts[cname] = g
			if sc.stmts.has(g) {
				skip = true
				q.push(expect{kind: 'P', act: actSynth, synth: '1', g: g, cname: cname})
			} else {
				if ev := sc.stmts.add(g); ev != nil {
					pre[npre] = pgframe.AppendCloseStatement(nil, ev.name)
					npre++
					q.push(expect{kind: 'C', act: actDrop, g: ev, evict: true})
				}
				body = g.parse
				q.push(expect{kind: 'P', g: g, cname: cname})
			}
		}
	case typ == 'B':
		portal, rest, ok1 := pgframe.CString(raw[5:])
		stmt, after, ok2 := pgframe.CString(rest)
		e := expect{kind: 'B'}
		if ok1 && ok2 {
			if len(c.portalDeallocs) > 0 {
				delete(c.portalDeallocs, string(portal)) // bound again
			}
			if len(stmt) == 0 {
				ensureUnnamed()
				if d := c.unnamedDealloc; d.g != nil {
					ensure(d.g)
					if c.portalDeallocs == nil {
						c.portalDeallocs = make(map[string]stmtName)
					}
					c.portalDeallocs[string(portal)] = d
				}
			} else if g := c.stmts[string(stmt)]; g != nil {
				ensure(g)
				prefix, rename, suffix = raw[5:5+len(portal)+1], g.name, after
			} else if isProxyName(stmt) {
				prefix, rename, suffix = raw[5:5+len(portal)+1], reservedName, after
				e.swap, e.swapMsg = 'E', stmtMissing(string(stmt))
			}
		}
		q.push(e)
	case typ == 'D':
		e := expect{kind: 'D'}
		if len(raw) > 6 && raw[5] == 'S' {
			if name, _, ok := pgframe.CString(raw[6:]); ok {
				if len(name) == 0 {
					ensureUnnamed()
					e.ud = c.unnamedDesc
				} else if g := c.stmts[string(name)]; g != nil {
					ensure(g)
					prefix, rename = raw[5:6], g.name
					// The ParameterDescription tells the statement's
					// parameter types, which shard routing needs for
					// binary parameters.
					e.g = g
				} else if isProxyName(name) {
					prefix, rename = raw[5:6], reservedName
					e.swap, e.swapMsg = 'E', stmtMissing(string(name))
				}
			}
		}
		q.push(e)
	case typ == 'C':
		if len(raw) > 6 && raw[5] == 'S' {
			if name, _, ok := pgframe.CString(raw[6:]); ok && len(name) > 0 {
				// The statement stays prepared on the servers for other
				// clients; only this client's name for it goes.
				delete(c.stmts, string(name))
				skip = true
				q.push(expect{kind: 'C', act: actSynth, synth: '3'})
				break
			}
		}
		q.push(expect{kind: 'C'})
	case typ == 'E':
		e := expect{kind: 'E', chain: chain}
		if len(c.portalDeallocs) > 0 {
			if portal, _, ok := pgframe.CString(raw[5:]); ok {
				if d, ok := c.portalDeallocs[string(portal)]; ok {
					// Once: the portal's DEALLOCATE has run.
					e.g, e.cname = d.g, d.cname
					delete(c.portalDeallocs, string(portal))
				}
			}
		}
		q.push(e)
	case typ == 'S':
		if c.copyIn {
			// In COPY FROM STDIN the server ignores a Sync: libpq's
			// PQexecParams and tokio-postgres send one after Execute
			// and another after CopyDone, and get one ReadyForQuery.
			skip = true
			break
		}
		q.push(expect{kind: 'S'})
		c.srvSkipping = false
	case typ == 'c' || typ == 'f':
		// The end of a COPY FROM STDIN: Syncs sent before it and after
		// the Execute that began the copy are ignored by the server.
		if c.copyIn {
			c.copyIn = false
		} else if q.len() > 0 {
			q.push(expect{kind: typ, act: actMark}) // the copy may not have begun yet: copyInLocked
		}
	case typ == 'Q':
		e := expect{kind: 'Q', chain: chain}
		if d := qa.Deallocate; d != nil && qa.Statements == 1 && !d.All && len(qa.Sets) == 0 && c.stmts[d.Name] != nil {
			// DEALLOCATE of the client's own name (in a transaction, a
			// pinned session, session mode): the server knows the
			// statement by its global name. The books change when the
			// server says it is done (noteStmtTagLocked).
			g := c.stmts[d.Name]
			e.g, e.cname = g, d.Name
			if sc.stmts.has(g) || c.txStatus == 'E' {
				body = pgframe.Query(`DEALLOCATE "` + g.name + `"`)
			} else {
				// Not prepared on this connection: nothing to drop
				// there; an empty query is answered in its place.
				body = emptyQuery
				e.swap, e.swapMsg = 'I', pgframe.AppendCommandComplete(nil, "DEALLOCATE")
			}
		} else if name := reservedIn(qa.StatementNames); name != "" {
			body = refusedQuery
			e.swap, e.swapMsg = 'E', stmtRefused(name, qa)
			c.pinNext = "" // a refused PREPARE creates nothing to pin
		}
		q.push(e)
	case typ == 'F':
		q.push(expect{kind: typ})
	}
	switch typ {
	case 'S', 'Q', 'F':
		if !skip {
			c.outstanding++
		}
	}
	if an != nil && !skip && c.leaseNode == nil {
		writes := an.Class == router.Write || an.MustPrimary
		if writes {
			// A write sent during a lease on the primary that began
			// for a read (no replica qualified; a pipeline) counts for
			// read-your-writes as well.
			c.leaseWrites = true
			c.posBlocked = c.posBlocked || an.CopyFrom || an.Statements != 1 // causal.go
		}
		// The primary's position is worth reading behind a request that
		// leaves no transaction open after a write: an autocommit write,
		// or the end of a transaction. Behind a BEGIN it would be the
		// transaction's first query (its snapshot: a SET TRANSACTION
		// after it fails), and inside a transaction it is not booked.
		// (A read-write BEGIN is MustPrimary: not a write here.)
		c.posDue = c.posDue || writes && an.Class != router.TxnBegin && c.txStatus == 'I' || an.Class == router.TxnEnd
	}
	switch typ {
	case 'S':
		if !skip {
			c.unsynced = false
		}
	case 'P', 'B', 'D', 'E', 'C', 'H':
		c.unsynced = true
	}
	if c.pinNext != "" {
		c.pinLocked(c.pinNext)
		c.pinNext = ""
	}
	var capture []byte
	if (typ == 'Q' || typ == 'S') && !skip && (len(c.capture) > 0 || c.captureAll || c.captureTxn || len(c.restore) > 0) {
		if c.keeps() != router.HoldNone && len(c.restore) > 0 {
			// A pinned or session-mode client keeps its server
			// connection: nothing to read back, but its startup
			// parameters reset are set to their startup values there.
			capture = captureQuery(slices.Collect(maps.Keys(c.restore)), c.restore, c.startupParams)
			q.push(expect{kind: 'Q', act: actCapture})
			c.outstanding++
		} else if c.keeps() == router.HoldNone {
			names := c.capture
			if c.captureTxn {
				names = c.txnSettingsLocked(names)
			}
			c.noteTxnNamesLocked(names)
			capture = captureQuery(names, c.restore, c.startupParams)
			q.push(expect{kind: 'Q', act: actCapture, names: append([]string(nil), names...), all: c.captureAll, auth: c.captureAuth})
			c.outstanding++
		}
		c.capture, c.captureAll, c.captureAuth, c.captureTxn = c.capture[:0], false, false, false
		clear(c.restore)
	}
	var posQuery []byte
	if (typ == 'Q' || typ == 'S') && !skip {
		if c.reads.WantPosition() {
			posQuery = c.positionQueryLocked() // read-your-writes (causal.go)
		}
		c.posBlocked, c.posDue = false, false // the request ends here
	}
	// A synthesized reply goes out when the server answers something
	// after it; if nothing would follow, give the server something cheap
	// to answer. Ahead of a Flush, not after it: the server sends its
	// replies when a Flush or Sync comes, and one after the client's last
	// Flush would never be sent.
	var tail []byte
	if flush {
		if b := q.back(); b != nil && b.act == actSynth {
			tail = noopClose
			q.push(expect{kind: 'C', act: actDrop})
		}
	}
	if traceOn {
		tracef("c%d send %c skip=%v rename=%q npre=%d flush=%v q=%d out=%d", c.pid%1000, typ, skip, rename, npre, flush, q.len(), c.outstanding)
	}
	c.mu.Unlock()

	bw := sc.bw
	var err error
	for i := 0; i < npre && err == nil; i++ {
		_, err = bw.Write(pre[i])
	}
	if err == nil && tail != nil && typ == 'H' {
		_, err = bw.Write(tail)
		tail = nil
	}
	if err == nil && !skip {
		if rename != "" {
			n := 4 + len(prefix) + len(rename) + 1 + len(suffix)
			h := &c.hdr
			h[0], h[1], h[2], h[3], h[4] = typ, byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
			_, err = bw.Write(h[:])
			if err == nil {
				bw.Write(prefix)
				bw.WriteString(rename)
				bw.WriteByte(0)
				_, err = bw.Write(suffix)
			}
		} else {
			_, err = bw.Write(body)
		}
	}
	if err == nil && capture != nil {
		_, err = bw.Write(capture)
	}
	if err == nil && posQuery != nil {
		_, err = bw.Write(posQuery)
	}
	if err == nil && tail != nil {
		_, err = bw.Write(tail)
	}
	if err == nil && flush {
		err = bw.Flush()
	}
	return err
}

// acquire leases a server connection, brings its runtime parameters in
// line with the client's, and starts the pump.
func (c *clientConn) acquire(typ byte, raw []byte) error {
	c.mu.Lock()
	clientStates.Set(&c.state, frontend.StateWaiting)
	c.mu.Unlock()
	if c.cfgSeen != c.srv.Config() {
		c.repool() // a reload since the last lease: its pools
	}
	var e *poolEntry
	var node *replica.Node
	var ps *pool.Server
	var err error
	retryUntil := time.Now().Add(c.cluster.Settings.QueryWaitTimeout)
	for {
		if c.sh != nil { // sharding: the shard of the request
			if e, node, err = c.shardAcquire(typ, raw); err != nil {
				c.mu.Lock()
				clientStates.Set(&c.state, frontend.StateIdle)
				c.mu.Unlock()
				return err
			}
		} else {
			e, node = c.route(typ, raw)
		}
		if c.leaseAlive {
			ps, err = e.p.GetAlive(contextBackground)
		} else {
			ps, err = e.p.Get(contextBackground)
		}
		// A reload closed the pool after it was looked up, or while the
		// client waited in its line: nothing was sent, so route again on
		// the config in force.
		if !errors.Is(err, pool.ErrClosed) || time.Now().After(retryUntil) {
			break
		}
		if node != nil {
			c.rt.Set.Done(node)
			node = nil
		}
		if !c.repool() {
			break
		}
	}
	p := e.p
	unreachable := func() {
		if err != nil && node != nil && !errors.Is(err, pool.ErrWaitTimeout) && !errors.Is(err, pool.ErrQueueFull) {
			// A replica that cannot be reached: nothing was sent yet, so
			// the read goes to the primary and the replica sits out a
			// while. (shardAcquire set c.rt and c.primary to the shard's.)
			c.log.Warn("replica unreachable; reading from the primary", "replica", node.Name, "err", err)
			c.rt.Set.Ban(node.Name, err.Error())
			c.rt.Set.Done(node)
			node, p = nil, c.primary.p
			ps, err = p.Get(contextBackground)
		}
	}
	unreachable()
	var sc *serverConn
	if err == nil {
		sc = ps.Conn.(*serverConn)
		err = c.syncParams(sc)
		if err != nil && !isPgError(err) {
			// The connection failed while being brought in line with the
			// client, before anything of the client's was sent: as with a
			// dead connection found at lease time, try once more, on a
			// connection alive now. An idle one that was closed (its
			// server process ended while it sat in the pool, too recently
			// returned for the pool's look) says nothing against its
			// server: the retry goes to the same one, and bans it only if
			// that refuses a new connection. Any other failure (no answer
			// in time) sends a read to the primary, and the replica sits
			// out a while.
			idleClosed := ps.Reused() && !isTimeout(err)
			p.Put(ps, false)
			c.log.Info("server connection failed before the request was sent; retrying", "server", sc.addr, "idle_closed", idleClosed, "err", err)
			if node != nil && !idleClosed {
				c.rt.Set.Ban(node.Name, err.Error())
				c.rt.Set.Done(node)
				node, p = nil, c.primary.p
			}
			ps, err = p.GetAlive(contextBackground)
			unreachable()
			if err == nil {
				sc = ps.Conn.(*serverConn)
				if err = c.syncParams(sc); err != nil && !isPgError(err) {
					p.Put(ps, false)
					err = &pgError{Severity: "ERROR", Code: codeConnectionFailure, Message: "server connection lost before the request was sent", cause: err}
					ps = nil
				}
			} else {
				err = poolError(err)
				ps = nil
			}
		}
		if err != nil {
			if ps != nil {
				p.Put(ps, true) // a server-side error leaves the connection usable
			}
		} else if err = c.clearSequenceState(sc, typ, raw); err != nil {
			p.Put(ps, isPgError(err)) // a server-side error leaves it usable
			if !isPgError(err) {
				err = &pgError{Severity: "ERROR", Code: codeConnectionFailure, Message: "server connection lost before the request was sent", cause: err}
			}
		} else {
			// Nothing reads the connection until the request is sent:
			// then the main loop relays the replies itself, or starts a
			// pump (finishWriteAs).
			c.mu.Lock()
			c.server, c.lease, c.leasePool = sc, ps, p
			c.leaseNode = node
			c.outstanding, c.unsynced, c.releaseDue, c.rollingBack = 0, false, false, false
			c.srvSkipping, c.unnamedLease, c.copyIn, c.swapOut = false, false, false, nil
			clear(c.portalDeallocs) // no transaction was open: its portals are gone
			c.reader = readerNone
			c.expects.reset()
			clientStates.Set(&c.state, frontend.StateActive)
			c.mu.Unlock()
			return nil
		}
	} else {
		err = poolError(err)
	}
	c.mu.Lock()
	clientStates.Set(&c.state, frontend.StateIdle)
	c.leaseNode = node
	c.leaseEndedLocked()
	c.mu.Unlock()
	return err
}

// clearSequenceState keeps a client from reading another client's
// sequence state. currval() and lastval() read what the session's last
// nextval() left on its connection; under transaction pooling that is
// whoever leased the connection before. A request that calls them at the
// start of a lease runs after DISCARD SEQUENCES, unless this client was
// the connection's last lessee (its own state, as on a direct
// connection): it sees the values of its own lease, or PostgreSQL's
// "currval of sequence ... is not yet defined in this session" (55000),
// never a number another client drew. One round trip more, only for such
// requests on a connection someone else used last.
func (c *clientConn) clearSequenceState(sc *serverConn, typ byte, raw []byte) error {
	own := sc.lastClient == c.id
	sc.lastClient = c.id
	if own || c.keeps() != router.HoldNone {
		return nil
	}
	for _, a := range c.batchAnalyses(typ, raw) {
		if a != nil && a.SequenceState {
			return sc.exec("DISCARD SEQUENCES", c.cluster.Settings.QueryWaitTimeout)
		}
	}
	return nil
}

// isPgError says whether err is (or wraps) an error the server or the
// proxy reports in the client's protocol. A function of its own so that
// the *pgError errors.As needs is allocated only when there is an error:
// declared in acquire, it escaped to the heap at every lease.
func isPgError(err error) bool {
	var pe *pgError
	return errors.As(err, &pe)
}

// detachLocked ends the lease in c's books; the caller returns the
// connection to its pool. c.mu must be held.
func (c *clientConn) detachLocked() (*serverConn, *pool.Server, *pool.Pool) {
	sc, ps, p := c.server, c.lease, c.leasePool
	c.server, c.lease, c.leasePool = nil, nil, nil
	c.releaseDue = false
	c.reader = readerNone
	clientStates.Set(&c.state, frontend.StateIdle)
	c.leaseEndedLocked()
	c.wakeLeaseWaitersLocked()
	return sc, ps, p
}

// releasableLocked says whether the lease can end now.
func (c *clientConn) releasableLocked() bool {
	return c.outstanding <= 0 && !c.unsynced && !c.copyIn && c.txStatus == 'I' &&
		(c.keeps() == router.HoldNone || c.closing || c.gone)
}

// reusableLocked says whether the server connection may go back to the
// pool for another client when the lease ends cleanly: only under
// transaction pooling and for a session that did not pin it. A pinned
// session's connection carries state the proxy cannot undo with
// certainty (temporary tables, LISTEN, advisory locks, SQL PREPARE,
// WITH HOLD cursors, set_config, LOAD): it is closed instead.
func (c *clientConn) reusableLocked() bool {
	return c.keeps() == router.HoldNone
}

// heldIdleLocked says whether c holds a server connection between
// transactions (pinned, or session pooling) with nothing under way on it:
// no reply owed, no batch awaiting its Sync, no transaction open, no
// write in progress. Such a connection can be closed without losing
// anything the client asked for.
func (c *clientConn) heldIdleLocked() bool {
	return c.server != nil && !c.gone && c.outstanding <= 0 && !c.unsynced && c.txStatus == 'I' &&
		c.writers == 0 && !c.releaseDue
}

// dropServer closes the server connection c holds between transactions
// and waits until its pump has let it go, so the pool slot is free and
// the main loop may write to the client. Main loop only, c.mu not held.
func (c *clientConn) dropServer() {
	c.mu.Lock()
	sc, ps := c.server, c.lease
	// The pump's serverFailed tells a client that is still there that its
	// server went away; this one is being closed by the proxy on purpose.
	c.gone = true
	c.mu.Unlock()
	if sc == nil {
		return
	}
	// The pump may be stuck writing notifications to a client that does
	// not read; the client is being closed, so its writes may fail.
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = sc.Close() // the pump's read fails; it returns the slot (closed)
	c.wmu.Lock()   // the pump has returned
	c.mu.Lock()
	var p *pool.Pool
	if c.lease == ps {
		// No pump was reading (it cannot happen while the session is
		// idle, but the slot must not be lost if it does).
		_, _, p = c.detachLocked()
	}
	c.mu.Unlock()
	c.wmu.Unlock()
	if p != nil {
		p.Put(ps, false)
	}
}

// readerKind says who reads the leased server connection (c.reader, under
// mu). With readerNone and a lease, nothing is owed by the server: the
// client is idle inside a transaction, and the main loop's next request
// brings a reader.
type readerKind uint8

const (
	readerNone readerKind = iota
	readerSync            // the main loop, in relaySync
	readerPump            // a pump goroutine
)

// need says what a finished write to the server needs read.
type need uint8

const (
	needRFQ    need = iota // a reader when a ReadyForQuery is owed (more of the request follows)
	needAny                // a reader when the server owes anything (the writes were flushed)
	needSync               // as needAny; the main loop relays a lone request's replies itself
	needFailed             // the write failed: a reader, to report it and free the slot
)

// syncRelayWait is how long the main loop waits for a server's reply
// itself (relaySync) before a pump takes over, so that the main loop reads
// the client again: a client that leaves mid-query is noticed, and its
// statement cancelled, no later than this. (A variable for tests.)
var syncRelayWait = 50 * time.Millisecond

// finishWrite ends a write to the server done outside mu, completes a
// release the reader had to leave to the writer, and sees that the replies
// owed are read (needRFQ).
func (c *clientConn) finishWrite() { c.finishWriteAs(needRFQ) }

// finishWriteAs is finishWrite; n says when the replies owed need a reader
// now. needSync is for the main loop only: it returns once the replies
// are relayed, or passed to a pump.
func (c *clientConn) finishWriteAs(n need) {
	c.mu.Lock()
	c.writers--
	if c.writers > 0 || !c.releaseDue {
		sc := c.server
		owed := c.outstanding > 0 || (n != needRFQ && c.expects.len() > 0) || n == needFailed
		if c.reader != readerNone || sc == nil || !owed {
			c.mu.Unlock()
			return
		}
		ps, p := c.lease, c.leasePool
		// A reader starts for a request that joined a lease whose end
		// was left to a writer (a cancel request under way when the last
		// ReadyForQuery came): that reader ends the lease now, at its
		// ReadyForQuery, not the writer.
		c.releaseDue = false
		if n == needSync && c.outstanding > 0 && !c.copyIn && c.br.Buffered() == 0 {
			// A lone request: its replies are relayed here, without a
			// goroutine and a hand-off per transaction.
			c.reader = readerSync
			c.mu.Unlock()
			c.wmu.Lock() // a pump of the last lease may still be flushing
			c.relaySync(sc, ps, p)
			return
		}
		c.reader = readerPump
		c.mu.Unlock()
		c.wmu.Lock() // handed to the pump, which unlocks it when it ends
		go c.pump(sc, ps, p, false)
		return
	}
	c.releaseDue = false
	if c.reader != readerNone {
		// A reader started since (see above) and ends the lease itself;
		// a second reader, or a release under it, would leave a reader
		// on a connection back in the pool, taking another client's
		// replies (pgx's CancelRequestContextWatcherHandler stress hung).
		c.mu.Unlock()
		return
	}
	if !c.releasableLocked() {
		// The reader stopped at a ReadyForQuery that looked like the end,
		// but this writer has booked more replies since: a new pump reads
		// them. (The old one hands over c.wmu when it returns.)
		sc, ps, p := c.server, c.lease, c.leasePool
		c.reader = readerPump
		c.mu.Unlock()
		c.wmu.Lock()
		go c.pump(sc, ps, p, false)
		return
	}
	reuse := c.reusableLocked()
	if c.gone {
		// As readyForQueryLocked: a departed client's connection is
		// reused only after its rollback or reset answered.
		reuse = c.rollingBack && c.txStatus == 'I'
	}
	sc, ps, p := c.detachLocked()
	closing := c.closing
	c.mu.Unlock()
	err := sc.bw.Flush()
	p.Put(ps, err == nil && reuse)
	if closing {
		_ = c.conn.SetReadDeadline(time.Now())
	}
}

// pump relays the server's messages to the client for one lease and ends
// it when the client's transaction is over. It owns c.wmu. discard says
// the client can no longer be written to.
func (c *clientConn) pump(sc *serverConn, ps *pool.Server, p *pool.Pool, discard bool) {
	defer c.wmu.Unlock()
	defer c.releaseWriter() // idle.go: an idle client keeps no write buffer
	c.relayReplies(sc, ps, p, false, discard)
}

// relaySync is the main loop relaying the replies to the request it just
// sent, as a pump would, while they come within syncRelayWait of each
// other and fit the read buffer; then a pump takes over. The caller holds
// c.wmu (passed to the pump, or released) and set c.reader to readerSync.
func (c *clientConn) relaySync(sc *serverConn, ps *pool.Server, p *pool.Pool) {
	_ = sc.conn.SetReadDeadline(time.Now().Add(syncRelayWait))
	if end, discard := c.relayReplies(sc, ps, p, true, false); end == relayHandover {
		_ = sc.conn.SetReadDeadline(time.Time{})
		go c.pump(sc, ps, p, discard)
		return
	}
	c.wmu.Unlock()
}

// relayEnd is why relayReplies returned.
type relayEnd uint8

const (
	relayOver     relayEnd = iota // the lease ended, failed, or its end was left to a writer
	relayIdle                     // sync: every reply is in; the lease stays, idle in a transaction
	relayHandover                 // sync: a pump must go on (c.reader is readerPump)
)

// relayReplies is the loop of a reader of the leased server (c.reader):
// the pump's, or the main loop's with sync, which stops at a wait longer
// than syncRelayWait (the read deadline relaySync set), at a message larger
// than the read buffer, at COPY, and when the replies owed are in.
func (c *clientConn) relayReplies(sc *serverConn, ps *pool.Server, p *pool.Pool, sync, discard bool) (end relayEnd, _ bool) {
	c.writer()
	defer func() {
		// A server that sends something malformed loses this client its
		// connection, never the proxy its other clients.
		if r := recover(); r != nil {
			if c.relayLocked {
				// The panic came while the loop held c.mu (booking a
				// reply): serverFailed takes it again.
				c.unlockRelay()
			}
			c.log.Error("relay from server panicked; closing the server connection", "server", sc.addr, "panic", r, "stack", string(debug.Stack()))
			if sync {
				_ = sc.conn.SetReadDeadline(time.Time{})
			}
			c.serverFailed(sc, ps, p, fmt.Errorf("malformed reply from the server: %v", r))
			end = relayOver
		}
	}()
	// discard: the client cannot be written to any more
	fast := false  // the head of the books is a relayed Execute or Query: rows need no lock
	var out []byte // synthesized replies to send around the current message
	writeErr := func(err error) {
		if err != nil && !discard {
			discard = true
			// The main loop learns it from its read.
			c.conn.Close()
		}
	}
	handover := func() (relayEnd, bool) {
		c.mu.Lock()
		c.reader = readerPump
		c.mu.Unlock()
		if !discard && c.bw.Buffered() > 0 {
			writeErr(c.bw.Flush())
		}
		return relayHandover, discard
	}
	for {
		if sync {
			hdr, err := sc.rd.Buffer().Peek(5)
			if isTimeout(err) {
				return handover()
			}
			if err == nil && int(binary.BigEndian.Uint32(hdr[1:]))+1 > sc.rd.Buffer().Size() {
				return handover() // RelayLarge's business
			}
		} else if fast && !discard {
			sink := &c.sink
			*sink = errSink{w: c.bw}
			if handled, err := sc.rd.RelayLarge(sink); handled {
				if err != nil {
					c.serverFailed(sc, ps, p, err)
					return
				}
				writeErr(sink.err)
				continue
			}
		}
		typ, raw, err := sc.rd.Next()
		if sync && isTimeout(err) {
			return handover() // a message that fits the buffer: nothing of it was consumed
		}
		if sync && c.redoable {
			c.redoable = false // the first reply only
			var dead bool
			if dead, raw = c.deadOnArrival(sc, typ, raw, err); dead {
				c.endDeadLease(sc, ps, p, typ, err)
				return relayOver, discard
			}
		}
		if err == nil && typ == 'Z' && len(raw) != 6 {
			err = fmt.Errorf("ReadyForQuery of %d bytes", len(raw))
		}
		if err != nil {
			if sync {
				_ = sc.conn.SetReadDeadline(time.Time{})
			}
			c.serverFailed(sc, ps, p, err)
			return relayOver, discard
		}
		if fast && (typ == 'D' || typ == 'd') {
			if !discard {
				_, err := c.bw.Write(raw)
				writeErr(err)
				if !sc.rd.FullFrameBuffered() && !discard {
					writeErr(c.bw.Flush())
				}
			}
			continue
		}
		if typ == 'S' {
			sc.noteParameter(raw[5:])
		}
		c.mu.Lock()
		c.relayLocked = true
		if c.server != sc {
			// Not this client's connection any more: whoever holds it
			// now lost this message. A bug in the books, made loud.
			c.unlockRelay()
			c.log.Error("relay read a server connection its client no longer holds; stopping that reader", "server", sc.addr, "message", string(typ))
			return relayOver, discard
		}
		if testHookReply != nil {
			testHookReply(typ, raw)
		}
		if traceOn {
			tracef("c%d recv %c q=%d", c.pid%1000, typ, c.expects.len())
		}
		out = c.emitSynthLocked(out[:0])
		relay := c.matchLocked(typ, raw, sc)
		if c.swapOut != nil {
			out = append(out, c.swapOut...)
			c.swapOut = nil
		}
		post := len(out)
		out = c.emitSynthLocked(out)
		f := c.expects.front()
		fast = f != nil && f.act == actRelay && (f.kind == 'E' || f.kind == 'Q')
		var done bool
		if typ == 'Z' {
			if sync {
				// The connection may go back to the pool now, without a
				// deadline of this client's.
				_ = sc.conn.SetReadDeadline(time.Time{})
			}
			done = c.readyForQueryLocked(raw[5], sc, out[:post], out[post:], discard, relay)
			// readyForQueryLocked unlocked c.mu and wrote the replies.
			if done {
				return relayOver, discard
			}
			if sync {
				c.mu.Lock()
				switch {
				case c.outstanding > 0 && !c.copyIn:
					c.mu.Unlock()
					_ = sc.conn.SetReadDeadline(time.Now().Add(syncRelayWait))
					continue
				case c.outstanding == 0 && c.expects.len() == 0 && !c.unsynced && !c.copyIn &&
					c.keeps() == router.HoldNone && c.txStatus != 'I':
					// Idle in a transaction: nothing is owed, and the
					// next request brings a reader. (A pinned or session
					// pooled client keeps a pump for notifications.)
					c.reader = readerNone
					c.mu.Unlock()
					return relayIdle, discard
				}
				c.mu.Unlock()
				return handover()
			}
			continue
		}
		c.unlockRelay()
		if discard {
			continue
		}
		if post > 0 {
			_, err = c.bw.Write(out[:post])
			writeErr(err)
		}
		if relay {
			_, err = c.bw.Write(raw)
			writeErr(err)
		}
		if len(out) > post {
			_, err = c.bw.Write(out[post:])
			writeErr(err)
		}
		if !discard && !sc.rd.FullFrameBuffered() {
			writeErr(c.bw.Flush())
		}
		if sync && (typ == 'G' || typ == 'W' || typ == 'H') {
			// COPY: the client sends data (or waits for a stream) while
			// the server answers; a pump reads it.
			return handover()
		}
	}
}

// deadWait bounds how long deadOnArrival waits for a server that sent a
// FATAL to close the connection; resetWait for the reset that answers a
// request sent after the server's end (one round trip; PeerReset).
const (
	deadWait  = 2 * time.Second
	resetWait = 100 * time.Millisecond
)

// deadOnArrival says whether the first reply to a redoable request, typ
// and raw or the read's failure err, shows that its server connection was
// dead before the request could run: the server process had ended (the
// pool hands out a connection returned moments ago without looking at its
// socket) and its kernel answered the request with a reset, or it ended
// without reading the request. Any reply before the failure, or a server
// that read the request and then died (killed mid-statement, or by the
// statement itself), makes it false: the client is told, as before. A
// FATAL is waited past, to the connection's end; raw is then a copy.
//
// Nothing of a request unread by its server process ran. Of one the
// process read before it died nothing committed unless the commit's reply
// came first (a server flushes the replies it owes before its FATAL), and
// that reply would have been the first.
func (c *clientConn) deadOnArrival(sc *serverConn, typ byte, raw []byte, err error) (bool, []byte) {
	if err != nil {
		return frontend.PeerReset(sc.conn, err, resetWait), raw
	}
	if typ != 'E' {
		return false, raw
	}
	var er pgproto3.ErrorResponse
	if er.Decode(raw[5:]) != nil {
		return false, raw
	}
	if sev := cmp.Or(er.SeverityUnlocalized, er.Severity); sev != "FATAL" && sev != "PANIC" {
		return false, raw
	}
	raw = slices.Clone(raw) // the look below may move the read buffer
	_ = sc.conn.SetReadDeadline(time.Now().Add(deadWait))
	_, perr := sc.rd.Buffer().Peek(1)
	_ = sc.conn.SetReadDeadline(time.Now().Add(syncRelayWait))
	return perr != nil && frontend.PeerReset(sc.conn, perr, resetWait), raw
}

// endDeadLease ends a lease deadOnArrival found dead, without a word to
// the client: its request goes again (forward), and the replica, if the
// lease was on one, is not at fault for a connection that died idle.
func (c *clientConn) endDeadLease(sc *serverConn, ps *pool.Server, p *pool.Pool, typ byte, err error) {
	_ = sc.conn.SetReadDeadline(time.Time{})
	c.mu.Lock()
	c.leaseWrites = false // nothing was written
	c.detachLocked()
	c.outstanding, c.unsynced = 0, false
	c.expects.reset()
	c.redo = true
	c.mu.Unlock()
	p.Put(ps, false)
	if err == nil {
		err = fmt.Errorf("the server sent %q and closed the connection", typ)
	}
	c.log.Info("idle server connection found dead before the request reached it; retrying", "server", sc.addr, "err", err)
}

// isTimeout says whether err is a read deadline passing.
func isTimeout(err error) bool {
	return err != nil && errors.Is(err, os.ErrDeadlineExceeded)
}

// codeDuplicatePStatement is PostgreSQL's duplicate_prepared_statement.
const codeDuplicatePStatement = "42P05"

var (
	parseComplete = []byte{'1', 0, 0, 0, 4}
	closeComplete = []byte{'3', 0, 0, 0, 4}
)

// emitSynthLocked pops the synthesized replies at the head of the books.
func (c *clientConn) emitSynthLocked(out []byte) []byte {
	for f := c.expects.front(); f != nil && (f.act == actSynth || f.act == actMark); f = c.expects.front() {
		if f.act == actMark {
			// nothing to send
		} else if f.msg != nil {
			out = append(out, f.msg...)
		} else if f.synth == '1' {
			out = append(out, parseComplete...)
		} else {
			out = append(out, closeComplete...)
		}
		c.expects.pop()
	}
	return out
}

// matchLocked books one server message against the head of the books and
// says whether the client gets it.
func (c *clientConn) matchLocked(typ byte, raw []byte, sc *serverConn) (relay bool) {
	q := &c.expects
	f := q.front()
	if f == nil {
		return true // asynchronous: notices, notifications, parameter changes
	}
	if f.act == actPosition {
		return c.positionReplyLocked(typ, raw)
	}
	if f.act == actCapture {
		switch typ {
		case 'D':
			c.captureRowLocked(f, raw)
		case 'Z':
			c.applyCaptureLocked(f, raw[5], sc)
			q.pop()
		case 'N', 'A', 'S':
			return true
		}
		return false
	}
	if f.swapMsg != nil && typ == f.swap {
		c.swapOut, f.swapMsg = f.swapMsg, nil
		if typ == 'I' && f.cname != "" { // DEALLOCATE of a statement the connection lacked
			c.stmtDrops = append(c.stmtDrops, f.cname)
		}
		c.bookLocked(typ, raw, sc, f)
		return false
	}
	return c.bookLocked(typ, raw, sc, f)
}

// bookLocked is matchLocked for the entry f at the head of the books.
func (c *clientConn) bookLocked(typ byte, raw []byte, sc *serverConn, f *expect) (relay bool) {
	q := &c.expects
	if typ == 'C' {
		c.noteTagLocked(raw, f, sc)
		c.noteStmtTagLocked(raw, f, sc)
		if isDDLTag(raw[5:]) {
			c.srv.stmts.schemaChanged()
		}
	}
	drop := f.act == actDrop
	switch typ {
	case '1':
		if f.kind == 'P' {
			if f.g != nil {
				f.g.ok.Store(true)
			}
			q.pop()
			return !drop
		}
	case '2':
		if f.kind == 'B' {
			q.pop()
		}
	case '3':
		if f.kind == 'C' {
			q.pop()
			return !drop
		}
	case 't':
		if f.kind == 'D' && f.g != nil {
			f.g.noteParamTypes(raw)
		}
		if f.kind == 'D' && f.ud != nil {
			f.ud.oids = pgframe.DecodeOIDs(raw[5:])
		}
	case 'T', 'n':
		if f.kind == 'D' {
			q.pop()
		}
	case 'C', 'I', 's':
		if f.kind == 'E' {
			q.pop()
		}
	case 'G':
		if f.kind == 'E' || f.kind == 'Q' {
			c.copyInLocked(f)
		}
	case 'E':
		c.copyIn = false // an error ends COPY FROM STDIN
		c.failedRequestLocked()
		switch f.kind {
		case 'Q', 'F', 'S':
			// Part of a simple query or of the Sync; the server goes on.
		default:
			// The server skips everything up to the next Sync: so do the
			// books. A statement whose Parse failed or was skipped is not
			// prepared there; a Close skipped did not close.
			first := f
			for f = q.front(); f != nil && f.kind != 'S'; f = q.front() {
				switch {
				case f.kind == 'P' && f.g != nil && f.act != actSynth:
					sc.stmts.remove(f.g)
					if f == first {
						// This Parse failed: not kept unless a server
						// accepted the statement before.
						c.srv.stmts.forget(f.g)
					}
				case f.kind == 'C' && f.evict:
					sc.stmts.add(f.g)
				}
				if f.kind == 'P' && f.cname != "" {
					// The client's name was not prepared: free for
					// another Parse, as on the server.
					c.stmtDrops = append(c.stmtDrops, f.cname)
				}
				q.pop()
			}
			if q.len() == 0 {
				c.srvSkipping = true
			}
		}
	case 'Z':
		if f.kind == 'S' || f.kind == 'Q' || f.kind == 'F' {
			q.pop()
			return !drop
		}
	}
	return true
}

// copyInLocked books the start of COPY FROM STDIN by f, the request at
// the head of the books. Until the client's CopyDone or CopyFail the
// server ignores Sync, so the Syncs the client sent after the request
// and before that end owe no ReadyForQuery; if the end has not been sent
// yet, Syncs are not sent at all until it is (sendMsg).
func (c *clientConn) copyInLocked(f *expect) {
	q := &c.expects
	ended := false
	for i := 1; i < q.len() && !ended; {
		e := q.at(i)
		switch {
		case e.kind == 'S' && e.act == actRelay:
			q.removeAt(i)
			c.outstanding--
		case e.act == actMark:
			q.removeAt(i)
			ended = true
		default:
			// Anything else during COPY is an error the server will
			// report; the books from here on stay as they are.
			return
		}
	}
	if !ended {
		c.copyIn = true
	}
	if f.kind == 'E' {
		// The extended-protocol request still needs a Sync of its own.
		synced := false
		for i := 1; i < q.len(); i++ {
			synced = synced || q.at(i).kind == 'S'
		}
		c.unsynced = !synced
	}
}

// readyForQueryLocked books a ReadyForQuery, relays it with the replies
// synthesized around it, and ends the lease when it is due. Called with
// c.mu held; returns with it released. It reports whether the pump is done
// with this server connection.
func (c *clientConn) readyForQueryLocked(status byte, sc *serverConn, pre, post []byte, discard, relay bool) bool {
	c.outstanding--
	if status == 'I' && c.txStatus != 'I' {
		c.endTxnLocked(sc)
	}
	c.txStatus = status
	c.wakeLeaseWaitersLocked() // replicaRequest may wait for the last reply
	if relay {
		if status == 'I' {
			c.mTxn.Inc()
		}
		c.mQuery.Inc()
	}
	flushClient := func() {
		if discard {
			return
		}
		_, _ = c.bw.Write(pre)
		if relay {
			c.rfq = [6]byte{'Z', 0, 0, 0, 5, status}
			_, _ = c.bw.Write(c.rfq[:])
		}
		_, _ = c.bw.Write(post)
		_ = c.bw.Flush()
	}
	if c.gone {
		if c.outstanding > 0 {
			c.unlockRelay()
			return false
		}
		if c.writers > 0 {
			// A cancel request holds the lease until the server has it:
			// the connection must not serve another client before; the
			// writer ends the lease (finishWriteAs).
			c.releaseDue = true
			c.reader = readerNone
			c.unlockRelay()
			return true
		}
		// The cleanup the client's departure called for is done.
		_, ps, p := c.detachLocked()
		ok := c.rollingBack && status == 'I'
		c.unlockRelay()
		if ok {
			_ = sc.conn.SetDeadline(time.Time{})
		}
		p.Put(ps, ok)
		return true
	}
	if !c.releasableLocked() {
		c.unlockRelay()
		flushClient()
		return false
	}
	if c.writers > 0 {
		c.releaseDue = true
		c.reader = readerNone // the writer ends the lease, or starts a pump
		c.unlockRelay()
		flushClient()
		return true
	}
	reuse := c.reusableLocked()
	_, ps, p := c.detachLocked()
	closing := c.closing
	c.unlockRelay()
	flushClient()
	p.Put(ps, reuse)
	if closing {
		_ = c.conn.SetReadDeadline(time.Now())
	}
	return true
}

// testHookReply, when a test sets it, sees each server reply the relay
// books, under c.mu (a test panics there as a bug in the booking would).
var testHookReply func(typ byte, raw []byte)

// unlockRelay unlocks c.mu that the relay loop locked to book a reply
// (readyForQueryLocked ends that hold too); relayReplies' recover uses
// c.relayLocked to know whether a panic came with c.mu held.
func (c *clientConn) unlockRelay() {
	c.relayLocked = false
	c.mu.Unlock()
}

// serverFailed handles a server connection that broke under the client:
// the client's transaction is lost, so it is told so and closed, as a real
// server's crash would do.
func (c *clientConn) serverFailed(sc *serverConn, ps *pool.Server, p *pool.Pool, err error) {
	c.mu.Lock()
	if c.lease != ps {
		// The lease already ended (a panic after the release): the
		// connection is not ours to return; end the client's session.
		c.mu.Unlock()
		c.conn.Close()
		return
	}
	gone := c.gone
	c.detachLocked()
	c.broken = !gone
	c.mu.Unlock()
	p.Put(ps, false)
	if gone {
		return
	}
	c.log.Warn("server connection lost", "server", sc.addr, "err", err)
	msg := toErrorResponse(&pgError{Severity: "FATAL", Code: codeConnectionFailure,
		Message: "server connection lost; the transaction in progress, if any, was not committed", cause: err})
	_ = c.send(msg)
	c.conn.Close()
}

// clientLeft cleans up after a client that closed its connection, sent
// Terminate, or failed. A server connection it held is rolled back and
// reused when that is cheap and certain, and closed otherwise.
func (c *clientConn) clientLeft(err error) {
	c.mu.Lock()
	if c.closing && (c.server == nil || c.heldIdleLocked()) {
		held := c.server != nil
		c.mu.Unlock()
		if held {
			c.dropServer()
		}
		c.sendFromProxy(toErrorResponse(newFatal(codeAdminShutdown, "terminating connection due to administrator command")))
		return
	}
	if err != nil && !isQuiet(err) && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.log.Info("closing client connection", "err", err, "age", time.Since(c.start).Round(time.Millisecond))
		if errors.Is(err, pgframe.ErrTooLarge) {
			c.mu.Unlock()
			c.sendFromProxy(toErrorResponse(&pgError{Severity: "FATAL", Code: codeProgramLimitExceeded, Message: "message too large", cause: err}))
			c.mu.Lock()
		}
	}
	c.gone = true
	sc := c.server
	if sc == nil || c.releaseDue {
		// No lease, or one a writer (a cancel request under way) ends
		// when it is done: nothing is owed, and a reader started now
		// would still be reading the connection after it went back to
		// the pool, taking the next client's replies.
		c.mu.Unlock()
		return
	}
	if c.reader == readerNone {
		// Idle in a transaction: what follows expects a pump to read the
		// cleanup's reply, or its read to fail and free the slot.
		ps, p := c.lease, c.leasePool
		c.reader = readerPump
		c.mu.Unlock()
		c.wmu.Lock()
		go c.pump(sc, ps, p, true)
		c.mu.Lock()
		if c.server != sc { // it failed already
			c.mu.Unlock()
			return
		}
	}
	var cleanup string
	switch {
	case c.outstanding > 0 || c.unsynced || c.copyIn:
		// Replies are still due to a client that cannot read them:
		// closing is the only bounded cleanup.
	case c.mode == config.PoolTransaction && c.pinReason != "":
		// A pinned session: its state (temporary tables, LISTEN, advisory
		// locks, SQL PREPAREs, WITH HOLD cursors, set_config, LOAD) goes
		// with its server connection. Closing is certain and costs the
		// pool one reconnect; a reset (ROLLBACK, DISCARD ALL) would still
		// leave LOADed libraries and custom settings behind. Nothing runs,
		// so there is nothing to cancel: the server backend ends at once,
		// taking an open transaction with it, and the pump, whose read
		// fails, frees the slot.
		c.mu.Unlock()
		_ = sc.Close()
		return
	case c.txStatus != 'I' && c.mode == config.PoolTransaction:
		cleanup = "ROLLBACK"
	case c.txStatus == 'I' && c.mode == config.PoolSession:
		cleanup = "DISCARD ALL"
	case c.txStatus == 'I':
		// The pump or a writer is handing the connection back already.
		c.mu.Unlock()
		return
	}
	if cleanup == "" {
		c.mu.Unlock()
		// A closed socket does not stop a running statement (PostgreSQL
		// notices only when it next writes), and its locks would stay:
		// cancel it first, then close.
		if err := sc.cancel(cancelTimeout); err != nil {
			c.log.Info("cancelling the departed client's statement failed", "err", err)
		}
		sc.conn.Close()
		return
	}
	c.outstanding++
	c.expects.push(expect{kind: 'Q'})
	c.rollingBack = true
	if cleanup == "DISCARD ALL" {
		// DISCARD ALL deallocates every statement and resets every
		// setting: the books of the connection must say so, or the next
		// client's startup parameters would be taken as applied already.
		sc.stmts.clear()
		clear(sc.applied)
	}
	c.writers++
	c.mu.Unlock()
	_ = sc.conn.SetDeadline(time.Now().Add(cleanupTimeout))
	buf, _ := (&pgproto3.Query{String: cleanup}).Encode(nil)
	_, werr := sc.bw.Write(buf)
	if werr == nil {
		werr = sc.bw.Flush()
	}
	if werr != nil {
		sc.conn.Close()
	}
	c.finishWrite()
}

var traceOn = os.Getenv("SWITCHYARD_TRACE") != ""

func tracef(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// waitLeaseLocked waits, with mu held, until a lease-state change wakes
// the main loop (wakeLeaseWaitersLocked); the caller checks its condition
// again.
func (c *clientConn) waitLeaseLocked() {
	if c.leaseIdle.L == nil {
		c.leaseIdle.L = &c.mu
	}
	c.leaseIdle.Wait()
}

// wakeLeaseWaitersLocked wakes waitLeaseLocked; mu held.
func (c *clientConn) wakeLeaseWaitersLocked() { c.leaseIdle.Broadcast() }
