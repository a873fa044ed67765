package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewRefusesNonsense(t *testing.T) {
	for name, o := range map[string]Options{
		"no dial": {Name: "x", Size: 1},
		"size 0":  {Name: "x", Dial: (&fakeDialer{}).Dial},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("New did not panic")
				}
			}()
			New(o).Close()
		})
	}
}

func TestGetPutLIFOAndReused(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 3})
	a, b, c := mustGet(t, p), mustGet(t, p), mustGet(t, p)
	for _, s := range []*Server{a, b, c} {
		if s.Reused() {
			t.Errorf("conn %d dialed for this Get reports Reused", id(s))
		}
		if s.Created().IsZero() {
			t.Errorf("conn %d has no creation time", id(s))
		}
	}
	p.Put(a, true)
	p.Put(b, true)
	p.Put(c, true)
	// Most recently returned first, so a surplus sinks and times out.
	for _, want := range []*Server{c, b, a} {
		s := mustGet(t, p)
		if s != want {
			t.Fatalf("got conn %d, want %d", id(s), id(want))
		}
		if !s.Reused() {
			t.Errorf("conn %d from the idle stack does not report Reused", id(s))
		}
		defer p.Put(s, true)
	}
	if st := p.Stats(); st.Dials != 3 || st.Gets != 6 || st.Waits != 3 || st.Active != 3 || st.Open != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestPutNotLeasedPanics(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 1})
	other, _ := newTestPool(t, Options{Size: 1})
	s := mustGet(t, p)
	p.Put(s, true)

	mustPanic := func(what, want string, f func()) {
		t.Helper()
		defer func() {
			r := recover()
			if r == nil {
				t.Fatalf("%s did not panic", what)
			}
			if msg := fmt.Sprint(r); !strings.Contains(msg, want) {
				t.Errorf("%s panicked with %q, want it to mention %q", what, msg, want)
			}
		}()
		f()
	}
	mustPanic("double Put", "double Put", func() { p.Put(s, true) })
	mustPanic("Put to another pool", "did not lease", func() { other.Put(s, true) })
	mustPanic("Put(nil)", "did not lease", func() { p.Put(nil, false) })

	// The panics left the pool usable: the lock was released.
	s = mustGet(t, p)
	p.Put(s, true)
}

// TestSizeNeverExceeded hammers a small pool from 200 goroutines with every
// path mixed in: timeouts, cancels, discards, failed checks, invalidation,
// pauses and a busy janitor. The server must never see more than Size
// connections, and nothing may leak.
func TestSizeNeverExceeded(t *testing.T) {
	const size, workers, rounds = 8, 200, 100
	var leased, maxLeased atomic.Int64
	p, d := newTestPool(t, Options{
		Size:            size,
		MinSize:         2,
		WaitTimeout:     20 * time.Millisecond,
		IdleTimeout:     2 * time.Millisecond,
		Lifetime:        10 * time.Millisecond,
		CheckDelay:      time.Millisecond,
		JanitorInterval: time.Millisecond,
		Alive:           func(Conn) bool { return rand.IntN(50) != 0 },
		Ping: func(ctx context.Context, c Conn) error {
			if rand.IntN(20) == 0 {
				return errors.New("ping failed")
			}
			return nil
		},
	})
	d.setStep(func(context.Context) error {
		if rand.IntN(30) == 0 {
			return errors.New("refused")
		}
		return nil
	})

	stop := make(chan struct{})
	var chaos sync.WaitGroup
	chaos.Add(1)
	go func() {
		defer chaos.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(rand.IntN(3000)) * time.Microsecond):
			}
			switch rand.IntN(3) {
			case 0:
				p.Invalidate()
			case 1:
				p.Pause()
				time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
				p.Resume()
			}
		}
	}()

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if rand.IntN(10) == 0 {
					ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(2000))*time.Microsecond)
				}
				s, err := p.Get(ctx)
				cancel()
				if err != nil {
					continue
				}
				n := leased.Add(1)
				for m := maxLeased.Load(); n > m && !maxLeased.CompareAndSwap(m, n); m = maxLeased.Load() {
				}
				if rand.IntN(4) == 0 {
					time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
				}
				leased.Add(-1)
				p.Put(s, rand.IntN(10) != 0)
			}
		}()
	}
	wg.Wait()
	close(stop)
	chaos.Wait()
	p.Resume()

	// The janitor may still be dialing up to MinSize.
	eventually(t, "background dials done", func() bool { return p.Stats().Dialing == 0 })
	checkInvariants(t, p)
	st := p.Stats()
	if st.Active != 0 || st.Waiting != 0 || st.Dialing != 0 {
		t.Errorf("after the storm: %+v", st)
	}
	if m := maxLeased.Load(); m > size {
		t.Errorf("%d leased at once, Size %d", m, size)
	}
	if m := d.maxLive.Load(); m > size {
		t.Errorf("%d connections open at the server at once, Size %d", m, size)
	}
	t.Logf("stats %+v, most open at once %d", st, d.maxLive.Load())
	p.Close()
	if n := d.live.Load(); n != 0 {
		t.Errorf("%d connections left open after Close", n)
	}
}

