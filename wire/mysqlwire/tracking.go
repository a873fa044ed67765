package mysqlwire

import (
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// Session state the SQL text does not show. A stored procedure or function
// runs code the proxy never reads: CALL p() may set a user variable,
// create a temporary table or take a user lock, and none of it may reach
// the next client of the server connection. The server says so itself:
// with CLIENT_SESSION_TRACK negotiated and session_track_state_change on,
// the OK (or EOF) that ends a statement which changed the session carries
// SERVER_SESSION_STATE_CHANGED. Every server connection asks for both; the
// relay notes the flag (a bit of the status it reads anyway), and a
// statement whose effects the proxy does not track and replay (a session
// SET, USE) pins the session (session.stateChanged). The pinned
// connection is reset when its client leaves, as for any pin.
//
// A client without CLIENT_SESSION_TRACK gets such an OK as the server
// would send it: the flag cleared, the session-state information cut off
// (only packets with the flag set are touched).
//
// COM_RESET_CONNECTION turns session_track_state_change back to the
// server's default, so a reset sends the SET again in the same round trip.
//
// Not reported (MariaDB 10.11): a user lock (GET_LOCK) taken in a
// procedure or function. A body that only takes a lock goes unseen; with
// a variable or temporary table besides, the pin's reset releases it.

// trackStateQuery asks the server to report session state changes.
const trackStateQuery = "SET SESSION session_track_state_change = ON"

// trackState turns state-change tracking on for a new connection. A server
// that offers CLIENT_SESSION_TRACK but refuses the variable leaves the
// connection untracked (as before tracking was asked for), not unusable.
func (b *backend) trackState() error {
	if b.caps&mysqlproto.CapSessionTrack == 0 || b.dp.noTrack {
		return nil
	}
	err := b.roundTrip(append([]byte{mysqlproto.ComQuery}, trackStateQuery...))
	var se *mysqlproto.ServerError
	if errors.As(err, &se) {
		return nil
	}
	b.tracking = err == nil
	return err
}

// resetAndTrack sends COM_RESET_CONNECTION and, on a tracked connection,
// the SET that turns tracking on again, in one write, and reads both
// answers. A tracked connection the SET fails on is broken: it would
// hand on what a procedure leaves without anyone noticing.
func (b *backend) resetAndTrack() error {
	if !b.tracking {
		return b.roundTrip([]byte{mysqlproto.ComResetConnection})
	}
	_, err := mysqlproto.WritePacket(b.bw, 0, []byte{mysqlproto.ComResetConnection})
	if err == nil {
		_, err = mysqlproto.WritePacket(b.bw, 0, append([]byte{mysqlproto.ComQuery}, trackStateQuery...))
	}
	if err == nil {
		err = b.bw.Flush()
	}
	if err != nil {
		b.broken = true
		return err
	}
	resetErr := b.answer()
	if b.broken {
		return resetErr
	}
	if err := b.answer(); err != nil {
		b.broken = true
		return fmt.Errorf("%s: turning session_track_state_change on again after COM_RESET_CONNECTION: %w", b.addr, err)
	}
	return resetErr
}

// noteStatus is called with the status of every OK and EOF the relay
// reads; p is the current packet's payload. Only a status with
// SERVER_SESSION_STATE_CHANGED costs more than a test of one bit.
func (r *relay) noteStatus(p []byte, st uint16) {
	if st&mysqlproto.StatusSessionStateChange == 0 {
		return
	}
	r.res.stateChanged = true
	if r.s.caps&mysqlproto.CapSessionTrack != 0 || r.large {
		return
	}
	if p[0] == mysqlproto.HeaderEOF && r.n < 9 && r.be.caps&mysqlproto.CapDeprecateEOF == 0 {
		// An EOF: status at bytes 3-4, nothing to cut.
		p[4] &^= byte(mysqlproto.StatusSessionStateChange >> 8)
		return
	}
	n, ok := mysqlproto.StripSessionState(p)
	if !ok || n >= r.n {
		return
	}
	// The payload shrinks to a prefix of itself: a new length in the
	// header, and the rest is skipped when the packet is forwarded.
	r.cut = r.n - n
	r.n = n
	r.pkt[0], r.pkt[1], r.pkt[2] = byte(n), byte(n>>8), byte(n>>16)
	r.pkt = r.pkt[:4+n]
}

// trackedEffects says whether a command the relay saw change session
// state did only what the proxy tracks and replays itself: count
// statements, of which sets are session SETs, use says one was USE, txNext
// one was SET TRANSACTION.
func trackedEffects(count, sets int, use, txNext bool) bool {
	n := sets
	if use {
		n++
	}
	if txNext {
		n++
	}
	return count > 0 && n >= count
}

// stateChanged pins the session after a command the server says changed
// session state (changed), unless the proxy tracks all the command did
// (tracked). (A client's SET of session_track_state_change itself pins:
// router.ScanMySQL.)
func (s *session) stateChanged(changed, tracked bool) {
	if changed && !tracked {
		s.pin("session state changed by a procedure or function")
	}
}
