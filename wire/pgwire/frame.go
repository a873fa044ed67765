package pgwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// frameReader reads PostgreSQL messages (1-byte type, 4-byte length, body)
// without decoding them, so that relaying a message costs a copy and no
// allocation. The slices it returns are borrowed: they are valid only until
// the next call on the reader. Copy before keeping one.
type frameReader struct {
	br  *bufio.Reader
	max int    // the largest body accepted
	big []byte // storage for messages larger than br's buffer
}

// maxKeptFrame is the largest message storage a reader keeps between
// messages.
const maxKeptFrame = 256 << 10

// errTooLarge is wrapped by errors for messages over the reader's limit.
var errTooLarge = errors.New("message too large")

func newFrameReader(br *bufio.Reader, max int) *frameReader {
	return &frameReader{br: br, max: max}
}

// next returns the type of the next message and its raw bytes, header
// included (raw[5:] is the body).
func (r *frameReader) next() (typ byte, raw []byte, err error) {
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
		return 0, nil, fmt.Errorf("%w: %d bytes for message type %q (limit %d)", errTooLarge, n-4, hdr[0], r.max)
	}
	typ = hdr[0]
	total := n + 1
	if total <= r.br.Size() {
		raw, err = r.br.Peek(total)
		if err != nil {
			return 0, nil, noEOF(err)
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
			return 0, nil, noEOF(err)
		}
	}
	r.big = raw
	return typ, raw, nil
}

// peekHeader returns the type and total length of the next message when its
// header is already buffered, without blocking.
func (r *frameReader) peekHeader() (typ byte, total int, ok bool) {
	if r.br.Buffered() < 5 {
		return 0, 0, false
	}
	hdr, _ := r.br.Peek(5)
	return hdr[0], int(binary.BigEndian.Uint32(hdr[1:])) + 1, true
}

// peekHeaderWait is peekHeader that waits for the header to arrive; ok is
// false when it cannot be read (next reports why).
func (r *frameReader) peekHeaderWait() (typ byte, total int, ok bool) {
	hdr, err := r.br.Peek(5)
	if err != nil {
		return 0, 0, false
	}
	return hdr[0], int(binary.BigEndian.Uint32(hdr[1:])) + 1, true
}

// fullFrameBuffered says whether a whole next message is already buffered,
// so that reading it will not block. Writers flush when it is false: the
// peer is waiting for answers to what it sent so far.
func (r *frameReader) fullFrameBuffered() bool {
	_, total, ok := r.peekHeader()
	return ok && r.br.Buffered() >= total
}

// noEOF turns an EOF inside a message into ErrUnexpectedEOF: the peer
// vanished mid-message, which is not a clean close.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readStartup reads a startup-phase packet (4-byte length, body; no type
// byte). The body is borrowed like next's result.
func readStartup(br *bufio.Reader, max int) ([]byte, error) {
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
		return nil, noEOF(err)
	}
	_, _ = br.Discard(n)
	return raw[4:], nil
}

// relayLarge copies the next message to w without holding it whole when it
// is a DataRow or CopyData too large for the read buffer: a 1 GB bytea
// value then costs the buffer, not a gigabyte. handled is false when the
// next message is not such a message; nothing was read then.
func (r *frameReader) relayLarge(w io.Writer) (handled bool, err error) {
	typ, total, ok := r.peekHeader()
	if !ok || total <= r.br.Size() || (typ != 'D' && typ != 'd') {
		return false, nil
	}
	if total-5 > r.max {
		return false, nil // next() reports the limit
	}
	hdr, _ := r.br.Peek(5)
	if _, err := w.Write(hdr); err != nil {
		return true, err
	}
	_, _ = r.br.Discard(5)
	_, err = io.CopyN(w, r.br, int64(total-5))
	return true, noEOF(err)
}