func TestFIFOFairness(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 1})
	held := mustGet(t, p)

	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := p.Get(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			p.Put(s, true)
		}()
		eventually(t, fmt.Sprintf("%d waiting", i+1), waiting(p, i+1))
	}
	checkInvariants(t, p)
	p.Put(held, true)
	wg.Wait()
	if want := []int{0, 1, 2, 3, 4}; !slices.Equal(order, want) {
		t.Errorf("served in order %v, want %v", order, want)
	}
}

// A Put goes to the queue, not to the idle stack where a newcomer could
// take it ahead of those waiting.
func TestPutHandsToWaiterNotNewcomer(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 1})
	held := mustGet(t, p)
	ch := goGet(context.Background(), p)
	eventually(t, "one waiting", waiting(p, 1))
	p.Put(held, true)
	if st := p.Stats(); st.Idle != 0 {
		t.Fatalf("returned connection went idle with a waiter in line: %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if s, err := p.Get(ctx); err == nil {
		t.Errorf("newcomer got conn %d ahead of the waiter", id(s))
		p.Put(s, true)
	}
	r := recv(t, ch)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.s != held || !r.s.Reused() {
		t.Errorf("waiter got conn %d (reused %v), want the returned one", id(r.s), r.s.Reused())
	}
	p.Put(r.s, true)
}

func TestWaitTimeout(t *testing.T) {
	const name = "pg/app@127.0.0.1:5432 user=app"
	var waits []time.Duration
	var mu sync.Mutex
	p, _ := newTestPool(t, Options{Name: name, Size: 1, WaitTimeout: 50 * time.Millisecond,
		OnWait: func(d time.Duration) { mu.Lock(); waits = append(waits, d); mu.Unlock() }})
	held := mustGet(t, p)
	defer p.Put(held, true)

	start := time.Now()
	_, err := p.Get(context.Background())
	elapsed := time.Since(start)
	if !errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("got %v, want ErrWaitTimeout", err)
	}
	want := `no server connection available in pool "pg/app@127.0.0.1:5432 user=app" within 50ms (1 in use, 0 waiting)`
	if err.Error() != want {
		t.Errorf("error\n  %s\nwant\n  %s", err, want)
	}
	if elapsed < 50*time.Millisecond || elapsed > time.Second {
		t.Errorf("gave up after %v, want 50ms", elapsed)
	}
	st := p.Stats()
	if st.WaitTimeouts != 1 || st.Waiting != 0 || st.MaxWait < 50*time.Millisecond {
		t.Errorf("stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 2 || waits[0] == 0 || waits[1] < 50*time.Millisecond {
		t.Errorf("OnWait saw %v, want a dial wait then ≥50ms", waits)
	}
}

// The error counts the others still in line, so it tells how far behind the
// pool is.
func TestWaitTimeoutCountsWaiters(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 1, WaitTimeout: 150 * time.Millisecond})
	held := mustGet(t, p)
	defer p.Put(held, true)
	var chs []<-chan result
	for i := range 3 {
		chs = append(chs, goGet(context.Background(), p))
		eventually(t, "queued", waiting(p, i+1))
	}
	var got []string
	for _, ch := range chs {
		got = append(got, recv(t, ch).err.Error())
	}
	// They time out one after another, whatever order the timers fire in.
	slices.Sort(got)
	for i, msg := range got {
		want := fmt.Sprintf(`no server connection available in pool "t" within 150ms (1 in use, %d waiting)`, i)
		if msg != want {
			t.Errorf("%s\nwant %s", msg, want)
		}
	}
}

