package pgframe

import (
	"encoding/binary"
	"errors"
	"strings"
)

// DecodeStartupParams reads the name/value pairs of a StartupMessage.
func DecodeStartupParams(b []byte) (map[string]string, error) {
	params := make(map[string]string)
	for {
		i := indexZero(b)
		if i < 0 {
			return nil, errors.New("missing terminator")
		}
		if i == 0 {
			if len(b) != 1 {
				return nil, errors.New("data after terminator")
			}
			return params, nil
		}
		name := string(b[:i])
		b = b[i+1:]
		j := indexZero(b)
		if j < 0 {
			return nil, errors.New("parameter " + name + " has no value")
		}
		params[name] = string(b[:j])
		b = b[j+1:]
	}
}

func indexZero(b []byte) int {
	for i, x := range b {
		if x == 0 {
			return i
		}
	}
	return -1
}

// DecodeOIDs reads an int16 count followed by that many int32 OIDs (the
// tail of Parse, and ParameterDescription). nil when malformed or empty.
func DecodeOIDs(b []byte) []uint32 {
	if len(b) < 2 {
		return nil
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n == 0 || len(b) < 4*n {
		return nil
	}
	oids := make([]uint32, n)
	for i := range oids {
		oids[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return oids
}

// ParseParamTypes reads the declared parameter types of a Parse message.
func ParseParamTypes(raw []byte) []uint32 {
	if len(raw) < 5 {
		return nil
	}
	_, rest, ok := CString(raw[5:])
	if !ok {
		return nil
	}
	_, rest, ok = CString(rest)
	if !ok {
		return nil
	}
	return DecodeOIDs(rest)
}

// CString splits a NUL-terminated string off b.
func CString(b []byte) (s, rest []byte, ok bool) {
	for i, x := range b {
		if x == 0 {
			return b[:i], b[i+1:], true
		}
	}
	return nil, nil, false
}

// AppendCloseStatement encodes Close of a statement.
func AppendCloseStatement(dst []byte, name string) []byte {
	n := 4 + 1 + len(name) + 1
	dst = append(dst, 'C', byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 'S')
	return append(append(dst, name...), 0)
}

// Query encodes a Query message.
func Query(sql string) []byte {
	b := []byte{'Q', 0, 0, 0, 0}
	b = append(append(b, sql...), 0)
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
	return b
}

// HasParse says whether a run of whole messages holds a Parse.
func HasParse(b []byte) bool { return HasAny(b, "P") }

// HasAny says whether a run of whole messages holds a message of one of
// the types in types. A run that is not whole messages stops the search
// there.
func HasAny(b []byte, types string) bool {
	for len(b) >= 5 {
		if strings.IndexByte(types, b[0]) >= 0 {
			return true
		}
		n := int64(binary.BigEndian.Uint32(b[1:])) + 1
		if n < 5 || n > int64(len(b)) {
			return false // not whole messages
		}
		b = b[n:]
	}
	return false
}

// AppendCommandComplete encodes a CommandComplete with this tag.
func AppendCommandComplete(b []byte, tag string) []byte {
	n := 4 + len(tag) + 1
	b = append(b, 'C', byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	return append(append(b, tag...), 0)
}

// AppendTextValue encodes a one-column text result: RowDescription and DataRow.
func AppendTextValue(b []byte, col, val string) []byte {
	n := 4 + 2 + len(col) + 1 + 18
	b = append(b, 'T', byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 1)
	b = append(append(b, col...), 0)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0)
	n = 4 + 2 + 4 + len(val)
	b = append(b, 'D', byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 1)
	l := len(val)
	b = append(b, byte(l>>24), byte(l>>16), byte(l>>8), byte(l))
	return append(b, val...)
}

// BindParam returns the value of the 1-based parameter n of a Bind
// message (nil for NULL) and whether it is in binary format.
func BindParam(m []byte, n int) (v []byte, binaryFmt, ok bool) {
	if len(m) < 5 {
		return nil, false, false
	}
	b := m[5:]
	_, b, ok1 := CString(b)
	_, b, ok2 := CString(b)
	if !ok1 || !ok2 || len(b) < 2 {
		return nil, false, false
	}
	nf := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < 2*nf+2 {
		return nil, false, false
	}
	formats := b[:2*nf]
	b = b[2*nf:]
	np := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > np {
		return nil, false, false
	}
	switch {
	case nf == 1:
		binaryFmt = binary.BigEndian.Uint16(formats) == 1
	case nf > 1 && n <= nf:
		binaryFmt = binary.BigEndian.Uint16(formats[2*(n-1):]) == 1
	}
	for i := 1; ; i++ {
		if len(b) < 4 {
			return nil, false, false
		}
		l := int(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
		if l < 0 {
			if i == n {
				return nil, binaryFmt, true
			}
			continue
		}
		if l > len(b) {
			return nil, false, false
		}
		if i == n {
			return b[:l], binaryFmt, true
		}
		b = b[l:]
	}
}
