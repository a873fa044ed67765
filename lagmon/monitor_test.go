package lagmon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeClock is a settable clock shared by a test and its Monitor.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// fakeProber returns whatever position or error the test set last. With
// hang set, Probe blocks until release is closed, ignoring its context.
type fakeProber struct {
	mu         sync.Mutex
	pos        Position
	err        error
	panicWith  any
	hang       chan struct{}
	calls      int
	running    int
	maxRunning int
}

func (f *fakeProber) set(pos Position, err error) {
	f.mu.Lock()
	f.pos, f.err = pos, err
	f.mu.Unlock()
}

func (f *fakeProber) Probe(ctx context.Context) (Position, error) {
	f.mu.Lock()
	f.calls++
	f.running++
	f.maxRunning = max(f.maxRunning, f.running)
	pos, err, hang, p := f.pos, f.err, f.hang, f.panicWith
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
	}()
	if hang != nil {
		<-hang
	}
	if p != nil {
		panic(p)
	}
	return pos, err
}

func (f *fakeProber) stats() (calls, maxRunning, running int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.maxRunning, f.running
}

type fixture struct {
	clock   *fakeClock
	primary *fakeProber
	reps    map[string]*fakeProber
	m       *Monitor
}

func newFixture(t *testing.T, o Options, replicas ...string) *fixture {
	t.Helper()
	f := &fixture{clock: newClock(), primary: &fakeProber{}, reps: map[string]*fakeProber{}}
	probers := map[string]Prober{}
	for _, r := range replicas {
		f.reps[r] = &fakeProber{}
		probers[r] = f.reps[r]
	}
	o.Now = f.clock.Now
	f.m = New(f.primary, probers, o)
	t.Cleanup(f.m.Stop)
	return f
}

// round sets the primary's and the replicas' positions (nil: leave as is),
// polls once, and advances the clock by step afterwards.
func (f *fixture) round(step time.Duration, primary Position, replicas map[string]Position) time.Time {
	if primary != nil {
		f.primary.set(primary, nil)
	}
	for name, p := range replicas {
		f.reps[name].set(p, nil)
	}
	at := f.clock.Now()
	f.m.PollNow(context.Background())
	f.clock.Advance(step)
	return at
}

func TestLagIdlePrimary(t *testing.T) {
	f := newFixture(t, Options{}, "r1")
	f.round(time.Second, LSN(1000), map[string]Position{"r1": LSN(1000)})
	for range 120 { // two idle minutes
		f.round(time.Second, nil, nil)
		st := f.m.Replica("r1")
		if !st.Healthy || st.Lag != 0 || st.LagBytes != 0 || st.Err != nil {
			t.Fatalf("idle primary: status %+v, want healthy with no lag", st)
		}
	}
	if !f.m.CaughtUp("r1", LSN(1000)) || f.m.CaughtUp("r1", LSN(1001)) {
		t.Error("CaughtUp wrong")
	}
}

func TestLagGrowsWhileStuck(t *testing.T) {
	f := newFixture(t, Options{}, "r1", "r2")
	step := 100 * time.Millisecond
	f.round(step, LSN(1000), map[string]Position{"r1": LSN(1000), "r2": LSN(1000)})

	// The primary advances every round; r2 follows, r1 is stuck at 1000.
	// In the round where the primary first shows 1100 the replicas may or
	// may not see that sample yet; either way their lag is 0 then.
	wrote := f.round(step, LSN(1100), map[string]Position{"r2": LSN(1100)})
	if st := f.m.Replica("r1"); st.Lag != 0 {
		t.Fatalf("r1 lag in the round of the write = %v, want 0", st.Lag)
	}
	for i := 1; i <= 20; i++ {
		pos := LSN(1100 + 100*i)
		at := f.round(step, pos, map[string]Position{"r2": pos})
		st := f.m.Replica("r1")
		if want := at.Sub(wrote); st.Lag != want {
			t.Fatalf("round %d: r1 lag %v, want %v", i, st.Lag, want)
		}
		// The primary's sample of this round may or may not be in.
		if st.LagBytes != int64(pos-1000) && st.LagBytes != int64(pos-1100) {
			t.Fatalf("round %d: r1 lag bytes %d", i, st.LagBytes)
		}
		if !st.Healthy || !st.Position.AtLeast(LSN(1000)) {
			t.Fatalf("round %d: r1 %+v", i, st)
		}
		if st := f.m.Replica("r2"); st.Lag > step {
			t.Fatalf("round %d: r2 (following) lag %v", i, st.Lag)
		}
	}
	// r1 replays part of the way: its lag is now counted from the first
	// sample it has not reached.
	// 1550 reaches the sample 1500 but not 1600, taken at wrote+5*step.
	f.round(step, nil, map[string]Position{"r1": LSN(1550)})
	at := f.round(step, nil, nil)
	if st, want := f.m.Replica("r1"), at.Sub(wrote.Add(5*step)); st.Lag != want {
		t.Fatalf("after partial catch-up: lag %v, want %v", st.Lag, want)
	}
	// The primary goes idle; r1 catches up: lag 0.
	f.round(step, nil, map[string]Position{"r1": LSN(3100)})
	f.round(step, nil, nil)
	if st := f.m.Replica("r1"); st.Lag != 0 || st.LagBytes != 0 {
		t.Fatalf("caught up: %+v", st)
	}
	// A replica ahead of the primary's last sample is not lagging.
	f.round(step, nil, map[string]Position{"r1": LSN(3200)})
	if st := f.m.Replica("r1"); st.Lag != 0 || st.LagBytes != 0 {
		t.Fatalf("ahead: %+v", st)
	}
}