func TestGetCanceled(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 1})
	held := mustGet(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	ch := goGet(ctx, p)
	eventually(t, "one waiting", waiting(p, 1))
	cancel()
	r := recv(t, ch)
	if !errors.Is(r.err, context.Canceled) || !strings.Contains(r.err.Error(), `pool "t"`) {
		t.Fatalf("got %v, want a wrapped context.Canceled naming the pool", r.err)
	}
	p.Put(held, true)
	if st := p.Stats(); st.Waiting != 0 || st.Idle != 1 || st.Active != 0 {
		t.Errorf("stats %+v", st)
	}
	// Already canceled: no wait, no dial.
	if _, err := p.Get(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a canceled ctx: %v", err)
	}
}

// A handoff and a timeout (or cancel) can happen at the same moment. Either
// the waiter gets the connection or the connection stays in the pool; it
// must never fall between the two.
func TestHandoffRacesGiveUp(t *testing.T) {
	for _, mode := range []string{"timeout", "cancel"} {
		t.Run(mode, func(t *testing.T) {
			o := Options{Size: 1}
			if mode == "timeout" {
				o.WaitTimeout = time.Millisecond
			}
			p, d := newTestPool(t, o)
			got := 0
			for range 300 {
				held := mustGet(t, p)
				ctx, cancel := context.WithCancel(context.Background())
				ch := goGet(ctx, p)
				time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
				if mode == "cancel" {
					go cancel()
				}
				p.Put(held, true)
				r := recv(t, ch)
				cancel()
				if r.err == nil {
					got++
					p.Put(r.s, true)
				}
				checkInvariants(t, p)
				if st := p.Stats(); st.Active != 0 || st.Idle != 1 || st.Open != 1 || st.Waiting != 0 {
					t.Fatalf("connection leaked or lost: %+v", st)
				}
			}
			if d.live.Load() != 1 {
				t.Errorf("%d connections at the server, want 1", d.live.Load())
			}
			t.Logf("%d of 300 waiters won the race", got)
		})
	}
}

func TestDialErrorReturnedAndPoolRecovers(t *testing.T) {
	errBoom := errors.New("boom")
	p, d := newTestPool(t, Options{Size: 1})
	var fail atomic.Bool
	fail.Store(true)
	d.setStep(func(context.Context) error {
		if fail.Load() {
			return errBoom
		}
		return nil
	})
	_, err := p.Get(context.Background())
	if !errors.Is(err, errBoom) || err.Error() != `connecting to server for pool "t": boom` {
		t.Fatalf("got %v", err)
	}
	if st := p.Stats(); st.DialErrors != 1 || st.Dials != 1 || st.Open != 0 {
		t.Errorf("stats %+v", st)
	}
	fail.Store(false)
	p.Put(mustGet(t, p), true)
}

// The dial error goes to the Get that dialed; the Gets behind it keep
// waiting, and the freed slot becomes a dial for the next one.
func TestDialErrorOtherWaitersKeepWaiting(t *testing.T) {
	p, d := newTestPool(t, Options{Size: 1})
	outcomes := make(chan error)
	d.setStep(func(context.Context) error { return <-outcomes })

	a := goGet(context.Background(), p)
	eventually(t, "a dialing", func() bool { return p.Stats().Dialing == 1 })
	b := goGet(context.Background(), p)
	eventually(t, "b waiting", waiting(p, 1)) // the dial holds the only slot

	outcomes <- errors.New("refused")
	if r := recv(t, a); r.err == nil || !strings.Contains(r.err.Error(), "refused") {
		t.Fatalf("a: %v", r.err)
	}
	outcomes <- nil
	r := recv(t, b)
	if r.err != nil {
		t.Fatalf("b: %v", r.err)
	}
	if r.s.Reused() {
		t.Error("b's fresh connection reports Reused")
	}
	p.Put(r.s, true)
}

