package mysqlproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxChunk is the largest payload one physical packet carries. A logical
// packet of that size or more is split; a chunk of exactly MaxChunk bytes
// means "more follows", so a payload that is a multiple of it ends with an
// empty chunk.
const MaxChunk = 1<<24 - 1

// maxDiscard bounds what the proxy reads off and drops of a command over
// the limit (so that the client reads the ERR instead of a reset): MySQL's
// largest max_allowed_packet. Beyond it the connection is just closed.
const maxDiscard = 1 << 30

// readStep is the first amount of a packet's payload read into the buffer
// at once; each further read doubles what was read so far.
const readStep = 64 << 10

// ErrPacketTooLarge is returned when a logical packet exceeds the limit.
var ErrPacketTooLarge = errors.New("mysqlproto: packet larger than max_allowed_packet")

// ErrSequence is a framing error: a packet arrived with a sequence id the
// protocol does not allow at that point.
var ErrSequence = errors.New("mysqlproto: packet out of sequence")

// ReadPacket reads one logical packet from r, joining continuation chunks,
// and appends its payload to buf[:0]. It returns the payload and the
// sequence id of its last chunk. A payload over max is an error; the stream
// is then out of sync and the connection must be closed.
//
// r is read with io.ReadFull only, so an unbuffered net.Conn works: an idle
// client holds no buffer while it waits for the next header.
func ReadPacket(r io.Reader, buf []byte, max int) ([]byte, uint8, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return buf[:0], 0, err
	}
	return ReadPacketAfter(r, hdr, buf, max)
}

// ReadPacketAfter is ReadPacket for a caller that has read the first
// header itself (an idle session reads it without holding a buffer).
func ReadPacketAfter(r io.Reader, hdr [4]byte, buf []byte, limit int) ([]byte, uint8, error) {
	payload := buf[:0]
	for {
		n := int(uint32(hdr[0]) | uint32(hdr[1])<<8 | uint32(hdr[2])<<16)
		seq := hdr[3]
		if len(payload)+n > limit {
			return payload, seq, &TooLargeError{Size: len(payload) + n, Limit: limit, unread: n, more: n == MaxChunk, seq: seq}
		}
		// The buffer grows with the bytes that arrive, not with the length
		// the header claims: a client announcing 16 MB and sending nothing
		// costs a small buffer, not 16 MB.
		start := len(payload)
		for got := 0; got < n; {
			step := min(n-got, max(readStep, len(payload)-start))
			at := len(payload)
			payload = grow(payload, step)
			if _, err := io.ReadFull(r, payload[at:at+step]); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return payload[:start], seq, err
			}
			got += step
		}
		if n < MaxChunk {
			return payload, seq, nil
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return payload, seq, err
		}
		if hdr[3] != seq+1 {
			return payload, seq, ErrSequence
		}
	}
}

// TooLargeError is ReadPacket's error for a packet over the limit: the
// header of a chunk said so, and the chunk's bytes (and any continuation
// chunks) are still unread.
type TooLargeError struct {
	Size, Limit int   // bytes announced so far; the limit
	unread      int   // bytes of the current chunk not read
	more        bool  // continuation chunks follow the current one
	seq         uint8 // sequence id of the current chunk
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%v (at least %d bytes, limit %d)", ErrPacketTooLarge, e.Size, e.Limit)
}

func (e *TooLargeError) Unwrap() error { return ErrPacketTooLarge }

// DiscardRest reads off and drops the rest of the packet e was returned
// for, up to maxDiscard bytes in all, so that the stream is in step again
// and the peer, done writing, reads the error it is sent rather than a
// reset. It returns the sequence id of the packet's last chunk.
func DiscardRest(r io.Reader, e *TooLargeError) (uint8, error) {
	seq, unread, more := e.seq, e.unread, e.more
	total := int64(e.Size)
	for {
		if _, err := io.CopyN(io.Discard, r, int64(unread)); err != nil {
			return seq, err
		}
		if !more {
			return seq, nil
		}
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return seq, err
		}
		if hdr[3] != seq+1 {
			return seq, ErrSequence
		}
		seq = hdr[3]
		unread = int(uint32(hdr[0]) | uint32(hdr[1])<<8 | uint32(hdr[2])<<16)
		more = unread == MaxChunk
		if total += int64(unread); total > maxDiscard {
			return seq, ErrPacketTooLarge
		}
	}
}

// grow extends b by n bytes, reallocating if needed.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

