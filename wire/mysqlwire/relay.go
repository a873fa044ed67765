package mysqlwire

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// The relay passes a server's response to the client as raw packets. It
// reads just enough to know where the response ends and what state it
// leaves: the first byte of each packet, the column count, and the status
// flags of the final OK/EOF (SERVER_STATUS_IN_TRANS decides when the
// server connection goes back; SERVER_MORE_RESULTS_EXISTS that another
// result follows). Rows are never decoded: a packet that fits the read
// buffer is written from it without a copy, a larger one is streamed.

type respKind uint8

const (
	respOKERR     respKind = iota // OK or ERR (or EOF for COM_SET_OPTION)
	respQuery                     // COM_QUERY, COM_STMT_EXECUTE: result sets
	respFieldList                 // column definitions until EOF
	respSingle                    // one packet of any kind (COM_STATISTICS)
	respPrepare                   // COM_STMT_PREPARE
)

type result struct {
	sawErr   bool // the server answered with an ERR (possibly after results)
	noServer bool // the proxy answered itself (no server connection)
	// stateChanged: an OK or EOF carried SERVER_SESSION_STATE_CHANGED
	// (tracking.go).
	stateChanged bool
}

// serverIOError: the server connection failed mid-command.
type serverIOError struct{ err error }

func (e serverIOError) Error() string { return "server connection: " + e.err.Error() }
func (e serverIOError) Unwrap() error { return e.err }

// clientIOError: writing to the client failed.
type clientIOError struct{ err error }

func (e clientIOError) Error() string { return "client connection: " + e.err.Error() }
func (e clientIOError) Unwrap() error { return e.err }

var (
	errLostServer = mysqlproto.NewSQLError(mysqlproto.CRServerLost, "HY000", "Lost connection to MySQL server during query (switchyard)")
	// errLostServerState: the server connection held what the session
	// cannot replay elsewhere (an open transaction, a pinned or
	// session-mode session), so the client connection ends with it.
	errLostServerState = mysqlproto.NewSQLError(mysqlproto.CRServerLost, "HY000", "Lost connection to MySQL server during query (switchyard): the open transaction or session state on it is lost; reconnect")
)

type relay struct {
	s     *session
	be    *backend
	w     *bufio.Writer
	delta uint8 // added to server sequence ids toward the client
	wrote bool  // some part of the response reached the client's buffer
	// seq is the sequence id of the last packet header sent to the
	// client; partial says its payload is not all sent yet, so nothing
	// else may follow on the client's stream.
	seq     uint8
	partial bool
	res     result

	stmt *prepared // respPrepare: what the server prepared

	pkt   []byte // the current packet with header (all of it unless large)
	n     int    // its payload length
	large bool
	cut   int // bytes of the server's packet past pkt, not forwarded (noteStatus)
}

func (s *session) forward(p []byte, seq uint8, kind respKind) error {
	_, err := s.forwardResult(p, seq, kind)
	return err
}

// forwardResult sends the client's command p (last chunk's sequence id
// seq) to a server connection and relays the response.
func (s *session) forwardResult(p []byte, seq uint8, kind respKind) (result, error) {
	return s.forwardWith(seq, kind, nil, func(*backend) ([]byte, error) { return p, nil })
}