func TestWaitTimeoutWhileDialing(t *testing.T) {
	p, d := newTestPool(t, Options{Size: 1, WaitTimeout: 30 * time.Millisecond})
	d.setStep(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	_, err := p.Get(context.Background())
	if !errors.Is(err, ErrWaitTimeout) || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "within 30ms") || !strings.Contains(err.Error(), "connecting to server") {
		t.Fatalf("got %v", err)
	}
	if st := p.Stats(); st.WaitTimeouts != 1 || st.DialErrors != 1 || st.Open != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestIdleTimeoutKeepsMinSize(t *testing.T) {
	p, d := newTestPool(t, Options{Size: 6, MinSize: 2, IdleTimeout: 20 * time.Millisecond, JanitorInterval: 5 * time.Millisecond})
	eventually(t, "warmed up to MinSize", func() bool { st := p.Stats(); return st.Idle == 2 && st.Open == 2 })

	var ss []*Server
	for range 5 {
		ss = append(ss, mustGet(t, p))
	}
	if !ss[0].Reused() || ss[4].Reused() {
		t.Error("a pre-warmed connection must report Reused, a fresh one not")
	}
	for _, s := range ss {
		p.Put(s, true)
	}
	eventually(t, "surplus closed", func() bool { return p.Stats().Open == 2 })
	time.Sleep(40 * time.Millisecond) // two more idle timeouts: MinSize stays
	if st := p.Stats(); st.Open != 2 || st.Idle != 2 || st.Dials != 5 || st.Closed != 3 {
		t.Errorf("stats %+v", st)
	}
	if d.live.Load() != 2 {
		t.Errorf("%d open at the server, want 2", d.live.Load())
	}

	p.Invalidate()
	eventually(t, "refilled to MinSize", func() bool { return p.Stats().Idle == 2 })
}

func TestRefillBacksOff(t *testing.T) {
	d := &fakeDialer{}
	d.setStep(func(context.Context) error { return errors.New("down") })
	p, _ := newTestPoolWith(t, d, Options{Size: 2, MinSize: 1, JanitorInterval: time.Millisecond})
	time.Sleep(60 * time.Millisecond)
	// Without backoff this would be ~60; with it 1+2+4+8+16+32 ms apart.
	if n := p.Stats().DialErrors; n < 1 || n > 10 {
		t.Errorf("%d background dials in 60ms", n)
	}
	d.setStep(nil)
	eventually(t, "refilled", func() bool { return p.Stats().Idle == 1 })
}

func TestLifetimeStaggered(t *testing.T) {
	const n, lifetime = 200, time.Second
	p, _ := newTestPool(t, Options{Size: n, Lifetime: lifetime})
	lo, hi := lifetime, time.Duration(0)
	var ss []*Server
	for range n {
		s := mustGet(t, p)
		ss = append(ss, s)
		l := s.expires - s.born
		if l < lifetime*8/10 || l > lifetime {
			t.Errorf("lifetime %v outside [0.8, 1] × %v", l, lifetime)
		}
		lo, hi = min(lo, l), max(hi, l)
	}
	if hi-lo < lifetime/10 {
		t.Errorf("lifetimes only spread over [%v, %v]: a pool would reconnect all at once", lo, hi)
	}
	for _, s := range ss {
		p.Put(s, true)
	}
}

func TestLifetimeExpiry(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 2, Lifetime: 20 * time.Millisecond, JanitorInterval: 5 * time.Millisecond})
	s := mustGet(t, p)
	p.Put(s, true)
	eventually(t, "idle connection past its lifetime closed", func() bool { return p.Stats().Closed == 1 })

	s = mustGet(t, p)
	time.Sleep(25 * time.Millisecond)
	p.Put(s, true)
	if st := p.Stats(); st.Closed != 2 || st.Open != 0 || !s.Conn.(*fakeConn).closed.Load() {
		t.Errorf("connection past its lifetime was kept on Put: %+v", st)
	}
}

