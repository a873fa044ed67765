package mysqlproto

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"net"
	"sync"
)

// The compressed protocol (CLIENT_COMPRESS), between a client and the
// proxy only: server connections stay uncompressed, so the relay reads
// plain packets as ever. After the handshake's OK, the client's bytes come
// in compressed packets (a 7-byte header: compressed length, a sequence
// id, the uncompressed length or 0 when the payload is stored as is),
// each holding one or more ordinary packets or a part of one; CompressedConn
// turns that stream back into plain bytes for the session and compresses
// what the session writes. Sequence ids restart with each command of the
// client; clients do not check the ones they get (neither libmysqlclient,
// MariaDB's nor go-sql-driver's), and the proxy's follow the client's.

// maxKept: a buffer grown past it (a large packet) is dropped after use
// rather than kept by an idle client.
const maxKept = 64 << 10

// compMinLen: shorter writes are stored, not compressed (as the servers
// do).
const compMinLen = 50

// CompressedConn is a client connection in the compressed protocol. Read and
// Write are each used by one goroutine at a time (the session's).
type CompressedConn struct {
	net.Conn
	pending []byte // decompressed bytes not yet read: the tail of buf
	buf     []byte // the decompressed packet, kept for the next one
	raw     []byte // scratch for one compressed payload
	seq     uint8  // the next compressed sequence id to send
	out     bytes.Buffer
}

func NewCompressedConn(c net.Conn) *CompressedConn { return &CompressedConn{Conn: c} }

// NetConn is the connection underneath (for the client watch's peek).
func (c *CompressedConn) NetConn() net.Conn { return c.Conn }

var zReaders sync.Pool // io.ReadCloser implementing zlib.Resetter
var zWriters = sync.Pool{New: func() any { w, _ := zlib.NewWriterLevel(nil, 2); return w }}

func (c *CompressedConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		if cap(c.buf) > maxKept {
			c.buf = nil // an idle client keeps no large buffer
		}
		if err := c.readPacket(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *CompressedConn) readPacket() error {
	var hdr [7]byte
	if _, err := io.ReadFull(c.Conn, hdr[:]); err != nil {
		return err
	}
	clen := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	ulen := int(hdr[4]) | int(hdr[5])<<8 | int(hdr[6])<<16
	c.seq = hdr[3] + 1
	defer func() {
		if cap(c.raw) > maxKept {
			c.raw = nil
		}
	}()
	var err error
	if c.raw, err = readN(c.Conn, c.raw, clen); err != nil {
		return err
	}
	raw := c.raw
	if ulen == 0 {
		c.buf = append(c.buf[:0], raw...)
		c.pending = c.buf
		return nil
	}
	var zr io.ReadCloser
	if v := zReaders.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(zlib.Resetter).Reset(bytes.NewReader(raw), nil); err != nil {
			return fmt.Errorf("%w: compressed packet: %v", ErrMalformed, err)
		}
	} else {
		var err error
		if zr, err = zlib.NewReader(bytes.NewReader(raw)); err != nil {
			return fmt.Errorf("%w: compressed packet: %v", ErrMalformed, err)
		}
	}
	defer zReaders.Put(zr)
	if c.buf, err = readN(zr, c.buf, ulen); err != nil {
		return fmt.Errorf("%w: compressed packet shorter than its header says: %v", ErrMalformed, err)
	}
	// Nothing may follow the announced length.
	if n, _ := zr.Read(hdr[:1]); n != 0 {
		return fmt.Errorf("%w: compressed packet longer than its header says", ErrMalformed)
	}
	c.pending = c.buf
	return nil
}

// readN reads exactly n bytes from r into buf[:0], growing buf with the
// bytes that arrive: a peer that announces a length and sends nothing
// holds no memory for it.
func readN(r io.Reader, buf []byte, n int) ([]byte, error) {
	buf = buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		m, err := r.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return buf[:0], err
		}
	}
	return buf, nil
}

// Write sends p in compressed packets of at most MaxChunk plain bytes.
func (c *CompressedConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), MaxChunk)
		if err := c.writePacket(p[:n]); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

func (c *CompressedConn) writePacket(p []byte) error {
	c.out.Reset()
	c.out.Write(make([]byte, 7))
	ulen := 0
	if len(p) >= compMinLen {
		zw := zWriters.Get().(*zlib.Writer)
		zw.Reset(&c.out)
		_, _ = zw.Write(p)
		_ = zw.Close()
		zWriters.Put(zw)
		ulen = len(p)
		if c.out.Len()-7 >= len(p) || c.out.Len()-7 > MaxChunk {
			// Incompressible: stored as is.
			c.out.Truncate(7)
			ulen = 0
		}
	}
	if ulen == 0 {
		c.out.Write(p)
	}
	b := c.out.Bytes()
	clen := len(b) - 7
	b[0], b[1], b[2], b[3] = byte(clen), byte(clen>>8), byte(clen>>16), c.seq
	b[4], b[5], b[6] = byte(ulen), byte(ulen>>8), byte(ulen>>16)
	c.seq++
	_, err := c.Conn.Write(b)
	if c.out.Cap() > maxKept {
		c.out = bytes.Buffer{}
	}
	return err
}
