package mysqlwire

import (
	"github.com/switchyard/switchyard/router"

	"bytes"
	"testing"
)

// Every decoder that reads bytes from a client (or a server) must return
// an error, never panic, on any input.

func FuzzHandshakeResponse(f *testing.F) {
	resp := HandshakeResponse{Capabilities: proxyCaps | capConnectAttrs, MaxPacket: 1 << 24, Collation: 45,
		User: "app", AuthResponse: []byte("01234567890123456789"), Database: "app", AuthPlugin: pluginNative,
		Attributes: map[string]string{"_os": "linux"}}
	f.Add(resp.Encode(nil))
	f.Add((&HandshakeResponse{Capabilities: capProtocol41 | capSSL, SSLRequest: true}).Encode(nil))
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
		Capabilities: proxyCaps, Collation: 45, Status: 2, AuthPlugin: pluginCachingSHA2}
	f.Add(hs.Encode(nil))
	f.Fuzz(func(t *testing.T, p []byte) {
		var h Handshake
		_ = h.Decode(p)
	})
}

func FuzzServerPackets(f *testing.F) {
	f.Add(appendOK(nil, capProtocol41|capSessionTrack, hdrOK, 1, 2, 3, 4), uint32(capProtocol41|capSessionTrack))
	f.Add(appendERR(nil, 1045, "28000", "denied"), uint32(capProtocol41))
	f.Add(appendEOF(nil, 1), uint32(capProtocol41))
	f.Fuzz(func(t *testing.T, p []byte, caps uint32) {
		_, _ = DecodeOK(p, caps)
		_, _ = DecodeERR(p)
		_, _ = DecodeEOF(p)
		_, _ = statusOf(p, caps)
	})
}

func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, comPing})
	f.Add([]byte{0xff, 0xff, 0xff, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		_, _, _ = readPacket(bytes.NewReader(p), nil, 1<<16)
	})
}

func FuzzCommand(f *testing.F) {
	f.Add([]byte("\x03SELECT 1; SET NAMES utf8mb4; USE `x`"), uint16(0))
	f.Add([]byte{comStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0xfd, 0, 1, 'x'}, uint16(1))
	f.Add([]byte("\x03KILL QUERY 12"), uint16(0))
	f.Fuzz(func(t *testing.T, p []byte, params uint16) {
		if len(p) == 0 {
			return
		}
		switch p[0] {
		case comStmtExecute:
			pos, types, err := decodeExecute(p, params)
			if err == nil && types != nil && len(types) != 2*int(params) || pos > len(p) {
				t.Fatalf("bad decode: pos %d types %d", pos, len(types))
			}
		default:
			router.ScanMySQL(string(p[1:]))
		}
	})
}

// FuzzExecuteParams: the shard router reads COM_STMT_EXECUTE parameter
// values (for the shard key and LIMIT ?) and server rows (to merge the
// rows of several shards); neither may panic on any bytes.
func FuzzExecuteParams(f *testing.F) {
	// Two parameters, types bound: LONGLONG 42, VAR_STRING "abc".
	f.Add([]byte{comStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0x08, 0, 0xfd, 0,
		42, 0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c'}, uint8(2), []byte(nil))
	// NULL first parameter, types from an earlier execute.
	f.Add([]byte{comStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 3, 'x', 'y', 'z'}, uint8(2), []byte{0x08, 0, 0xfd, 0})
	// A DATETIME and an unsigned TINY.
	f.Add([]byte{comStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0x0c, 0, 0x01, 0x80, 4, 0xe8, 0x07, 1, 2, 200}, uint8(2), []byte(nil))
	f.Fuzz(func(t *testing.T, p []byte, n uint8, bound []byte) {
		ep, err := decodeExecParams(p, int(n), bound, func(i int) bool { return i == 3 })
		if err != nil {
			return
		}
		for k := 1; k <= int(n)+1; k++ {
			_, _ = ep.KeyParam(k)
			_, _ = ep.intParam(k)
		}
		// The same bytes as a row of n columns of the types given.
		cols := make([]colDef, n)
		for i := range cols {
			if 2*i < len(ep.types) {
				cols[i].typ = ep.types[2*i]
			}
		}
		for _, bin := range []bool{false, true} {
			vals, err := splitRow(p, cols, bin)
			if err != nil {
				continue
			}
			for i, v := range vals {
				if v != nil {
					_, _ = (&rowCodec{cols: cols, binaryRows: bin}).Key(i, v)
				}
			}
			_ = encodeRow(vals, cols, bin)
		}
		_, _ = parseColDef(p)
	})
}
