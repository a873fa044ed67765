package pgframe

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// Messages smaller and larger than the read buffer come back whole, with
// their headers; one over the limit is refused; RelayLarge streams a
// DataRow larger than the buffer and leaves the stream at the next one.
func TestReader(t *testing.T) {
	small := testMsg('D', []byte("abc"))
	big := testMsg('D', bytes.Repeat([]byte("x"), 1000))
	var in bytes.Buffer
	in.Write(small)
	in.Write(big)
	in.Write(big)
	in.Write(small)
	in.Write(testMsg('Q', bytes.Repeat([]byte("y"), 2000)))
	r := NewReader(bufio.NewReaderSize(&in, 64), 1500)
	for i, want := range [][]byte{small, big} {
		typ, raw, err := r.Next()
		if err != nil || typ != 'D' || !bytes.Equal(raw, want) {
			t.Fatalf("message %d: %q %d bytes, %v", i, typ, len(raw), err)
		}
	}
	var out bytes.Buffer
	if typ, total, ok := r.PeekHeaderWait(); !ok || typ != 'D' || total != len(big) {
		t.Fatalf("PeekHeaderWait: %q %d %v", typ, total, ok)
	}
	if handled, err := r.RelayLarge(&out); !handled || err != nil || !bytes.Equal(out.Bytes(), big) {
		t.Fatalf("RelayLarge: %v %v, %d bytes", handled, err, out.Len())
	}
	r.PeekHeaderWait()
	if handled, err := r.RelayLarge(&out); handled || err != nil {
		t.Fatalf("RelayLarge of a small message: %v %v", handled, err)
	}
	if _, raw, err := r.Next(); err != nil || !bytes.Equal(raw, small) {
		t.Fatalf("after RelayLarge: %q %v", raw, err)
	}
	if _, _, err := r.Next(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}

	// A message cut short is an unexpected EOF, not a clean close.
	r = NewReader(bufio.NewReaderSize(bytes.NewReader(big[:500]), 64), 1500)
	if _, _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestStartupAndBind(t *testing.T) {
	body, err := ReadStartup(bufio.NewReader(bytes.NewReader(testStartup("user", "app", "database", "db"))), 10000)
	if err != nil {
		t.Fatal(err)
	}
	params, err := DecodeStartupParams(body[4:])
	if err != nil || params["user"] != "app" || params["database"] != "db" || len(params) != 2 {
		t.Fatalf("%v %v", params, err)
	}
	if _, err := DecodeStartupParams([]byte("user\x00app")); err == nil {
		t.Fatal("a parameter list without its terminator accepted")
	}
	// Bind of portal "" and statement "s1": formats (binary), two
	// parameters: int4 42 and NULL.
	bind := testMsg('B', []byte("\x00s1\x00"), []byte{0, 1, 0, 1, 0, 2, 0, 0, 0, 4, 0, 0, 0, 42, 0xff, 0xff, 0xff, 0xff})
	if v, bin, ok := BindParam(bind, 1); !ok || !bin || !bytes.Equal(v, []byte{0, 0, 0, 42}) {
		t.Fatalf("$1: %v %v %v", v, bin, ok)
	}
	if v, _, ok := BindParam(bind, 2); !ok || v != nil {
		t.Fatalf("$2: %v %v", v, ok)
	}
	if _, _, ok := BindParam(bind, 3); ok {
		t.Fatal("$3 of two")
	}
	parse := testMsg('P', []byte("s1\x00SELECT $1\x00"), []byte{0, 1, 0, 0, 0, 23})
	if oids := ParseParamTypes(parse); len(oids) != 1 || oids[0] != 23 {
		t.Fatalf("parse types %v", oids)
	}
	if !HasParse(append(Query("SELECT 1"), parse...)) || HasParse(Query("SELECT 1")) {
		t.Fatal("HasParse")
	}
}

func TestHasAny(t *testing.T) {
	run := append(Query("SELECT 1"), 'S', 0, 0, 0, 4)
	if !HasAny(run, "S") || !HasAny(run, "XQ") || HasAny(run, "EF") {
		t.Fatal("HasAny on whole messages")
	}
	// A length that runs past the end is not a whole message: the search
	// stops there instead of reading beyond it.
	bad := append([]byte{'Q', 0, 0, 1, 0}, run...)
	if HasAny(bad, "S") || HasAny([]byte{'E', 0, 0, 0}, "E") {
		t.Fatal("HasAny past a truncated message")
	}
}
