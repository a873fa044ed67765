package mysqlproto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/scatter"
)

// Column definitions and values.

// MySQL column types.
const (
	TypeDecimal    = 0x00
	TypeTiny       = 0x01
	TypeShort      = 0x02
	TypeLong       = 0x03
	TypeFloat      = 0x04
	TypeDouble     = 0x05
	TypeNull       = 0x06
	TypeTimestamp  = 0x07
	TypeLongLong   = 0x08
	TypeInt24      = 0x09
	TypeDate       = 0x0a
	TypeTime       = 0x0b
	TypeDateTime   = 0x0c
	TypeYear       = 0x0d
	TypeNewDate    = 0x0e
	TypeNewDecimal = 0xf6
)

const FlagUnsigned = 0x20

// BinaryCollation is the character set number of binary strings.
const BinaryCollation = 63

type ColumnDef struct {
	Name    string
	Type    byte
	Flags   uint16
	Charset uint16
	// Decimals is the column's fixed count of decimals; 31 and above
	// (NOT_FIXED_DEC): none, the shortest digits.
	Decimals byte
	// schema, table and column of a table's column ("" for an
	// expression), where its collation is looked up.
	Schema, OrgTable, OrgName string
}

func ParseColumnDef(p []byte) (ColumnDef, error) {
	r := Reader{b: p}
	r.LenEncBytes() // catalog
	schema := r.LenEncBytes()
	r.LenEncBytes() // table
	orgTable := r.LenEncBytes()
	name := r.LenEncBytes()
	orgName := r.LenEncBytes()
	r.LenEnc()
	c := ColumnDef{Name: string(name), Schema: string(schema), OrgTable: string(orgTable), OrgName: string(orgName)}
	c.Charset = r.Uint16()
	r.Uint32()
	c.Type = r.Byte()
	c.Flags = r.Uint16()
	c.Decimals = r.Byte()
	if r.err != nil {
		return c, fmt.Errorf("%w: bad column definition", ErrMalformed)
	}
	return c, nil
}

// errBadRow is SplitRow's error (made once: a row that splits must not
// pay for it).
var errBadRow = fmt.Errorf("%w: bad row", ErrMalformed)

// SplitRow cuts a row into its values (nil for NULL): for the text
// protocol the strings, for the binary protocol each value's bytes
// without a length prefix.
func SplitRow(p []byte, cols []ColumnDef, binaryRows bool) ([][]byte, error) {
	out := make([][]byte, len(cols))
	bad := errBadRow
	if !binaryRows {
		r := Reader{b: p}
		for i := range cols {
			if len(r.b) > 0 && r.b[0] == 0xfb {
				r.b = r.b[1:]
				continue
			}
			v := r.LenEncBytes()
			if r.err != nil {
				return nil, bad
			}
			out[i] = v[:len(v):len(v)]
		}
		return out, nil
	}
	nb := (len(cols) + 7 + 2) / 8
	if len(p) < 1+nb || p[0] != 0 {
		return nil, bad
	}
	nulls := p[1 : 1+nb]
	r := Reader{b: p[1+nb:]}
	for i, c := range cols {
		if nulls[(i+2)/8]&(1<<((i+2)%8)) != 0 {
			continue
		}
		var v []byte
		switch n := FixedSize(c.Type); {
		case n >= 0:
			v = r.Bytes(n)
		case IsTemporal(c.Type):
			v = r.Bytes(int(r.Byte()))
		default:
			v = r.LenEncBytes()
		}
		if r.err != nil {
			return nil, bad
		}
		out[i] = v[:len(v):len(v)]
	}
	return out, nil
}

// FixedSize is the size of a binary-protocol value of type t; -1 when it
// has a length prefix.
func FixedSize(t byte) int {
	switch t {
	case TypeTiny:
		return 1
	case TypeShort, TypeYear:
		return 2
	case TypeLong, TypeInt24, TypeFloat:
		return 4
	case TypeLongLong, TypeDouble:
		return 8
	case TypeNull:
		return 0
	}
	return -1
}

