package pgframe

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/scatter"
)

// RowCodec is the PostgreSQL row format for package scatter (splitting
// a row, comparing a column by its type OID, adding COUNT and SUM values,
// encoding a merged row): DataRows of the result a RowDescription
// describes. Its MySQL counterpart is mysqlproto.RowCodec.
type RowCodec struct {
	f []pgproto3.FieldDescription
	// FloatDigits, when set, says the session's extra_float_digits, which
	// a floating-point SUM needs (asked once, and only for such a SUM).
	FloatDigits func() (int, error)
}

var _ scatter.Codec = (*RowCodec)(nil)

// RowError is the row codec's error. Malformed: a shard's message cannot
// be decoded (a protocol violation); otherwise the values cannot be
// merged as the server would (a feature the proxy does not support).
// The wire package turns it into the client's error.
type RowError struct {
	Malformed bool
	Msg       string
}

func (e *RowError) Error() string { return e.Msg }

func malformed(format string, args ...any) *RowError {
	return &RowError{Malformed: true, Msg: fmt.Sprintf(format, args...)}
}

func unsupported(format string, args ...any) *RowError {
	return &RowError{Msg: fmt.Sprintf(format, args...)}
}

// NewRowCodec reads a RowDescription message (with its header).
func NewRowCodec(m []byte) (*RowCodec, error) {
	if len(m) < 5 {
		return nil, malformed("a shard's RowDescription is malformed: %d bytes", len(m))
	}
	var rd pgproto3.RowDescription
	if err := rd.Decode(m[5:]); err != nil {
		return nil, malformed("a shard's RowDescription is malformed: %v", err)
	}
	return &RowCodec{f: rd.Fields}, nil
}

func (c *RowCodec) Columns() int      { return len(c.f) }
func (c *RowCodec) Name(k int) string { return string(c.f[k].Name) }

// FoldNames: the parser has folded unquoted names to lower case, as the
// server does; a quoted name keeps its case and must match exactly.
func (c *RowCodec) FoldNames() bool { return false }

func (c *RowCodec) bin(k int) bool { return c.f[k].Format == 1 }

// checkBinary refuses a binary-format column the proxy cannot read:
// it reads the fixed-size types whose binary form it can order as the
// server does (binaryKey). pgx asks for binary results of all of them
// in its default mode.
func (c *RowCodec) checkBinary(k int) error {
	if !c.bin(k) {
		return nil
	}
	switch c.f[k].DataTypeOID {
	case 20, 21, 23, 26, 16, 17, 2950, 700, 701, 1082, 1083, 1114, 1184, 1700:
		return nil
	}
	return unsupported("column %d of a SELECT run on every shard is in binary format (type OID %d), which the proxy cannot merge; use the text format or the simple query protocol", k+1, c.f[k].DataTypeOID)
}

// Split cuts a DataRow into its values (nil for NULL), which alias it.
func (c *RowCodec) Split(m []byte) ([][]byte, error) { return SplitDataRow(m) }