func TestAliveFailureReplaced(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 2, Alive: alive})
	a, b := mustGet(t, p), mustGet(t, p)
	p.Put(a, true)
	p.Put(b, true)
	b.Conn.(*fakeConn).dead.Store(true) // on top of the stack
	s := mustGet(t, p)
	if s != a {
		t.Errorf("got conn %d, want %d", id(s), id(a))
	}
	if !b.Conn.(*fakeConn).closed.Load() {
		t.Error("dead connection was not closed")
	}
	a.Conn.(*fakeConn).dead.Store(true)
	p.Put(s, true)
	s = mustGet(t, p) // all idle ones dead: dial
	if s.Reused() || id(s) != 3 {
		t.Errorf("got conn %d (reused %v), want a new one", id(s), s.Reused())
	}
	p.Put(s, true)
	if st := p.Stats(); st.Closed != 2 || st.Open != 1 {
		t.Errorf("stats %+v", st)
	}
}

// Within AliveDelay of its return a connection is handed out without
// Alive (no system call per lease under load); after it, Alive runs again.
func TestAliveSkippedWithinAliveDelay(t *testing.T) {
	var checks atomic.Int32
	p, _ := newTestPool(t, Options{Size: 1, AliveDelay: time.Second,
		Alive: func(c Conn) bool { checks.Add(1); return alive(c) }})
	a := mustGet(t, p)
	p.Put(a, true)
	for i := 0; i < 5; i++ {
		p.Put(mustGet(t, p), true)
	}
	if n := checks.Load(); n != 0 {
		t.Errorf("Alive ran %d times on a connection returned moments ago", n)
	}
	p2, _ := newTestPool(t, Options{Size: 1, AliveDelay: 30 * time.Millisecond,
		Alive: func(c Conn) bool { checks.Add(1); return alive(c) }})
	b := mustGet(t, p2)
	p2.Put(b, true)
	b.Conn.(*fakeConn).dead.Store(true)
	time.Sleep(60 * time.Millisecond)
	s := mustGet(t, p2)
	if s == b || !b.Conn.(*fakeConn).closed.Load() || checks.Load() != 1 {
		t.Errorf("a dead connection idle past AliveDelay was handed out (or not closed); %d checks", checks.Load())
	}
	p2.Put(s, true)
}

// GetAlive, the retry after a connection found dead, looks at an idle
// connection however recently it was returned: one returned along with the
// dead one may have died with it.
func TestGetAliveChecksWithinAliveDelay(t *testing.T) {
	var checks atomic.Int32
	p, _ := newTestPool(t, Options{Size: 2, AliveDelay: time.Hour,
		Alive: func(c Conn) bool { checks.Add(1); return alive(c) }})
	a := mustGet(t, p)
	p.Put(a, true)
	a.Conn.(*fakeConn).dead.Store(true)
	s, err := p.GetAlive(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s == a || s.Reused() || !a.Conn.(*fakeConn).closed.Load() || checks.Load() != 1 {
		t.Errorf("GetAlive handed out a dead connection returned moments ago (or did not close it); %d checks", checks.Load())
	}
	p.Put(s, true)
	// A live one passes the look and is reused.
	if s2, err := p.GetAlive(context.Background()); err != nil || s2 != s || checks.Load() != 2 {
		t.Errorf("GetAlive: %v, same conn %v, %d checks", err, s2 == s, checks.Load())
	} else {
		p.Put(s2, true)
	}
}

func TestPingAfterCheckDelay(t *testing.T) {
	var pings atomic.Int32
	p, _ := newTestPool(t, Options{Size: 2, CheckDelay: 50 * time.Millisecond,
		Ping: func(ctx context.Context, c Conn) error { pings.Add(1); return ping(ctx, c) }})
	a := mustGet(t, p)
	p.Put(a, true)
	p.Put(mustGet(t, p), true)
	if n := pings.Load(); n != 0 {
		t.Errorf("%d pings of a connection idle for less than CheckDelay", n)
	}
	time.Sleep(60 * time.Millisecond)
	s := mustGet(t, p)
	if n := pings.Load(); n != 1 || s != a {
		t.Errorf("%d pings, conn %d", n, id(s))
	}
	s.Conn.(*fakeConn).badPing.Store(true)
	p.Put(s, true)
	time.Sleep(60 * time.Millisecond)
	s = mustGet(t, p)
	if s == a || !a.Conn.(*fakeConn).closed.Load() {
		t.Error("connection that failed its ping was handed out or not closed")
	}
	p.Put(s, true)
}

// A connection that fails its check after a wait is replaced for the same
// waiter, which keeps its turn.
func TestWaiterGetsReplacementForDeadConn(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 1, Alive: alive})
	held := mustGet(t, p)
	ch := goGet(context.Background(), p)
	eventually(t, "waiting", waiting(p, 1))
	held.Conn.(*fakeConn).dead.Store(true)
	p.Put(held, true)
	r := recv(t, ch)
	if r.err != nil || r.s == held || r.s.Reused() {
		t.Fatalf("got %v, %v", r.s, r.err)
	}
	p.Put(r.s, true)
}

