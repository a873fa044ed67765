package router

import "github.com/switchyard/switchyard/scatter"

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