// SplitDataRow cuts a DataRow message (with its header) into its values
// (nil for NULL), which alias it.
func SplitDataRow(m []byte) ([][]byte, error) {
	if len(m) < 5 {
		return nil, malformed("a shard's DataRow is malformed: %d bytes", len(m))
	}
	// By hand rather than pgproto3.DataRow.Decode, which gives every
	// fresh row room for 32 values (768 bytes): a scatter sorting 400k
	// rows of 4 columns allocated 267 MB of it, all garbage at once.
	b := m[5:]
	if len(b) < 2 {
		return nil, malformed("a shard's DataRow is malformed: %d bytes", len(m))
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	vals := make([][]byte, n)
	for i := range vals {
		if len(b) < 4 {
			return nil, malformed("a shard's DataRow is malformed: value %d of %d cut short", i+1, n)
		}
		size := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		switch {
		case size == -1:
			continue // NULL
		case size < 0 || int(size) > len(b):
			return nil, malformed("a shard's DataRow is malformed: value %d of %d has length %d, %d bytes left", i+1, n, size, len(b))
		}
		vals[i] = b[:size:size]
		b = b[size:]
	}
	return vals, nil
}

// Encode makes a DataRow.
func (c *RowCodec) Encode(vals [][]byte) []byte {
	out, _ := (&pgproto3.DataRow{Values: vals}).Encode(nil)
	return out
}

// numericOID says whether values of the type compare as numbers.
func numericOID(oid uint32) bool {
	switch oid {
	case 20, 21, 23, 26, 700, 701, 1700: // int8, int2, int4, oid, float4, float8, numeric
		return true
	}
	return false
}

// textOID says whether values of the type are text in a collation.
func textOID(oid uint32) bool {
	switch oid {
	case 25, 1043, 1042, 19: // text, varchar, char(n), name
		return true
	}
	return false
}

// Text: text, varchar, char(n) and name in the text format order in
// their collation; where it comes from (a table's column or not) is in
// the RowDescription.
func (c *RowCodec) Text(k int) (scatter.TextColumn, bool) {
	f := c.f[k]
	if !textOID(f.DataTypeOID) || c.bin(k) {
		return scatter.TextColumn{}, false
	}
	return scatter.TextColumn{Rel: f.TableOID, Att: int16(f.TableAttributeNumber), TrimSpace: f.DataTypeOID == 1042}, true
}

// Key: binary integers as integers, numbers in text as exact numbers,
// types whose text form orders as they do, as bytes; text is Text's.
func (c *RowCodec) Key(k int, v []byte) (scatter.Key, error) {
	if err := c.checkBinary(k); err != nil {
		return scatter.Key{}, err
	}
	if c.bin(k) {
		return c.binaryKey(k, v)
	}
	oid := c.f[k].DataTypeOID
	if numericOID(oid) {
		if key, ok := scatter.NumberKey(v); ok {
			return key, nil
		}
	}
	if key, ok := orderedText(oid, v); ok {
		return key, nil
	}
	return scatter.Key{}, unsupported("column %q (type OID %d, value %q): the proxy cannot order its values across shards as the server does; add the shard key", c.f[k].Name, oid, v)
}

// binaryKey reads a value in the binary format of a type checkBinary
// lets through: integers (and oid, unsigned) as integers; bool, bytea and
// uuid as their bytes (false < true; bytea and uuid compare as memcmp,
// a prefix first); float4 and float8 as floats (NaN, which PostgreSQL
// orders above every number, refused as in the text format); date
// (days), time and timestamp(tz) (microseconds) as the integers they
// are sent as, whose order is the type's, the infinities included.
func (c *RowCodec) binaryKey(k int, v []byte) (scatter.Key, error) {
	oid := c.f[k].DataTypeOID
	size := map[uint32]int{20: 8, 21: 2, 23: 4, 26: 4, 16: 1, 700: 4, 701: 8, 1082: 4, 1083: 8, 1114: 8, 1184: 8, 2950: 16}[oid]
	if size != 0 && len(v) != size {
		return scatter.Key{}, malformed("a shard's binary value of column %q (type OID %d) has %d bytes, not %d", c.f[k].Name, oid, len(v), size)
	}
	switch oid {
	case 1700:
		t, ok := NumericText(v)
		if !ok {
			return scatter.Key{}, malformed("a shard's binary numeric value of column %q is malformed", c.f[k].Name)
		}
		if key, ok := scatter.NumberKey(t); ok {
			return key, nil
		}
		return scatter.Key{}, unsupported("column %q (type OID %d, value %q): the proxy cannot order its values across shards as the server does; add the shard key", c.f[k].Name, oid, t)
	case 26:
		return scatter.UintKey(uint64(binary.BigEndian.Uint32(v))), nil
	case 16, 17, 2950:
		return scatter.BytesKey(v), nil
	case 700, 701:
		f := floatFromBinary(v)
		if math.IsNaN(f) {
			return scatter.Key{}, unsupported("column %q (type OID %d, value NaN): the proxy cannot order its values across shards as the server does; add the shard key", c.f[k].Name, oid)
		}
		return scatter.FloatKey(f), nil
	}
	return scatter.IntKey(intFromBinary(v)), nil
}

// NumericText writes a numeric in the binary format (numeric_send: int16
// ndigits, int16 weight, uint16 sign, uint16 dscale, then ndigits base
// 10000 digits, the first weighing 10000^weight) as numeric_out does:
// dscale decimals, NaN, Infinity, -Infinity. ok is false for a malformed
// value.
func NumericText(v []byte) (out []byte, ok bool) {
	if len(v) < 8 {
		return nil, false
	}
	nd := int(int16(binary.BigEndian.Uint16(v)))
	weight := int(int16(binary.BigEndian.Uint16(v[2:])))
	sign := binary.BigEndian.Uint16(v[4:])
	dscale := int(binary.BigEndian.Uint16(v[6:]))
	if nd < 0 || len(v) != 8+2*nd || dscale > 0x3fff {
		return nil, false
	}
	switch sign {
	case 0xC000:
		return []byte("NaN"), true
	case 0xD000:
		return []byte("Infinity"), true
	case 0xF000:
		return []byte("-Infinity"), true
	case 0x0000, 0x4000:
	default:
		return nil, false
	}
	digit := func(g int) int {
		if g < 0 || g >= nd {
			return 0
		}
		return int(binary.BigEndian.Uint16(v[8+2*g:]))
	}
	for g := range nd {
		if digit(g) > 9999 {
			return nil, false
		}
	}
	if sign == 0x4000 {
		out = append(out, '-')
	}
	if weight < 0 {
		out = append(out, '0')
	}
	for g := 0; g <= weight; g++ {
		if g == 0 {
			out = strconv.AppendInt(out, int64(digit(g)), 10)
		} else {
			out = fmt.Appendf(out, "%04d", digit(g))
		}
	}
	if dscale > 0 {
		out = append(out, '.')
		frac := make([]byte, 0, dscale+4)
		for g := weight + 1; len(frac) < dscale; g++ {
			frac = fmt.Appendf(frac, "%04d", digit(g))
		}
		out = append(out, frac[:dscale]...)
	}
	return out, true
}

// NumericBinary writes a decimal number as text ("-12.50", "NaN",
// "Infinity"), as NumericText reads it, in numeric's binary format, its
// decimals as dscale. ok is false for anything else (an exponent).
func NumericBinary(t []byte) ([]byte, bool) {
	head := func(ndigits, weight int, sign uint16, dscale int) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(ndigits))
		b = binary.BigEndian.AppendUint16(b, uint16(int16(weight)))
		b = binary.BigEndian.AppendUint16(b, sign)
		return binary.BigEndian.AppendUint16(b, uint16(dscale))
	}
	switch string(t) {
	case "NaN":
		return head(0, 0, 0xC000, 0), true
	case "Infinity":
		return head(0, 0, 0xD000, 0), true
	case "-Infinity":
		return head(0, 0, 0xF000, 0), true
	}
	sign := uint16(0)
	if len(t) > 0 && t[0] == '-' {
		sign, t = 0x4000, t[1:]
	}
	intPart, frac, _ := bytes.Cut(t, []byte("."))
	if len(intPart) == 0 {
		return nil, false
	}
	for _, b := range [][]byte{intPart, frac} {
		for _, ch := range b {
			if ch < '0' || ch > '9' {
				return nil, false
			}
		}
	}
	dscale := len(frac)
	// Base 10000 digits, aligned on the decimal point.
	ip := append(bytes.Repeat([]byte("0"), (4-len(intPart)%4)%4), intPart...)
	fp := append(append([]byte(nil), frac...), bytes.Repeat([]byte("0"), (4-len(frac)%4)%4)...)
	all := append(ip, fp...)
	var digits []uint16
	for i := 0; i < len(all); i += 4 {
		n, _ := strconv.Atoi(string(all[i : i+4]))
		digits = append(digits, uint16(n))
	}
	weight := len(ip)/4 - 1
	for len(digits) > 0 && digits[0] == 0 {
		digits, weight = digits[1:], weight-1
	}
	for len(digits) > 0 && digits[len(digits)-1] == 0 {
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 {
		weight, sign = 0, 0
	}
	b := head(len(digits), weight, sign, dscale)
	for _, d := range digits {
		b = binary.BigEndian.AppendUint16(b, d)
	}
	return b, true
}

