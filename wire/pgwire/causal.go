package pgwire

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/lagmon"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/pgframe"
)

// Read-your-writes with the check in the same round trip as the read.
//
// A read that needs a position no replica is known to have replayed (the
// client wrote a moment ago, and the lag monitor's last samples predate
// the write's replay) goes to a replica with a check written in front of
// it, both flushed at once:
//
//	[Parse sy_0]  SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn
//	              AND current_setting('transaction_isolation') = 'read committed'
//	Bind sy_0 ('<P>'), Execute sy_0
//	the client's request: its extended-protocol messages up to Sync, or a
//	Query followed by a Sync of the proxy's
//
// The check is a statement of the proxy's (prepared once per server
// connection, under a name clients may not use) bound to a portal of its
// own, so the client's unnamed statement and portal stay as they were. It
// shares the request's implicit transaction and so costs no flush and no
// ReadyForQuery of its own: the server answers check and request in one
// go. The request's statements take their snapshots after the check ran
// (read committed, which the check requires), so a request that follows
// a passed check sees P. The main loop reads the check's answer itself,
// before anything else reads the connection: the client never sees it.
//
// Passed: the request's replies are relayed as usual, and the lag monitor
// learns that the replica has P, so the next reads that need P go there
// without a check. Not passed (false, or NULL: not in recovery): the
// request ran anyway (a read: it changed nothing); its replies are read
// and dropped through the books, the replica's lease ends, and the request
// is sent again, as if the client had just sent it, to the primary (or,
// with causal_read_timeout, to a replica the probes find has P). The
// check failed (an error: the server skipped the request up to the Sync):
// the connection is closed, and the request goes to the primary the same
// way.
//
// Requests that cannot carry a check use the on-demand probe (Pick): a
// batch ended by Flush (its replies must reach the client before the
// request is complete), function calls, and requests with session
// effects (SET, a READ ONLY BEGIN, PREPARE/DEALLOCATE, ROLLBACK TO): their
// effects on the session's books would have to be undone.

// causalCheck is the check the current lease's first request carries.
type causalCheck struct {
	pos     lagmon.Position
	start   time.Time // when the read was routed
	req     []byte    // the request's messages, for a second send
	names   []string  // statement names its Parses added to c.stmts
	prepare bool      // the check's statement was prepared with it
	counted bool      // the request reads (PickRead's counted)
	buf     [256]byte
}

// executes says whether the request that starts a lease, ended by a
// message of type typ, runs a statement: a Query, a function call, or
// extended messages with an Execute. One that only parses and describes
// (lib/pq's first round trip of a query with parameters) goes where a
// read would but is no read for the read-your-writes metrics.
func (c *clientConn) executes(typ byte) bool {
	return typ == 'Q' || typ == 'F' || typ == 'E' || pgframe.HasAny(c.pending, "EF")
}

// canCheck says whether the request that starts a lease, ended by a
// message of type typ, may carry a position check.
func (c *clientConn) canCheck(typ byte, as []*router.Analysis) bool {
	if (typ != 'S' && typ != 'Q') || c.sh != nil ||
		c.copyIn || len(c.capture) > 0 || c.captureAll || c.captureTxn {
		return false
	}
	for _, a := range as {
		if a == nil || a.ReadOnlyBegin || len(a.Sets) > 0 || a.Pin != "" || a.RollbackTo || a.Chain ||
			a.Deallocate != nil || len(a.StatementNames) > 0 || a == fnCallAnalysis {
			return false
		}
	}
	return !pgframe.HasAny(c.pending, "HF")
}

// sendCheck writes the position check to sc ahead of the request (the
// held messages and typ's raw), keeping a copy of the request for a
// second send. The caller flushes.
func (c *clientConn) sendCheck(sc *serverConn, ck *causalCheck, raw []byte) error {
	ck.req = append(append(ck.req[:0], c.pending...), raw...)
	c.mu.Lock()
	for b := ck.req; len(b) >= 5; {
		n := int(binary.BigEndian.Uint32(b[1:])) + 1
		if b[0] == 'P' {
			if name, _, ok := pgframe.CString(b[5:n]); ok && len(name) > 0 && c.stmts[string(name)] == nil {
				ck.names = append(ck.names, string(name))
			}
		}
		b = b[n:]
	}
	c.mu.Unlock()
	ck.prepare = !sc.causalReady
	sc.causalReady = true
	_, err := sc.bw.Write(checkMessages(ck.buf[:0], ck.prepare, ck.pos))
	return err
}

// The check's statement and portal are named sy_0, a name no client may
// use (the statement registry's names start at sy_1). It is true only in
// a read committed transaction: the request runs in the same implicit
// transaction, and its statements take snapshots of their own, after the
// check's, only at that isolation level.
const (
	checkName = "sy_0"
	checkSQL  = "SELECT pg_catalog.pg_last_wal_replay_lsn() >= $1::pg_catalog.pg_lsn AND pg_catalog.current_setting('transaction_isolation') = 'read committed'"
)