func TestInvalidate(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 3})
	a, b, c := mustGet(t, p), mustGet(t, p), mustGet(t, p)
	p.Put(a, true)
	p.Put(b, true)
	p.Invalidate()
	if !a.Conn.(*fakeConn).closed.Load() || !b.Conn.(*fakeConn).closed.Load() {
		t.Error("idle connections survived Invalidate")
	}
	if c.Conn.(*fakeConn).closed.Load() {
		t.Error("leased connection closed under its client")
	}
	p.Put(c, true)
	if !c.Conn.(*fakeConn).closed.Load() {
		t.Error("leased connection from before Invalidate was kept on Put")
	}
	s := mustGet(t, p)
	if id(s) != 4 {
		t.Errorf("got conn %d, want a new one", id(s))
	}
	p.Put(s, true)
	if st := p.Stats(); st.Open != 1 || st.Closed != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestPauseResume(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 2})
	a := mustGet(t, p)
	p.Put(a, true)
	p.Pause()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.Get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get while paused: %v", err)
	}
	first := goGet(context.Background(), p)
	second := goGet(context.Background(), p)
	eventually(t, "two waiting", waiting(p, 2))
	time.Sleep(10 * time.Millisecond)
	if st := p.Stats(); st.Dials != 1 || st.Idle != 1 {
		t.Fatalf("paused pool dialed or handed out: %+v", st)
	}
	p.Resume()
	r1, r2 := recv(t, first), recv(t, second)
	if r1.err != nil || r2.err != nil {
		t.Fatal(r1.err, r2.err)
	}
	if r1.s == r2.s {
		t.Fatal("one connection leased twice")
	}
	p.Put(r1.s, true)
	p.Put(r2.s, true)
}

func TestPauseStopsRefill(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 2, MinSize: 1, JanitorInterval: 2 * time.Millisecond})
	eventually(t, "warmed up", func() bool { return p.Stats().Idle == 1 })
	p.Pause()
	p.Invalidate()
	time.Sleep(20 * time.Millisecond)
	if st := p.Stats(); st.Open != 0 || st.Dials != 1 {
		t.Fatalf("paused pool refilled: %+v", st)
	}
	p.Resume()
	eventually(t, "refilled after Resume", func() bool { return p.Stats().Idle == 1 })
}

func TestClose(t *testing.T) {
	p, d := newTestPool(t, Options{Size: 3, MinSize: 1, JanitorInterval: time.Millisecond})
	eventually(t, "warmed up", func() bool { return p.Stats().Idle == 1 })
	a, b, c := mustGet(t, p), mustGet(t, p), mustGet(t, p)
	p.Put(c, true)
	p.Pause() // so that the waiter below stays in line with c idle
	w := goGet(context.Background(), p)
	eventually(t, "waiting", waiting(p, 1))

	p.Close()
	if !c.Conn.(*fakeConn).closed.Load() {
		t.Error("idle connection survived Close")
	}
	if r := recv(t, w); !errors.Is(r.err, ErrClosed) || r.err.Error() != `pool "t": pool closed` {
		t.Errorf("waiter got %v, want ErrClosed", r.err)
	}
	if _, err := p.Get(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	p.Put(a, true)
	p.Put(b, false)
	if !a.Conn.(*fakeConn).closed.Load() || !b.Conn.(*fakeConn).closed.Load() {
		t.Error("Put after Close kept the connection")
	}
	p.Close() // again: harmless
	noPoolGoroutines(t)
	if n := d.live.Load(); n != 0 {
		t.Errorf("%d open after Close", n)
	}
}

// A Get that was dialing when the pool closed gets ErrClosed, and the
// connection it dialed is closed rather than leaked.
func TestCloseWhileDialing(t *testing.T) {
	p, d := newTestPool(t, Options{Size: 1})
	release := make(chan struct{})
	d.setStep(func(context.Context) error { <-release; return nil })
	ch := goGet(context.Background(), p)
	eventually(t, "dialing", func() bool { return p.Stats().Dialing == 1 })
	p.Close()
	close(release)
	if r := recv(t, ch); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("got %v", r.err)
	}
	if n := d.live.Load(); n != 0 {
		t.Errorf("%d connections open", n)
	}
}