func TestLagGTID(t *testing.T) {
	f := newFixture(t, Options{}, "r1")
	step := time.Second
	f.round(step, mustMaria(t, "0-1-10"), map[string]Position{"r1": mustMaria(t, "0-1-10")})
	wrote := f.round(step, mustMaria(t, "0-1-11,1-1-1"), nil)
	at := f.round(step, nil, nil)
	st := f.m.Replica("r1")
	if st.Lag != at.Sub(wrote) || st.LagBytes != -1 {
		t.Fatalf("GTID lag %+v, want %v and LagBytes -1", st, at.Sub(wrote))
	}
	f.round(step, nil, map[string]Position{"r1": mustMaria(t, "0-1-11,1-1-1")})
	if st := f.m.Replica("r1"); st.Lag != 0 {
		t.Fatalf("caught up: %+v", st)
	}
}

func TestLagHistoryOverflow(t *testing.T) {
	f := newFixture(t, Options{History: 4}, "r1")
	step := time.Second
	start := f.round(step, LSN(1), map[string]Position{"r1": LSN(1)})
	var at time.Time
	for i := 2; i <= 10; i++ {
		at = f.round(step, LSN(i), nil)
	}
	f.round(step, nil, nil)
	// Samples 7..10 are kept; r1 (at 1) has not reached 7, taken at
	// start+6s: its lag is at least that sample's age, and not known.
	if st, want := f.m.Replica("r1"), at.Add(step).Sub(start.Add(6*step)); st.Lag != want || st.LagKnown {
		t.Fatalf("lag with overflowing history %v (known %v), want %v, unknown", st.Lag, st.LagKnown, want)
	}
	if p, ok := f.m.PrimaryAfter(start); !ok || p != LSN(7) {
		t.Fatalf("PrimaryAfter before the history: %v %v, want the oldest kept (7)", p, ok)
	}
}