// checkMessages appends the check of position pos: Parse (when prepare),
// Bind and Execute, without Sync.
func checkMessages(b []byte, prepare bool, pos lagmon.Position) []byte {
	msg := func(b []byte, typ byte) ([]byte, int) {
		return append(b, typ, 0, 0, 0, 0), len(b)
	}
	end := func(b []byte, at int) []byte {
		binary.BigEndian.PutUint32(b[at+1:], uint32(len(b)-at-1))
		return b
	}
	var at int
	if prepare {
		b, at = msg(b, 'P')
		b = append(append(b, checkName...), 0)
		b = append(append(b, checkSQL...), 0)
		b = end(append(b, 0, 0), at) // no parameter types given
	}
	lsn := pos.String()
	b, at = msg(b, 'B')
	b = append(append(b, checkName...), 0) // portal
	b = append(append(b, checkName...), 0) // statement
	b = append(b, 0, 0, 0, 1)              // no format codes (text); one parameter
	b = binary.BigEndian.AppendUint32(b, uint32(len(lsn)))
	b = append(b, lsn...)
	b = end(append(b, 0, 0), at) // result columns in text
	b, at = msg(b, 'E')
	b = append(append(b, checkName...), 0)
	return end(append(b, 0, 0, 0, 0), at)
}

// checkWait bounds the wait for the check's answer: a replica that does
// not answer by then is treated as failed.
const checkWait = 30 * time.Second

// readCheck reads the answer to the check sent ahead of the request (and
// nothing of the request's): passed when the replica had replayed the
// position. failed means the check itself failed (the statement was gone,
// say): the server then skipped the request up to its Sync, and readCheck
// has read through that Sync's ReadyForQuery.
func (c *clientConn) readCheck(sc *serverConn, prepared bool) (passed, failed bool, err error) {
	_ = sc.conn.SetReadDeadline(time.Now().Add(checkWait))
	defer func() { _ = sc.conn.SetReadDeadline(time.Time{}) }()
	for {
		typ, raw, err := sc.rd.Next()
		if err != nil {
			return false, false, err
		}
		switch typ {
		case 'D':
			// One column: 't', 'f', or NULL when not in recovery.
			if len(raw) >= 12 && binary.BigEndian.Uint16(raw[5:]) == 1 && int32(binary.BigEndian.Uint32(raw[7:])) == 1 {
				passed = raw[11] == 't'
			}
		case 'C':
			if !failed {
				return passed, false, nil
			}
		case 'S':
			sc.noteParameter(raw[5:])
		case 'E':
			failed, passed = true, false
		case 'Z':
			if failed {
				return false, true, nil
			}
			return false, false, fmt.Errorf("ReadyForQuery in the answer to the position check")
		case '1', '2', 'N', 'A':
		default:
			if !failed {
				return false, false, fmt.Errorf("unexpected message %q in the answer to the position check", typ)
			}
		}
	}
}

// checkedSend is forward's send of a request that carries a position
// check: the check, the request, one flush; then the check's answer. It
// returns done when the request was dealt with here (the check failed:
// its replies were dropped and it was sent again elsewhere; ok is then
// forward's result), else the caller goes on as for any flushed request.
// The caller holds a writers reservation on sc.
func (c *clientConn) checkedSend(sc *serverConn, typ byte, raw []byte) (done, ok bool, err error) {
	pos, start, counted := c.reads.Take()
	ck := &causalCheck{pos: pos, start: start, counted: counted}
	rt, node := c.rt, c.leaseNode
	sent := time.Now()
	if err = c.sendCheck(sc, ck, raw); err == nil && len(c.pending) > 0 {
		err = c.sendPending(sc)
	}
	if err == nil {
		err = c.sendMsg(sc, typ, raw, typ != 'Q')
	}
	if err == nil && typ == 'Q' {
		// A Query after the check's Execute: a Sync of the proxy's ends
		// the implicit transaction should the check fail (the server
		// then skips the Query); its ReadyForQuery is not the client's.
		c.mu.Lock()
		c.expects.push(expect{kind: 'S', act: actDrop})
		c.outstanding++
		c.mu.Unlock()
		if _, err = sc.bw.Write(syncMsg); err == nil {
			err = sc.bw.Flush()
		}
	}
	var passed, failed bool
	if err == nil {
		passed, failed, err = c.readCheck(sc, ck.prepare)
	}
	if err != nil {
		sc.causalReady = false
		return false, false, err
	}
	rt.CheckDone(node, ck.pos, passed, ck.counted, sent, time.Since(ck.start))
	if passed {
		c.reads.Checked() // a read riding this lease was checked here
		return false, false, nil
	}
	if failed {
		// The server skipped the request: the books expect replies that
		// will not come. The connection, idle now, is closed rather than
		// squared with them.
		c.mu.Lock()
		c.writers--
		_, ps, p := c.detachLocked()
		c.mu.Unlock()
		_ = sc.Close()
		p.Put(ps, false)
	} else {
		// Read the replies off and end the lease, as a pump would, with
		// nothing written to the client.
		c.mu.Lock()
		c.writers--
		c.reader = readerPump
		ps, p := c.lease, c.leasePool
		c.mu.Unlock()
		c.wmu.Lock()
		c.relayReplies(sc, ps, p, false, true)
		c.wmu.Unlock()
	}
	c.mu.Lock()
	broken, leased := c.broken, c.server != nil
	for _, name := range ck.names {
		delete(c.stmts, name) // prepared again by the second send
	}
	c.mu.Unlock()
	if broken || leased {
		// The replica failed under the request (the client was told), or
		// the lease did not end: nothing more to do here.
		return true, !broken, nil
	}
	c.reads.CheckFailed(ck.start)
	for b := ck.req; len(b) >= 5; {
		n := int(binary.BigEndian.Uint32(b[1:])) + 1
		if !c.forward(b[0], b[:n]) {
			return true, false, nil
		}
		b = b[n:]
	}
	c.reads.Retried()
	return true, true, nil
}