// floatFromBinary reads a float4 or float8 in the binary format.
func floatFromBinary(v []byte) float64 {
	if len(v) == 4 {
		return float64(math.Float32frombits(binary.BigEndian.Uint32(v)))
	}
	return math.Float64frombits(binary.BigEndian.Uint64(v))
}

// orderedText reads a value of a type whose text form orders as the type
// does: bool ('f' < 't'), bytea in hex, uuid, and date, timestamp and
// time in the ISO DateStyle with a four-digit year of our era (their
// bytes order; a BC date, infinity, another DateStyle do not);
// timestamptz as the instant it names (its offset varies with daylight
// saving time). Any other type (intervals, network addresses, enums,
// citext, ...) orders as its own operators say, which the proxy does not
// know: not ok.
func orderedText(oid uint32, v []byte) (scatter.Key, bool) {
	switch oid {
	case 16, 2950: // bool, uuid
		return scatter.BytesKey(v), true
	case 17: // bytea
		if bytes.HasPrefix(v, []byte(`\x`)) {
			return scatter.BytesKey(v), true
		}
	case 1082, 1114: // date, timestamp
		if isoDate(v) {
			return scatter.BytesKey(v), true
		}
	case 1083: // time
		if len(v) >= 8 && v[2] == ':' && v[5] == ':' && (len(v) == 8 || v[8] == '.') {
			return scatter.BytesKey(v), true
		}
	case 1184: // timestamptz
		if !isoDate(v) {
			break
		}
		for _, layout := range []string{"2006-01-02 15:04:05-07", "2006-01-02 15:04:05-07:00", "2006-01-02 15:04:05-07:00:00"} {
			if t, err := time.Parse(layout, string(v)); err == nil {
				return scatter.IntKey(t.UnixMicro()), true
			}
		}
	}
	return scatter.Key{}, false
}