// forwardWith leases a server connection, lets build make the command for
// it (a statement is prepared there lazily, its id rewritten), sends it and
// relays the response. A connection that turns out dead on its first use
// after idling is replaced once. An ERR from the server inside build goes
// to the client as it is.
func (s *session) forwardWith(seq uint8, kind respKind, rl0 *relay, build func(*backend) ([]byte, error)) (result, error) {
	for attempt := 0; ; attempt++ {
		if err := s.acquire(); err != nil {
			return result{noServer: true}, s.sendErr(seq+1, err)
		}
		fresh := s.fresh
		s.fresh = false
		if s.curWrites && s.leaseNode == nil {
			s.leaseWrites = true
		}
		onReplica := s.leaseNode != nil
		rl := relay{s: s, be: s.be, w: s.writer()}
		if rl0 != nil {
			rl.stmt = rl0.stmt
		}
		s.setBusy(true)
		p, err := build(rl.be)
		if s.checkedLease(onReplica) && err == nil {
			// Read-your-writes: the position check goes with the command
			// (causal.go); a failed one sends the command elsewhere.
			var passed bool
			if passed, err = s.checkedCommand(&rl, p, seq, kind); err == nil && !passed {
				s.setBusy(false)
				continue
			}
		} else if err == nil {
			if s.prelude != nil {
				err = s.sendPrelude(rl.be) // diag.go
			}
			if err == nil {
				err = rl.command(p, seq)
			}
			if err == nil && s.prelude != nil {
				err = s.readPrelude(rl.be)
			}
		}
		if err == nil {
			err = rl.response(kind)
		}
		s.setBusy(false)
		if err == nil {
			if rl0 != nil {
				*rl0 = rl
			}
			return rl.res, nil
		}
		var se *mysqlproto.ServerError
		if errors.As(err, &se) && !rl.wrote {
			return result{sawErr: true}, s.sendErr(seq+1, se)
		}
		// A read that opened its lease on a replica may go elsewhere if the
		// replica failed before answering (relayFailed bans it).
		retry, err := s.relayFailed(&rl, err, fresh && (attempt == 0 || onReplica && attempt < 3), onReplica && fresh, seq+1)
		if retry {
			continue
		}
		if err == nil {
			// Told the client; the session goes on.
			return result{noServer: true}, nil
		}
		return rl.res, err
	}
}

// relayFailed decides what a failed relay means. It returns retry when the
// command may go to another connection (nothing was sent to the client and
// the connection was an idle one that died), nil when the client was told
// with an ERR and can go on, or the fatal error.
//
// A server lost mid-response ends the response with ERR 2013 in place of
// the next packet, as a server does for a query killed mid-result, so
// the client never takes a truncated result for a complete one. The
// session goes on (on another server connection) only if the lost one
// held nothing it cannot replay: no open transaction, no pinned state.
// Otherwise the client connection is closed after the ERR, as a server
// crash would close it: carrying on in autocommit would let a client
// COMMIT half a transaction.
func (s *session) relayFailed(rl *relay, err error, mayRetry, replicaRead bool, rs uint8) (bool, error) {
	var sio serverIOError
	if s.left.Load() {
		// The watch closed the server connection: the client is gone.
		rl.be.broken = true
		s.release(false)
		return false, fatalError{errClientLeft}
	}
	if errors.As(err, &sio) {
		rl.be.broken = true
		reused := s.lease.Reused()
		stateful := s.keeps() != router.HoldNone
		if s.leaseNode != nil {
			if reused && !rl.wrote && mayRetry && replicaRead && !stateful {
				// An idle connection that died while idle (returned too
				// recently for the pool's look at its socket): the
				// replica is not at fault. The read tries it again on
				// another connection; a replica that is down refuses
				// that one, and the refusal bans it.
				s.log.Info("idle replica connection found dead; retrying", "replica", s.leaseNode.Name, "err", err)
			} else {
				// Keep reads off the replica until the monitor sees it again.
				s.log.Warn("replica connection lost", "replica", s.leaseNode.Name, "retry", replicaRead && !rl.wrote, "err", err)
				s.leaseRT.Set.Ban(s.leaseNode.Name, err.Error())
			}
		}
		s.release(false)
		// Never retry what held state: a lease whose transaction (a lazy
		// BEGIN among them) or pinned session the lost connection had
		// would run the command in autocommit elsewhere.
		if !rl.wrote && mayRetry && (reused || replicaRead) && !stateful {
			return true, nil
		}
		if rl.partial {
			return false, fatalError{err} // mid-packet: only closing is left
		}
		seq := rs
		if rl.wrote {
			seq = rl.seq + 1
		}
		s.inTx = false
		s.log.Warn("server connection lost", "err", err, "closing_client", stateful)
		if stateful {
			s.sendFatal(seq, errLostServerState)
			return false, fatalError{err}
		}
		return false, s.sendErr(seq, errLostServer)
	}
	// The client is gone or the response cannot be followed: the server
	// connection's stream may hold unread replies.
	rl.be.broken = true
	return false, fatalError{err}
}