func TestHealth(t *testing.T) {
	f := newFixture(t, Options{FailAfter: 3}, "r1")
	boom := errors.New("connection refused")

	if st := f.m.Replica("r1"); st.Healthy || st.Position != nil || st.LagBytes != -1 {
		t.Fatalf("before any probe: %+v", st)
	}
	// Failures before any success: never healthy.
	f.reps["r1"].set(nil, boom)
	f.round(time.Second, LSN(5), nil)
	if st := f.m.Replica("r1"); st.Healthy || !errors.Is(st.Err, boom) {
		t.Fatalf("failing from the start: %+v", st)
	}

	ok := f.round(time.Second, nil, map[string]Position{"r1": LSN(5)})
	for i := 1; i <= 3; i++ {
		f.reps["r1"].set(nil, boom)
		f.round(time.Second, nil, nil)
		st := f.m.Replica("r1")
		if st.Healthy != (i < 3) {
			t.Fatalf("after %d failures healthy = %v", i, st.Healthy)
		}
		if !errors.Is(st.Err, boom) || !strings.Contains(st.Err.Error(), "r1") {
			t.Fatalf("Err = %v, want the probe error naming the replica", st.Err)
		}
		// The last good position stays known.
		if st.Position != LSN(5) || !st.SampledAt.Equal(ok) {
			t.Fatalf("after %d failures: %+v", i, st)
		}
	}
	if f.m.CaughtUp("r1", LSN(1)) || f.m.CaughtUp("r1", nil) {
		t.Fatal("unhealthy replica reported caught up")
	}
	f.round(time.Second, nil, map[string]Position{"r1": LSN(5)})
	if st := f.m.Replica("r1"); !st.Healthy || st.Err != nil {
		t.Fatalf("after recovery: %+v", st)
	}
	if !f.m.CaughtUp("r1", nil) || !f.m.CaughtUp("r1", LSN(5)) {
		t.Fatal("recovered replica not caught up")
	}

	// A nil position without an error is a failure; so is a panic.
	f.reps["r1"].set(nil, nil)
	f.round(time.Second, nil, nil)
	if st := f.m.Replica("r1"); !errors.Is(st.Err, errNoPosition) {
		t.Fatalf("nil position: Err = %v", st.Err)
	}
	f.reps["r1"].mu.Lock()
	f.reps["r1"].panicWith = "kaboom"
	f.reps["r1"].mu.Unlock()
	f.round(time.Second, nil, nil)
	if st := f.m.Replica("r1"); st.Err == nil || !strings.Contains(st.Err.Error(), "kaboom") {
		t.Fatalf("panic: Err = %v", st.Err)
	}

	// The primary follows the same rule.
	f.primary.set(nil, boom)
	for i := 1; i <= 3; i++ {
		f.round(time.Second, nil, nil)
		if _, _, healthy := f.m.Primary(); healthy != (i < 3) {
			t.Fatalf("primary after %d failures healthy = %v", i, healthy)
		}
	}
	if !errors.Is(f.m.PrimaryErr(), boom) {
		t.Fatalf("PrimaryErr = %v", f.m.PrimaryErr())
	}
	at := f.round(time.Second, LSN(9), nil)
	if pos, sampled, healthy := f.m.Primary(); pos != LSN(9) || !sampled.Equal(at) || !healthy || f.m.PrimaryErr() != nil {
		t.Fatalf("primary after recovery: %v %v %v", pos, sampled, healthy)
	}
}

func TestPrimaryAfter(t *testing.T) {
	f := newFixture(t, Options{})
	if _, ok := f.m.PrimaryAfter(f.clock.Now()); ok {
		t.Fatal("PrimaryAfter before any sample returned a position")
	}
	step := 50 * time.Millisecond
	t0 := f.round(step, LSN(100), nil)
	t1 := f.round(step, LSN(100), nil) // same position: one run t0..t1
	t2 := f.round(step, LSN(200), nil)
	t3 := f.round(step, LSN(300), nil)
	for _, tc := range []struct {
		t    time.Time
		want Position
	}{
		{t0.Add(-time.Hour), LSN(100)},
		{t0, LSN(100)},
		{t0.Add(time.Millisecond), LSN(100)}, // the probe at t1 started after it
		{t1, LSN(100)},
		{t1.Add(time.Nanosecond), LSN(200)},
		{t2, LSN(200)},
		{t2.Add(time.Millisecond), LSN(300)},
		{t3, LSN(300)},
		{t3.Add(time.Nanosecond), nil},
	} {
		got, ok := f.m.PrimaryAfter(tc.t)
		if ok != (tc.want != nil) || got != tc.want {
			t.Errorf("PrimaryAfter(t0%+v) = %v, %v; want %v", tc.t.Sub(t0), got, ok, tc.want)
		}
	}
	// A failed probe adds no sample.
	f.primary.set(nil, errors.New("down"))
	f.round(step, nil, nil)
	if _, ok := f.m.PrimaryAfter(t3.Add(time.Nanosecond)); ok {
		t.Error("a failed probe produced a sample")
	}
}

func TestUnknownReplica(t *testing.T) {
	f := newFixture(t, Options{}, "r1")
	if st := f.m.Replica("nope"); st.Healthy || st.LagBytes != -1 {
		t.Errorf("unknown replica: %+v", st)
	}
	if f.m.CaughtUp("nope", nil) {
		t.Error("unknown replica caught up")
	}
	m := New(nil, nil, Options{})
	m.PollNow(context.Background())
	if pos, _, healthy := m.Primary(); pos != nil || healthy || m.PrimaryErr() != nil || len(m.Names()) != 0 {
		t.Error("monitor without nodes")
	}
}

