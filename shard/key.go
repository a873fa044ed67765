package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Canonical form of a key.
//
// A key reaches the proxy in several shapes: an integer literal in the SQL
// text, a string literal, a text-format bind parameter (the bytes "42"), a
// binary-format bind parameter (eight big-endian bytes), a hint in a
// comment. The maps reduce all of them to one byte string:
//
//   - an integer (int64, or any Go integer type that fits one) is its
//     decimal text as strconv.FormatInt writes it: "42", "-42", "0";
//   - a string or a []byte is its bytes, unchanged (UTF-8 for text).
//
// So the integer 42, the string "42" and the bind bytes "42" are the same
// key. Text that a server reads as an integer is that integer too (see
// IntText): '042', ' 42', '+42' (and for MySQL '42.0') compared with or
// stored in an integer column are 42 there, so they must be 42 here, or a
// row inserted with '042' would land on a shard that a lookup by 42 does
// not search. A text column keyed by such strings loses nothing: '042' and
// '42' then share a shard, which every path agrees on. Text that reads as
// a number but not a whole int64 ("4.5", "1e30") is refused (ErrKeyType):
// the server would round it to an integer the proxy cannot know. Range
// maps over strings compare text as it is.
//
// Binary-format parameters are not canonical bytes: the caller converts
// them first (IntFromBinary for PostgreSQL int2/int4/int8).

// Errors a map returns, wrapped in a *KeyError that names the key.
var (
	// ErrNullKey: the key is NULL (nil). No row has a NULL shard key
	// that could be found again, so there is no shard to pick.
	ErrNullKey = errors.New("NULL shard key")
	// ErrKeyType: the value is not a key type (int64, string, []byte),
	// or, for a range map, not of the type of its ranges.
	ErrKeyType = errors.New("not a usable shard key")
	// ErrNoShard: a range map has no shard whose range holds the key.
	ErrNoShard = errors.New("no shard's range holds the key")
	// ErrNoKey: a routing decision was asked for with no key at all.
	ErrNoKey = errors.New("no shard key")
)

// KeyError is the error of ShardOf: the key, as it would be written in SQL
// (truncated when long), and what is wrong with it.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return "shard key " + e.Key + ": " + e.Err.Error() }

func (e *KeyError) Unwrap() error { return e.Err }

// maxShownKey bounds how much of a key an error message quotes.
const maxShownKey = 64

func keyError(v any, err error) error { return &KeyError{Key: showKey(v), Err: err} }

// showKey renders a key for messages: integers as decimal, strings and
// bytes quoted.
func showKey(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return quoteKey(v)
	case []byte:
		return quoteKey(string(v))
	}
	if n, ok := asInt(v); ok {
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%v (%T)", v, v)
}

func quoteKey(s string) string {
	if len(s) > maxShownKey {
		return strconv.Quote(s[:maxShownKey]) + "..."
	}
	return strconv.Quote(s)
}

// asInt reports the value of any Go integer type that fits an int64.
func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case int16:
		return int64(n), true
	case int8:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint8:
		return int64(n), true
	case uint64:
		if n <= 1<<63-1 {
			return int64(n), true
		}
	case uint:
		if uint64(n) <= 1<<63-1 {
			return int64(n), true
		}
	}
	return 0, false
}

// AppendCanonical appends the canonical bytes of key v (see the package
// documentation of the canonical form) to dst.
func AppendCanonical(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return dst, keyError(nil, ErrNullKey)
	case string:
		return append(dst, v...), nil
	case []byte:
		return append(dst, v...), nil
	}
	if n, ok := asInt(v); ok {
		return strconv.AppendInt(dst, n, 10), nil
	}
	return dst, keyError(v, ErrKeyType)
}