func IsTemporal(t byte) bool {
	switch t {
	case TypeTimestamp, TypeDate, TypeTime, TypeDateTime, TypeNewDate:
		return true
	}
	return false
}

func IsIntType(t byte) bool {
	switch t {
	case TypeTiny, TypeShort, TypeLong, TypeLongLong, TypeInt24, TypeYear:
		return true
	}
	return false
}

// EncodeRow makes a row packet of values split by SplitRow.
func EncodeRow(vals [][]byte, cols []ColumnDef, binaryRows bool) []byte {
	var out []byte
	if !binaryRows {
		for _, v := range vals {
			if v == nil {
				out = append(out, 0xfb)
				continue
			}
			out = AppendLenEnc(out, uint64(len(v)))
			out = append(out, v...)
		}
		return out
	}
	nb := (len(cols) + 7 + 2) / 8
	out = append(out, 0)
	out = append(out, make([]byte, nb)...)
	for i, v := range vals {
		if v == nil {
			out[1+(i+2)/8] |= 1 << ((i + 2) % 8)
			continue
		}
		switch {
		case FixedSize(cols[i].Type) >= 0:
			out = append(out, v...)
		case IsTemporal(cols[i].Type):
			out = append(out, byte(len(v)))
			out = append(out, v...)
		default:
			out = AppendLenEnc(out, uint64(len(v)))
			out = append(out, v...)
		}
	}
	return out
}

// RowCodec is the MySQL row format for package scatter: rows of the text
// protocol (COM_QUERY) or of the binary protocol (COM_STMT_EXECUTE) of a
// result whose column definitions are cols.
type RowCodec struct {
	Cols   []ColumnDef
	Binary bool
}

var _ scatter.Codec = (*RowCodec)(nil)

func (c *RowCodec) Columns() int      { return len(c.Cols) }
func (c *RowCodec) Name(k int) string { return c.Cols[k].Name }

// FoldNames: MySQL's column names are case-insensitive.
func (c *RowCodec) FoldNames() bool                    { return true }
func (c *RowCodec) Split(row []byte) ([][]byte, error) { return SplitRow(row, c.Cols, c.Binary) }
func (c *RowCodec) Encode(vals [][]byte) []byte        { return EncodeRow(vals, c.Cols, c.Binary) }

// Text: the string types order in their collation, unless binary (a
// BINARY, VARBINARY or BLOB column) or an ENUM or SET; where it comes from
// is in the column definition (its charset is the connection's result
// charset, not the column's collation).
func (rc *RowCodec) Text(k int) (scatter.TextColumn, bool) {
	c := rc.Cols[k]
	if !IsTextType(c.Type) || c.Charset == BinaryCollation || c.Flags&(FlagEnum|FlagSet) != 0 {
		return scatter.TextColumn{}, false
	}
	return scatter.TextColumn{Schema: c.Schema, Table: c.OrgTable, Column: c.OrgName}, true
}

