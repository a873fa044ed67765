package pgframe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Reader reads PostgreSQL messages (1-byte type, 4-byte length, body)
// without decoding them, so that relaying a message costs a copy and no
// allocation. The slices it returns are borrowed: they are valid only until
// the next call on the reader. Copy before keeping one.
type Reader struct {
	br  *bufio.Reader
	max int    // the largest body accepted
	big []byte // storage for messages larger than br's buffer
}

// maxKeptFrame is the largest message storage a reader keeps between
// messages.
const maxKeptFrame = 256 << 10

// ErrTooLarge is wrapped by errors for messages over the reader's limit.
var ErrTooLarge = errors.New("message too large")

func NewReader(br *bufio.Reader, max int) *Reader {
	return &Reader{br: br, max: max}
}

// SetBuffer makes br the buffer messages are read from.
func (r *Reader) SetBuffer(br *bufio.Reader) { r.br = br }

// Buffer is the buffer messages are read from.
func (r *Reader) Buffer() *bufio.Reader { return r.br }

// Drop lets go of the read buffer and of the storage of a large message
// (an idle client holds neither); SetBuffer gives it a buffer again.
func (r *Reader) Drop() { r.br, r.big = nil, nil }

// Next returns the type of the next message and its raw bytes, header
// included (raw[5:] is the body).
func (r *Reader) Next() (typ byte, raw []byte, err error) {
	if cap(r.big) > maxKeptFrame {
		// The last message was big: its storage is not kept for the
		// session's life (the caller is done with it by contract).
		r.big = nil
	}
	hdr, err := r.br.Peek(5)
	if err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 {
		return 0, nil, fmt.Errorf("invalid message length %d for message type %q", n, hdr[0])
	}
	if n-4 > r.max {
		return 0, nil, fmt.Errorf("%w: %d bytes for message type %q (limit %d)", ErrTooLarge, n-4, hdr[0], r.max)
	}
	typ = hdr[0]
	total := n + 1
	if total <= r.br.Size() {
		raw, err = r.br.Peek(total)
		if err != nil {
			return 0, nil, NoEOF(err)
		}
		_, _ = r.br.Discard(total)
		return typ, raw, nil
	}
	// The storage grows with the bytes that arrive, doubling, not with the
	// length the header claims: a client announcing 200 MB and sending
	// nothing costs a little, not 200 MB.
	raw = r.big[:0]
	for len(raw) < total {
		step := min(total-len(raw), max(len(raw), r.br.Size()))
		at := len(raw)
		if cap(raw) < at+step {
			grown := make([]byte, at, at+step)
			copy(grown, raw)
			raw = grown
		}
		raw = raw[:at+step]
		if _, err := io.ReadFull(r.br, raw[at:]); err != nil {
			return 0, nil, NoEOF(err)
		}
	}
	r.big = raw
	return typ, raw, nil
}

// PeekHeader returns the type and total length of the next message when its
// header is already buffered, without blocking.
func (r *Reader) PeekHeader() (typ byte, total int, ok bool) {
	if r.br.Buffered() < 5 {
		return 0, 0, false
	}
	hdr, _ := r.br.Peek(5)
	return hdr[0], int(binary.BigEndian.Uint32(hdr[1:])) + 1, true
}

// PeekHeaderWait is PeekHeader that waits for the header to arrive; ok is
// false when it cannot be read (Next reports why).
func (r *Reader) PeekHeaderWait() (typ byte, total int, ok bool) {
	hdr, err := r.br.Peek(5)
	if err != nil {
		return 0, 0, false
	}
	return hdr[0], int(binary.BigEndian.Uint32(hdr[1:])) + 1, true
}

// FullFrameBuffered says whether a whole next message is already buffered,
// so that reading it will not block. Writers flush when it is false: the
// peer is waiting for answers to what it sent so far.
func (r *Reader) FullFrameBuffered() bool {
	_, total, ok := r.PeekHeader()
	return ok && r.br.Buffered() >= total
}

// NoEOF turns an EOF inside a message into ErrUnexpectedEOF: the peer
// vanished mid-message, which is not a clean close.
func NoEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadStartup reads a startup-phase packet (4-byte length, body; no type
// byte). The body is borrowed like Next's result.
func ReadStartup(br *bufio.Reader, max int) ([]byte, error) {
	hdr, err := br.Peek(4)
	if err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr))
	if n < 8 || n-4 > max {
		return nil, fmt.Errorf("invalid startup packet length %d", n)
	}
	if n > br.Size() {
		return nil, fmt.Errorf("invalid startup packet length %d", n)
	}
	raw, err := br.Peek(n)
	if err != nil {
		return nil, NoEOF(err)
	}
	_, _ = br.Discard(n)
	return raw[4:], nil
}

// RelayLarge copies the next message to w without holding it whole when it
// is a DataRow or CopyData too large for the read buffer: a 1 GB bytea
// value then costs the buffer, not a gigabyte. handled is false when the
// next message is not such a message; nothing was read then.
func (r *Reader) RelayLarge(w io.Writer) (handled bool, err error) {
	typ, total, ok := r.PeekHeader()
	if !ok || total <= r.br.Size() || (typ != 'D' && typ != 'd') {
		return false, nil
	}
	if total-5 > r.max {
		return false, nil // Next reports the limit
	}
	hdr, _ := r.br.Peek(5)
	if _, err := w.Write(hdr); err != nil {
		return true, err
	}
	_, _ = r.br.Discard(5)
	_, err = io.CopyN(w, r.br, int64(total-5))
	return true, NoEOF(err)
}
