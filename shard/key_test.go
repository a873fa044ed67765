package shard

import (
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

func TestCanonicalInt(t *testing.T) {
	for _, c := range []struct {
		in string
		n  int64
		ok bool
	}{
		{"0", 0, true},
		{"42", 42, true},
		{"-42", -42, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false},
		{"18446744073709551616", 0, false},
		{"99999999999999999999", 0, false},
		{"", 0, false},
		{"-", 0, false},
		{"-0", 0, false},
		{"00", 0, false},
		{"042", 0, false},
		{"+42", 0, false},
		{" 42", 0, false},
		{"42 ", 0, false},
		{"4_2", 0, false},
		{"0x2a", 0, false},
		{"42.0", 0, false},
		{"1e3", 0, false},
		{"--1", 0, false},
		{"-01", 0, false},
	} {
		n, ok := CanonicalInt(c.in)
		if n != c.n || ok != c.ok {
			t.Errorf("CanonicalInt(%q) = %d, %v; want %d, %v", c.in, n, ok, c.n, c.ok)
		}
		nb, okb := CanonicalInt([]byte(c.in))
		if nb != n || okb != ok {
			t.Errorf("CanonicalInt([]byte(%q)) = %d, %v; string form gives %d, %v", c.in, nb, okb, n, ok)
		}
	}
}

// FuzzCanonicalInt: a string is canonical exactly when strconv parses it
// and formats the value back to the same text.
func FuzzCanonicalInt(f *testing.F) {
	for _, s := range []string{"0", "-0", "42", "-9223372036854775808", "9223372036854775808", "042", "+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := CanonicalInt(s)
		p, err := strconv.ParseInt(s, 10, 64)
		want := err == nil && strconv.FormatInt(p, 10) == s
		if ok != want || ok && n != p {
			t.Errorf("CanonicalInt(%q) = %d, %v; strconv says %d, %v", s, n, ok, p, want)
		}
	})
}

func TestAppendCanonical(t *testing.T) {
	for _, c := range []struct {
		in   any
		want string
		err  error
	}{
		{int64(42), "42", nil},
		{42, "42", nil},
		{int32(-7), "-7", nil},
		{uint64(1<<63 - 1), "9223372036854775807", nil},
		{uint64(1 << 63), "", ErrKeyType},
		{"42", "42", nil},
		{[]byte("abc"), "abc", nil},
		{"", "", nil},
		{nil, "", ErrNullKey},
		{1.5, "", ErrKeyType},
		{true, "", ErrKeyType},
	} {
		got, err := AppendCanonical(nil, c.in)
		if !errors.Is(err, c.err) || string(got) != c.want {
			t.Errorf("AppendCanonical(%#v) = %q, %v; want %q, %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestIntFromBinary(t *testing.T) {
	for _, c := range []struct {
		in []byte
		n  int64
		ok bool
	}{
		{[]byte{0, 42}, 42, true},
		{[]byte{0xff, 0xd6}, -42, true},
		{[]byte{0, 0, 0, 42}, 42, true},
		{[]byte{0xff, 0xff, 0xff, 0xd6}, -42, true},
		{[]byte{0x80, 0, 0, 0}, -1 << 31, true},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 42}, 42, true},
		{[]byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1<<63 - 1, true},
		{[]byte{0x80, 0, 0, 0, 0, 0, 0, 0}, -1 << 63, true},
		{[]byte{42}, 0, false},
		{[]byte{0, 0, 42}, 0, false},
		{nil, 0, false},
	} {
		n, ok := IntFromBinary(c.in)
		if n != c.n || ok != c.ok {
			t.Errorf("IntFromBinary(%x) = %d, %v; want %d, %v", c.in, n, ok, c.n, c.ok)
		}
	}
}

func TestKeyErrorMessage(t *testing.T) {
	long := make([]byte, 200)
	for i := range long {
		long[i] = 'x'
	}
	for _, c := range []struct {
		v    any
		want string
	}{
		{nil, "shard key NULL: NULL shard key"},
		{int64(7), "shard key 7: no shard's range holds the key"},
		{"a\"b", `shard key "a\"b": no shard's range holds the key`},
		{string(long), `shard key "` + string(long[:64]) + `"...: no shard's range holds the key`},
	} {
		err := ErrNoShard
		if c.v == nil {
			err = ErrNullKey
		}
		if got := keyError(c.v, err).Error(); got != c.want {
			t.Errorf("keyError(%v) = %q; want %q", c.v, got, c.want)
		}
	}
}

func TestIntText(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int64
		kind TextKind
	}{
		{"42", 42, Integer}, {"042", 42, Integer}, {" 42", 42, Integer}, {"+42", 42, Integer},
		{"42\t", 42, Integer}, {"-042", -42, Integer}, {"-0", 0, Integer}, {"000", 0, Integer},
		{"42.", 42, Integer}, {"42.000", 42, Integer}, {".0", 0, Integer}, {"4.2e1", 42, Integer},
		{"4200E-2", 42, Integer}, {"-9223372036854775808", -1 << 63, Integer},
		{"9223372036854775807", 1<<63 - 1, Integer},
		{"9223372036854775808", 0, Inexact}, {"4.5", 0, Inexact}, {"1e30", 0, Inexact}, {"0.001", 0, Inexact},
		{"", 0, NotNumber}, {" ", 0, NotNumber}, {"abc", 0, NotNumber}, {"4_2", 0, NotNumber},
		{"0x2a", 0, NotNumber}, {"42abc", 0, NotNumber}, {"+", 0, NotNumber}, {".", 0, NotNumber},
		{"1e", 0, NotNumber}, {"- 1", 0, NotNumber}, {"1e99999", 0, NotNumber},
	} {
		n, kind := IntText(c.in)
		if n != c.n || kind != c.kind {
			t.Errorf("IntText(%q) = %d, %d; want %d, %d", c.in, n, kind, c.n, c.kind)
		}
		if nb, kb := IntText([]byte(c.in)); nb != n || kb != kind {
			t.Errorf("IntText([]byte %q) disagrees with the string form", c.in)
		}
	}
}

