package pgwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/big"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/shard"
)

// rowCodec is the PostgreSQL row format for package scatter: DataRows
// of the result a RowDescription describes.
type rowCodec struct {
	names   []string
	oids    []uint32
	formats []uint16
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

// Key: binary integers as integers, numbers in text as exact numbers,
// anything else as bytes.
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
	return scatter.BytesKey(v), nil
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
	rx, ok1 := new(big.Rat).SetString(string(x))
	ry, ok2 := new(big.Rat).SetString(string(y))
	if !ok1 || !ok2 {
		return nil, newError(codeFeatureNotSupported, "cannot add the values %q and %q of column %d from two shards", x, y, k+1)
	}
	scale := max(decimals(x), decimals(y))
	r := rx.Add(rx, ry)
	if scale == 0 && r.IsInt() {
		return []byte(r.Num().String()), nil
	}
	return []byte(r.FloatString(scale)), nil
}

func decimals(v []byte) int {
	if i := bytes.IndexByte(v, '.'); i >= 0 {
		return len(v) - i - 1
	}
	return 0
}

// scatterError turns a refusal of package scatter into the client's
// error, and counts it; merging: err came from the merge, where the
// codec's own errors are refusals too.
func scatterError(err error, merging bool) error {
	var se *scatter.Error
	if !errors.As(err, &se) {
		if pe := (*pgError)(nil); merging && errors.As(err, &pe) {
			metrics.ScatterRefused.WithLabelValues("postgres", scatter.ReasonMerge).Inc()
		}
		return err
	}
	metrics.ScatterRefused.WithLabelValues("postgres", se.Reason).Inc()
	if se.Reason == scatter.ReasonTooLarge {
		return &pgError{Severity: "ERROR", Code: codeProgramLimitExceeded, Message: se.Msg,
			Hint: "max_scatter_bytes is set in [defaults] or per cluster in the proxy's config"}
	}
	return newError(codeFeatureNotSupported, "%s", se.Msg)
}