func TestNames(t *testing.T) {
	f := newFixture(t, Options{}, "b:1", "a:1", "c:1")
	names := f.m.Names()
	if strings.Join(names, " ") != "a:1 b:1 c:1" {
		t.Fatalf("Names = %v", names)
	}
	names[0] = "x"
	if f.m.Names()[0] != "a:1" {
		t.Fatal("Names shares its slice")
	}
}

// TestStartStop polls in the background on the real clock: every node is
// probed repeatedly, never twice at once, and nothing runs after Stop.
func TestStartStop(t *testing.T) {
	p, r := &fakeProber{pos: LSN(1)}, &fakeProber{pos: LSN(1)}
	m := New(p, map[string]Prober{"r": r}, Options{Interval: 2 * time.Millisecond})
	m.Start()
	m.Start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pc, _, _ := p.stats()
		rc, _, _ := r.stats()
		if pc >= 5 && rc >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %d primary and %d replica probes", pc, rc)
		}
		m.PollNow(context.Background()) // racing the loops must be harmless
		time.Sleep(time.Millisecond)
	}
	m.Stop()
	m.Stop()
	for _, f := range []*fakeProber{p, r} {
		calls, maxRunning, running := f.stats()
		if maxRunning != 1 || running != 0 {
			t.Fatalf("probes overlapped (%d at once) or still run (%d)", maxRunning, running)
		}
		time.Sleep(10 * time.Millisecond)
		if again, _, _ := f.stats(); again != calls {
			t.Fatal("probing after Stop")
		}
	}
	if !m.CaughtUp("r", LSN(1)) {
		t.Fatal("status lost after Stop")
	}
	m.Start() // restartable
	m.Stop()
}

