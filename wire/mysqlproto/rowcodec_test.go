package mysqlproto

import (
	"strconv"
	"testing"

	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/scatter/scattertest"
)

// TestRowCodecMergeMySQL runs the merge cases both protocols share through
// the MySQL row codec (text protocol; text in utf8mb4_bin).
func TestRowCodecMergeMySQL(t *testing.T) {
	types := map[scattertest.Type]byte{scattertest.Int: TypeLongLong, scattertest.Decimal: TypeNewDecimal, scattertest.Text: 0xfd}
	colDefs := func(cols []scattertest.Col) []ColumnDef {
		var out []ColumnDef
		for _, c := range cols {
			out = append(out, ColumnDef{Name: c.Name, Type: types[c.Type], Charset: 46})
		}
		return out
	}
	scattertest.Run(t, func(cols []scattertest.Col) scatter.Codec {
		return scatter.OrderText(&RowCodec{Cols: colDefs(cols)}, scatter.TextPadSpace) // as the lookup finds utf8mb4_bin
	}, func(cols []scattertest.Col, vals []string) []byte {
		var vs [][]byte
		for _, v := range vals {
			if v == scattertest.Null {
				vs = append(vs, nil)
			} else {
				vs = append(vs, []byte(v))
			}
		}
		return EncodeRow(vs, colDefs(cols), false)
	})
}

// BenchmarkMergeOrderedMySQL: what merging a scatter's text-protocol rows
// by a DECIMAL and a BIGINT column costs (per merge of 10,000 rows of four
// columns).
func BenchmarkMergeOrderedMySQL(b *testing.B) {
	cols := []ColumnDef{{Name: "id", Type: TypeLongLong}, {Name: "c", Type: TypeLongLong}, {Name: "total", Type: TypeNewDecimal}, {Name: "note", Type: 0xfd, Charset: 46}}
	c := &RowCodec{Cols: cols}
	rows := make([][]byte, 10000)
	for i := range rows {
		id := (i * 7919) % len(rows)
		rows[i] = EncodeRow([][]byte{[]byte(strconv.Itoa(id)), []byte(strconv.Itoa(id % 97)), []byte(strconv.Itoa(id%1000) + ".25"), []byte("note note note note")}, cols, false)
	}
	spec := scatter.Spec{Order: []scatter.Order{{Col: 2, Desc: true}, {Col: 0}}, Limit: -1}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := scatter.Merge(&spec, c, rows); err != nil {
			b.Fatal(err)
		}
	}
}

// FormatDouble writes DOUBLEs as MariaDB 10.11 does (values read from
// the server: SELECT 1e15, 1.5e-7, ...).
func TestFormatDoubleAsMariaDB(t *testing.T) {
	for _, c := range []struct {
		f    float64
		dec  byte
		want string
	}{
		{1290, 31, "1290"}, {1e14, 31, "100000000000000"}, {1e15, 31, "1e15"}, {123456789012345, 31, "123456789012345"},
		{1234567890123456, 31, "1.234567890123456e15"}, {0.0001, 31, "0.0001"}, {0.00001, 31, "0.00001"},
		{1.29e18, 31, "1.29e18"}, {1.5e-7, 31, "0.00000015"}, {0.30000000000000004, 31, "0.30000000000000004"},
		{1e-15, 31, "0.000000000000001"}, {1e-16, 31, "1e-16"}, {-1e15, 31, "-1e15"}, {1.5e15, 31, "1.5e15"},
		{12345678901234.5, 31, "12345678901234.5"}, {1290, 2, "1290.00"}, {0, 31, "0"},
	} {
		if got := string(FormatDouble(c.f, c.dec)); got != c.want {
			t.Errorf("FormatDouble(%v, %d) = %q, want %q", c.f, c.dec, got, c.want)
		}
	}
}
