package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
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
// key. A string is an integer exactly when it is the canonical decimal
// form of an int64: an optional '-', then digits without leading zeros
// ("0" alone is fine), nothing else. "042", "+42", "-0", " 42", "4_2",
// "0x2a" and "42.0" are not integers but strings, and hash as their bytes.
// Integer columns fed by drivers never see those (drivers format integers
// canonically, and the router turns SQL integer literals such as 042 into
// int64 before they get here); a string literal '042' compared with an
// integer column is the one case that can land on another shard than 42.
// Range maps over integers refuse such strings with an error rather than
// guess.
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