// TestHungProbe: a Prober that ignores its context makes its node
// unhealthy after FailAfter polls instead of freezing its status, is never
// called again while it hangs, and the node recovers when it returns.
func TestHungProbe(t *testing.T) {
	m, _, r, release := startHung(t, false)
	deadline := time.Now().Add(5 * time.Second)
	for m.Replica("r").Healthy {
		if time.Now().After(deadline) {
			t.Fatal("hung replica still healthy after 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := m.Replica("r")
	if st.Err == nil || !strings.Contains(st.Err.Error(), "not returned") && !strings.Contains(st.Err.Error(), "did not return") {
		t.Fatalf("hung replica: Err = %v", st.Err)
	}
	if _, _, healthy := m.Primary(); !healthy {
		t.Fatal("a hung replica made the primary unhealthy")
	}
	r.mu.Lock()
	r.hang = nil
	r.mu.Unlock()
	close(release)
	for !m.Replica("r").Healthy {
		if time.Now().After(deadline) {
			t.Fatal("replica not healthy again after its probe returned")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, maxRunning, _ := r.stats(); maxRunning != 1 {
		t.Fatalf("%d probes of one node ran at once", maxRunning)
	}
}

func TestCollector(t *testing.T) {
	f := newFixture(t, Options{}, "r1", "r2", "r3")
	f.round(time.Second, LSN(100), map[string]Position{"r1": LSN(100), "r2": LSN(100)})
	wrote := f.round(time.Second, LSN(300), nil)
	at := f.round(time.Second, nil, nil)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(f.m.Collector("main"))
	got := gauges(t, reg)
	want := map[string]float64{
		"switchyard_replica_healthy cluster=main replica=r1":     1,
		"switchyard_replica_healthy cluster=main replica=r2":     1,
		"switchyard_replica_healthy cluster=main replica=r3":     0,
		"switchyard_replica_lag_seconds cluster=main replica=r1": at.Sub(wrote).Seconds(),
		"switchyard_replica_lag_seconds cluster=main replica=r2": at.Sub(wrote).Seconds(),
		"switchyard_replica_lag_bytes cluster=main replica=r1":   200,
		"switchyard_replica_lag_bytes cluster=main replica=r2":   200,
		"switchyard_replica_lag_known cluster=main replica=r1":   1,
		"switchyard_replica_lag_known cluster=main replica=r2":   1,
		"switchyard_replica_lag_known cluster=main replica=r3":   0,
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// TestCollectorsSideBySide: a proxy registers one collector per replica
// runtime (a PostgreSQL cluster, a MySQL cluster, each shard) in one
// registry. Each must register and report; before the collectors' series
// carried the cluster as a constant label, every one after the first was
// refused as a duplicate and its replicas had no lag metrics at all (a
// MySQL cluster's switchyard_replica_lag_known was missing).
func TestCollectorsSideBySide(t *testing.T) {
	a := newFixture(t, Options{}, "r1")
	a.round(time.Second, LSN(100), map[string]Position{"r1": LSN(100)})
	b := newFixture(t, Options{}, "r1")
	reg := prometheus.NewPedanticRegistry()
	ca, cb := a.m.Collector("pg"), b.m.Collector("my")
	for _, c := range []prometheus.Collector{ca, cb} {
		if err := reg.Register(c); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	if err := reg.Register(a.m.Collector("pg")); err == nil {
		t.Error("a second collector of cluster pg registered")
	}
	got := gauges(t, reg)
	for k, v := range map[string]float64{
		"switchyard_replica_lag_known cluster=pg replica=r1": 1,
		"switchyard_replica_lag_known cluster=my replica=r1": 0,
		"switchyard_replica_healthy cluster=my replica=r1":   0,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v; have %v", k, g, ok, v, got)
		}
	}
	if !reg.Unregister(cb) {
		t.Error("unregistering cluster my's collector failed")
	}
	if err := reg.Register(b.m.Collector("my")); err != nil {
		t.Errorf("registering cluster my again after a reload: %v", err)
	}
}

func BenchmarkQueries(b *testing.B) {
	m := New(&fakeProber{pos: LSN(100)}, map[string]Prober{"10.0.0.1:5432": &fakeProber{pos: LSN(100)}}, Options{})
	m.PollNow(context.Background())
	now := time.Now()
	b.Run("Replica", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !m.Replica("10.0.0.1:5432").Healthy {
				b.Fatal()
			}
		}
	})
	b.Run("CaughtUp", func(b *testing.B) {
		b.ReportAllocs()
		var need Position = LSN(50)
		for b.Loop() {
			if !m.CaughtUp("10.0.0.1:5432", need) {
				b.Fatal()
			}
		}
	})
	b.Run("PrimaryAfter", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := m.PrimaryAfter(now.Add(-time.Hour)); !ok {
				b.Fatal()
			}
		}
	})
}

// Lag that cannot be measured is not zero: before the primary has been
// read, and while its probes fail, a replica's lag is unknown (it used to
// report 0 for ever once the primary could not be probed).
func TestLagUnknownWithoutPrimary(t *testing.T) {
	f := newFixture(t, Options{FailAfter: 2}, "r1")
	f.primary.set(nil, errors.New("permission denied"))
	f.round(time.Second, nil, map[string]Position{"r1": LSN(1000)})
	if st := f.m.Replica("r1"); !st.Healthy || st.LagKnown {
		t.Fatalf("primary never read: status %+v, want healthy with unknown lag", st)
	}
	f.round(time.Second, LSN(1000), nil)
	if st := f.m.Replica("r1"); !st.LagKnown || st.Lag != 0 {
		t.Fatalf("primary read: status %+v, want known lag 0", st)
	}
	f.primary.set(nil, errors.New("connection refused"))
	for range 3 {
		f.round(time.Second, nil, nil)
	}
	if st := f.m.Replica("r1"); !st.Healthy || st.LagKnown {
		t.Fatalf("primary failing: status %+v, want healthy with unknown lag", st)
	}
}

// Fresh probes a node now when its last sample is older than asked, and
// concurrent callers share one probe.
func TestFreshCoalesces(t *testing.T) {
	f := newFixture(t, Options{}, "r1")
	f.round(time.Second, LSN(100), map[string]Position{"r1": LSN(100)})
	calls, _, _ := f.reps["r1"].stats()
	f.reps["r1"].set(LSN(200), nil)
	after := f.clock.Now()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if !f.m.Fresh(context.Background(), "r1", after) {
				t.Error("Fresh failed")
			}
		})
	}
	wg.Wait()
	if st := f.m.Replica("r1"); !st.Position.AtLeast(LSN(200)) {
		t.Fatalf("after Fresh: position %v, want 200", st.Position)
	}
	if c, _, _ := f.reps["r1"].stats(); c-calls > 3 {
		t.Errorf("10 concurrent Fresh calls made %d probes, want them shared", c-calls)
	}
	// A sample new enough already: no probe.
	c0, _, _ := f.reps["r1"].stats()
	if !f.m.Fresh(context.Background(), "r1", after) {
		t.Fatal("Fresh failed")
	}
	if c, _, _ := f.reps["r1"].stats(); c != c0 {
		t.Errorf("Fresh probed although the last sample was new enough")
	}
	// A failing probe: false.
	f.reps["r1"].set(nil, errors.New("boom"))
	f.clock.Advance(time.Second)
	if f.m.Fresh(context.Background(), "r1", f.clock.Now()) {
		t.Error("Fresh succeeded with a failing probe")
	}
}

