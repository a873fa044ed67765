package scatter_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/scatter/scattertest"
)

// fakeShards answers from a table: per shard, its rows (the textCodec's
// "|" rows), its error, or a count; it records what ran where.
type fakeShards struct {
	rows    map[int][]string
	failed  map[int]bool
	lost    map[int]bool
	count   map[int]int64
	cols    []scattertest.Col
	text    map[int]scatter.TextColumn // text columns of the result
	lookups []string                   // "shard: query"
	ran     []string                   // "shard: sql"
	lookup  [][]byte                   // the lookup's row
}

func (f *fakeShards) Run(i int, sql string, b *scatter.Budget) (*scatter.Answer, error) {
	f.ran = append(f.ran, strings.Join([]string{string(rune('0' + i)), sql}, ": "))
	if f.lost[i] {
		return nil, errors.New("server connection lost")
	}
	a := &scatter.Answer{Columns: len(f.cols), Failed: f.failed[i], Wire: i}
	if n, ok := f.count[i]; ok {
		a.Columns, a.Affected, a.Counted = -1, n, true
	}
	for _, r := range f.rows[i] {
		if err := b.Take(len(r)); err != nil {
			return nil, err
		}
		a.Rows = append(a.Rows, []byte(r))
	}
	return a, nil
}

func (f *fakeShards) Codec(*scatter.Answer) (scatter.Codec, error) {
	return &textColsCodec{textCodec{cols: f.cols}, f.text}, nil
}

func (f *fakeShards) Lookup(i int, q string) ([][]byte, error) {
	f.lookups = append(f.lookups, string(rune('0'+i))+": "+q)
	return f.lookup, nil
}

// textColsCodec is textCodec with some columns text in a collation.
type textColsCodec struct {
	textCodec
	text map[int]scatter.TextColumn
}

func (c *textColsCodec) Text(k int) (scatter.TextColumn, bool) {
	t, ok := c.text[k]
	return t, ok
}

var idName = []scattertest.Col{{Name: "id", Type: scattertest.Int}, {Name: "name", Type: scattertest.Text}}

// TestRunShardsOfThePlan: a read runs on the shards it is given, in that
// order, and a literal OFFSET is folded into each shard's statement.
func TestRunShardsOfThePlan(t *testing.T) {
	f := &fakeShards{cols: idName, rows: map[int][]string{1: {"3|c", "1|a"}, 3: {"2|b"}}}
	spec := &scatter.Spec{Order: []scatter.Order{{Col: 0}}, Limit: 1, Offset: 1}
	res, err := scatter.Run(scatter.Request{Job: scatter.Job{Protocol: "test", Shards: []int{3, 1}}, SQL: "q", Spec: spec,
		Unoffset: func(s string) (string, bool) { return s + " without offset", true }}, f)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.ran, ","); got != "3: q without offset,1: q without offset" {
		t.Errorf("ran %s", got)
	}
	if len(res.Rows) != 1 || string(res.Rows[0]) != "2|b" {
		t.Errorf("rows %q; want [2|b]", res.Rows)
	}
	// An OFFSET that cannot be folded is refused before anything runs.
	f.ran = nil
	_, err = scatter.Run(scatter.Request{Job: scatter.Job{Protocol: "test", Shards: []int{0}}, SQL: "q", Spec: spec}, f)
	var se *scatter.Error
	if !errors.As(err, &se) || se.Reason != scatter.ReasonMerge || len(f.ran) != 0 {
		t.Errorf("unfoldable OFFSET: %v, ran %v", err, f.ran)
	}
}

// TestRunWriteErrors: an all-shard write sums the counts; a shard's own
// error stops it, and says where it committed before; the proxy's own
// error too.
func TestRunWriteErrors(t *testing.T) {
	f := &fakeShards{count: map[int]int64{0: 2, 1: 3, 2: 4}, failed: map[int]bool{}, lost: map[int]bool{}}
	job := scatter.Job{Protocol: "test", Shards: []int{0, 1, 2}, Write: true}
	res, err := scatter.Run(scatter.Request{Job: job}, f)
	if err != nil || res.Affected != 9 || !res.Counted || res.Failed != nil || res.Partial != "" {
		t.Fatalf("write: %+v, %v", res, err)
	}
	f.failed[2] = true
	res, err = scatter.Run(scatter.Request{Job: job}, f)
	if err != nil || res.Failed == nil || res.Failed.Wire != 2 || !strings.Contains(res.Partial, "committed on shards 0, 1 and failed on shard 2") {
		t.Fatalf("write failing on shard 2: %+v, %v", res, err)
	}
	f.failed[2], f.lost[1] = false, true
	res, err = scatter.Run(scatter.Request{Job: job}, f)
	if err == nil || res.Failed != nil || !strings.Contains(res.Partial, "committed on shard 0 and failed on shard 1") {
		t.Fatalf("write losing shard 1: %+v, %v", res, err)
	}
	f.lost[1] = false
	f.failed[0] = true
	if res, _ := scatter.Run(scatter.Request{Job: job}, f); res.Partial != "" {
		t.Errorf("write failing on its first shard: partial %q", res.Partial)
	}
}