func TestDrainWaitsForLeases(t *testing.T) {
	p, d := newTestPool(t, Options{Size: 2})
	a := mustGet(t, p)
	p.Put(mustGet(t, p), true)
	done := make(chan error, 1)
	go func() { done <- p.Drain(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Drain returned with a connection leased: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	if a.Conn.(*fakeConn).closed.Load() {
		t.Fatal("Drain closed a leased connection before its context ended")
	}
	p.Put(a, true)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("Drain did not return after the last Put")
	}
	if d.live.Load() != 0 {
		t.Errorf("%d open after Drain", d.live.Load())
	}
}

func TestDrainForceCloses(t *testing.T) {
	p, d := newTestPool(t, Options{Size: 2})
	a := mustGet(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := p.Drain(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "closed 1 server connections still in use") {
		t.Fatalf("got %v", err)
	}
	if !a.Conn.(*fakeConn).closed.Load() {
		t.Fatal("leased connection was not closed")
	}
	p.Put(a, true) // the client noticed; no double close, no panic
	if st := p.Stats(); st.Open != 0 || st.Active != 0 || st.Closed != 1 {
		t.Errorf("stats %+v", st)
	}
	if d.doubleCloses.Load() != 0 {
		t.Error("closed twice")
	}
	if err := p.Drain(context.Background()); err != nil {
		t.Errorf("second Drain: %v", err)
	}
}

func TestOnWait(t *testing.T) {
	var waits []time.Duration
	var mu sync.Mutex
	p, _ := newTestPool(t, Options{Size: 1,
		OnWait: func(d time.Duration) { mu.Lock(); waits = append(waits, d); mu.Unlock() }})
	s := mustGet(t, p) // dialed: waited
	p.Put(s, true)
	s = mustGet(t, p) // idle at hand: no wait
	ch := goGet(context.Background(), p)
	eventually(t, "waiting", waiting(p, 1))
	time.Sleep(5 * time.Millisecond)
	p.Put(s, true)
	p.Put(recv(t, ch).s, true)
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 3 || waits[0] == 0 || waits[1] != 0 || waits[2] < 5*time.Millisecond {
		t.Errorf("OnWait saw %v", waits)
	}
	if st := p.Stats(); st.Gets != 3 || st.Waits != 2 || st.MaxWait < 5*time.Millisecond {
		t.Errorf("stats %+v", st)
	}
}

func TestStateTransitionsGuarded(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 1})
	s := mustGet(t, p)
	p.Put(s, true)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "from idle to revoked") {
			t.Errorf("got panic %v", r)
		}
		p.Put(mustGet(t, p), true) // lock released by the panic path
	}()
	p.mu.Lock()
	p.setState(s, stateRevoked)
}

// MaxWaiting bounds the line: a Get beyond it fails at once, naming the
// pool, and those in line are served as before. A waiter that gives up
// frees its place.
func TestMaxWaitingRefusesAtOnce(t *testing.T) {
	p, _ := newTestPool(t, Options{Name: "pg/app", Size: 1, MaxWaiting: 2})
	held := mustGet(t, p)
	a := goGet(context.Background(), p)
	eventually(t, "one queued", waiting(p, 1))
	ctx, cancel := context.WithCancel(context.Background())
	b := goGet(ctx, p)
	eventually(t, "two queued", waiting(p, 2))

	start := time.Now()
	_, err := p.Get(context.Background())
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third waiter: got %v, want ErrQueueFull", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("refused after %v, want at once", d)
	}
	want := `too many clients waiting in pool "pg/app" (max 2 waiting, 1 in use)`
	if err.Error() != want {
		t.Errorf("error\n  %s\nwant\n  %s", err, want)
	}
	if st := p.Stats(); st.QueueFull != 1 || st.Waiting != 2 {
		t.Errorf("stats %+v", st)
	}

	cancel()
	if r := recv(t, b); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("canceled waiter: %v", r.err)
	}
	c := goGet(context.Background(), p) // takes the freed place
	eventually(t, "two queued again", waiting(p, 2))

	p.Put(held, true)
	ra := recv(t, a)
	if ra.err != nil {
		t.Fatal(ra.err)
	}
	p.Put(ra.s, true)
	rc := recv(t, c)
	if rc.err != nil {
		t.Fatal(rc.err)
	}
	p.Put(rc.s, true)
}

