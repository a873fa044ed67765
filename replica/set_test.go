package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/lagmon"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fakeProber struct {
	mu  sync.Mutex
	pos lagmon.Position
	err error
}

func (f *fakeProber) set(pos lagmon.Position, err error) {
	f.mu.Lock()
	f.pos, f.err = pos, err
	f.mu.Unlock()
}

func (f *fakeProber) Probe(context.Context) (lagmon.Position, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos, f.err
}

// cluster is a monitored primary with replicas a, b, c, all at LSN 100, and
// a Set over the replicas, on one fake clock.
type cluster struct {
	clock   *fakeClock
	primary *fakeProber
	reps    map[string]*fakeProber
	mon     *lagmon.Monitor
	set     *Set
}

func newCluster(t testing.TB, o Options) *cluster {
	c := &cluster{
		clock:   &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		primary: &fakeProber{pos: lagmon.LSN(100)},
		reps:    map[string]*fakeProber{},
	}
	probers := map[string]lagmon.Prober{}
	names := []string{"a", "b", "c"}
	for _, n := range names {
		c.reps[n] = &fakeProber{pos: lagmon.LSN(100)}
		probers[n] = c.reps[n]
	}
	c.mon = lagmon.New(c.primary, probers, lagmon.Options{Now: c.clock.Now})
	o.Now = c.clock.Now
	c.set = NewSet(names, c.mon, o)
	c.poll(time.Second)
	return c
}

// poll advances the clock by d, then polls every node once.
func (c *cluster) poll(d time.Duration) {
	c.clock.Advance(d)
	c.mon.PollNow(context.Background())
}

func name(n *Node) string {
	if n == nil {
		return "<nil>"
	}
	return n.Name
}

// picks picks k times, calling Done after each when done is set, and
// counts the picks per node ("<nil>" for none).
func picks(s *Set, k int, need lagmon.Position, done bool) map[string]int {
	got := map[string]int{}
	for range k {
		n := s.Pick(need)
		got[name(n)]++
		if done {
			s.Done(n)
		}
	}
	return got
}

func TestLeastOutstanding(t *testing.T) {
	c := newCluster(t, Options{})
	s := c.set
	held := map[string]*Node{}
	for range 3 {
		n := s.Pick(nil)
		if held[name(n)] != nil {
			t.Fatalf("picked %s twice while another was idle", name(n))
		}
		held[name(n)] = n
	}
	// b finishes first: the next read goes to b.
	s.Done(held["b"])
	if n := s.Pick(nil); name(n) != "b" {
		t.Fatalf("after b finished: picked %s, want b", name(n))
	}
	// c is slow: two more reads pile up there. New reads go to a and b,
	// alternating.
	held["c"].outstanding.Add(2)
	got := picks(s, 20, nil, true)
	if got["c"] != 0 || got["a"]+got["b"] != 20 || got["a"]-got["b"] > 2 || got["b"]-got["a"] > 2 {
		t.Fatalf("with c busy: %v, want a and b about 10 each", got)
	}
	want := map[string]int64{"a": 1, "b": 1, "c": 3}
	for _, st := range s.Status() {
		if st.Outstanding != want[st.Name] {
			t.Fatalf("status %+v, want %d outstanding", st, want[st.Name])
		}
	}
}

func TestTiesRoundRobin(t *testing.T) {
	c := newCluster(t, Options{})
	got := picks(c.set, 300, nil, true)
	if got["a"] != 100 || got["b"] != 100 || got["c"] != 100 {
		t.Fatalf("idle replicas, sequential reads: %v, want 100 each", got)
	}
	for _, st := range c.set.Status() {
		if st.Outstanding != 0 {
			t.Fatalf("%s: %d outstanding after Done", st.Name, st.Outstanding)
		}
	}
}

