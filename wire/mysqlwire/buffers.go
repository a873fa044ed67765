package mysqlwire

import (
	"bufio"
	"io"
	"sync"
)

// DefaultMaxPacket is the largest logical packet a client may send (a
// command: COM_QUERY text, COM_STMT_EXECUTE parameters, a long-data chunk)
// until the proxy has read the server's max_allowed_packet. It matches the
// default max_allowed_packet of MariaDB 10.11.
const DefaultMaxPacket = 16 << 20

// MaxPacket is the proxy's own cap on a client's command, whatever the
// server's max_allowed_packet: the proxy holds a command whole before it
// leases a server connection, so this bounds a client's buffer. 64 MiB is
// MySQL 8's default max_allowed_packet and go-sql-driver's default.
const MaxPacket = 64 << 20

// Buffers. A client session takes a write buffer and a packet buffer only
// while it has a command in hand and gives them back when the response is
// flushed, so idle clients cost a goroutine and a socket, nothing more.

var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}

func getWriter(w io.Writer) *bufio.Writer {
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writerPool.Put(bw)
}

// packet buffers come in one size class; buffers that grew past maxPooled
// (a large query) are dropped rather than kept alive by the pool.
const maxPooled = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}
