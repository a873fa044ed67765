package scatter

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/internal/metrics"
)

// Answer is one shard's answer to a request, as the wire package read it.
type Answer struct {
	// Rows are the rows of its result set, each charged to the Budget
	// the RunFunc was handed.
	Rows [][]byte
	// Columns is the number of columns of its result set, -1 when it
	// answered without one (an OK, a CommandComplete alone).
	Columns int
	// Affected is a write's row count, when Counted.
	Affected int64
	Counted  bool
	// Failed: the shard answered with an error of its own, which the
	// wire package relays as it is. The gather stops there.
	Failed bool
	// Wire is the wire package's own record of the answer (its column
	// descriptions, its error), for its reply.
	Wire any
}

// RunFunc sends the request to shard i and reads its whole answer,
// charging every row to b (past it, b's *Error; the connection whose
// answer was cut off must not be reused). An error is the proxy's (a lost
// server connection, a pool timeout) and ends the gather.
type RunFunc func(i int, b *Budget) (*Answer, error)

// Job is one request to run on several shards.
type Job struct {
	Protocol, Cluster string // metric labels: "postgres" or "mysql"
	Shards            []int  // the shards, in the order they run
	// Write: an all-shard UPDATE/DELETE (allow_all_shard_writes): each
	// shard commits on its own, the counts are summed. Else a read,
	// whose rows a Merge puts together.
	Write    bool
	MaxBytes int64 // max_scatter_bytes (DefaultMaxBytes when <= 0)
	// Parallel: a read's shards run at once (the RunFunc is safe for
	// concurrent use). A write's run one after the other, so that a
	// failing shard stops it before the shards after it.
	Parallel bool
}

// Gathered is what the shards answered.
type Gathered struct {
	job     Job
	budget  *Budget
	Answers []*Answer // one per shard run, in order
	Rows    [][]byte  // every shard's rows, one shard after the other
	// Affected is the sum of the shards' counts, when any Counted.
	Affected int64
	Counted  bool
}

// Failed is the position in Job.Shards of the shard whose own error
// stopped the gather, -1 if none did.
func (g *Gathered) Failed() int {
	if n := len(g.Answers); n > 0 && g.Answers[n-1].Failed {
		return n - 1
	}
	return -1
}

// Gather runs the job's request on its shards, one after the other or
// (Job.Parallel) a read's at once, holding their rows under one Budget.
// It stops at the first shard, in the order of Job.Shards, that fails
// (Gathered.Failed) or at the proxy's error (returned, with what was
// gathered before it: a write committed on those shards). A read whose
// shards answered with different numbers of columns is refused.
func Gather(j Job, run RunFunc) (*Gathered, error) {
	if j.Write {
		metrics.AllShardWrites.WithLabelValues(j.Protocol, j.Cluster).Inc()
	} else {
		metrics.ScatterQueries.WithLabelValues(j.Protocol, j.Cluster).Inc()
	}
	g := &Gathered{job: j, budget: NewBudget(j.MaxBytes)}
	parallel := j.Parallel && !j.Write
	var answers []*Answer
	var errs []error
	if parallel {
		answers, errs = make([]*Answer, len(j.Shards)), make([]error, len(j.Shards))
		var wg sync.WaitGroup
		for k, i := range j.Shards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A shard's goroutine is not the client's: a panic in
				// reading its answer (a malformed reply, a bug) must end
				// this scatter with an error, not the proxy.
				defer func() {
					if r := recover(); r != nil {
						errs[k] = fmt.Errorf("reading shard %d's answer failed: %v", i, r)
					}
				}()
				answers[k], errs[k] = run(i, g.budget)
			}()
		}
		wg.Wait()
		n := 0
		for _, a := range answers {
			if a != nil {
				n += len(a.Rows)
			}
		}
		g.Rows = make([][]byte, 0, n) // not grown by appends: a large scatter's row list is copied once
	}
	for k, i := range j.Shards {
		var a *Answer
		var err error
		if parallel {
			a, err = answers[k], errs[k]
		} else {
			a, err = run(i, g.budget)
		}
		if err != nil {
			g.refused(err, false)
			return g, err
		}
		g.Answers = append(g.Answers, a)
		if a.Failed {
			return g, nil
		}
		if first := g.Answers[0]; !j.Write && a.Columns != first.Columns {
			err := mergeError("the shards answered with different columns (%d and %d); are their schemas the same?", first.Columns, a.Columns)
			g.refused(err, true)
			return g, err
		}
		g.Rows = append(slices.Grow(g.Rows, len(a.Rows)), a.Rows...)
		if a.Counted {
			g.Affected += a.Affected
			g.Counted = true
		}
	}
	return g, nil
}

// Merge merges a read's rows as s says, through the codec of the first
// shard's result. A refusal (an *Error, or the codec's own error) is
// counted in the refusal metric.
func (g *Gathered) Merge(s *Spec, c Codec) ([][]byte, error) {
	metrics.ScatterBytes.WithLabelValues(g.job.Protocol).Observe(float64(g.budget.Used()))
	rows, err := Merge(s, c, g.Rows)
	if err != nil {
		g.refused(err, true)
	}
	return rows, err
}

// refused counts a refusal: an *Error by its reason; in a merge, the
// codec's own error is a refusal to merge too.
func (g *Gathered) refused(err error, merging bool) {
	var se *Error
	switch {
	case errors.As(err, &se):
		metrics.ScatterRefused.WithLabelValues(g.job.Protocol, se.Reason).Inc()
	case merging:
		metrics.ScatterRefused.WithLabelValues(g.job.Protocol, ReasonMerge).Inc()
	}
}

// PartialWrite says where an all-shard write committed before it failed
// on the shard at position k of shards (k > 0).
func PartialWrite(shards []int, k int) string {
	done := make([]string, k)
	for j, i := range shards[:k] {
		done[j] = strconv.Itoa(i)
	}
	what := "shard "
	if k > 1 {
		what = "shards "
	}
	return fmt.Sprintf("the statement committed on %s%s and failed on shard %d; it did not run on the shards after", what, strings.Join(done, ", "), shards[k])
}

// AllShards lists shards 0 to n-1.
func AllShards(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
