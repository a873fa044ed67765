package pgwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/big"
	"time"

	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/shard"
)

// rowCodec is the PostgreSQL row format for package scatter: DataRows
// of the result a RowDescription describes.
type rowCodec struct {
	names   []string
	oids    []uint32
	formats []uint16
	tables  []uint32 // the column's table, 0 for an expression
	attnums []uint16
}

var _ scatter.Codec = (*rowCodec)(nil)

// newRowCodec reads a RowDescription message (with its header).
func newRowCodec(m []byte) *rowCodec {
	c := &rowCodec{}
	b := m[5:]
	if len(b) < 2 {
		return c
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	for i := 0; i < n; i++ {
		name, rest, ok := cstring(b)
		if !ok || len(rest) < 18 {
			break
		}
		c.names = append(c.names, string(name))
		c.tables = append(c.tables, binary.BigEndian.Uint32(rest))
		c.attnums = append(c.attnums, binary.BigEndian.Uint16(rest[4:]))
		c.oids = append(c.oids, binary.BigEndian.Uint32(rest[6:]))
		c.formats = append(c.formats, binary.BigEndian.Uint16(rest[16:]))
		b = rest[18:]
	}
	return c
}

func (c *rowCodec) Columns() int      { return len(c.names) }
func (c *rowCodec) Name(k int) string { return c.names[k] }

// FoldNames: the parser has folded unquoted names to lower case, as the
// server does; a quoted name keeps its case and must match exactly.
func (c *rowCodec) FoldNames() bool { return false }

func (c *rowCodec) bin(k int) bool { return k < len(c.formats) && c.formats[k] == 1 }

// checkBinary refuses a binary-format column the proxy cannot read.
func (c *rowCodec) checkBinary(k int) error {
	if !c.bin(k) {
		return nil
	}
	switch c.oids[k] {
	case 20, 21, 23:
		return nil
	}
	return newError(codeFeatureNotSupported, "column %d of a SELECT run on every shard is in binary format (type OID %d), which the proxy cannot merge; use the text format or the simple query protocol", k+1, c.oids[k])
}

// Split cuts a DataRow into its values (nil for NULL).
func (c *rowCodec) Split(m []byte) ([][]byte, error) {
	b := m[5:]
	if len(b) < 2 {
		return nil, nil
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	out := make([][]byte, n)
	for i := 0; i < n && len(b) >= 4; i++ {
		l := int(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
		if l < 0 || l > len(b) {
			continue
		}
		out[i] = b[:l:l]
		b = b[l:]
	}
	return out, nil
}

// Encode makes a DataRow.
func (c *rowCodec) Encode(vals [][]byte) []byte {
	n := 4 + 2
	for _, v := range vals {
		n += 4 + len(v)
	}
	out := make([]byte, 0, n+1)
	out = append(out, 'D', byte(n>>24), byte(n>>16), byte(n>>8), byte(n), byte(len(vals)>>8), byte(len(vals)))
	for _, v := range vals {
		if v == nil {
			out = append(out, 0xff, 0xff, 0xff, 0xff)
			continue
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
		out = append(out, v...)
	}
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
func (c *rowCodec) Text(k int) (scatter.TextColumn, bool) {
	if !textOID(c.oids[k]) || c.bin(k) {
		return scatter.TextColumn{}, false
	}
	return scatter.TextColumn{Rel: c.tables[k], Att: int16(c.attnums[k]), TrimSpace: c.oids[k] == 1042}, true
}

// Key: binary integers as integers, numbers in text as exact numbers,
// types whose text form orders as they do, as bytes; text is Text's.
func (c *rowCodec) Key(k int, v []byte) (scatter.Key, error) {
	if err := c.checkBinary(k); err != nil {
		return scatter.Key{}, err
	}
	if c.bin(k) {
		n, _ := shard.IntFromBinary(v)
		return scatter.IntKey(n), nil
	}
	if k < len(c.oids) && numericOID(c.oids[k]) {
		if r, ok := new(big.Rat).SetString(string(v)); ok {
			return scatter.DecKey(r, v), nil
		}
	}
	if key, ok := orderedText(c.oids[k], v); ok {
		return key, nil
	}
	return scatter.Key{}, newError(codeFeatureNotSupported, "column %q (type OID %d, value %q): the proxy cannot order its values across shards as the server does; add the shard key", c.names[k], c.oids[k], v)
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
func (c *rowCodec) Add(k int, x, y []byte) ([]byte, error) {
	if err := c.checkBinary(k); err != nil {
		return nil, err
	}
	if c.bin(k) {
		nx, _ := shard.IntFromBinary(x)
		ny, _ := shard.IntFromBinary(y)
		if len(x) == 4 {
			return binary.BigEndian.AppendUint32(nil, uint32(nx+ny)), nil
		}
		return binary.BigEndian.AppendUint64(nil, uint64(nx+ny)), nil
	}
	if sum, ok := scatter.AddDecimal(x, y); ok {
		return sum, nil
	}
	return nil, newError(codeFeatureNotSupported, "cannot add the values %q and %q of column %d from two shards", x, y, k+1)
}

// scatterError turns a refusal of package scatter (counted there) into
// the client's error.
func scatterError(err error) error {
	var se *scatter.Error
	if !errors.As(err, &se) {
		return err
	}
	if se.Reason == scatter.ReasonTooLarge {
		return &pgError{Severity: "ERROR", Code: codeProgramLimitExceeded, Message: se.Msg,
			Hint: "max_scatter_bytes is set in [defaults] or per cluster in the proxy's config"}
	}
	return newError(codeFeatureNotSupported, "%s", se.Msg)
}
