package pool

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeConn stands in for a server connection. The pool only closes
// connections, so all it needs to record is whether and how often.
type fakeConn struct {
	id      int64
	d       *fakeDialer
	closed  atomic.Bool
	dead    atomic.Bool // Alive says false
	badPing atomic.Bool
}

func (c *fakeConn) Close() error {
	if c.closed.Swap(true) {
		c.d.doubleCloses.Add(1)
		return errors.New("already closed")
	}
	c.d.live.Add(-1)
	return nil
}

// fakeDialer counts connections open towards the "server", which is what
// Size must bound.
type fakeDialer struct {
	next         atomic.Int64
	live         atomic.Int64
	maxLive      atomic.Int64
	doubleCloses atomic.Int64
	// step, if set, is consulted before each dial; it may block and decide
	// the outcome. Set it with setStep: the janitor may be dialing already.
	step atomic.Pointer[func(ctx context.Context) error]

	mu    sync.Mutex
	conns []*fakeConn
}

func (d *fakeDialer) Dial(ctx context.Context) (Conn, error) {
	if step := d.step.Load(); step != nil {
		if err := (*step)(ctx); err != nil {
			return nil, err
		}
	}
	c := &fakeConn{id: d.next.Add(1), d: d}
	n := d.live.Add(1)
	for {
		m := d.maxLive.Load()
		if n <= m || d.maxLive.CompareAndSwap(m, n) {
			break
		}
	}
	d.mu.Lock()
	d.conns = append(d.conns, c)
	d.mu.Unlock()
	return c, nil
}

func (d *fakeDialer) setStep(f func(ctx context.Context) error) {
	if f == nil {
		d.step.Store(nil)
		return
	}
	d.step.Store(&f)
}

func alive(c Conn) bool { return !c.(*fakeConn).dead.Load() }

func ping(_ context.Context, c Conn) error {
	if c.(*fakeConn).badPing.Load() {
		return errors.New("ping failed")
	}
	return nil
}

// openPools counts the pools of the running test; goroutines are checked
// for leaks when the last one is closed.
var openPools atomic.Int32

// newTestPool starts a pool with a fake dialer. The cleanup closes it and
// checks that it left no goroutine, connection or broken invariant behind.
func newTestPool(t testing.TB, o Options) (*Pool, *fakeDialer) {
	t.Helper()
	return newTestPoolWith(t, &fakeDialer{}, o)
}

// newTestPoolWith is newTestPool with a dialer prepared before the janitor
// starts dialing.
func newTestPoolWith(t testing.TB, d *fakeDialer, o Options) (*Pool, *fakeDialer) {
	t.Helper()
	if o.Dial == nil {
		o.Dial = d.Dial
	}
	if o.Name == "" {
		o.Name = "t"
	}
	p := New(o)
	openPools.Add(1)
	t.Cleanup(func() {
		checkInvariants(t, p)
		p.Close()
		checkInvariants(t, p)
		if n := d.doubleCloses.Load(); n != 0 {
			t.Errorf("%d connections were closed twice", n)
		}
		if openPools.Add(-1) == 0 {
			noPoolGoroutines(t)
		}
	})
	return p, d
}

// checkInvariants walks the lists: each connection is where its state says,
// the counts match, Size holds, and nobody waits while something could be
// handed out.
func checkInvariants(t testing.TB, p *Pool) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for st := stateNone; st < numStates; st++ {
		l := p.list(st)
		if l == nil {
			continue
		}
		n := 0
		var prev *Server
		for s := l.head; s != nil; s = s.next {
			if s.state != st {
				t.Errorf("connection in the %s list is %s", st, s.state)
			}
			if s.prev != prev {
				t.Errorf("%s list: broken back link", st)
			}
			prev = s
			n++
		}
		if l.tail != prev || n != l.n {
			t.Errorf("%s list: walked %d, counted %d", st, n, l.n)
		}
	}
	n := 0
	for w := p.waiters.head; w != nil; w = w.next {
		if !w.queued {
			t.Errorf("waiter in the queue is not marked queued")
		}
		n++
	}
	if n != p.waiters.n {
		t.Errorf("waiters: walked %d, counted %d", n, p.waiters.n)
	}
	if open := p.openLocked(); open > p.opts.Size {
		t.Errorf("%d open > Size %d", open, p.opts.Size)
	}
	if p.waiters.n > 0 && !p.paused && !p.closed && (p.idle.n > 0 || p.openLocked() < p.opts.Size) {
		t.Errorf("%d waiting while %d idle and %d of %d open", p.waiters.n, p.idle.n, p.openLocked(), p.opts.Size)
	}
}

// noPoolGoroutines fails if a goroutine is still running pool code; the
// tests do not run in parallel, so any is a leak.
func noPoolGoroutines(t testing.TB) {
	t.Helper()
	var stacks string
	for range 200 {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "switchyard/pool.(*Pool)") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("goroutines left running pool code:\n%s", stacks)
}

// eventually polls cond for up to two seconds: the janitor works on its own
// clock.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("timed out waiting until %s", what)
}

func mustGet(t testing.TB, p *Pool) *Server {
	t.Helper()
	s, err := p.Get(context.Background())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return s
}

func id(s *Server) int64 { return s.Conn.(*fakeConn).id }

// result of a Get run in the background.
type result struct {
	s   *Server
	err error
}

func goGet(ctx context.Context, p *Pool) <-chan result {
	ch := make(chan result, 1)
	go func() {
		s, err := p.Get(ctx)
		ch <- result{s, err}
	}()
	return ch
}

func recv(t testing.TB, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(2 * time.Second):
		t.Fatal("Get did not return")
		return result{}
	}
}

func waiting(p *Pool, n int) func() bool {
	return func() bool { return p.Stats().Waiting == n }
}
