package rawconn

import (
	"net"
	"syscall"
)

// PeerClosed reports whether the peer of c (a TCP connection, or TLS over
// one) has closed its end with nothing left unread, or reset it: a
// recv(MSG_PEEK | MSG_DONTWAIT) that reads end-of-file or fails. Bytes
// waiting to be read, or none yet, are not closed. It never blocks and
// consumes nothing, so the connection's reader sees its stream as it was.
func PeerClosed(c net.Conn) bool {
	if t, ok := c.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		c = t.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true // closed already
	}
	closed := false
	var b [1]byte
	if err := rc.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = err == nil && n == 0 || err != nil && err != syscall.EAGAIN && err != syscall.EINTR
	}); err != nil {
		return true
	}
	return closed
}
