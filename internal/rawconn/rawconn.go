// Package rawconn reads and writes TCP sockets without telling the Go
// scheduler that a system call may block.
//
// Go's net.Conn makes every read(2) and write(2) a blocking system call
// (entersyscall/exitsyscall): if one lasts longer than a sysmon tick
// (20 µs) while other goroutines wait to run, sysmon takes the P from the
// thread, wakes another thread for it (futex), and the first thread, back
// from the kernel, must find a P again or sleep. Go's sockets are
// non-blocking, so neither call ever waits: it copies, or fails with
// EAGAIN and the goroutine parks on the poller. But a write(2) on a
// loopback TCP socket runs the receiver's network path inline, often for
// longer than 20 µs, so under load many of the proxy's writes paid for a
// hand-off of their P. With MySQL's synchronous relay that cost 10–17% of
// the proxy's CPU per query and 5–30% of sysbench's point-select QPS
// (issue 17's closing note has the figures).
//
// Conn makes the same reads and writes through syscall.RawConn with
// syscall.RawSyscall: the thread keeps its P for the copy, as for any
// other CPU work, and the goroutine waits on the poller exactly as with
// net.Conn when there is nothing to read or no room to write. Deadlines,
// Close from another goroutine, and errors behave as net.Conn's.
package rawconn

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write skip the scheduler's
// blocking-call hand-off. Every other method is the TCPConn's.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The call in flight in each direction, kept here so that the
	// functions passed to rc are bound once (no allocation per call). rmu
	// and wmu keep concurrent readers (writers) apart, as net.Conn allows
	// such calls.
	rmu   sync.Mutex
	rb    []byte
	rn    int
	rerr  error
	readF func(uintptr) bool

	wmu    sync.Mutex
	wb     []byte
	wn     int
	werr   error
	writeF func(uintptr) bool
}

// Wrap returns c as a *Conn when it is a TCP connection, else c itself.
// Under the race detector it returns c itself (race.go).
func Wrap(c net.Conn) net.Conn {
	if raceEnabled {
		return c
	}
	return wrap(c)
}

func wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	rw := &Conn{TCPConn: tc, rc: rc}
	rw.readF, rw.writeF = rw.doRead, rw.doWrite
	return rw
}

// Read reads as net.Conn's Read does.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rb, c.rn, c.rerr = b, 0, nil
	err := c.rc.Read(c.readF)
	n, rerr := c.rn, c.rerr
	c.rb, c.rerr = nil, nil
	c.rmu.Unlock()
	if n > 0 || rerr == io.EOF {
		raceRead(b[:n]) // what syscall.Read tells the race detector
	}
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case rerr == io.EOF:
		return 0, io.EOF
	case rerr != nil:
		return 0, c.opError("read", os.NewSyscallError("read", rerr))
	}
	return n, nil
}

func (c *Conn) doRead(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rb[0])), uintptr(len(c.rb)))
		switch e {
		case 0:
			c.rn = int(r)
			if r == 0 {
				c.rerr = io.EOF
			}
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // park on the poller until readable
		}
		c.rerr = e
		return true
	}
}

// Write writes all of b, as net.Conn's Write does.
func (c *Conn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	raceWrite(b) // what syscall.Write tells the race detector
	c.wmu.Lock()
	c.wb, c.wn, c.werr = b, 0, nil
	err := c.rc.Write(c.writeF)
	n, werr := c.wn, c.werr
	c.wb, c.werr = nil, nil
	c.wmu.Unlock()
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case werr != nil:
		return n, c.opError("write", os.NewSyscallError("write", werr))
	}
	return n, nil
}

func (c *Conn) doWrite(fd uintptr) bool {
	for c.wn < len(c.wb) {
		p := c.wb[c.wn:]
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			c.wn += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // park on the poller until writable
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// opError gives err the shape of net.Conn's errors; errors.Is with
// net.ErrClosed, os.ErrDeadlineExceeded and the syscall errors works
// through it.
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op = op
		return oe
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