// SetLimits: growing serves the line at once; shrinking closes the idle
// connections beyond the new size now and the leased ones as they return.
func TestSetLimits(t *testing.T) {
	p, _ := newTestPool(t, Options{Size: 2})
	a, b := mustGet(t, p), mustGet(t, p)
	ch := goGet(context.Background(), p)
	eventually(t, "one waiting", waiting(p, 1))
	p.SetLimits(Limits{Size: 4, WaitTimeout: time.Second})
	r := recv(t, ch)
	if r.err != nil {
		t.Fatal(r.err)
	}
	d := mustGet(t, p)
	if st := p.Stats(); st.Open != 4 || st.Active != 4 {
		t.Fatalf("after growing to 4: %+v", st)
	}
	p.Put(d, true)
	p.SetLimits(Limits{Size: 2})
	if st := p.Stats(); st.Open != 3 || st.Idle != 0 {
		t.Fatalf("after shrinking to 2 with 3 leased and 1 idle: %+v, want the idle one closed", st)
	}
	p.Put(a, true)
	if st := p.Stats(); st.Open != 2 || st.Idle != 0 {
		t.Fatalf("one of three returned over the size: %+v, want it closed", st)
	}
	p.Put(b, true)
	p.Put(r.s, true)
	if st := p.Stats(); st.Open != 2 || st.Idle != 2 {
		t.Fatalf("the others returned within the size: %+v, want them idle", st)
	}
	checkInvariants(t, p)
	defer func() {
		if recover() == nil {
			t.Error("SetLimits with Size 0 did not panic")
		}
	}()
	p.SetLimits(Limits{Size: 0})
}

// Prefer picks the most recent idle connection it likes, else the most
// recent one.
func TestPreferPicksAmongIdle(t *testing.T) {
	type want struct{}
	p, _ := newTestPool(t, Options{Size: 3, Prefer: func(ctx context.Context, c Conn) bool {
		id, ok := ctx.Value(want{}).(int64)
		return !ok || c.(*fakeConn).id == id
	}})
	a, b, c := mustGet(t, p), mustGet(t, p), mustGet(t, p)
	p.Put(a, true)
	p.Put(b, true)
	p.Put(c, true)
	get := func(ctx context.Context) *Server {
		s, err := p.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := get(context.WithValue(context.Background(), want{}, id(a))); s != a {
		t.Fatalf("got conn %d, want the preferred %d", id(s), id(a))
	}
	if s := get(context.WithValue(context.Background(), want{}, int64(99))); s != c {
		t.Fatalf("no preferred one, no room: got conn %d, want the most recent %d", id(s), id(c))
	}
	if s := get(context.Background()); s != b {
		t.Fatalf("got conn %d, want %d", id(s), id(b))
	}
	p.Put(a, true)
	p.Put(b, true)
	p.Put(c, true)
}

// With room in the pool, a Get that likes no idle connection dials one.
func TestPreferDialsWhenRoom(t *testing.T) {
	type fresh struct{}
	p, d := newTestPool(t, Options{Size: 2, Prefer: func(ctx context.Context, c Conn) bool {
		return ctx.Value(fresh{}) == nil
	}})
	a := mustGet(t, p)
	p.Put(a, true)
	s, err := p.Get(context.WithValue(context.Background(), fresh{}, true))
	if err != nil {
		t.Fatal(err)
	}
	if s == a || d.live.Load() != 2 {
		t.Fatalf("got conn %d with %d open; want a new one", id(s), d.live.Load())
	}
	p.Put(s, true)
}
