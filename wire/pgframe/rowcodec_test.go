package pgframe

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/scatter/scattertest"
)

// TestRowCodecMerge runs the merge cases both protocols share through the
// PostgreSQL row codec (text format).
func TestRowCodecMerge(t *testing.T) {
	oid := map[scattertest.Type]uint32{scattertest.Int: 20, scattertest.Decimal: 1700, scattertest.Text: 25}
	scattertest.Run(t, func(cols []scattertest.Col) scatter.Codec {
		var rd pgproto3.RowDescription
		for _, c := range cols {
			rd.Fields = append(rd.Fields, pgproto3.FieldDescription{Name: []byte(c.Name), DataTypeOID: oid[c.Type], DataTypeSize: -1, TypeModifier: -1})
		}
		m, _ := rd.Encode(nil)
		c, err := NewRowCodec(m)
		if err != nil {
			t.Fatal(err)
		}
		return scatter.OrderText(c, scatter.TextBytes) // the cases' text is in C
	}, func(_ []scattertest.Col, vals []string) []byte {
		var dr pgproto3.DataRow
		for _, v := range vals {
			if v == scattertest.Null {
				dr.Values = append(dr.Values, nil)
			} else {
				dr.Values = append(dr.Values, []byte(v))
			}
		}
		m, _ := dr.Encode(nil)
		return m
	})
}

// rowDesc is a RowDescription of columns of these type OIDs, in this
// format (0 text, 1 binary).
func rowDesc(format int16, oids ...uint32) []byte {
	var rd pgproto3.RowDescription
	for i, oid := range oids {
		rd.Fields = append(rd.Fields, pgproto3.FieldDescription{Name: []byte{'a' + byte(i)}, DataTypeOID: oid, DataTypeSize: -1, TypeModifier: -1, Format: format})
	}
	m, _ := rd.Encode(nil)
	return m
}

// TestRowCodecErrors: a message a shard sent that cannot be decoded is a
// Malformed RowError (the client sees a protocol violation); a value the
// proxy cannot order or add as the server would is a RowError that is
// not (the client sees "feature not supported"), naming the column.
func TestRowCodecErrors(t *testing.T) {
	want := func(err error, malformed bool, text, what string) {
		t.Helper()
		var re *RowError
		if !errors.As(err, &re) || re.Malformed != malformed || !strings.Contains(re.Msg, text) {
			t.Errorf("%s: %v (%T); want a RowError, Malformed %v, naming %q", what, err, err, malformed, text)
		}
	}
	_, err := NewRowCodec([]byte{'T', 0, 0, 0, 6, 0})
	want(err, true, "RowDescription is malformed", "truncated RowDescription")
	_, err = NewRowCodec([]byte{'T'})
	want(err, true, "RowDescription is malformed", "RowDescription of 1 byte")
	_, err = SplitDataRow([]byte{'D', 0, 0, 0, 10, 0, 2, 0, 0, 0, 9})
	want(err, true, "DataRow is malformed", "DataRow whose value overruns it")

	c, err := NewRowCodec(rowDesc(0, 869, 25)) // inet, text
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Key(0, []byte("10.0.0.9"))
	want(err, false, `column "a" (type OID 869`, "inet key")
	_, err = c.Add(1, []byte("x"), []byte("y"))
	want(err, false, `SUM of column "b" (type OID 25) over several shards is not supported`, "adding text")
	c, err = NewRowCodec(rowDesc(1, 1186, 1700)) // interval, numeric, binary
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Key(0, make([]byte, 16))
	want(err, false, "binary format (type OID 1186)", "binary interval")
	_, err = c.Key(1, []byte{0, 1})
	want(err, true, "binary numeric value of column \"b\" is malformed", "malformed binary numeric")

	c, err = NewRowCodec(rowDesc(1, 23, 20)) // int4, int8 in binary
	if err != nil {
		t.Fatal(err)
	}
	if k, err := c.Key(0, []byte{0xff, 0xff, 0xff, 0xfe}); err != nil || k.Compare(scatter.IntKey(-2)) != 0 {
		t.Errorf("binary int4 -2: %v, %v", k, err)
	}
	if sum, err := c.Add(1, []byte{0, 0, 0, 0, 0, 0, 0, 40}, []byte{0, 0, 0, 0, 0, 0, 0, 2}); err != nil || string(sum) != "\x00\x00\x00\x00\x00\x00\x00*" {
		t.Errorf("binary int8 40+2: %v, %v", sum, err)
	}
}