// TestPrimaryDownOnlyWhenUnreachable: a primary whose probes fail to reach
// it (refused) is down; one whose probes time out, or hang, is only
// failing: it may be busy, and replicas' lag then stays unknown with
// nothing to excuse it.
func TestPrimaryDownOnlyWhenUnreachable(t *testing.T) {
	if !errors.Is(Unreachable(errors.New("connection refused")), ErrUnreachable) {
		t.Fatal("a refused connection is not ErrUnreachable")
	}
	for _, err := range []error{
		context.DeadlineExceeded,
		fmt.Errorf("dial: %w", context.DeadlineExceeded),
		&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded},
	} {
		if errors.Is(Unreachable(err), ErrUnreachable) {
			t.Errorf("Unreachable(%v) marks a timeout as unreachable", err)
		}
	}

	for _, tc := range []struct {
		name     string
		fail     func(f *fixture)
		wantDown bool
	}{
		{"refused", func(f *fixture) { f.primary.set(nil, Unreachable(errors.New("connection refused"))) }, true},
		{"timed out", func(f *fixture) {
			f.primary.set(nil, Unreachable(fmt.Errorf("read: %w", os.ErrDeadlineExceeded)))
		}, false},
		{"refused by the server", func(f *fixture) { f.primary.set(nil, errors.New("permission denied")) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{}, "r1")
			f.round(time.Second, LSN(10), map[string]Position{"r1": LSN(10)})
			tc.fail(f)
			for range 3 {
				f.round(time.Second, nil, nil)
			}
			st := f.m.Replica("r1")
			if st.LagKnown || st.PrimaryDown != tc.wantDown {
				t.Fatalf("replica status %+v; want lag unknown, PrimaryDown %v", st, tc.wantDown)
			}
		})
	}

	// A primary probe that hangs past its timeout.
	m, _, _, release := startHung(t, true)
	defer close(release)
	deadline := time.Now().Add(5 * time.Second)
	for m.Replica("r").LagKnown {
		if time.Now().After(deadline) {
			t.Fatal("lag still known 5s after the primary's probe hung")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 10 {
		if st := m.Replica("r"); st.PrimaryDown {
			t.Fatalf("a hung primary probe counts as the primary down: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gauges gathers reg's gauges by "name label=value ..." keys.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	return got
}

// startHung starts a monitor of primary p and replica "r" (fast polls,
// a 20 ms timeout) after one good poll, then makes the primary's probe
// (primary) or the replica's hang, ignoring its context, until release
// is closed. The monitor stops with the test.
func startHung(t *testing.T, primary bool) (m *Monitor, p, r *fakeProber, release chan struct{}) {
	p, r = &fakeProber{pos: LSN(1)}, &fakeProber{pos: LSN(1)}
	m = New(p, map[string]Prober{"r": r}, Options{Interval: 5 * time.Millisecond, Timeout: 20 * time.Millisecond})
	m.PollNow(context.Background())
	release = make(chan struct{})
	h := r
	if primary {
		h = p
	}
	h.mu.Lock()
	h.hang = release
	h.mu.Unlock()
	m.Start()
	t.Cleanup(m.Stop)
	return m, p, r, release
}

// A fresh monitor (the proxy's start, a reload that changed the lag
// settings) has a history of one sample: a replica behind it may be any
// distance behind, and its lag is unknown (no reads), not the age of
// that sample (milliseconds). Once it passes a kept sample its lag is
// known again.
func TestLagUnknownBehindYoungHistory(t *testing.T) {
	f := newFixture(t, Options{}, "r1")
	f.round(time.Millisecond, LSN(1000), map[string]Position{"r1": LSN(10)})
	f.round(time.Millisecond, nil, nil)
	if st := f.m.Replica("r1"); st.LagKnown || st.LagBytes != 990 {
		t.Fatalf("a replica behind the only sample: %+v, want lag unknown, 990 bytes behind", st)
	}
	f.round(time.Millisecond, LSN(1010), map[string]Position{"r1": LSN(1000)})
	f.round(time.Millisecond, nil, nil)
	if st := f.m.Replica("r1"); !st.LagKnown || st.Lag > 10*time.Millisecond {
		t.Fatalf("a replica that reached a kept sample: %+v, want a known lag of a few ms", st)
	}
}
