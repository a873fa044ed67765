package mysqlproto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestPacketFramingRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 250, 251, 1 << 16, MaxChunk - 1, MaxChunk, MaxChunk + 1, 2 * MaxChunk, 2*MaxChunk + 7} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		next, err := WritePacket(bw, 3, payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		wantChunks := n/MaxChunk + 1
		if int(next-3) != wantChunks {
			t.Errorf("n=%d: %d chunks, want %d", n, next-3, wantChunks)
		}
		got, seq, err := ReadPacket(&buf, nil, 3*MaxChunk)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if seq != next-1 || !bytes.Equal(got, payload) {
			t.Fatalf("n=%d: seq %d (want %d), equal %v", n, seq, next-1, bytes.Equal(got, payload))
		}
		if buf.Len() != 0 {
			t.Fatalf("n=%d: %d bytes left", n, buf.Len())
		}
	}
}

func TestPacketLimits(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	_, _ = WritePacket(bw, 0, make([]byte, 1000))
	_ = bw.Flush()
	if _, _, err := ReadPacket(&buf, nil, 999); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("want ErrPacketTooLarge, got %v", err)
	}
	// Truncated header and body.
	if _, _, err := ReadPacket(bytes.NewReader([]byte{5, 0}), nil, 100); err == nil {
		t.Fatal("short header accepted")
	}
	if _, _, err := ReadPacket(bytes.NewReader([]byte{5, 0, 0, 0, 'a'}), nil, 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: %v", err)
	}
	// A continuation chunk out of sequence.
	var b2 bytes.Buffer
	b2.Write([]byte{0xff, 0xff, 0xff, 0})
	b2.Write(make([]byte, MaxChunk))
	b2.Write([]byte{0, 0, 0, 5})
	if _, _, err := ReadPacket(&b2, nil, 2*MaxChunk); !errors.Is(err, ErrSequence) {
		t.Fatalf("want errSequence, got %v", err)
	}
}