// CanonicalInt reports whether b is the canonical decimal form of an int64
// ("42", "-42", "0"; not "042", "+42", "-0", "") and its value.
func CanonicalInt[T string | []byte](b T) (int64, bool) {
	n := len(b)
	if n == 0 || n > 20 {
		return 0, false
	}
	neg := b[0] == '-'
	i := 0
	if neg {
		i = 1
		if n == 1 {
			return 0, false
		}
	}
	if b[i] == '0' && (n > i+1 || neg) {
		return 0, false // leading zero, or "-0"
	}
	var u uint64
	for ; i < n; i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if u > (1<<64-1-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	switch {
	case neg && u <= 1<<63:
		return int64(-u), true // -(1<<63) wraps to itself, which is right
	case !neg && u <= 1<<63-1:
		return int64(u), true
	}
	return 0, false
}

// IntFromBinary decodes a binary-format PostgreSQL integer bind parameter:
// int2, int4 or int8, big-endian two's complement, by its length. Other
// lengths give false. The caller must know from the parameter's type OID
// that it is an integer: eight bytes of a float8 would decode too.
func IntFromBinary(b []byte) (int64, bool) {
	switch len(b) {
	case 2:
		return int64(int16(binary.BigEndian.Uint16(b))), true
	case 4:
		return int64(int32(binary.BigEndian.Uint32(b))), true
	case 8:
		return int64(binary.BigEndian.Uint64(b)), true
	}
	return 0, false
}

// TextKind is what a key written as text reads as: see IntText.
type TextKind uint8

// Text kinds.
const (
	// NotNumber: text that no server reads as a number ("abc", "4_2",
	// "0x2a", ""): it is its bytes.
	NotNumber TextKind = iota
	// Integer: an integer that fits an int64, in any form a server
	// accepts for an integer column: blanks around it, a '+', leading
	// zeros ("042", " 42", "+42", "42 "), and, as MySQL reads a string
	// compared with or stored in an integer column, a fraction of zeros
	// or an exponent that keeps it whole ("42.0", "4.2e1").
	Integer
	// Inexact: a number that is not an integer, or one out of the int64
	// range ("4.5", "1e30"): a server converts it to some integer
	// (rounding, clamping) that the proxy cannot know, so it is no
	// usable key.
	Inexact
)

// IntText reads a key written as text. A string key and a text-format
// parameter may stand for an integer column's value: the server reads
// '042' as 42, so the proxy must too, or a row inserted with '042' would
// land on another shard than the one a lookup by 42 searches.
func IntText[T string | []byte](b T) (int64, TextKind) {
	if n, ok := CanonicalInt(b); ok {
		return n, Integer // the common case, without trimming
	}
	s := string(b) // the compiler does not copy for the comparisons below
	i, j := 0, len(s)
	for i < j && isBlank(s[i]) {
		i++
	}
	for j > i && isBlank(s[j-1]) {
		j--
	}
	s = s[i:j]
	if s == "" {
		return 0, NotNumber
	}
	// sign, digits, optional fraction, optional exponent.
	k := 0
	neg := false
	if s[0] == '+' || s[0] == '-' {
		neg = s[0] == '-'
		k++
	}
	intStart := k
	for k < len(s) && isDigit(s[k]) {
		k++
	}
	intDigits := s[intStart:k]
	frac := ""
	if k < len(s) && s[k] == '.' {
		k++
		f := k
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		frac = s[f:k]
	}
	if intDigits == "" && frac == "" {
		return 0, NotNumber
	}
	exp := 0
	if k < len(s) && (s[k] == 'e' || s[k] == 'E') {
		k++
		eneg := false
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			eneg = s[k] == '-'
			k++
		}
		e := k
		for k < len(s) && isDigit(s[k]) && k-e < 4 {
			k++
		}
		if k == e {
			return 0, NotNumber
		}
		for _, c := range s[e:k] {
			exp = exp*10 + int(c-'0')
		}
		if eneg {
			exp = -exp
		}
	}
	if k != len(s) {
		return 0, NotNumber
	}
	// The digits without the point, and where the point goes after the
	// exponent; the number is whole when every digit right of it is 0.
	digits := strings.TrimLeft(intDigits+frac, "0")
	point := len(intDigits) + exp - (len(intDigits) + len(frac) - len(digits))
	if digits == "" {
		return 0, Integer
	}
	if point < len(digits) {
		if strings.TrimRight(digits[max(point, 0):], "0") != "" {
			return 0, Inexact
		}
		digits = digits[:max(point, 0)]
	} else if point-len(digits) > 19 {
		return 0, Inexact
	} else {
		digits += strings.Repeat("0", point-len(digits))
	}
	if digits == "" {
		return 0, Integer
	}
	if neg {
		digits = "-" + digits
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, Inexact
	}
	return n, Integer
}

// NumberPrefix is the number MySQL and MariaDB read from text that is
// compared with (or stored in) a numeric column: the longest prefix that is
// a number, after leading blanks ('5abc' is 5, '1e2x' 100, '-5 apples'
// -5), and 0 when the text starts with none ('abc', empty text, '0x10' is 0). The
// result is that prefix as text, for IntText; "0" when there is none.
func NumberPrefix[T string | []byte](b T) string {
	s := string(b)
	i := 0
	for i < len(s) && isBlank(s[i]) {
		i++
	}
	s = s[i:]
	k := 0
	if k < len(s) && (s[k] == '+' || s[k] == '-') {
		k++
	}
	d := k
	for k < len(s) && isDigit(s[k]) {
		k++
	}
	digits := k > d
	if k < len(s) && s[k] == '.' {
		f := k + 1
		for f < len(s) && isDigit(s[f]) {
			f++
		}
		if digits || f > k+1 {
			digits = true
			k = f
		}
	}
	if !digits {
		return "0"
	}
	if k < len(s) && (s[k] == 'e' || s[k] == 'E') {
		e := k + 1
		if e < len(s) && (s[e] == '+' || s[e] == '-') {
			e++
		}
		if e < len(s) && isDigit(s[e]) {
			for e < len(s) && isDigit(s[e]) {
				e++
			}
			k = e
		}
	}
	return s[:k]
}

func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// intTextKey reads v (a string or []byte) as IntText does for a map
// whose keys are integers; what says why other text is refused.
func intTextKey(v any, what string) (int64, error) {
	var n int64
	var kind TextKind
	switch v := v.(type) {
	case string:
		n, kind = IntText(v)
	case []byte:
		n, kind = IntText(v)
	}
	switch kind {
	case Integer:
		return n, nil
	case Inexact:
		return 0, keyError(v, errInexact)
	}
	return 0, keyError(v, fmt.Errorf("%w: %s", ErrKeyType, what))
}

// errInexact is the ErrKeyType detail of an Inexact key.
var errInexact = fmt.Errorf("%w: a number that is not a whole int64; the server would round or clamp it to an integer the proxy cannot know", ErrKeyType)
