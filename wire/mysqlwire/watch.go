package mysqlwire

import (
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// A client that leaves while its command waits on a server that does not
// answer. The MySQL protocol gives a client nothing to say during a
// command, so the session goroutine, blocked reading the server, would
// never learn that the client is gone, and would hold the server
// connection and its pool slot for as long as the server stays silent
// (a hung server, a lock wait, a cut link). While a command is out, a
// timer looks at the client socket every watchEvery without reading from
// it (MSG_PEEK): once the client has closed it, the server is asked to
// kill that connection's thread, so its statement and locks go too, and
// the server connection is closed, which ends the relay.

const watchEvery = 500 * time.Millisecond

// errClientLeft ends a session whose client closed its connection while a
// command was out.
var errClientLeft = errors.New("client closed its connection while its command was running")

// setBusy marks a command as out on s.be (or back). The watch on the
// client is armed when a command goes out and none is armed, and is not
// stopped when the command comes back (two timer operations per command
// saved): a watch that fires with no command out ends, and one that finds
// a newer command out than the one it was armed for gives that command a
// full watchEvery before its first look.
func (s *session) setBusy(b bool) {
	s.mu.Lock()
	s.busy = b
	if b {
		s.busyGen++
		if !s.watchArmed {
			s.watchArmed, s.watchGen = true, s.busyGen
			if s.watch == nil {
				s.watch = time.AfterFunc(watchEvery, s.checkClient)
			} else {
				s.watch.Reset(watchEvery)
			}
		}
	}
	s.mu.Unlock()
}

// checkClient runs on the watch timer.
func (s *session) checkClient() {
	s.mu.Lock()
	be := s.be
	if !s.busy || be == nil {
		s.watchArmed = false
		s.mu.Unlock()
		return
	}
	if s.watchGen != s.busyGen {
		s.watchGen = s.busyGen
		s.watch.Reset(watchEvery)
		s.mu.Unlock()
		return
	}
	if !peerClosed(s.nc) {
		s.watch.Reset(watchEvery)
		s.mu.Unlock()
		return
	}
	s.left.Store(true)
	s.watchArmed = false
	dp := dialParams{addr: be.addr, user: s.key.User, password: s.key.Password, collation: defaultCollation, tls: be.tlsConf}
	thread := be.threadID
	raw := be.nc
	if tc, ok := raw.(*tls.Conn); ok {
		raw = tc.NetConn() // a TLS close would write
	}
	// release waits for this, and never reuses the connection of a client
	// that left: whatever the relay does meanwhile, the connection cannot
	// reach the pool (and another session) before its thread is killed.
	s.kills.Add(1)
	s.mu.Unlock()
	defer s.kills.Done()
	s.log.Info("client left while its command was running; killing its server thread, closing the server connection", "server", be.addr, "thread", thread)
	// The statement is killed first, so that when the pool slot is free
	// the server runs nothing for it; then the socket is closed, which
	// ends the relay even if the server does not act on the KILL. A server
	// that cannot be reached for the KILL (a cut link) holds the slot for
	// killWait at most; the KILL goes on alone (thread ids are not reused,
	// and the connection is closed: it can only hit the departed thread).
	if thread != 0 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := killThread(dp, thread, false); err != nil {
				s.log.Info("killing the departed client's server thread failed", "err", err)
			}
		}()
		select {
		case <-done:
		case <-time.After(killWait):
		}
	}
	_ = raw.Close() // the relay's read fails and marks the connection broken
}

// killWait bounds how long a departed client's server connection stays
// open waiting for the KILL of its thread.
const killWait = time.Second

// peerClosed says whether the peer of c has closed the connection (or it
// failed). Data waiting means alive.
func peerClosed(c net.Conn) bool {
	if cc, ok := c.(*mysqlproto.CompressedConn); ok {
		c = cc.Conn
	}
	return frontend.Peek(c) == frontend.Closed
}

// alive is the pool's cheap check before a lease: an idle server
// connection has nothing to say, so bytes waiting (an error packet from a
// server shutting down) or EOF (a server restarted) mean it is dead. Such
// connections used to be handed out and fail on first use, which, on a
// replica, banned the replica again each time a ban ended.
func (b *backend) alive() bool {
	return !b.broken && b.br.Buffered() == 0 && b.probe.Peek(b.nc) == frontend.Quiet
}