func TestWeights(t *testing.T) {
	c := newCluster(t, Options{Weights: map[string]int{"a": 3, "b": 1, "c": 0}})
	if st := c.set.Status(); st[0].Weight != 3 || st[1].Weight != 1 || st[2].Weight != 1 {
		t.Fatalf("weights %+v", st)
	}
	// Light load, each read done before the next: the rotation follows the
	// weights.
	got := picks(c.set, 50, nil, true)
	if got["a"] != 30 || got["b"] != 10 || got["c"] != 10 {
		t.Fatalf("sequential reads: %v, want a 30, b 10, c 10", got)
	}
	// Reads that do not finish pile up in proportion to the weights.
	got = picks(c.set, 50, nil, false)
	if got["a"] != 30 || got["b"] != 10 || got["c"] != 10 {
		t.Fatalf("held reads: %v, want a 30, b 10, c 10", got)
	}
}

func TestBan(t *testing.T) {
	c := newCluster(t, Options{BanFor: 5 * time.Second})
	s := c.set
	s.Ban("b", "connection refused")
	s.Ban("nope", "ignored")
	if got := picks(s, 30, nil, true); got["b"] != 0 || got["a"] != 15 || got["c"] != 15 {
		t.Fatalf("with b banned: %v", got)
	}
	st := s.Status()[1]
	if !st.Banned || st.BanReason != "connection refused" || st.Eligible || !st.Healthy {
		t.Fatalf("status of banned b: %+v", st)
	}

	// The period is over, but no probe has run since the ban: still out.
	c.clock.Advance(6 * time.Second)
	if got := picks(s, 30, nil, true); got["b"] != 0 {
		t.Fatalf("ban over, no probe since: %v", got)
	}
	// A probe after the ban fails: still out.
	c.reps["b"].set(nil, errors.New("connection refused"))
	for range 3 {
		c.poll(time.Second)
	}
	if got := picks(s, 30, nil, true); got["b"] != 0 {
		t.Fatalf("ban over, replica unhealthy: %v", got)
	}
	// It answers again: back in, by itself.
	c.reps["b"].set(lagmon.LSN(100), nil)
	c.poll(time.Second)
	if got := picks(s, 30, nil, true); got["b"] != 10 {
		t.Fatalf("after recovery: %v", got)
	}
	if st := s.Status()[1]; st.Banned || !st.Eligible {
		t.Fatalf("status of recovered b: %+v", st)
	}

	// Banning again restarts the period.
	s.Ban("b", "again")
	c.clock.Advance(4 * time.Second)
	s.Ban("b", "and again")
	c.poll(2 * time.Second)
	if got := picks(s, 30, nil, true); got["b"] != 0 {
		t.Fatalf("ban renewed: %v", got)
	}
	c.poll(4 * time.Second)
	if got := picks(s, 30, nil, true); got["b"] != 10 {
		t.Fatalf("renewed ban over: %v", got)
	}
}

func TestMaxLag(t *testing.T) {
	c := newCluster(t, Options{MaxLag: 500 * time.Millisecond})
	step := 100 * time.Millisecond
	// The primary writes every step; b follows, a and c stop replaying.
	for i := 1; i <= 5; i++ {
		c.primary.set(lagmon.LSN(100+i), nil)
		c.reps["b"].set(lagmon.LSN(100+i), nil)
		c.poll(step)
	}
	if got := picks(c.set, 30, nil, true); got["<nil>"] != 0 || got["b"] == 30 {
		t.Fatalf("lag below the limit: %v, want all replicas used", got)
	}
	for i := 6; i <= 12; i++ {
		c.primary.set(lagmon.LSN(100+i), nil)
		c.reps["b"].set(lagmon.LSN(100+i), nil)
		c.poll(step)
	}
	if got := picks(c.set, 30, nil, true); got["b"] != 30 {
		t.Fatalf("a and c lag %v: %v, want only b", c.mon.Replica("a").Lag, got)
	}
	if st := c.set.Status()[0]; st.Eligible || !st.Healthy || st.Lag <= 500*time.Millisecond || st.LagBytes < 11 || st.Banned {
		t.Fatalf("status of lagging a: %+v", st)
	}
	// a catches up and gets reads again; c does not.
	c.reps["a"].set(lagmon.LSN(112), nil)
	c.poll(step)
	if got := picks(c.set, 30, nil, true); got["a"] != 15 || got["b"] != 15 {
		t.Fatalf("after a caught up: %v", got)
	}
}

