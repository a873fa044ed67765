package mysqlproto

import (
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