// FuzzSplitDataRow feeds arbitrary bytes as a shard's DataRow and
// RowDescription: an error, never a panic; the values of a row that
// splits encode into a DataRow that splits into the same values.
func FuzzSplitDataRow(f *testing.F) {
	row, _ := (&pgproto3.DataRow{Values: [][]byte{[]byte("42"), nil, {}}}).Encode(nil)
	f.Add(row)
	f.Add(rowDesc(0, 20, 25))
	f.Add([]byte{'D', 0, 0, 0, 10, 0, 2, 0, 0, 0, 9})
	f.Add([]byte{'D', 0, 0, 0, 6, 0xff, 0xff})
	f.Add([]byte{'D'})
	f.Fuzz(func(t *testing.T, m []byte) {
		// The same verdict and values as pgproto3's decoder.
		if len(m) >= 5 {
			var dr pgproto3.DataRow
			derr := dr.Decode(m[5:])
			vals, err := SplitDataRow(m)
			if (derr == nil) != (err == nil) {
				t.Fatalf("%q: SplitDataRow %v, pgproto3 %v", m, err, derr)
			}
			if err == nil {
				if len(vals) != len(dr.Values) {
					t.Fatalf("%q: %d values, pgproto3 %d", m, len(vals), len(dr.Values))
				}
				for i := range vals {
					if string(vals[i]) != string(dr.Values[i]) || (vals[i] == nil) != (dr.Values[i] == nil) {
						t.Fatalf("%q: value %d %q, pgproto3 %q", m, i, vals[i], dr.Values[i])
					}
				}
			}
		}
		if vals, err := SplitDataRow(m); err == nil {
			var c RowCodec
			again, err := SplitDataRow(c.Encode(vals))
			if err != nil || len(again) != len(vals) {
				t.Fatalf("%q split into %q; encoded and split again: %q, %v", m, vals, again, err)
			}
			for i := range vals {
				if string(again[i]) != string(vals[i]) || (again[i] == nil) != (vals[i] == nil) {
					t.Fatalf("%q split into %q; encoded and split again: %q", m, vals, again)
				}
			}
		}
		if c, err := NewRowCodec(m); err == nil {
			for k := 0; k < c.Columns() && k < 8; k++ {
				_ = c.Name(k)
				_, _ = c.Key(k, m)
				_, _ = c.Add(k, m, m)
				_, _ = c.Text(k)
			}
		}
	})
}