func TestNeedPosition(t *testing.T) {
	c := newCluster(t, Options{})
	c.primary.set(lagmon.LSN(200), nil)
	c.reps["a"].set(lagmon.LSN(200), nil)
	c.reps["b"].set(lagmon.LSN(150), nil)
	c.poll(time.Millisecond)
	for _, tc := range []struct {
		need lagmon.Position
		want map[string]int
	}{
		{nil, map[string]int{"a": 10, "b": 10, "c": 10}},
		{lagmon.LSN(100), map[string]int{"a": 10, "b": 10, "c": 10}},
		{lagmon.LSN(150), map[string]int{"a": 15, "b": 15}},
		{lagmon.LSN(200), map[string]int{"a": 30}},
		{lagmon.LSN(201), map[string]int{"<nil>": 30}},
		{lagmon.GTIDSet{}, map[string]int{"<nil>": 30}}, // another kind of position
	} {
		if got := picks(c.set, 30, tc.need, true); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("need %v: %v, want %v", tc.need, got, tc.want)
		}
	}
}

func TestAllOut(t *testing.T) {
	c := newCluster(t, Options{})
	s := c.set
	if s.AllOut() {
		t.Fatal("AllOut with three good replicas")
	}
	s.Ban("a", "x")
	s.Ban("b", "x")
	c.reps["c"].set(nil, errors.New("down"))
	for range 3 {
		c.poll(time.Millisecond)
	}
	if !s.AllOut() || s.Pick(nil) != nil {
		t.Fatal("all replicas out, but AllOut false or Pick found one")
	}
	c.reps["c"].set(lagmon.LSN(100), nil)
	c.poll(time.Millisecond)
	if s.AllOut() || name(s.Pick(nil)) != "c" {
		t.Fatal("c is back but not used")
	}
	if !NewSet(nil, c.mon, Options{}).AllOut() || NewSet(nil, c.mon, Options{}).Pick(nil) != nil {
		t.Fatal("empty set")
	}
}

func TestUnknownToMonitor(t *testing.T) {
	c := newCluster(t, Options{})
	s := NewSet([]string{"a", "x", "a"}, c.mon, Options{Now: c.clock.Now})
	if got := picks(s, 10, nil, true); got["a"] != 10 {
		t.Fatalf("picks %v, want only a", got)
	}
	st := s.Status()
	if len(st) != 2 || st[1].Name != "x" || st[1].Healthy || st[1].Eligible {
		t.Fatalf("status %+v", st)
	}
}

func TestWithoutMonitor(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	s := NewSet([]string{"a", "b"}, nil, Options{BanFor: time.Second, Now: clock.Now})
	if got := picks(s, 10, nil, true); got["a"] != 5 || got["b"] != 5 {
		t.Fatalf("no monitor: %v", got)
	}
	if n := s.Pick(lagmon.LSN(1)); n != nil {
		t.Fatal("a position was needed and nothing can tell: want the primary")
	}
	s.Ban("a", "refused")
	if got := picks(s, 10, nil, true); got["b"] != 10 {
		t.Fatalf("a banned: %v", got)
	}
	clock.Advance(time.Second)
	if got := picks(s, 10, nil, true); got["a"] != 5 {
		t.Fatalf("ban over: %v", got)
	}
	if st := s.Status()[0]; !st.Healthy || st.LagBytes != -1 || !st.Eligible {
		t.Fatalf("status without monitor: %+v", st)
	}
}

func TestDone(t *testing.T) {
	c := newCluster(t, Options{})
	c.set.Done(nil)
	n := c.set.Pick(nil)
	c.set.Done(n)
	defer func() {
		if recover() == nil {
			t.Fatal("a second Done did not panic")
		}
	}()
	c.set.Done(n)
}