// TestRunTextOrders: text that a merge compares is ordered as the
// collation the first shard's catalog names, or the merge is refused with
// the reason; text it does not compare is never looked up.
func TestRunTextOrders(t *testing.T) {
	rows := map[int][]string{0: {"1|b", "2|_a"}, 1: {"3|a"}}
	for _, tc := range []struct {
		proto  string
		lookup []string
		want   string // the merged names, or the refusal
	}{
		// PostgreSQL: a column in the database's default C collation.
		{"postgres", []string{"t", "C", "", "default"}, "_a,a,b"},
		// ... or in a locale: refused, naming it.
		{"postgres", []string{"f", "en_US.UTF-8", "", "default"}, `in collation "en_US.UTF-8"`},
		{"postgres", []string{"t", "C", "", "bytes"}, "_a,a,b"},
		// MySQL: _bin and _general_ci (ASCII) are reproduced, UCA is not.
		{"mysql", []string{"utf8mb4", "utf8mb4_general_ci", "", "utf8mb4_bin"}, "_a,a,b"},
		{"mysql", []string{"utf8mb4", "utf8mb4_general_ci", "", "utf8mb4_general_ci"}, "a,b,_a"},
		{"mysql", []string{"utf8mb4", "utf8mb4_general_ci", "", "utf8mb4_unicode_ci"}, "in collation utf8mb4_unicode_ci"},
	} {
		f := &fakeShards{cols: idName, rows: rows, text: map[int]scatter.TextColumn{1: {Rel: 16384, Att: 2, Schema: "s", Table: "t", Column: "name"}}}
		for _, v := range tc.lookup {
			f.lookup = append(f.lookup, []byte(v))
		}
		spec := &scatter.Spec{Order: []scatter.Order{{Col: 1}}, Limit: -1}
		res, err := scatter.Run(scatter.Request{Job: scatter.Job{Protocol: tc.proto, Shards: []int{1, 0}}, SQL: "SELECT", Spec: spec}, f)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			var names []string
			for _, r := range res.Rows {
				names = append(names, strings.Split(string(r), "|")[1])
			}
			got = strings.Join(names, ",")
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s %v: %s; want %s", tc.proto, tc.lookup, got, tc.want)
		}
		if len(f.lookups) != 1 || !strings.HasPrefix(f.lookups[0], "1: ") {
			t.Errorf("%s: looked up %v; want once, on the first shard of the plan (1)", tc.proto, f.lookups)
		}
		// Sorted by id only: no lookup.
		f.lookups = nil
		spec = &scatter.Spec{Order: []scatter.Order{{Col: 0}}, Limit: -1}
		if _, err := scatter.Run(scatter.Request{Job: scatter.Job{Protocol: tc.proto, Shards: []int{0, 1}}, SQL: "SELECT", Spec: spec}, f); err != nil || len(f.lookups) != 0 {
			t.Errorf("%s: ORDER BY id: %v, looked up %v", tc.proto, err, f.lookups)
		}
	}
}

// TestGatherParallel: a parallel read keeps the rows in the order of the
// shards and reports the first shard, in that order, that failed; the
// shards charge one budget.
func TestGatherParallel(t *testing.T) {
	run := func(fail map[int]bool) scatter.RunFunc {
		return func(i int, b *scatter.Budget) (*scatter.Answer, error) {
			time.Sleep(time.Duration(3-i) * 10 * time.Millisecond) // the last shard answers first
			a := &scatter.Answer{Columns: 1, Failed: fail[i]}
			for r := range 50 {
				if err := b.Take(10); err != nil {
					return nil, err
				}
				a.Rows = append(a.Rows, []byte{byte(i), byte(r)})
			}
			return a, nil
		}
	}
	job := scatter.Job{Protocol: "test", Shards: []int{0, 1, 2, 3}, Parallel: true}
	g, err := scatter.Gather(job, run(nil))
	if err != nil || len(g.Rows) != 200 || g.Rows[0][0] != 0 || g.Rows[199][0] != 3 || g.Failed() >= 0 {
		t.Fatalf("parallel read: %d rows, %v", len(g.Rows), err)
	}
	g, err = scatter.Gather(job, run(map[int]bool{1: true, 3: true}))
	if err != nil || g.Failed() != 1 {
		t.Fatalf("parallel read with shards 1 and 3 failing: failed %d, %v; want 1", g.Failed(), err)
	}
	job.MaxBytes = 150 * (10 + scatter.RowOverhead)
	var se *scatter.Error
	if _, err = scatter.Gather(job, run(nil)); !errors.As(err, &se) || se.Reason != scatter.ReasonTooLarge {
		t.Fatalf("parallel read over the budget: %v", err)
	}
}

// A panic while one shard's answer of a parallel read is read (a shard's
// goroutine, not the client's) ends that scatter with an error; before,
// it ended the proxy.
func TestGatherParallelPanic(t *testing.T) {
	job := scatter.Job{Protocol: "test", Shards: []int{0, 1}, Parallel: true}
	_, err := scatter.Gather(job, func(i int, b *scatter.Budget) (*scatter.Answer, error) {
		if i == 1 {
			panic("malformed reply")
		}
		return &scatter.Answer{Columns: 1}, nil
	})
	if err == nil || !strings.Contains(err.Error(), "shard 1") {
		t.Fatalf("parallel read whose shard 1 panicked: %v; want an error naming shard 1", err)
	}
}