func TestLenEnc(t *testing.T) {
	for _, v := range []uint64{0, 250, 251, 0xffff, 0x10000, 0xffffff, 0x1000000, 1<<64 - 1} {
		b := AppendLenEnc(nil, v)
		r := Reader{b: b}
		got, null := r.LenEnc()
		if r.err != nil || null || got != v || len(r.b) != 0 {
			t.Errorf("%d: got %d null=%v err=%v", v, got, null, r.err)
		}
	}
	r := Reader{b: []byte{0xfb}}
	if _, null := r.LenEnc(); !null {
		t.Error("0xfb is NULL")
	}
	for _, bad := range [][]byte{{}, {0xfc, 1}, {0xfd, 1, 2}, {0xfe, 1}, {0xff}} {
		r := Reader{b: bad}
		r.LenEnc()
		if r.err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
}

func TestOKERREOF(t *testing.T) {
	for _, caps := range []uint32{CapProtocol41, CapProtocol41 | CapSessionTrack} {
		p := AppendOK(nil, caps, HeaderOK, 300, 1<<40, StatusInTrans|StatusMoreResults, 2)
		ok, err := DecodeOK(p, caps)
		if err != nil || ok.AffectedRows != 300 || ok.LastInsertID != 1<<40 || ok.Status != StatusInTrans|StatusMoreResults || ok.Warnings != 2 {
			t.Fatalf("caps %#x: %+v %v", caps, ok, err)
		}
		if st, good := StatusOf(p, caps); !good || st != ok.Status {
			t.Fatalf("statusOf: %d %v", st, good)
		}
	}
	// A server OK with session-state info (MariaDB after SET with tracking).
	ok := []byte{0, 0, 0, 0x02, 0x40, 0, 0, 0, 0x0a, 0x00, 0x08, 'a', 'u', 't', 'o', 'c', 'o', 'm', 'm'}
	got, err := DecodeOK(ok, CapProtocol41|CapSessionTrack)
	if err != nil || got.Status != StatusAutocommit|StatusSessionStateChange || len(got.SessionState) != 10 {
		t.Fatalf("%+v %v", got, err)
	}
	e := AppendEOF(nil, StatusInTrans)
	if st, good := StatusOf(e, CapProtocol41); !good || st != StatusInTrans {
		t.Fatalf("EOF status %d %v", st, good)
	}
	if !IsTerminator(e[0], len(e), false) || IsTerminator(0xfe, 9, false) || !IsTerminator(0xfe, 100, true) || IsTerminator(0xfe, MaxChunk, true) {
		t.Fatal("terminator")
	}
	errp := AppendERR(nil, 1045, "28000", "Access denied")
	de, err := DecodeERR(errp)
	if err != nil || de.Code != 1045 || de.State != "28000" || de.Message != "Access denied" {
		t.Fatalf("%+v %v", de, err)
	}
}

// testCaps is a client's capabilities in these tests (what the proxy
// offers, less compression and TLS).
const testCaps = CapLongPassword | CapFoundRows | CapLongFlag | CapConnectWithDB |
	CapLocalFiles | CapIgnoreSpace | CapProtocol41 | CapInteractive | CapIgnoreSigpipe |
	CapTransactions | CapSecureConnection | CapMultiStatements | CapMultiResults |
	CapPSMultiResults | CapPluginAuth | CapConnectAttrs | CapPluginAuthLenenc |
	CapSessionTrack | CapDeprecateEOF

func TestHandshakeRoundTrip(t *testing.T) {
	hs := Handshake{ServerVersion: "10.11.5-MariaDB", ConnectionID: 77, Scramble: []byte("abcdefghijklmnopqrst"),
		Capabilities: testCaps, Collation: 45, Status: StatusAutocommit, AuthPlugin: PluginNative}
	var got Handshake
	if err := got.Decode(hs.Encode(nil)); err != nil {
		t.Fatal(err)
	}
	if got.ServerVersion != hs.ServerVersion || got.ConnectionID != 77 || !bytes.Equal(got.Scramble, hs.Scramble) ||
		got.Capabilities != testCaps || got.AuthPlugin != PluginNative {
		t.Fatalf("%+v", got)
	}
	resp := HandshakeResponse{Capabilities: testCaps | CapConnectAttrs, MaxPacket: 1 << 24, Collation: 45,
		User: "app", AuthResponse: []byte("01234567890123456789"), Database: "app", AuthPlugin: PluginNative,
		Attributes: map[string]string{"_client_name": "test"}}
	var r2 HandshakeResponse
	if err := r2.Decode(resp.Encode(nil)); err != nil {
		t.Fatal(err)
	}
	if r2.User != "app" || r2.Database != "app" || r2.AuthPlugin != PluginNative || r2.Attributes["_client_name"] != "test" ||
		!bytes.Equal(r2.AuthResponse, resp.AuthResponse) {
		t.Fatalf("%+v", r2)
	}
	ssl := HandshakeResponse{Capabilities: CapProtocol41 | CapSSL, SSLRequest: true}
	var r3 HandshakeResponse
	if err := r3.Decode(ssl.Encode(nil)); err != nil || !r3.SSLRequest {
		t.Fatalf("SSL request: %+v %v", r3, err)
	}
	if err := r3.Decode([]byte{0, 0, 0, 0}); !errors.Is(err, ErrOldProtocol) {
		t.Fatalf("pre-4.1: %v", err)
	}
}

// A packet over the limit is read off to its end (continuation chunks
// included), leaving the stream at the next packet.
func TestDiscardRest(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	seq, _ := WritePacket(bw, 0, bytes.Repeat([]byte{'x'}, 2*MaxChunk+5))
	_, _ = WritePacket(bw, 0, []byte{ComPing})
	_ = bw.Flush()
	_, _, err := ReadPacket(&buf, nil, MaxChunk+10)
	var tl *TooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("want a tooLargeError, got %v", err)
	}
	last, err := DiscardRest(&buf, tl)
	if err != nil || last != seq-1 {
		t.Fatalf("discardRest: seq %d, %v; want %d", last, err, seq-1)
	}
	p, _, err := ReadPacket(&buf, nil, 100)
	if err != nil || len(p) != 1 || p[0] != ComPing {
		t.Fatalf("next packet: %q, %v", p, err)
	}
}