// command writes the client's command (its last chunk had sequence id seq)
// to the server, starting at sequence id 0, and sets delta so replies
// carry the ids the client expects even when the proxy re-framed it.
func (r *relay) command(p []byte, seq uint8) error {
	next, err := mysqlproto.WritePacket(r.be.bw, 0, p)
	if err == nil {
		err = r.be.bw.Flush()
	}
	if err != nil {
		return serverIOError{err}
	}
	r.delta = seq + 1 - next
	return nil
}

// next reads the next packet's header and as much of it as the buffer
// holds; it returns the payload seen so far.
func (r *relay) next() ([]byte, error) {
	br := r.be.br
	hdr, err := br.Peek(4)
	if err != nil {
		return nil, serverIOError{err}
	}
	r.n = int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if 4+r.n <= br.Size() {
		r.pkt, err = br.Peek(4 + r.n)
		r.large = false
	} else {
		r.pkt, err = br.Peek(br.Size())
		r.large = true
	}
	if err != nil {
		return nil, serverIOError{err}
	}
	return r.pkt[4:], nil
}

// forward passes the current packet to the client, streaming large ones
// chunk by chunk (with their continuation chunks).
func (r *relay) forward() error {
	br := r.be.br
	r.wrote = true
	if !r.large {
		r.pkt[3] += r.delta
		r.seq = r.pkt[3]
		_, werr := r.w.Write(r.pkt)
		_, _ = br.Discard(len(r.pkt) + r.cut)
		r.cut = 0
		if werr != nil {
			return clientIOError{werr}
		}
		return nil
	}
	for {
		hdr, err := br.Peek(4)
		if err != nil {
			return serverIOError{err}
		}
		n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
		h := [4]byte{hdr[0], hdr[1], hdr[2], hdr[3] + r.delta}
		_, _ = br.Discard(4)
		r.seq, r.partial = h[3], n > 0
		if _, err := r.w.Write(h[:]); err != nil {
			return clientIOError{err}
		}
		for left := n; left > 0; {
			b, err := br.Peek(min(left, br.Size()))
			if err != nil {
				return serverIOError{err}
			}
			if _, err := r.w.Write(b); err != nil {
				return clientIOError{err}
			}
			_, _ = br.Discard(len(b))
			left -= len(b)
		}
		if n < mysqlproto.MaxChunk {
			r.partial = false
			return nil
		}
	}
}

// setStatus reads the status of an OK or EOF that ends a response (or a
// result set) and returns its warning count.
func (r *relay) setStatus(p []byte) (warnings uint16) {
	st, warnings, ok := mysqlproto.StatusWarningsOf(p, r.be.caps)
	if !ok {
		return 0
	}
	r.be.status = st
	r.s.inTx = st&mysqlproto.StatusInTrans != 0
	r.noteStatus(p, st)
	return warnings
}

func (r *relay) response(kind respKind) error {
	switch kind {
	case respSingle:
		if _, err := r.next(); err != nil {
			return err
		}
		return r.forward()
	case respOKERR:
		p, err := r.next()
		if err != nil {
			return err
		}
		if len(p) > 0 && p[0] == mysqlproto.HeaderERR {
			r.res.sawErr = true
		} else {
			r.setStatus(p)
		}
		return r.forward()
	case respFieldList:
		return r.fieldList()
	case respPrepare:
		return r.prepareResponse()
	}
	return r.results()
}

// fieldList relays column definitions until the EOF (or ERR).
func (r *relay) fieldList() error {
	for {
		p, err := r.next()
		if err != nil {
			return err
		}
		if len(p) > 0 && !r.large {
			switch {
			case p[0] == mysqlproto.HeaderERR:
				r.res.sawErr = true
				return r.forward()
			case p[0] == mysqlproto.HeaderEOF && r.n < mysqlproto.MaxChunk && (r.n < 9 || r.be.caps&mysqlproto.CapDeprecateEOF != 0):
				r.setStatus(p)
				return r.forward()
			}
		}
		if err := r.forward(); err != nil {
			return err
		}
	}
}

