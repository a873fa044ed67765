package pgwire

import (
	"bufio"
	"io"
	"sync"
)

// Idle clients hold no buffers. The read buffer belongs to the main loop:
// whenever it has nothing of the client buffered, it gives the buffer
// back and waits for the client's next bytes with a small read into
// idleBuf, then takes a buffer again, which serves those bytes first. The
// write buffer belongs to whoever holds wmu: the pump gives it back when
// its lease ends, the main loop when it finds no lease; the next writer
// takes one (writer). Ten thousand idle clients then cost their
// goroutines and sockets, not 24 KiB of buffers each.

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, clientReadBuf) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, clientWriteBuf) }}
)

// idleBufSize is what a waiting client's wake-up read takes at once; a
// typical query fits, so waking costs no extra read.
const idleBufSize = 512

// prefixReader serves the bytes of the wake-up read, then reads on.
type prefixReader struct {
	pre []byte
	r   io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// takeReader gives the main loop a read buffer that serves pre first.
func (c *clientConn) takeReader(pre []byte) {
	c.src.pre, c.src.r = pre, c.conn
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(&c.src)
	c.br = br
	c.rd.SetBuffer(br)
}

// writer returns the client's write buffer, taking one from the pool if
// it has none. The caller holds wmu (or is logging the client in).
func (c *clientConn) writer() *bufio.Writer {
	if c.bw == nil {
		bw := writerPool.Get().(*bufio.Writer)
		bw.Reset(c.conn)
		c.bw = bw
	}
	return c.bw
}

// releaseWriter gives the write buffer back when it holds nothing unsent
// and no lease is on; the caller holds wmu.
func (c *clientConn) releaseWriter() {
	c.mu.Lock()
	over := c.server == nil
	c.mu.Unlock()
	if !over || c.bw == nil || c.bw.Buffered() > 0 {
		return
	}
	c.bw.Reset(nil)
	writerPool.Put(c.bw)
	c.bw = nil
}

// idleWait is the main loop's wait for the client's next request when
// nothing of it is buffered: it waits without buffers. The client has a
// read buffer again when idleWait returns, whatever happened.
func (c *clientConn) idleWait() error {
	if c.br.Buffered() > 0 {
		return nil
	}
	// A pump owns wmu while it relays, and gives the write buffer back
	// itself when its lease ends.
	if c.wmu.TryLock() {
		c.releaseWriter()
		c.wmu.Unlock()
	}
	c.br.Reset(nil)
	readerPool.Put(c.br)
	c.br = nil
	c.rd.Drop()

	n, err := c.conn.Read(c.idleBuf[:])

	c.takeReader(c.idleBuf[:n])
	if n > 0 {
		return nil // an error comes again on the next read
	}
	return err
}