// Key reads a value of column k for ordering. An error means the proxy
// cannot order it as the server would.
func (rc *RowCodec) Key(k int, v []byte) (scatter.Key, error) {
	c, binaryRows := rc.Cols[k], rc.Binary
	unsigned := c.Flags&FlagUnsigned != 0
	switch {
	case c.Type == TypeDecimal || c.Type == TypeNewDecimal || !binaryRows && (IsIntType(c.Type) || c.Type == TypeFloat || c.Type == TypeDouble):
		// Numbers as text (a DECIMAL in the binary protocol too).
		if key, ok := scatter.NumberKey(v); ok {
			return key, nil
		}
	case IsIntType(c.Type):
		return ReadBinaryInt(v, c.Type, unsigned).key(), nil
	case c.Type == TypeFloat && len(v) == 4:
		return scatter.FloatKey(float64(math.Float32frombits(binary.LittleEndian.Uint32(v)))), nil
	case c.Type == TypeDouble && len(v) == 8:
		return scatter.FloatKey(math.Float64frombits(binary.LittleEndian.Uint64(v))), nil
	case IsTemporal(c.Type):
		if !binaryRows {
			if c.Type == TypeTime {
				if us, ok := textTime(v); ok {
					return scatter.IntKey(us), nil
				}
				break
			}
			return scatter.BytesKey(v), nil // fixed-width text: orders as bytes
		}
		if t, ok := binaryTemporal(v, c.Type); ok {
			return t, nil
		}
	case c.Flags&(FlagEnum|FlagSet) != 0:
		// An ENUM orders by its index in the column's list, not as text.
	case c.Type == 0x10: // BIT: big-endian bytes of one length
		return scatter.BytesKey(v), nil
	case c.Charset == BinaryCollation && IsTextType(c.Type):
		return scatter.BytesKey(v), nil
	}
	return scatter.Key{}, NewSQLError(ERNotSupportedYet, "42000", "column %s (type %#x): the proxy cannot order or combine its values across shards", c.Name, c.Type)
}

const (
	FlagEnum = 0x100
	FlagSet  = 0x800
)

// IsTextType reports the string types (CHAR, VARCHAR, the TEXT and BLOB
// types), which order in their collation.
func IsTextType(t byte) bool {
	switch t {
	case 0x0f, 0xfd, 0xfe, 0xf9, 0xfa, 0xfb, 0xfc:
		return true
	}
	return false
}

// BinaryInt is a binary-protocol integer.
type BinaryInt struct {
	Int      int64
	Uint     uint64
	Unsigned bool
}

func (b BinaryInt) key() scatter.Key {
	if b.Unsigned {
		return scatter.UintKey(b.Uint)
	}
	return scatter.IntKey(b.Int)
}

func ReadBinaryInt(v []byte, t byte, unsigned bool) BinaryInt {
	var u uint64
	var i int64
	switch len(v) {
	case 1:
		u, i = uint64(v[0]), int64(int8(v[0]))
	case 2:
		x := binary.LittleEndian.Uint16(v)
		u, i = uint64(x), int64(int16(x))
	case 4:
		x := binary.LittleEndian.Uint32(v)
		u, i = uint64(x), int64(int32(x))
	case 8:
		u = binary.LittleEndian.Uint64(v)
		i = int64(u)
	}
	return BinaryInt{Int: i, Uint: u, Unsigned: unsigned || t == TypeYear}
}

// binaryTemporal orders a binary DATE/DATETIME/TIMESTAMP (as a byte key)
// or TIME (as signed microseconds).
func binaryTemporal(v []byte, t byte) (scatter.Key, bool) {
	if t == TypeTime {
		if len(v) != 0 && len(v) != 8 && len(v) != 12 {
			return scatter.Key{}, false
		}
		var us int64
		if len(v) >= 8 {
			days := int64(binary.LittleEndian.Uint32(v[1:]))
			us = (((days*24+int64(v[5]))*60+int64(v[6]))*60 + int64(v[7])) * 1e6
			if len(v) == 12 {
				us += int64(binary.LittleEndian.Uint32(v[8:]))
			}
			if v[0] == 1 {
				us = -us
			}
		}
		return scatter.IntKey(us), true
	}
	var k [11]byte // year (BE), month, day, hour, minute, second, microseconds (BE)
	switch len(v) {
	case 11:
		binary.BigEndian.PutUint32(k[7:], binary.LittleEndian.Uint32(v[7:]))
		fallthrough
	case 7:
		copy(k[4:7], v[4:7])
		fallthrough
	case 4:
		binary.BigEndian.PutUint16(k[0:], binary.LittleEndian.Uint16(v))
		k[2], k[3] = v[2], v[3]
	case 0:
	default:
		return scatter.Key{}, false
	}
	return scatter.BytesKey(k[:]), true
}

