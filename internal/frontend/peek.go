package frontend

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// Socket is what Peek sees on a connection.
type Socket int

// Socket states.
const (
	Quiet  Socket = iota // nothing to read
	Data                 // bytes waiting
	Closed               // the peer closed the connection, or it failed
)

// Prober looks at a connection's socket without consuming anything and
// without waiting: one recvfrom(2) with MSG_PEEK|MSG_DONTWAIT. Both wires
// ask it whether an idle server connection is still good before a lease
// (it must have nothing to say: bytes waiting, a FATAL or an error packet
// of a server shutting down, or EOF mean it is dead), and mysqlwire
// whether a client left while its command runs. A Prober keeps what the
// first look at a connection set up, so later looks cost one system call
// and allocate nothing. (A copied Prober, or one shown another connection,
// sets up again.)
type Prober struct {
	self  *Prober  // where look was made; a copy is elsewhere
	conn  net.Conn // what look looks at
	rc    syscall.RawConn
	look  func(fd uintptr) bool
	buf   [1]byte
	state Socket
}

// Peek looks at c (under TLS, at the socket beneath).
func (p *Prober) Peek(c net.Conn) Socket {
	if p.self != p || p.conn != c {
		p.self, p.conn, p.look, p.state = p, c, nil, Quiet
		if tc, ok := c.(*tls.Conn); ok {
			c = tc.NetConn() // a look must not go through TLS
		}
		sc, ok := c.(syscall.Conn)
		if !ok {
			return Quiet // not a socket (a test's pipe): nothing to see
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			p.state = Closed
			return Closed
		}
		p.rc = rc
		p.look = func(fd uintptr) bool {
			n, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EAGAIN || err == syscall.EINTR:
				p.state = Quiet
			case err != nil || n == 0:
				p.state = Closed
			default:
				p.state = Data
			}
			return true // never wait for readiness
		}
	}
	if p.look == nil {
		return p.state
	}
	if err := p.rc.Read(p.look); err != nil {
		return Closed
	}
	return p.state
}

// Peek looks at c once (see Prober).
func Peek(c net.Conn) Socket {
	var p Prober
	return p.Peek(c)
}

// PeerReset says whether err, the failure of a read from or a write to c,
// shows that the peer's end was closed while bytes sent to it were unread:
// its kernel answered with a reset (ECONNRESET, EPIPE), either as err
// itself or, after an EOF, recorded on the socket. A peer that closes
// after reading everything sent to it ends with a FIN alone, which says
// nothing of the kind. So when a server process had exited before a request
// reached it, or exited without reading all of it, PeerReset is true; when
// it read the request and then died (killed mid-statement, say), it is
// false.
//
// A reset that answers bytes sent after the peer's FIN arrives one round
// trip after them (on loopback at once, unless the kernel left its network
// work to a busy ksoftirqd): after an EOF, PeerReset waits up to wait for
// it. Call it once, right after the failure: it reads (and clears) the
// socket's pending error.
func PeerReset(c net.Conn, err error, wait time.Duration) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return false
	}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, rerr := sc.SyscallConn()
	if rerr != nil {
		return false
	}
	deadline := time.Now().Add(wait)
	for {
		var soErr int
		var gerr error
		if cerr := rc.Control(func(fd uintptr) {
			soErr, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
		}); cerr != nil || gerr != nil {
			return false
		}
		if soErr != 0 {
			return soErr == int(syscall.ECONNRESET) || soErr == int(syscall.EPIPE)
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}
