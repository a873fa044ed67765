package router

import (
	"bytes"
	"math/big"

	"github.com/switchyard/switchyard/scatter"
)

// MergeSpec is how package scatter merges the shards' answers to a
// SELECT run on several shards (Mergeable): its ORDER BY, aggregates and
// literal LIMIT (-1: none) and OFFSET. A LIMIT or OFFSET given as a bind
// parameter is the caller's to fill in. Written here once for both
// protocols: the plan of a request ends in "these shards, merged so".
func (sk *ShardKeys) MergeSpec() *scatter.Spec {
	s := &scatter.Spec{Limit: -1}
	if sk.Limit != nil {
		s.Limit = max(*sk.Limit, 0)
	}
	if sk.Offset != nil {
		s.Offset = max(*sk.Offset, 0)
	}
	for _, o := range sk.OrderBy {
		s.Order = append(s.Order, scatter.Order{Col: o.Index, Name: o.Name, Desc: o.Desc, NullsFirst: o.NullsFirst})
	}
	for _, a := range sk.Aggregates {
		s.Aggs = append(s.Aggs, scatter.Agg{Func: scatterAgg[a.Func], Col: a.Index})
	}
	return s
}

var scatterAgg = map[AggFunc]scatter.AggFunc{AggCount: scatter.Count, AggSum: scatter.Sum, AggMin: scatter.Min, AggMax: scatter.Max}

// AddDecimalText adds two decimal numbers written as text (the answers of
// COUNT or SUM from two shards: "42", "-1.50"), keeping as many decimals
// as the more precise of them, as a single server's SUM would. ok is false
// when either is not a decimal number.
func AddDecimalText(x, y []byte) (sum []byte, ok bool) {
	rx, ok1 := new(big.Rat).SetString(string(x))
	ry, ok2 := new(big.Rat).SetString(string(y))
	if !ok1 || !ok2 || isExp(x) || isExp(y) {
		return nil, false
	}
	r := rx.Add(rx, ry)
	scale := max(decimals(x), decimals(y))
	if scale == 0 && r.IsInt() {
		return []byte(r.Num().String()), true
	}
	return []byte(r.FloatString(scale)), true
}

func decimals(v []byte) int {
	if i := bytes.IndexByte(v, '.'); i >= 0 {
		return len(v) - i - 1
	}
	return 0
}

// isExp: big.Rat reads "1e3" and "3/2" too, which a decimal is not.
func isExp(v []byte) bool { return bytes.ContainsAny(v, "eE/") }
