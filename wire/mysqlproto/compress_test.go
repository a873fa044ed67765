package mysqlproto

import (
	"bytes"
	"compress/zlib"
	"errors"
	"io"
	"net"
	"testing"
)

// What one side writes through CompressedConn the other reads back, for stored
// (short or incompressible) and compressed packets, across the 16 MiB
// boundary; a header that lies about the uncompressed length is an error,
// never a panic.
func TestCompConnRoundTrip(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w, r := NewCompressedConn(a), NewCompressedConn(b)
	msgs := [][]byte{[]byte("short"), bytes.Repeat([]byte("abc"), 1000), make([]byte, MaxChunk+10)}
	go func() {
		for _, m := range msgs {
			if _, err := w.Write(m); err != nil {
				return
			}
		}
	}()
	for _, m := range msgs {
		got := make([]byte, len(m))
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, m) {
			t.Fatalf("read %d bytes back wrong", len(m))
		}
	}

	// A compressed payload whose header claims more than it holds.
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	_, _ = zw.Write(bytes.Repeat([]byte("x"), 100))
	_ = zw.Close()
	for _, ulen := range []int{99, 101} {
		hdr := []byte{byte(z.Len()), byte(z.Len() >> 8), 0, 0, byte(ulen), 0, 0}
		go func() { _, _ = a.Write(append(hdr, z.Bytes()...)) }()
		_, err := r.Read(make([]byte, 10))
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("uncompressed length %d for 100 bytes: %v, want malformed", ulen, err)
		}
	}
}
