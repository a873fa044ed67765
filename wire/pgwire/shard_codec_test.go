package pgwire

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

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
		c, err := newRowCodec(m)
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
