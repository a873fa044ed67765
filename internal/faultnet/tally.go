package faultnet

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Tally counts what the clients of a drill saw: statements that worked,
// statements that failed, and the failures by error code (SQLSTATE, MySQL
// error number, or a short text when there is no code).
type Tally struct {
	OK, Failed atomic.Int64
	mu         sync.Mutex
	errs       map[string]int
}

// Fail books one failed statement under key.
func (t *Tally) Fail(key string) {
	t.Failed.Add(1)
	t.mu.Lock()
	if t.errs == nil {
		t.errs = make(map[string]int)
	}
	t.errs[key]++
	t.mu.Unlock()
}

// Codes returns the error keys seen, sorted.
func (t *Tally) Codes() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.errs))
	for k := range t.errs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (t *Tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("ok=%d failed=%d errors=%v", t.OK.Load(), t.Failed.Load(), t.errs)
}

// MaxInto raises a to d if d is larger, atomically: the slowest of many.
func MaxInto(a *atomic.Int64, d time.Duration) {
	for old := a.Load(); int64(d) > old && !a.CompareAndSwap(old, int64(d)); old = a.Load() {
	}
}