// BenchmarkMergeOrdered: what merging a scatter's rows by an int8 and a
// numeric column costs per row (B/op and allocs/op are per merge of
// 10,000 rows of four columns, as DataRows from two shards).
func BenchmarkMergeOrdered(b *testing.B) {
	c, err := NewRowCodec(rowDesc(0, 20, 20, 1700, 25))
	if err != nil {
		b.Fatal(err)
	}
	rows := make([][]byte, 10000)
	for i := range rows {
		id := (i * 7919) % len(rows)
		rows[i], _ = (&pgproto3.DataRow{Values: [][]byte{
			[]byte(strconv.Itoa(id)), []byte(strconv.Itoa(id % 97)), []byte(strconv.Itoa(id%1000) + ".25"), []byte("note note note note"),
		}}).Encode(nil)
	}
	for _, s := range []struct {
		name string
		spec scatter.Spec
	}{
		{"int8", scatter.Spec{Order: []scatter.Order{{Col: 0}}, Limit: -1}},
		{"numeric,int8", scatter.Spec{Order: []scatter.Order{{Col: 2, Desc: true}, {Col: 0}}, Limit: -1}},
	} {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := scatter.Merge(&s.spec, c, rows); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FormatFloat writes floats as PostgreSQL 15 does (values read from a
// server: SELECT x::float8, x::float4 with the default extra_float_digits).
func TestFormatFloatAsPostgres(t *testing.T) {
	for _, c := range []struct {
		f      float64
		single bool
		want   string
	}{
		{1290, false, "1290"}, {1e14, false, "100000000000000"}, {1e15, false, "1e+15"},
		{123456789012345, false, "123456789012345"}, {1234567890123456, false, "1.234567890123456e+15"},
		{0.0001, false, "0.0001"}, {0.00001, false, "1e-05"}, {1.29e18, false, "1.29e+18"},
		{math.NaN(), false, "NaN"}, {math.Inf(-1), false, "-Infinity"}, {1.5e-7, false, "1.5e-07"},
		{1e20, false, "1e+20"}, {0.30000000000000004, false, "0.30000000000000004"}, {0, false, "0"},
		{100000, true, "100000"}, {1e6, true, "1e+06"}, {123456, true, "123456"},
		{float64(float32(1234567)), true, "1.234567e+06"}, {float64(float32(0.0001)), true, "0.0001"},
		{float64(float32(0.00001)), true, "1e-05"},
	} {
		if got := string(FormatFloat(c.f, c.single)); got != c.want {
			t.Errorf("FormatFloat(%v, single %v) = %q, want %q", c.f, c.single, got, c.want)
		}
	}
}

// Numerics in the binary format read as numeric_out writes them, and a
// sum written back reads the same, as pgx encodes and decodes them.
func TestNumericBinary(t *testing.T) {
	m := pgtype.NewMap()
	for _, tc := range []struct{ in, text string }{
		{"0", "0"}, {"0.00", "0.00"}, {"-0.5", "-0.5"}, {"123.4500", "123.4500"},
		{"99999999999999999999.99999", "99999999999999999999.99999"}, {"100000000000000000000", "100000000000000000000"},
		{"0.0001", "0.0001"}, {"0.00001", "0.00001"}, {"-1234567.891", "-1234567.891"}, {"10000", "10000"},
		{"1.000000000000000000001", "1.000000000000000000001"}, {"-10000.00010000", "-10000.00010000"},
		{"NaN", "NaN"}, {"Infinity", "Infinity"}, {"-Infinity", "-Infinity"},
	} {
		var n pgtype.Numeric
		if err := n.Scan(tc.in); err != nil {
			t.Fatal(err)
		}
		b, err := m.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := NumericText(b)
		if !ok || string(got) != tc.text {
			t.Errorf("NumericText(%s) = %q, %v; want %q", tc.in, got, ok, tc.text)
		}
		back, ok := NumericBinary([]byte(tc.text))
		if !ok {
			t.Errorf("NumericBinary(%q) failed", tc.text)
			continue
		}
		if again, ok := NumericText(back); !ok || string(again) != tc.text {
			t.Errorf("NumericText(NumericBinary(%q)) = %q, %v", tc.text, again, ok)
		}
		var dec pgtype.Numeric
		if err := m.Scan(pgtype.NumericOID, pgtype.BinaryFormatCode, back, &dec); err != nil {
			t.Errorf("pgx cannot read NumericBinary(%q): %v", tc.text, err)
			continue
		}
		v1, _ := n.Value()
		v2, _ := dec.Value()
		if !numericEqual(v1, v2) {
			t.Errorf("NumericBinary(%q) reads as %v, want %v", tc.text, v2, v1)
		}
	}
	for _, bad := range [][]byte{nil, {0, 1, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0x12, 0x34, 0, 0}} {
		if _, ok := NumericText(bad); ok {
			t.Errorf("NumericText(%x) accepted a malformed value", bad)
		}
	}
}

// numericEqual compares two numerics' driver values ("1.50" and "1.5").
func numericEqual(a, b any) bool {
	ra, ok1 := new(big.Rat).SetString(fmt.Sprint(a))
	rb, ok2 := new(big.Rat).SetString(fmt.Sprint(b))
	if !ok1 || !ok2 {
		return fmt.Sprint(a) == fmt.Sprint(b)
	}
	return ra.Cmp(rb) == 0
}
