package mysqlwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestPacketFramingRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 250, 251, 1 << 16, maxChunk - 1, maxChunk, maxChunk + 1, 2 * maxChunk, 2*maxChunk + 7} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		next, err := writePacket(bw, 3, payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		wantChunks := n/maxChunk + 1
		if int(next-3) != wantChunks {
			t.Errorf("n=%d: %d chunks, want %d", n, next-3, wantChunks)
		}
		got, seq, err := readPacket(&buf, nil, 3*maxChunk)
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
	_, _ = writePacket(bw, 0, make([]byte, 1000))
	_ = bw.Flush()
	if _, _, err := readPacket(&buf, nil, 999); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("want ErrPacketTooLarge, got %v", err)
	}
	// Truncated header and body.
	if _, _, err := readPacket(bytes.NewReader([]byte{5, 0}), nil, 100); err == nil {
		t.Fatal("short header accepted")
	}
	if _, _, err := readPacket(bytes.NewReader([]byte{5, 0, 0, 0, 'a'}), nil, 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: %v", err)
	}
	// A continuation chunk out of sequence.
	var b2 bytes.Buffer
	b2.Write([]byte{0xff, 0xff, 0xff, 0})
	b2.Write(make([]byte, maxChunk))
	b2.Write([]byte{0, 0, 0, 5})
	if _, _, err := readPacket(&b2, nil, 2*maxChunk); !errors.Is(err, errSequence) {
		t.Fatalf("want errSequence, got %v", err)
	}
}

