package pgwire

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/pool"
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
		typ, raw, err := c.rd.next()
		if err != nil {
			c.clientLeft(err)
			return
		}
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
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.send(msgs...)
}

// forward sends one client message toward a server, leasing one at the
// first message that needs an answer. It returns false when the session
// is over.
func (c *clientConn) forward(typ byte, raw []byte) bool {
	c.mu.Lock()
	if c.broken {
		c.mu.Unlock()
		return false
	}
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
			if len(c.pending)+len(raw) > maxClientMsg {
				c.sendFromProxy(toErrorResponse(newFatal(codeProgramLimitExceeded, "extended-protocol batch without Sync exceeds %d bytes", maxClientMsg)))
				return false
			}
			c.pending = append(c.pending, raw...)
			return true
		}
		if err := c.acquire(); err != nil {
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
		c.mu.Lock()
	}
	sc := c.server
	if len(c.pending) > 0 {
		c.unsynced = true
	}
	switch typ {
	case 'Q', 'F':
		c.outstanding++
	case 'S':
		c.outstanding++
		c.unsynced = false
	case 'P', 'B', 'D', 'E', 'C', 'H':
		c.unsynced = true
	}
	c.writers++
	c.mu.Unlock()

	var err error
	if len(c.pending) > 0 {
		_, err = sc.bw.Write(c.pending)
		if cap(c.pending) > 64<<10 {
			c.pending = nil
		} else {
			c.pending = c.pending[:0]
		}
	}
	if err == nil {
		_, err = sc.bw.Write(raw)
	}
	if err == nil && !c.rd.fullFrameBuffered() {
		err = sc.bw.Flush()
	}
	if err != nil {
		// The pump sees the same failure on its read and tells the client.
		sc.conn.Close()
	}
	c.finishWrite()
	return true
}

// acquire leases a server connection, brings its runtime parameters in
// line with the client's, and starts the pump.
func (c *clientConn) acquire() error {
	c.mu.Lock()
	c.setState("waiting")
	c.mu.Unlock()
	p := c.primary.p
	ps, err := p.Get(contextBackground)
	if err == nil {
		sc := ps.Conn.(*serverConn)
		if err = c.syncParams(sc); err != nil {
			var pe *pgError
			p.Put(ps, errors.As(err, &pe)) // a server-side error leaves the connection usable
		} else {
			c.wmu.Lock() // handed to the pump, which unlocks it when it ends
			c.mu.Lock()
			c.server, c.lease, c.leasePool = sc, ps, p
			c.outstanding, c.unsynced, c.releaseDue, c.rollingBack = 0, false, false, false
			c.setState("active")
			c.mu.Unlock()
			go c.pump(sc, ps, p)
			return nil
		}
	} else {
		err = poolError(err)
	}
	c.mu.Lock()
	c.setState("idle")
	c.mu.Unlock()
	return err
}

// detachLocked ends the lease in c's books; the caller returns the
// connection to its pool. c.mu must be held.
func (c *clientConn) detachLocked() (*serverConn, *pool.Server, *pool.Pool) {
	sc, ps, p := c.server, c.lease, c.leasePool
	c.server, c.lease, c.leasePool = nil, nil, nil
	c.releaseDue = false
	c.setState("idle")
	return sc, ps, p
}

// releasableLocked says whether the lease can end now.
func (c *clientConn) releasableLocked() bool {
	return c.outstanding <= 0 && !c.unsynced && c.txStatus == 'I' &&
		(c.mode == config.PoolTransaction || c.closing)
}

// finishWrite ends a write to the server done outside mu, and completes a
// release the pump had to leave to the writer.
func (c *clientConn) finishWrite() {
	c.mu.Lock()
	c.writers--
	if c.writers > 0 || !c.releaseDue {
		c.mu.Unlock()
		return
	}
	sc, ps, p := c.detachLocked()
	closing := c.closing
	c.mu.Unlock()
	err := sc.bw.Flush()
	p.Put(ps, err == nil && c.mode == config.PoolTransaction)
	if closing {
		_ = c.conn.SetReadDeadline(time.Now())
	}
}