var syncMsg = []byte{'S', 0, 0, 0, 4}

// positionQuery reads the primary's WAL insert position.
var positionQuery = pgframe.Query("SELECT pg_catalog.pg_current_wal_insert_lsn()::text")

// positionQueryLocked is sendMsg's: for a client that reads right after
// its writes (c.reads.WantPosition), a Query of the primary's position is sent
// behind a request (a Query or a Sync) of a lease on the primary that
// wrote, and booked; it returns the message, nil when none is due. When
// the request ended the write's transaction, the position, read after
// the commit on the same connection, covers it: the client's next read
// needs no probe of the primary (positionReplyLocked). The client's
// replies come first; the main loop reads this one with them when it
// relays a lone request, before it reads the client's next request. Only
// a request that wrote outside a transaction or ended one gets it
// (c.posDue). A request that may start COPY FROM STDIN (c.posBlocked: a COPY FROM, or
// several statements) gets none: the server would take the query for
// copy data.
func (c *clientConn) positionQueryLocked() []byte {
	if c.posBlocked || !c.posDue || c.leaseNode != nil || !c.leaseWrites || c.rt == nil || c.sh != nil ||
		c.keeps() != router.HoldNone || c.copyIn {
		return nil
	}
	c.expects.push(expect{kind: 'Q', act: actPosition})
	c.outstanding++
	return positionQuery
}

// awaitPositionLocked: a request that comes while a lease is held only
// for replies of the proxy's own (every reply of the client's relayed, no
// transaction open): on the primary, the position query behind the
// client's last write; on a replica, the ReadyForQuery of the Sync the
// proxy sent behind a checked Query. It waits for them and the lease's
// end, up to positionWait, so that it is routed as the first request of
// a lease: a read goes to a replica with the write's position known, as
// it would had the pump read those replies sooner, instead of riding the
// lease uncounted in the read-your-writes metrics (make check-causal:
// under load, 1-5 of 45,000 Query reads rode the replica lease of the
// read before them). Called from forward with c.mu held.
func (c *clientConn) awaitPositionLocked() {
	sc := c.server
	if len(c.pending) > 0 || c.reader != readerPump || c.txStatus != 'I' || c.unsynced || c.copyIn || c.expects.len() == 0 {
		return
	}
	for i := range c.expects.len() {
		if e := c.expects.at(i); e.act != actPosition && (e.kind != 'S' || e.act != actDrop || c.leaseNode == nil) {
			return
		}
	}
	// A bound on the wait: a pump that stops without ending the lease
	// (the server failed under it) wakes nobody.
	expired := false
	t := time.AfterFunc(positionWait, func() {
		c.mu.Lock()
		expired = true
		c.wakeLeaseWaitersLocked()
		c.mu.Unlock()
	})
	for c.server == sc && c.reader == readerPump && !expired {
		c.waitLeaseLocked()
	}
	t.Stop()
}

// positionWait bounds awaitPositionLocked's wait, for safety only: a
// server connection that fails under the pump ends the lease too
// (serverFailed), and a request riding the lease would wait for the
// position's answer on that connection all the same.
const positionWait = 5 * time.Second

// positionReplyLocked books a reply to the position query (matchLocked):
// nothing of it reaches the client. At its ReadyForQuery, outside a
// transaction and with nothing else owed (no later request of the lease
// that may have written), the position becomes the client's writes'.
func (c *clientConn) positionReplyLocked(typ byte, raw []byte) bool {
	switch typ {
	case 'D':
		if len(raw) > 11 && binary.BigEndian.Uint16(raw[5:]) == 1 {
			if n := int32(binary.BigEndian.Uint32(raw[7:])); n > 0 && int(n) <= len(raw)-11 {
				if lsn, err := lagmon.ParseLSN(string(raw[11 : 11+n])); err == nil {
					if lsn%walPageSize == walShortPageHeader {
						lsn -= walShortPageHeader // as pgProbe does
					}
					c.posSeen = lsn
				}
			}
		}
	case 'Z':
		c.expects.pop()
		if raw[5] == 'I' && c.posSeen != nil && c.expects.len() == 0 {
			c.routing.Writes.Known(c.posSeen)
			c.leaseWrites = false // booked: the lease's end adds nothing
		}
		c.posSeen = nil
	case 'N', 'A', 'S':
		return true
	}
	return false
}