func TestLenEnc(t *testing.T) {
	for _, v := range []uint64{0, 250, 251, 0xffff, 0x10000, 0xffffff, 0x1000000, 1<<64 - 1} {
		b := appendLenEnc(nil, v)
		r := reader{b: b}
		got, null := r.lenEnc()
		if r.err != nil || null || got != v || len(r.b) != 0 {
			t.Errorf("%d: got %d null=%v err=%v", v, got, null, r.err)
		}
	}
	r := reader{b: []byte{0xfb}}
	if _, null := r.lenEnc(); !null {
		t.Error("0xfb is NULL")
	}
	for _, bad := range [][]byte{{}, {0xfc, 1}, {0xfd, 1, 2}, {0xfe, 1}, {0xff}} {
		r := reader{b: bad}
		r.lenEnc()
		if r.err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
}

func TestOKERREOF(t *testing.T) {
	for _, caps := range []uint32{capProtocol41, capProtocol41 | capSessionTrack} {
		p := appendOK(nil, caps, hdrOK, 300, 1<<40, statusInTrans|statusMoreResults, 2)
		ok, err := DecodeOK(p, caps)
		if err != nil || ok.AffectedRows != 300 || ok.LastInsertID != 1<<40 || ok.Status != statusInTrans|statusMoreResults || ok.Warnings != 2 {
			t.Fatalf("caps %#x: %+v %v", caps, ok, err)
		}
		if st, good := statusOf(p, caps); !good || st != ok.Status {
			t.Fatalf("statusOf: %d %v", st, good)
		}
	}
	// A server OK with session-state info (MariaDB after SET with tracking).
	ok := []byte{0, 0, 0, 0x02, 0x40, 0, 0, 0, 0x0a, 0x00, 0x08, 'a', 'u', 't', 'o', 'c', 'o', 'm', 'm'}
	got, err := DecodeOK(ok, capProtocol41|capSessionTrack)
	if err != nil || got.Status != statusAutocommit|statusSessionStateChange || len(got.SessionState) != 10 {
		t.Fatalf("%+v %v", got, err)
	}
	e := appendEOF(nil, statusInTrans)
	if st, good := statusOf(e, capProtocol41); !good || st != statusInTrans {
		t.Fatalf("EOF status %d %v", st, good)
	}
	if !terminator(e[0], len(e), false) || terminator(0xfe, 9, false) || !terminator(0xfe, 100, true) || terminator(0xfe, maxChunk, true) {
		t.Fatal("terminator")
	}
	errp := appendERR(nil, 1045, "28000", "Access denied")
	de, err := DecodeERR(errp)
	if err != nil || de.Code != 1045 || de.State != "28000" || de.Message != "Access denied" {
		t.Fatalf("%+v %v", de, err)
	}
}

func TestHandshakeRoundTrip(t *testing.T) {
	hs := Handshake{ServerVersion: "10.11.5-MariaDB", ConnectionID: 77, Scramble: newScramble(),
		Capabilities: proxyCaps, Collation: 45, Status: statusAutocommit, AuthPlugin: pluginNative}
	var got Handshake
	if err := got.Decode(hs.Encode(nil)); err != nil {
		t.Fatal(err)
	}
	if got.ServerVersion != hs.ServerVersion || got.ConnectionID != 77 || !bytes.Equal(got.Scramble, hs.Scramble) ||
		got.Capabilities != proxyCaps || got.AuthPlugin != pluginNative {
		t.Fatalf("%+v", got)
	}
	resp := HandshakeResponse{Capabilities: proxyCaps | capConnectAttrs, MaxPacket: 1 << 24, Collation: 45,
		User: "app", AuthResponse: nativeScramble(hs.Scramble, "pw"), Database: "app", AuthPlugin: pluginNative,
		Attributes: map[string]string{"_client_name": "test"}}
	var r2 HandshakeResponse
	if err := r2.Decode(resp.Encode(nil)); err != nil {
		t.Fatal(err)
	}
	if r2.User != "app" || r2.Database != "app" || r2.AuthPlugin != pluginNative || r2.Attributes["_client_name"] != "test" ||
		!verify(pluginNative, hs.Scramble, r2.AuthResponse, "pw") || verify(pluginNative, hs.Scramble, r2.AuthResponse, "px") {
		t.Fatalf("%+v", r2)
	}
	ssl := HandshakeResponse{Capabilities: capProtocol41 | capSSL, SSLRequest: true}
	var r3 HandshakeResponse
	if err := r3.Decode(ssl.Encode(nil)); err != nil || !r3.SSLRequest {
		t.Fatalf("SSL request: %+v %v", r3, err)
	}
	if err := r3.Decode([]byte{0, 0, 0, 0}); !errors.Is(err, errOldProtocol) {
		t.Fatalf("pre-4.1: %v", err)
	}
}

func TestAuthScrambles(t *testing.T) {
	s := []byte("01234567890123456789")
	if !verify(pluginCachingSHA2, s, sha2Scramble(s, "secret"), "secret") {
		t.Fatal("sha2")
	}
	if verify(pluginCachingSHA2, s, sha2Scramble(s, "secret"), "other") {
		t.Fatal("sha2 wrong password accepted")
	}
	if !verify(pluginNative, s, nil, "") || verify(pluginNative, s, nil, "x") {
		t.Fatal("empty password")
	}
	if !isVerifier("md5"+"0123456789abcdef0123456789abcdef") || !isVerifier("SCRAM-SHA-256$4096:abc$x:y") || isVerifier("plain") {
		t.Fatal("isVerifier")
	}
}

func TestDecodeExecute(t *testing.T) {
	base := []byte{comStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0}
	if pos, types, err := decodeExecute(base, 0); err != nil || pos != 0 || types != nil {
		t.Fatal(pos, types, err)
	}
	p := append(append([]byte{}, base...), 0x00, 1, 0xfd, 0, 0x08, 0, 'x')
	pos, types, err := decodeExecute(p, 2)
	if err != nil || pos != 11 || !bytes.Equal(types, []byte{0xfd, 0, 0x08, 0}) {
		t.Fatal(pos, types, err)
	}
	p = append(append([]byte{}, base...), 0x00, 0)
	if pos, types, err := decodeExecute(p, 2); err != nil || pos != 11 || types != nil {
		t.Fatal(pos, types, err)
	}
	for _, bad := range [][]byte{base[:9], append(append([]byte{}, base...), 0), append(append([]byte{}, base...), 0, 1, 0xfd)} {
		if _, _, err := decodeExecute(bad, 2); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
}

// A packet over the limit is read off to its end (continuation chunks
// included), leaving the stream at the next packet.
func TestDiscardRest(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	seq, _ := writePacket(bw, 0, bytes.Repeat([]byte{'x'}, 2*maxChunk+5))
	_, _ = writePacket(bw, 0, []byte{comPing})
	_ = bw.Flush()
	_, _, err := readPacket(&buf, nil, maxChunk+10)
	var tl *tooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("want a tooLargeError, got %v", err)
	}
	last, err := discardRest(&buf, tl)
	if err != nil || last != seq-1 {
		t.Fatalf("discardRest: seq %d, %v; want %d", last, err, seq-1)
	}
	p, _, err := readPacket(&buf, nil, 100)
	if err != nil || len(p) != 1 || p[0] != comPing {
		t.Fatalf("next packet: %q, %v", p, err)
	}
}