// pump relays the server's messages to the client for one lease and ends
// it when the client's transaction is over. It owns c.wmu.
func (c *clientConn) pump(sc *serverConn, ps *pool.Server, p *pool.Pool) {
	defer c.wmu.Unlock()
	discard := false // the client cannot be written to any more
	for {
		if !discard {
			sink := errSink{w: c.bw}
			if handled, err := sc.rd.relayLarge(&sink); handled {
				if err != nil {
					c.serverFailed(sc, ps, p, err)
					return
				}
				if sink.err != nil {
					discard = true
					c.conn.Close()
				}
				continue
			}
		}
		typ, raw, err := sc.rd.next()
		if err != nil {
			c.serverFailed(sc, ps, p, err)
			return
		}
		switch typ {
		case 'Z':
			if !discard {
				if _, err := c.bw.Write(raw); err == nil {
					err = c.bw.Flush()
				}
			}
			if c.readyForQuery(raw[5], sc, ps, p) {
				return
			}
			continue
		case 'S':
			sc.noteParameter(raw[5:])
		}
		if discard {
			continue
		}
		if _, err := c.bw.Write(raw); err != nil {
			discard = true
			continue
		}
		if !sc.rd.fullFrameBuffered() {
			if err := c.bw.Flush(); err != nil {
				discard = true
				// The main loop learns it from its read.
				c.conn.Close()
			}
		}
	}
}

// readyForQuery books a ReadyForQuery and ends the lease when it is due.
// It reports whether the pump is done with this server connection.
func (c *clientConn) readyForQuery(status byte, sc *serverConn, ps *pool.Server, p *pool.Pool) bool {
	c.mu.Lock()
	c.outstanding--
	c.txStatus = status
	if status == 'I' && c.mQuery != nil {
		c.mTxn.Inc()
	}
	c.mQuery.Inc()
	if c.gone {
		if c.outstanding > 0 {
			c.mu.Unlock()
			return false
		}
		// The cleanup the client's departure called for is done.
		_, ps, p = c.detachLocked()
		ok := c.rollingBack && status == 'I'
		c.mu.Unlock()
		if ok {
			_ = sc.conn.SetDeadline(time.Time{})
		}
		p.Put(ps, ok)
		return true
	}
	if !c.releasableLocked() {
		c.mu.Unlock()
		return false
	}
	if c.writers > 0 {
		c.releaseDue = true
		c.mu.Unlock()
		return true
	}
	sc, ps, p = c.detachLocked()
	closing := c.closing
	c.mu.Unlock()
	p.Put(ps, c.mode == config.PoolTransaction)
	if closing {
		_ = c.conn.SetReadDeadline(time.Now())
	}
	return true
}

// serverFailed handles a server connection that broke under the client:
// the client's transaction is lost, so it is told so and closed, as a real
// server's crash would do.
func (c *clientConn) serverFailed(sc *serverConn, ps *pool.Server, p *pool.Pool, err error) {
	c.mu.Lock()
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
	if c.closing && c.server == nil {
		c.mu.Unlock()
		c.sendFromProxy(toErrorResponse(newFatal(codeAdminShutdown, "terminating connection due to administrator command")))
		return
	}
	if err != nil && !isQuiet(err) && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.log.Info("closing client connection", "err", err, "age", time.Since(c.start).Round(time.Millisecond))
		if errors.Is(err, errTooLarge) {
			c.mu.Unlock()
			c.sendFromProxy(toErrorResponse(&pgError{Severity: "FATAL", Code: codeProgramLimitExceeded, Message: "message too large", cause: err}))
			c.mu.Lock()
		}
	}
	c.gone = true
	sc := c.server
	if sc == nil {
		c.mu.Unlock()
		return
	}
	var cleanup string
	switch {
	case c.outstanding > 0 || c.unsynced:
		// Replies are still due to a client that cannot read them:
		// closing is the only bounded cleanup.
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
	c.rollingBack = true
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
