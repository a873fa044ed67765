package router

import (
	"fmt"
	"testing"

	"github.com/switchyard/switchyard/scatter"
)

func TestMergeSpec(t *testing.T) {
	for _, tc := range []struct {
		d    Dialect
		sql  string
		want string
	}{
		{Postgres, "SELECT id, amount FROM orders ORDER BY amount DESC, 1 LIMIT 5 OFFSET 2",
			"&{Order:[{Col:1 Name:amount Desc:true NullsFirst:true} {Col:0 Name:id Desc:false NullsFirst:false}] Aggs:[] Limit:5 Offset:2}"},
		{MySQL, "SELECT * FROM orders ORDER BY Total",
			"&{Order:[{Col:-1 Name:total Desc:false NullsFirst:true}] Aggs:[] Limit:-1 Offset:0}"},
		{MySQL, "SELECT COUNT(*), SUM(total), MIN(id), MAX(id) FROM orders",
			"&{Order:[] Aggs:[{Func:1 Col:0} {Func:2 Col:1} {Func:3 Col:2} {Func:4 Col:3}] Limit:-1 Offset:0}"},
	} {
		sk, err := NewKeyExtractor(tc.d, KeySpec{Default: "customer_id"}).Extract(tc.sql)
		if err != nil || !sk.Mergeable {
			t.Fatalf("%s: %v, %+v", tc.sql, err, sk)
		}
		s := sk.MergeSpec()
		if s.Order == nil {
			s.Order = []scatter.Order{}
		}
		if s.Aggs == nil {
			s.Aggs = []scatter.Agg{}
		}
		if got := fmt.Sprintf("%+v", s); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.sql, got, tc.want)
		}
	}
}