// Add adds two COUNT or SUM values of column k, in its encoding.
func (rc *RowCodec) Add(k int, x, y []byte) ([]byte, error) {
	c, binaryRows := rc.Cols[k], rc.Binary
	switch {
	case binaryRows && IsIntType(c.Type) && len(x) == len(y):
		a, b := ReadBinaryInt(x, c.Type, c.Flags&FlagUnsigned != 0), ReadBinaryInt(y, c.Type, c.Flags&FlagUnsigned != 0)
		out := make([]byte, 8)
		if a.Unsigned {
			binary.LittleEndian.PutUint64(out, a.Uint+b.Uint)
		} else {
			binary.LittleEndian.PutUint64(out, uint64(a.Int+b.Int))
		}
		return out[:len(x)], nil
	case binaryRows && c.Type == TypeDouble && len(x) == 8 && len(y) == 8:
		f := math.Float64frombits(binary.LittleEndian.Uint64(x)) + math.Float64frombits(binary.LittleEndian.Uint64(y))
		return binary.LittleEndian.AppendUint64(nil, math.Float64bits(f)), nil
	case c.Type == TypeDouble || c.Type == TypeFloat:
		fx, err1 := strconv.ParseFloat(string(x), 64)
		fy, err2 := strconv.ParseFloat(string(y), 64)
		if err1 != nil || err2 != nil {
			break
		}
		if c.Type == TypeFloat {
			return []byte(strconv.FormatFloat(fx+fy, 'g', -1, 64)), nil
		}
		return FormatDouble(fx+fy, c.Decimals), nil
	}
	if sum, ok := scatter.AddDecimal(x, y); ok {
		return sum, nil
	}
	return nil, NewSQLError(ERNotSupportedYet, "42000", "cannot add the values %q and %q of column %s from two shards", x, y, c.Name)
}

// textTime reads a TIME as text, [-]H:MM:SS[.ffffff], into signed
// microseconds: the hours have no fixed width and may be negative, so the
// bytes do not order.
func textTime(v []byte) (int64, bool) {
	t := string(v)
	neg := strings.HasPrefix(t, "-")
	t = strings.TrimPrefix(t, "-")
	frac := ""
	if i := strings.IndexByte(t, '.'); i >= 0 {
		t, frac = t[:i], t[i+1:]
	}
	parts := strings.Split(t, ":")
	if len(parts) != 3 || len(frac) > 6 {
		return 0, false
	}
	var hms [3]int64
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return 0, false
		}
		hms[i] = int64(n)
	}
	us := ((hms[0]*60+hms[1])*60 + hms[2]) * 1e6
	if frac != "" {
		f, err := strconv.ParseUint((frac + "000000")[:6], 10, 32)
		if err != nil {
			return 0, false
		}
		us += int64(f)
	}
	if neg {
		us = -us
	}
	return us, true
}

// FormatDouble writes a DOUBLE as MariaDB does in the text protocol:
// with decimals fixed decimals (below 31), else the shortest digits that
// read back exactly, fixed-point for decimal exponents from -15 up to 14,
// else d.ddde15 / 1e-16.
func FormatDouble(f float64, decimals byte) []byte {
	if decimals < 31 {
		return strconv.AppendFloat(nil, f, 'f', int(decimals), 64)
	}
	e := strconv.AppendFloat(nil, f, 'e', -1, 64)
	i := bytes.LastIndexByte(e, 'e')
	exp, _ := strconv.Atoi(string(e[i+1:]))
	if f == 0 || exp >= -15 && exp < 15 {
		return strconv.AppendFloat(nil, f, 'f', -1, 64)
	}
	out := append([]byte(nil), e[:i+1]...)
	if exp < 0 {
		out = append(out, '-')
		exp = -exp
	}
	return strconv.AppendInt(out, int64(exp), 10)
}