// WritePacket frames payload as one logical packet starting at sequence id
// seq and returns the next sequence id. Nothing is flushed.
func WritePacket(w *bufio.Writer, seq uint8, payload []byte) (uint8, error) {
	for {
		n := len(payload)
		if n > MaxChunk {
			n = MaxChunk
		}
		// Byte by byte: a header array passed to Write would escape (bufio
		// may hand it to the connection) and cost an allocation per packet.
		for _, b := range [4]byte{byte(n), byte(n >> 8), byte(n >> 16), seq} {
			if err := w.WriteByte(b); err != nil {
				return seq + 1, err
			}
		}
		seq++
		if _, err := w.Write(payload[:n]); err != nil {
			return seq, err
		}
		payload = payload[n:]
		if n < MaxChunk {
			return seq, nil
		}
	}
}

// Length-encoded integers and strings.

func AppendLenEnc(b []byte, v uint64) []byte {
	switch {
	case v < 251:
		return append(b, byte(v))
	case v < 1<<16:
		return append(b, 0xfc, byte(v), byte(v>>8))
	case v < 1<<24:
		return append(b, 0xfd, byte(v), byte(v>>8), byte(v>>16))
	default:
		b = append(b, 0xfe)
		return binary.LittleEndian.AppendUint64(b, v)
	}
}

func AppendLenEncString(b []byte, s string) []byte {
	b = AppendLenEnc(b, uint64(len(s)))
	return append(b, s...)
}

// ErrMalformed is returned by decoders for a packet that is too short or
// whose fields do not add up.
var ErrMalformed = errors.New("mysqlproto: malformed packet")

// Reader is a bounds-checked cursor over a payload. The first failed read
// sets err and every later read returns zero values, so decoders check once
// at the end.
type Reader struct {
	b   []byte
	err error
}

// NewReader returns a Reader over p.
func NewReader(p []byte) Reader { return Reader{b: p} }

// Err is the error of the first failed read, or nil.
func (r *Reader) Err() error { return r.err }

// Len is the number of bytes not read yet.
func (r *Reader) Len() int { return len(r.b) }

// SkipNull reports whether the next value is a NULL (0xfb) and, if so,
// reads it.
func (r *Reader) SkipNull() bool {
	if len(r.b) > 0 && r.b[0] == 0xfb {
		r.b = r.b[1:]
		return true
	}
	return false
}

func (r *Reader) fail() {
	if r.err == nil {
		r.err = ErrMalformed
	}
	r.b = nil
}

func (r *Reader) Byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *Reader) Uint16() uint16 {
	if len(r.b) < 2 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *Reader) Uint32() uint32 {
	if len(r.b) < 4 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *Reader) Bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// nulString reads up to a NUL byte; a missing NUL is malformed.
func (r *Reader) NulString() []byte {
	for i, c := range r.b {
		if c == 0 {
			v := r.b[:i:i]
			r.b = r.b[i+1:]
			return v
		}
	}
	r.fail()
	return nil
}

// nulStringOrEOF reads up to a NUL byte or the end of the packet (some
// clients omit the final NUL of the last field).
func (r *Reader) NulStringOrEOF() []byte {
	for i, c := range r.b {
		if c == 0 {
			v := r.b[:i:i]
			r.b = r.b[i+1:]
			return v
		}
	}
	v := r.b
	r.b = nil
	return v
}

func (r *Reader) LenEnc() (v uint64, null bool) {
	if len(r.b) < 1 {
		r.fail()
		return 0, false
	}
	switch c := r.b[0]; c {
	case 0xfb:
		r.b = r.b[1:]
		return 0, true
	case 0xfc:
		if len(r.b) < 3 {
			r.fail()
			return 0, false
		}
		v = uint64(binary.LittleEndian.Uint16(r.b[1:]))
		r.b = r.b[3:]
	case 0xfd:
		if len(r.b) < 4 {
			r.fail()
			return 0, false
		}
		v = uint64(r.b[1]) | uint64(r.b[2])<<8 | uint64(r.b[3])<<16
		r.b = r.b[4:]
	case 0xfe:
		if len(r.b) < 9 {
			r.fail()
			return 0, false
		}
		v = binary.LittleEndian.Uint64(r.b[1:])
		r.b = r.b[9:]
	case 0xff:
		r.fail()
		return 0, false
	default:
		v = uint64(c)
		r.b = r.b[1:]
	}
	return v, false
}

func (r *Reader) LenEncBytes() []byte {
	n, _ := r.LenEnc()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	return r.Bytes(int(n))
}

func (r *Reader) Rest() []byte {
	v := r.b
	r.b = nil
	return v
}
