package mysqlproto

import (
	"bytes"
	"testing"
)

// Every decoder that reads bytes from a client (or a server) must return
// an error, never panic, on any input.

func FuzzHandshakeResponse(f *testing.F) {
	resp := HandshakeResponse{Capabilities: testCaps | CapConnectAttrs, MaxPacket: 1 << 24, Collation: 45,
		User: "app", AuthResponse: []byte("01234567890123456789"), Database: "app", AuthPlugin: PluginNative,
		Attributes: map[string]string{"_os": "linux"}}
	f.Add(resp.Encode(nil))
	f.Add((&HandshakeResponse{Capabilities: CapProtocol41 | CapSSL, SSLRequest: true}).Encode(nil))
	f.Fuzz(func(t *testing.T, p []byte) {
		var h HandshakeResponse
		if err := h.Decode(p); err != nil {
			return
		}
		var again HandshakeResponse
		if err := again.Decode(h.Encode(nil)); err != nil && !h.SSLRequest {
			t.Fatalf("re-encoded response does not decode: %v", err)
		}
	})
}

func FuzzHandshake(f *testing.F) {
	hs := Handshake{ServerVersion: "10.11.5-MariaDB", ConnectionID: 1, Scramble: []byte("abcdefghijklmnopqrst"),
		Capabilities: testCaps, Collation: 45, Status: 2, AuthPlugin: PluginCachingSHA2}
	f.Add(hs.Encode(nil))
	f.Fuzz(func(t *testing.T, p []byte) {
		var h Handshake
		_ = h.Decode(p)
	})
}

func FuzzServerPackets(f *testing.F) {
	f.Add(AppendOK(nil, CapProtocol41|CapSessionTrack, HeaderOK, 1, 2, 3, 4), uint32(CapProtocol41|CapSessionTrack))
	f.Add(AppendERR(nil, 1045, "28000", "denied"), uint32(CapProtocol41))
	f.Add(AppendEOF(nil, 1), uint32(CapProtocol41))
	f.Fuzz(func(t *testing.T, p []byte, caps uint32) {
		_, _ = DecodeOK(p, caps)
		_, _ = DecodeERR(p)
		_, _ = DecodeEOF(p)
		_, _ = StatusOf(p, caps)
	})
}

func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, ComPing})
	f.Add([]byte{0xff, 0xff, 0xff, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		_, _, _ = ReadPacket(bytes.NewReader(p), nil, 1<<16)
	})
}

// FuzzRow: rows and column definitions come from servers; splitting,
// ordering and adding their values must not panic on any bytes, and a row
// that splits encodes back to one that splits into the same values.
func FuzzRow(f *testing.F) {
	// A text row: "42", NULL, "abc".
	f.Add([]byte{2, '4', '2', 0xfb, 3, 'a', 'b', 'c'}, []byte{TypeLongLong, 0xfd, 0xfd})
	// A binary row: LONGLONG 42, NULL, DATETIME 2024-01-02.
	f.Add([]byte{0, 0x08, 42, 0, 0, 0, 0, 0, 0, 0, 4, 0xe8, 0x07, 1, 2}, []byte{TypeLongLong, 0xfd, TypeDateTime})
	f.Fuzz(func(t *testing.T, p []byte, types []byte) {
		_, _ = ParseColumnDef(p)
		if len(types) > 64 {
			types = types[:64]
		}
		cols := make([]ColumnDef, len(types))
		for i, ty := range types {
			cols[i] = ColumnDef{Name: "c", Type: ty, Flags: uint16(ty) << 4}
		}
		for _, bin := range []bool{false, true} {
			vals, err := SplitRow(p, cols, bin)
			if err != nil {
				continue
			}
			again, err := SplitRow(EncodeRow(vals, cols, bin), cols, bin)
			if err != nil || len(again) != len(vals) {
				t.Fatalf("binary %v: re-encoded row does not split: %v", bin, err)
			}
			rc := &RowCodec{Cols: cols, Binary: bin}
			for i, v := range vals {
				if (v == nil) != (again[i] == nil) || !bytes.Equal(v, again[i]) {
					t.Fatalf("binary %v: value %d: %q, again %q", bin, i, v, again[i])
				}
				if v != nil {
					_, _ = rc.Key(i, v)
					_, _ = rc.Add(i, v, v)
					_, _ = rc.Text(i)
				}
			}
		}
	})
}

// FuzzDecodeExecParams: a COM_STMT_EXECUTE's parameters, from a client,
// for a statement of n parameters (the server's count), with or without
// types bound by an earlier execute.
func FuzzDecodeExecParams(f *testing.F) {
	// COM_STMT_EXECUTE, statement 1, no cursor, 1 iteration; 2 params:
	// null map, new-params-bound, types (LONGLONG, VAR_STRING), values.
	exec := []byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 8, 0, 0xfd, 0, 42, 0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c'}
	f.Add(exec, uint8(2), false)
	f.Add(exec[:20], uint8(2), true)
	f.Add([]byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0xff, 0}, uint8(9), true)
	f.Fuzz(func(t *testing.T, p []byte, n uint8, withBound bool) {
		var bound []byte
		if withBound {
			bound = []byte{8, 0, 0xfd, 0, 12, 0, 0xfe, 0}
		}
		ep, err := DecodeExecParams(p, int(n), bound, func(i int) bool { return i == 3 })
		if err != nil {
			return
		}
		if int(n) > 0 && (len(ep.Vals) != int(n) || len(ep.Null) != int(n) || len(ep.Types) < 2*int(n)) {
			t.Fatalf("n=%d: %d values, %d nulls, %d type bytes", n, len(ep.Vals), len(ep.Null), len(ep.Types))
		}
	})
}