// TestConcurrent runs Pick and Done from many goroutines while bans come
// and go and the monitor polls; run with -race. Every read is counted once
// and nothing stays outstanding.
func TestConcurrent(t *testing.T) {
	c := newCluster(t, Options{MaxLag: time.Second, BanFor: time.Millisecond})
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		served  atomic.Int64
		primary atomic.Int64
	)
	for g := range 16 {
		wg.Go(func() {
			for i := 0; i < 5000; i++ {
				var need lagmon.Position
				if i%3 == 0 {
					need = lagmon.LSN(100 + g%2)
				}
				n := c.set.Pick(need)
				if n == nil {
					primary.Add(1)
					continue
				}
				served.Add(1)
				c.set.Done(n)
			}
		})
	}
	var bg sync.WaitGroup
	bg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			c.set.Ban([]string{"a", "b", "c"}[i%3], "stress")
			c.set.Status()
			c.set.AllOut()
			time.Sleep(100 * time.Microsecond)
		}
	})
	bg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			c.primary.set(lagmon.LSN(100+i%3), nil)
			c.poll(time.Millisecond)
		}
	})
	wg.Wait()
	stop.Store(true)
	bg.Wait()
	if served.Load()+primary.Load() != 16*5000 || served.Load() == 0 {
		t.Fatalf("served %d by replicas, %d by the primary", served.Load(), primary.Load())
	}
	for _, st := range c.set.Status() {
		if st.Outstanding != 0 {
			t.Fatalf("%s: %d outstanding", st.Name, st.Outstanding)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	c := newCluster(b, Options{MaxLag: time.Second})
	s := c.set
	var need lagmon.Position = lagmon.LSN(100)
	b.Run("any", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Done(s.Pick(nil))
		}
	})
	b.Run("need", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Done(s.Pick(need))
		}
	})
	b.Run("one-banned", func(b *testing.B) {
		s := NewSet([]string{"a", "b", "c"}, c.mon, Options{MaxLag: time.Second, Now: c.clock.Now, BanFor: time.Hour})
		s.Ban("b", "bench")
		b.ReportAllocs()
		for b.Loop() {
			s.Done(s.Pick(nil))
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.Done(s.Pick(need))
			}
		})
	})
}

// TestPrimaryDownNewestReplicas: while the primary cannot be reached, reads
// stay on the replicas, but only on those that hold the newest data there
// is: a replica behind another (its replay paused, say) gets none, and a
// replica that had all the primary wrote at its last sample always may.
func TestPrimaryDownNewestReplicas(t *testing.T) {
	c := newCluster(t, Options{MaxLag: time.Second})
	c.primary.set(lagmon.LSN(200), nil)
	c.reps["a"].set(lagmon.LSN(200), nil)
	c.reps["b"].set(lagmon.LSN(150), nil) // paused
	c.reps["c"].set(lagmon.LSN(200), nil)
	c.poll(time.Millisecond)
	if got := picks(c.set, 30, nil, true); got["b"] != 10 {
		t.Fatalf("b within max lag: %v, want it used", got)
	}
	c.primary.set(nil, lagmon.Unreachable(errors.New("connection refused")))
	for range 3 {
		c.poll(time.Millisecond)
	}
	if st := c.mon.Replica("b"); !st.PrimaryDown {
		t.Fatalf("primary refused: %+v, want PrimaryDown", st)
	}
	if got := picks(c.set, 30, nil, true); got["a"] != 15 || got["c"] != 15 {
		t.Fatalf("primary down: %v, want a and c only (b is behind them)", got)
	}
	// a and c fail too: b is then the newest there is.
	c.reps["a"].set(nil, errors.New("down"))
	c.reps["c"].set(nil, errors.New("down"))
	for range 3 {
		c.poll(time.Millisecond)
	}
	if got := picks(c.set, 30, nil, true); got["b"] != 30 {
		t.Fatalf("primary, a and c down: %v, want b", got)
	}
	// A primary that only times out is not down: no reads on replicas
	// whose lag is unknown.
	c.reps["a"].set(lagmon.LSN(200), nil)
	c.reps["c"].set(lagmon.LSN(200), nil)
	c.primary.set(nil, lagmon.Unreachable(context.DeadlineExceeded))
	for range 3 {
		c.poll(time.Millisecond)
	}
	if got := picks(c.set, 30, nil, true); got["<nil>"] != 30 || !c.set.LagUnknown() {
		t.Fatalf("primary probes time out: %v (LagUnknown %v), want every read on the primary", got, c.set.LagUnknown())
	}
}