// results relays a sequence of results: OK packets, result sets, ERR,
// LOCAL INFILE requests, until one without SERVER_MORE_RESULTS_EXISTS.
func (r *relay) results() error {
	deof := r.be.caps&mysqlproto.CapDeprecateEOF != 0
	for {
		p, err := r.next()
		if err != nil {
			return err
		}
		if len(p) == 0 {
			return fmt.Errorf("%w: empty packet in response", mysqlproto.ErrMalformed)
		}
		more := false
		switch {
		case p[0] == mysqlproto.HeaderOK && !r.large:
			if ok, err := mysqlproto.DecodeOK(p, r.be.caps); err == nil {
				r.be.status = ok.Status
				r.s.inTx = ok.Status&mysqlproto.StatusInTrans != 0
				r.s.diagOK(&ok)
				more = ok.Status&mysqlproto.StatusMoreResults != 0
				r.noteStatus(p, ok.Status)
			}
			if err := r.forward(); err != nil {
				return err
			}
		case p[0] == mysqlproto.HeaderERR && !r.large:
			r.res.sawErr = true
			r.s.diagERR()
			return r.forward()
		case p[0] == mysqlproto.HeaderLocalInfile && !r.large:
			if err := r.localInfile(); err != nil {
				return err
			}
			more = true // the OK or ERR for the load follows
		default:
			cr := mysqlproto.NewReader(p)
			cols, _ := cr.LenEnc()
			if cr.Err() != nil || r.large {
				return fmt.Errorf("%w: bad column count", mysqlproto.ErrMalformed)
			}
			if err := r.forward(); err != nil {
				return err
			}
			for i := uint64(0); i < cols; i++ {
				if _, err := r.next(); err != nil {
					return err
				}
				if err := r.forward(); err != nil {
					return err
				}
			}
			if !deof {
				p, err := r.next()
				if err != nil {
					return err
				}
				r.setStatus(p)
				cursor := r.be.status&mysqlproto.StatusCursorExists != 0
				if err := r.forward(); err != nil {
					return err
				}
				if cursor {
					return nil // rows come with COM_STMT_FETCH
				}
			}
			more, err = r.rows(deof)
			if err != nil || r.res.sawErr {
				return err
			}
		}
		if !more {
			return nil
		}
	}
}

// rows relays rows until the terminator; it reports whether more results
// follow.
func (r *relay) rows(deof bool) (bool, error) {
	var n uint64
	for {
		p, err := r.next()
		if err != nil {
			return false, err
		}
		if !r.large && len(p) > 0 {
			switch {
			case mysqlproto.IsTerminator(p[0], r.n, deof):
				r.s.diagResultSet(r.setStatus(p), n)
				more := r.be.status&mysqlproto.StatusMoreResults != 0
				return more, r.forward()
			case p[0] == mysqlproto.HeaderERR:
				r.res.sawErr = true
				r.s.diagERR()
				return false, r.forward()
			}
		}
		if err := r.forward(); err != nil {
			return false, err
		}
		n++
	}
}

// localInfile relays LOAD DATA LOCAL INFILE: the server's request goes to
// the client, which decides (drivers refuse unless the file was allowed);
// its data packets go back to the server up to the empty packet.
func (r *relay) localInfile() error {
	if err := r.forward(); err != nil {
		return err
	}
	if err := r.w.Flush(); err != nil {
		return clientIOError{err}
	}
	nc := clientIn{r.s}
	var hdr [4]byte
	prevFull := false
	for {
		if _, err := io.ReadFull(nc, hdr[:]); err != nil {
			return clientIOError{err}
		}
		n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
		hdr[3] -= r.delta
		if _, err := r.be.bw.Write(hdr[:]); err != nil {
			return serverIOError{err}
		}
		if _, err := io.CopyN(r.be.bw, nc, int64(n)); err != nil {
			// Either side; the server stream is broken in both cases.
			return clientIOError{err}
		}
		if n == 0 && !prevFull {
			break
		}
		prevFull = n == mysqlproto.MaxChunk
	}
	if err := r.be.bw.Flush(); err != nil {
		return serverIOError{err}
	}
	return nil
}
