package router

import (
	"testing"

	"github.com/switchyard/switchyard/config"
)

// A reload that changes a cluster's function lists publishes another
// analyzer for it, and a prepared statement's kept verdict is judged
// again by it; one that keeps the lists keeps the analyzer (and its
// cache of verdicts).
func TestAnalyzersReload(t *testing.T) {
	cfg := func(write string) *config.Config {
		return &config.Config{Clusters: []config.Cluster{
			{Name: "pg", Protocol: config.Postgres, Primary: "p:1", Settings: config.Settings{WriteFunctions: write}},
			{Name: "my", Protocol: config.MySQL, Primary: "m:1"},
			{Name: "my2", Protocol: config.MySQL, Primary: "m:1", Replicas: []string{"r:1"}},
		}}
	}
	var pg, my Analyzers
	pg.Publish(cfg(""), config.Postgres, false)
	my.Publish(cfg(""), config.MySQL, true)
	if my.For("my") != nil || my.For("my2") == nil || my.For("pg") != nil {
		t.Fatalf("split only: my %v, my2 %v, pg %v; want only my2 (the MySQL cluster with replicas)", my.For("my"), my.For("my2"), my.For("pg"))
	}
	before := pg.For("pg")
	if before == nil {
		t.Fatal("no analyzer for pg")
	}
	const q = "SELECT upper(name) FROM t"
	var v Verdict
	if a := v.Of(before, q); a.Class == Write {
		t.Fatalf("%s judged a write without write_functions", q)
	}
	pg.Publish(cfg(""), config.Postgres, false)
	if pg.For("pg") != before {
		t.Error("a reload that kept the function lists replaced the analyzer")
	}
	pg.Publish(cfg("upper"), config.Postgres, false)
	after := pg.For("pg")
	if after == before {
		t.Fatal("a reload that changed write_functions kept the analyzer")
	}
	if v.Get(after) != nil {
		t.Error("the verdict of the old analyzer is served for the new one")
	}
	if a := v.Of(after, q); a.Class != Write {
		t.Errorf("%s after write_functions = upper: class %v, want a write", q, a.Class)
	}
}