// isoDate: v starts with YYYY-MM-DD and is not a BC date.
func isoDate(v []byte) bool {
	if len(v) < 10 || v[4] != '-' || v[7] != '-' || (len(v) > 10 && v[10] != ' ') || bytes.HasSuffix(v, []byte(" BC")) {
		return false
	}
	for _, i := range []int{0, 1, 2, 3, 5, 6, 8, 9} {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// Add adds two COUNT or SUM values.
func (c *RowCodec) Add(k int, x, y []byte) ([]byte, error) {
	if err := c.checkBinary(k); err != nil {
		return nil, err
	}
	if c.bin(k) {
		switch oid := c.f[k].DataTypeOID; {
		case oid == 700 && len(x) == 4 && len(y) == 4:
			// Exact in the binary format, whatever extra_float_digits.
			sum := float32(floatFromBinary(x)) + float32(floatFromBinary(y))
			return binary.BigEndian.AppendUint32(nil, math.Float32bits(sum)), nil
		case oid == 701 && len(x) == 8 && len(y) == 8:
			return binary.BigEndian.AppendUint64(nil, math.Float64bits(floatFromBinary(x)+floatFromBinary(y))), nil
		case oid == 1700:
			tx, ok1 := NumericText(x)
			ty, ok2 := NumericText(y)
			if !ok1 || !ok2 {
				return nil, malformed("a shard's binary numeric value of column %q is malformed", c.f[k].Name)
			}
			if sum, ok := addNumeric(tx, ty); ok {
				if b, ok := NumericBinary(sum); ok {
					return b, nil
				}
			}
			return nil, unsupported("cannot add the values %q and %q of column %d from two shards", tx, ty, k+1)
		case oid == 20 || oid == 21 || oid == 23:
			nx := intFromBinary(x)
			ny := intFromBinary(y)
			if len(x) == 4 {
				return binary.BigEndian.AppendUint32(nil, uint32(nx+ny)), nil
			}
			return binary.BigEndian.AppendUint64(nil, uint64(nx+ny)), nil
		}
		return nil, unsupported("SUM of column %q (type OID %d) in binary format over several shards is not supported: the proxy adds only integer and floating-point sums in binary; use the text format, or add the shard key", c.f[k].Name, c.f[k].DataTypeOID)
	}
	switch oid := c.f[k].DataTypeOID; oid {
	case 700, 701: // float4, float8
		if err := c.exactFloats(k); err != nil {
			return nil, err
		}
		if sum, ok := addFloat(x, y, oid == 700); ok {
			return sum, nil
		}
	case 20, 21, 23, 1700: // int8, int2, int4 (COUNT is int8), numeric
		if sum, ok := addNumeric(x, y); ok {
			return sum, nil
		}
	default:
		return nil, unsupported("SUM of column %q (type OID %d) over several shards is not supported: the proxy adds only integer, numeric and floating-point sums; add the shard key", c.f[k].Name, oid)
	}
	return nil, unsupported("cannot add the values %q and %q of column %d from two shards", x, y, k+1)
}

// exactFloats refuses to add column k's floating-point values when the
// session writes floats rounded (extra_float_digits below 1: 15 + it
// significant digits for float8, 6 + it for float4): each shard's sum
// comes rounded, and their sum, written as one database would, could
// differ from one database's in its last digits.
func (c *RowCodec) exactFloats(k int) error {
	if c.FloatDigits == nil {
		return nil
	}
	d, err := c.FloatDigits()
	if err != nil {
		return err
	}
	if d < 1 {
		return unsupported("SUM of column %q (floating-point) over several shards with extra_float_digits = %d: each shard's sum comes rounded, and the proxy cannot add them exactly; set extra_float_digits to 1 (the default) or more, or add the shard key", c.f[k].Name, d)
	}
	return nil
}

// addNumeric adds two integer or numeric values as text, NaN and the
// infinities (numeric has them since PostgreSQL 14) as PostgreSQL does.
func addNumeric(x, y []byte) ([]byte, bool) {
	sx, sy := special(x), special(y)
	if sx == 0 && sy == 0 {
		return scatter.AddDecimal(x, y)
	}
	switch {
	case sx == 2 || sy == 2 || sx*sy == -1: // NaN, or +Inf + -Inf
		return []byte("NaN"), true
	case sx != 0:
		return x, true
	}
	return y, true
}

// special classes a numeric text: 0 a number, 1 Infinity, -1 -Infinity,
// 2 NaN.
func special(v []byte) int {
	switch string(v) {
	case "NaN":
		return 2
	case "Infinity":
		return 1
	case "-Infinity":
		return -1
	}
	return 0
}

// addFloat adds two float4 (single) or float8 values as text and writes
// the sum as PostgreSQL's float4out/float8out do by default
// (extra_float_digits 1): the shortest digits that read back exactly,
// fixed-point for decimal exponents from -4 up to 14 (float8) or 5
// (float4), else d.ddde±XX; NaN, Infinity, -Infinity.
func addFloat(x, y []byte, single bool) ([]byte, bool) {
	bits := 64
	if single {
		bits = 32
	}
	fx, err1 := strconv.ParseFloat(string(x), bits)
	fy, err2 := strconv.ParseFloat(string(y), bits)
	if err1 != nil || err2 != nil {
		return nil, false
	}
	sum := fx + fy
	if single {
		sum = float64(float32(fx) + float32(fy))
	}
	return FormatFloat(sum, single), true
}

// FormatFloat writes f as PostgreSQL's float8out (or float4out, single)
// does with the default extra_float_digits.
func FormatFloat(f float64, single bool) []byte {
	switch {
	case math.IsNaN(f):
		return []byte("NaN")
	case math.IsInf(f, 1):
		return []byte("Infinity")
	case math.IsInf(f, -1):
		return []byte("-Infinity")
	}
	bits, maxExp := 64, 15
	if single {
		bits, maxExp = 32, 6
	}
	e := strconv.AppendFloat(nil, f, 'e', -1, bits)
	i := bytes.LastIndexByte(e, 'e')
	exp, _ := strconv.Atoi(string(e[i+1:]))
	if f == 0 || exp >= -4 && exp < maxExp {
		return strconv.AppendFloat(nil, f, 'f', -1, bits)
	}
	return e
}

// intFromBinary reads an int2, int4 or int8 in the binary format (0 for
// another length; checkBinary let only these types through).
func intFromBinary(b []byte) int64 {
	switch len(b) {
	case 2:
		return int64(int16(binary.BigEndian.Uint16(b)))
	case 4:
		return int64(int32(binary.BigEndian.Uint32(b)))
	case 8:
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}
