// Package scattertest holds the merge cases every protocol's row codec
// must pass: one table, so that PostgreSQL and MySQL merge alike. A wire
// package's test builds its codec for Case.Cols, encodes the rows, runs
// scatter.Merge and compares with Want.
package scattertest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/scatter"
)

// Type is a column's type, which the codec maps to its protocol's.
type Type int

const (
	Int     Type = iota + 1 // a 64-bit integer
	Decimal                 // an exact number (numeric, DECIMAL)
	Text                    // text in a byte-order collation (C, _bin)
)

// Col is one result column.
type Col struct {
	Name string
	Type Type
}

// Null is the value NULL in Shards and Want.
const Null = "<null>"

// Case is one merge. Values are text, as the text protocols carry them.
type Case struct {
	Name   string
	Cols   []Col
	Shards [][][]string // per shard, its rows in the order it sent them
	Spec   scatter.Spec
	Want   [][]string
	// Err is a substring of the refusal (an *scatter.Error or the
	// codec's own) when the merge must be refused.
	Err string
	// ExactNamesErr replaces Err for a codec whose names match exactly
	// (PostgreSQL: the parser folds unquoted names already).
	ExactNamesErr string
}

var idAmount = []Col{{"id", Int}, {"amount", Int}}

// Cases is the table.
var Cases = []Case{
	{
		Name: "concatenate", Cols: idAmount, Spec: scatter.Spec{Limit: -1},
		Shards: [][][]string{{{"1", "10"}, {"3", "30"}}, {{"2", "20"}}},
		Want:   [][]string{{"1", "10"}, {"3", "30"}, {"2", "20"}},
	},
	{
		Name: "order by int asc, limit", Cols: idAmount,
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: 1}}, Limit: 3},
		Shards: [][][]string{{{"1", "5"}, {"3", "100"}}, {{"2", "9"}, {"4", "20"}}},
		Want:   [][]string{{"1", "5"}, {"2", "9"}, {"4", "20"}}, // 100 > 20 as numbers, not as bytes
	},
	{
		Name: "order by desc, offset and limit", Cols: idAmount,
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: 1, Desc: true}}, Limit: 2, Offset: 1},
		Shards: [][][]string{{{"1", "50"}, {"3", "30"}, {"5", "10"}}, {{"2", "40"}, {"4", "20"}}},
		Want:   [][]string{{"2", "40"}, {"3", "30"}},
	},
	{
		Name: "offset past the end", Cols: idAmount,
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: 0}}, Limit: 5, Offset: 10},
		Shards: [][][]string{{{"1", "1"}}, {{"2", "2"}}},
		Want:   nil,
	},
	{
		Name: "offset without limit", Cols: idAmount,
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: 0}}, Limit: -1, Offset: 2},
		Shards: [][][]string{{{"1", "1"}, {"4", "4"}}, {{"2", "2"}, {"3", "3"}}},
		Want:   [][]string{{"3", "3"}, {"4", "4"}},
	},
	{
		Name: "two keys, ties keep shard order", Cols: idAmount,
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: 1}, {Col: 0, Desc: true}}, Limit: -1},
		Shards: [][][]string{{{"1", "7"}, {"3", "7"}}, {{"2", "7"}, {"4", "1"}}},
		Want:   [][]string{{"4", "1"}, {"3", "7"}, {"2", "7"}, {"1", "7"}},
	},
	{
		Name: "nulls last ascending", Cols: idAmount,
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: 1}}, Limit: -1},
		Shards: [][][]string{{{"1", Null}, {"3", "3"}}, {{"2", "2"}}},
		Want:   [][]string{{"2", "2"}, {"3", "3"}, {"1", Null}},
	},
	{
		Name: "nulls first descending", Cols: idAmount,
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: 1, Desc: true, NullsFirst: true}}, Limit: -1},
		Shards: [][][]string{{{"3", "3"}, {"1", Null}}, {{"2", "2"}}},
		Want:   [][]string{{"1", Null}, {"3", "3"}, {"2", "2"}},
	},
	{
		Name: "decimals order as numbers", Cols: []Col{{"id", Int}, {"price", Decimal}},
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: 1}}, Limit: -1},
		Shards: [][][]string{{{"1", "10.5"}, {"3", "-2.25"}}, {{"2", "9.75"}}},
		Want:   [][]string{{"3", "-2.25"}, {"2", "9.75"}, {"1", "10.5"}},
	},
	{
		Name: "text orders as bytes", Cols: []Col{{"id", Int}, {"name", Text}},
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: 1}}, Limit: -1},
		Shards: [][][]string{{{"1", "b"}, {"3", "d"}}, {{"2", "a"}, {"4", "c"}}},
		Want:   [][]string{{"2", "a"}, {"1", "b"}, {"4", "c"}, {"3", "d"}},
	},
	{
		Name: "order by name (star)", Cols: idAmount,
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: -1, Name: "amount", Desc: true}}, Limit: 1},
		Shards: [][][]string{{{"1", "5"}}, {{"2", "6"}}},
		Want:   [][]string{{"2", "6"}},
	},
	{
		Name: "order by name in another case", Cols: []Col{{"id", Int}, {"Amount", Int}},
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: -1, Name: "amount"}}, Limit: -1},
		Shards: [][][]string{{{"1", "5"}}, {{"2", "4"}}},
		Want:   [][]string{{"2", "4"}, {"1", "5"}},
		// PostgreSQL: "Amount" was quoted, amount is another name.
		ExactNamesErr: "not in the result",
	},
	{
		Name: "exact name wins over another case", Cols: []Col{{"Amount", Int}, {"amount", Int}},
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: -1, Name: "amount"}}, Limit: -1},
		Shards: [][][]string{{{"1", "5"}}, {{"2", "4"}}},
		Want:   [][]string{{"2", "4"}, {"1", "5"}},
		// MySQL: column names do not differ by case only.
		Err:           "ambiguous",
		ExactNamesErr: "-",
	},
	{
		Name: "order by a missing column", Cols: idAmount,
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: -1, Name: "total"}}, Limit: -1},
		Shards: [][][]string{{{"1", "5"}}, {{"2", "4"}}},
		Err:    "not in the result",
	},
	{
		Name: "ambiguous name", Cols: []Col{{"amount", Int}, {"amount", Int}},
		Spec:   scatter.Spec{Order: []scatter.Order{{Col: -1, Name: "amount"}}, Limit: -1},
		Shards: [][][]string{{{"1", "5"}}, {{"2", "4"}}},
		Err:    "ambiguous",
	},
	{
		Name: "count and sum", Cols: []Col{{"count", Int}, {"sum", Decimal}},
		Spec:   scatter.Spec{Aggs: []scatter.Agg{{Func: scatter.Count, Col: 0}, {Func: scatter.Sum, Col: 1}}, Limit: -1},
		Shards: [][][]string{{{"3", "1.50"}}, {{"4", "2.25"}}, {{"0", Null}}},
		Want:   [][]string{{"7", "3.75"}},
	},
	{
		Name: "min and max", Cols: []Col{{"min", Int}, {"max", Text}},
		Spec:   scatter.Spec{Aggs: []scatter.Agg{{Func: scatter.Min, Col: 0}, {Func: scatter.Max, Col: 1}}, Limit: -1},
		Shards: [][][]string{{{"10", "b"}}, {{"9", "a"}}, {{Null, Null}}, {{"100", "c"}}},
		Want:   [][]string{{"9", "c"}},
	},
	{
		Name: "aggregates of empty shards", Cols: []Col{{"count", Int}, {"max", Int}},
		Spec:   scatter.Spec{Aggs: []scatter.Agg{{Func: scatter.Count, Col: 0}, {Func: scatter.Max, Col: 1}}, Limit: -1},
		Shards: [][][]string{{{"0", Null}}, {{"0", Null}}},
		Want:   [][]string{{"0", Null}},
	},
	{
		Name: "aggregate with limit 0", Cols: []Col{{"count", Int}},
		Spec:   scatter.Spec{Aggs: []scatter.Agg{{Func: scatter.Count, Col: 0}}, Limit: 0},
		Shards: [][][]string{{{"1"}}, {{"2"}}},
		Want:   nil,
	},
	{
		Name: "aggregate column out of range", Cols: []Col{{"count", Int}},
		Spec:   scatter.Spec{Aggs: []scatter.Agg{{Func: scatter.Count, Col: 3}}, Limit: -1},
		Shards: [][][]string{{{"1"}}, {{"2"}}},
		Err:    "not in the result",
	},
}