// FuzzIntText: an Integer verdict is the exact value of the text.
func FuzzIntText(f *testing.F) {
	for _, s := range []string{"042", " 4.2e1 ", "-0.0", "1e30", "abc", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, kind := IntText(s)
		if kind != Integer {
			return
		}
		r, ok := new(big.Rat).SetString(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "+")))
		if !ok || !r.IsInt() || r.Num().Cmp(big.NewInt(n)) != 0 {
			t.Fatalf("IntText(%q) = %d, but the text is %v", s, n, r)
		}
	})
}

// TestNumberPrefix: the number MariaDB reads from text compared with an
// integer column (checked against MariaDB 10.11: WHERE id = '5abc'
// finds id 5, = 'abc' and the empty string find 0, = '1e2x' finds 100).
func TestNumberPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"5abc": "5", "abc": "0", "": "0", "  5x": "5", "\t5x": "5", "-5z": "-5", "+5z": "+5",
		"5.0x": "5.0", "1e2x": "1e2", "1e": "1", "1e+": "1", "1E-2y": "1E-2", ".5x": ".5", "5.": "5.",
		"0x10": "0", "-": "0", ".": "0", "-.e5": "0", "42": "42", "12abc": "12",
	} {
		if got := NumberPrefix(in); got != want {
			t.Errorf("NumberPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzNumberPrefix: any text gives a number taken from the text's start
// after blanks, or "0"; IntText reads it as a number unless its exponent
// has more digits than IntText reads.
func FuzzNumberPrefix(f *testing.F) {
	for _, s := range []string{"5abc", "", " -1.5e3x", "0x10", "+.e", "1e+", "\t42 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := NumberPrefix(s)
		if _, kind := IntText(p); kind == NotNumber && !strings.ContainsAny(p, "eE") {
			t.Fatalf("NumberPrefix(%q) = %q, which IntText does not read as a number", s, p)
		}
		if p != "0" && !strings.HasPrefix(strings.TrimLeft(s, " \t\n\r\f\v"), p) {
			t.Fatalf("NumberPrefix(%q) = %q, not a prefix of the text", s, p)
		}
	})
}
