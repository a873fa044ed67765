package pgwire

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/lagmon"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
)

// Read-your-writes with the check in the same round trip as the read.
//
// A read that needs a position no replica is known to have replayed (the
// client wrote a moment ago, and the lag monitor's last samples predate
// the write's replay) goes to a replica with a check written in front of
// it, both flushed at once:
//
//	Q  SELECT pg_catalog.pg_last_wal_replay_lsn() >= '<P>'::pg_catalog.pg_lsn
//	   the client's request: a Query, or its extended-protocol messages up to Sync
//
// The check is a simple Query of its own, so it touches neither the
// client's unnamed statement or portal nor its transaction: the read
// starts after the check has seen P replayed, and its snapshot includes
// P. The main loop reads the check's answer itself, before anything else
// reads the connection, so the client never sees it. When it says true,
// the request's replies are relayed as usual. When it says false (or
// NULL: not in recovery), the request's replies are read and dropped
// through the books (a read changes nothing; the statements it prepared
// there stay known to that connection), the replica's lease ends, and
// the request is sent again, as if the client had just sent it, to the
// primary (or, with causal_read_timeout, to a replica the probes find
// has P). A passed check tells the lag monitor the replica has P, so the
// next reads that need P go there without a check.
//
// Requests that cannot carry a check use the on-demand probe (Pick): a
// batch ended by Flush (its replies must reach the client before the
// request is complete), function calls, and requests with session
// effects (SET, a READ ONLY BEGIN, PREPARE/DEALLOCATE, ROLLBACK TO): their
// effects on the session's books would have to be undone.

// causalCheck is the check the current lease's first request carries.
type causalCheck struct {
	pos   lagmon.Position
	start time.Time // when the read was routed
	req   []byte    // the request's messages, for a second send
	names []string  // statement names its Parses added to c.stmts
}

// pickReplica is route's choice of a replica for a read (nil: the
// primary), with a check (c.check) when the request can carry one.
func (c *clientConn) pickReplica(rt *replica.Runtime, typ byte, why string, as []*router.Analysis) *replica.Node {
	c.check = nil
	if !c.checkFailed.IsZero() {
		start := c.checkFailed
		c.checkFailed = time.Time{}
		return rt.AfterFailedCheck(&c.writes, c.readAfter, why, &c.mu, start)
	}
	if !c.canCheck(rt, typ, as) {
		return rt.Pick(&c.writes, c.readAfter, why, &c.mu)
	}
	start := time.Now()
	n, pos := rt.PickChecked(&c.writes, c.readAfter, why, &c.mu)
	if n != nil && pos != nil {
		c.check = &causalCheck{pos: pos, start: start}
	}
	return n
}

// canCheck says whether the request that starts a lease, ended by a
// message of type typ, may carry a position check.
func (c *clientConn) canCheck(rt *replica.Runtime, typ byte, as []*router.Analysis) bool {
	if (typ != 'S' && typ != 'Q') || c.sh != nil || !rt.Settings().ReadYourWrites ||
		c.copyIn || len(c.capture) > 0 || c.captureAll || c.captureTxn {
		return false
	}
	for _, a := range as {
		if a == nil || a.ReadOnlyBegin || len(a.Sets) > 0 || a.Pin != "" || a.RollbackTo || a.Chain ||
			a.Deallocate != nil || len(a.StatementNames) > 0 || a == fnCallAnalysis {
			return false
		}
	}
	for b := c.pending; len(b) >= 5; {
		if b[0] == 'H' || b[0] == 'F' {
			return false
		}
		b = b[int(binary.BigEndian.Uint32(b[1:]))+1:]
	}
	return true
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
			if name, _, ok := cstring(b[5:n]); ok && len(name) > 0 && c.stmts[string(name)] == nil {
				ck.names = append(ck.names, string(name))
			}
		}
		b = b[n:]
	}
	c.mu.Unlock()
	_, err := sc.bw.Write(checkQuery(ck.pos))
	return err
}

// checkQuery is the check of position pos as a Query message.
func checkQuery(pos lagmon.Position) []byte {
	sql := fmt.Sprintf("SELECT pg_catalog.pg_last_wal_replay_lsn() >= '%s'::pg_catalog.pg_lsn", pos)
	q := make([]byte, 5, 5+len(sql)+1)
	q[0] = 'Q'
	q = append(append(q, sql...), 0)
	binary.BigEndian.PutUint32(q[1:], uint32(len(q)-1))
	return q
}

// checkWait bounds the wait for the check's answer: a replica that does
// not answer by then is treated as failed.
const checkWait = 30 * time.Second

// readCheck reads the answer to the check sent ahead of the request (and
// nothing else): true when the replica had replayed the position.
func (c *clientConn) readCheck(sc *serverConn) (passed bool, err error) {
	_ = sc.conn.SetReadDeadline(time.Now().Add(checkWait))
	defer func() { _ = sc.conn.SetReadDeadline(time.Time{}) }()
	for {
		typ, raw, err := sc.rd.next()
		if err != nil {
			return false, err
		}
		switch typ {
		case 'D':
			// One column: 't', 'f', or NULL (-1) when not in recovery.
			if len(raw) >= 12 && binary.BigEndian.Uint16(raw[5:]) == 1 && int32(binary.BigEndian.Uint32(raw[7:])) == 1 {
				passed = raw[11] == 't'
			}
		case 'S':
			sc.noteParameter(raw[5:])
		case 'Z':
			return passed, nil
		case 'T', 'C', 'E', 'N', 'A', 'I':
			// The row's description, its tag, an error (passed stays
			// false), notices.
		default:
			return false, fmt.Errorf("unexpected message %q in the answer to the position check", typ)
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
	ck := c.check
	c.check = nil
	rt, node := c.rt, c.leaseNode
	sent := time.Now()
	if err = c.sendCheck(sc, ck, raw); err == nil && len(c.pending) > 0 {
		err = c.sendPending(sc)
	}
	if err == nil {
		err = c.sendMsg(sc, typ, raw, true)
	}
	var passed bool
	if err == nil {
		passed, err = c.readCheck(sc)
	}
	if err != nil {
		return false, false, err
	}
	rt.CheckDone(node, ck.pos, passed, sent, time.Since(ck.start))
	if passed {
		return false, false, nil
	}
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
	c.mu.Lock()
	broken, leased := c.broken, c.server != nil
	for _, name := range ck.names {
		if g := c.stmts[name]; g != nil {
			delete(c.stmts, name) // prepared again by the second send
		}
	}
	c.mu.Unlock()
	if broken || leased {
		// The replica failed under the request (the client was told), or
		// the lease did not end: nothing more to do here.
		return true, !broken, nil
	}
	c.checkFailed = ck.start
	for b := ck.req; len(b) >= 5; {
		n := int(binary.BigEndian.Uint32(b[1:])) + 1
		if !c.forward(b[0], b[:n]) {
			return true, false, nil
		}
		b = b[n:]
	}
	c.checkFailed = time.Time{}
	return true, true, nil
}