// WantErr is the refusal a codec must give for c ("" none).
func (c *Case) WantErr(foldNames bool) string {
	if !foldNames && c.ExactNamesErr != "" {
		if c.ExactNamesErr == "-" {
			return ""
		}
		return c.ExactNamesErr
	}
	return c.Err
}

// Row encodes one row of text values (Null for NULL) as a server of the
// protocol sends it, for a result of cols.
type Row func(cols []Col, vals []string) []byte

// Run merges every case with the codec newCodec makes and checks the
// answer (read back with the codec's Split) or the refusal.
func Run(t *testing.T, newCodec func(cols []Col) scatter.Codec, row Row) {
	t.Helper()
	for _, tc := range Cases {
		t.Run(tc.Name, func(t *testing.T) {
			c := newCodec(tc.Cols)
			var rows [][]byte
			for _, sh := range tc.Shards {
				for _, r := range sh {
					rows = append(rows, row(tc.Cols, r))
				}
			}
			spec := tc.Spec
			got, err := scatter.Merge(&spec, c, rows)
			if want := tc.WantErr(c.FoldNames()); want != "" {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Merge: %v, error %v; want an error containing %q", got, err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Merge: %v", err)
			}
			var text [][]string
			for _, r := range got {
				vals, err := c.Split(r)
				if err != nil {
					t.Fatalf("Split(%q): %v", r, err)
				}
				var s []string
				for _, v := range vals {
					if v == nil {
						s = append(s, Null)
					} else {
						s = append(s, string(v))
					}
				}
				text = append(text, s)
			}
			if fmt.Sprint(text) != fmt.Sprint(tc.Want) || len(text) != len(tc.Want) {
				t.Errorf("Merge = %v; want %v", text, tc.Want)
			}
		})
	}
}
