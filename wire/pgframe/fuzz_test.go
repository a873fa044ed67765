package pgframe

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"
)

// testStartup is a StartupMessage (protocol 3.0) with these name/value
// pairs.
func testStartup(params ...string) []byte {
	b := []byte{0, 0, 0, 0, 0, 3, 0, 0}
	for _, p := range params {
		b = append(append(b, p...), 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// testMsg is a typed message with this body.
func testMsg(typ byte, body ...[]byte) []byte {
	var b []byte
	for _, x := range body {
		b = append(b, x...)
	}
	out := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)+4))
	return append(out, b...)
}

// FuzzStartupDecoders feeds arbitrary bytes to the decoders of the startup
// phase: the length-prefixed startup packet and its parameters, and the
// typed frames that follow.
func FuzzStartupDecoders(f *testing.F) {
	f.Add(testStartup("user", "app", "database", "app"))
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47})
	f.Add([]byte{0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2})
	f.Add(testMsg('p', []byte("md5abc\x00")))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{'Q', 0, 0, 0, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 256)
		if body, err := ReadStartup(br, 10000 /* PostgreSQL's MAX_STARTUP_PACKET_LENGTH */); err == nil && len(body) >= 4 {
			_, _ = DecodeStartupParams(body[4:])
		}
		rd := NewReader(bufio.NewReaderSize(bytes.NewReader(data), 64), 1<<16)
		for i := 0; i < 100; i++ {
			typ, raw, err := rd.Next()
			if err != nil {
				break
			}
			if len(raw) < 5 || raw[0] != typ {
				t.Fatalf("frame %q of %d bytes", typ, len(raw))
			}
			_, _, _ = CString(raw[5:])
		}
	})
}

// FuzzClientMessages: the decoders of messages a client sends (Bind's
// parameters, Parse's declared types) must not panic on any bytes. The
// parameter number is 1-based, as the SQL's $n.
func FuzzClientMessages(f *testing.F) {
	f.Add(testMsg('B', []byte("\x00s1\x00"), []byte{0, 1, 0, 1, 0, 2, 0, 0, 0, 4, 0, 0, 0, 42, 0xff, 0xff, 0xff, 0xff}), uint16(0))
	f.Add(testMsg('P', []byte("s1\x00SELECT $1\x00"), []byte{0, 1, 0, 0, 0, 23}), uint16(1))
	f.Fuzz(func(t *testing.T, m []byte, n uint16) {
		v, _, ok := BindParam(m, int(n)+1)
		if ok && v != nil && len(v) > len(m) {
			t.Fatalf("value of %d bytes from a message of %d", len(v), len(m))
		}
		if len(m) >= 5 {
			_ = ParseParamTypes(m)
			_ = DecodeOIDs(m[5:])
		}
	})
}
