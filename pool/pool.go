package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned (wrapped, with the pool's name) by Get on a pool that
// was closed or is draining, and to clients that were waiting when it closed.
var ErrClosed = errors.New("pool closed")

// ErrWaitTimeout is wrapped by Get's error when no connection became free
// within Options.WaitTimeout. The wrapping error names the pool, the timeout
// and how many connections were in use and how many clients waited, e.g.
//
//	no server connection available in pool "pg/app@127.0.0.1:5432 user=app" within 5s (20 in use, 35 waiting)
var ErrWaitTimeout = errors.New("no server connection available")

// ErrPaused is wrapped too when the pool was paused (Pause: PAUSE on the
// admin console) as the wait ran out: it was the pause, not busy
// connections, that kept the client waiting.
var ErrPaused = errors.New("the pool is paused (PAUSE on the admin console; RESUME ends it)")

// ErrQueueFull is wrapped by Get's error when Options.MaxWaiting clients
// already wait in line: the Get fails at once instead of queueing. The
// wrapping error names the pool, e.g.
//
//	too many clients waiting in pool "pg/app@127.0.0.1:5432 user=app" (max 100 waiting, 20 in use)
var ErrQueueFull = errors.New("too many clients waiting")

// errNoConn stands in for a Dial that returned neither a connection nor an
// error, so the broken Dial shows up as a dial error, not a nil dereference.
var errNoConn = errors.New("dial returned no connection and no error")

const defaultJanitorInterval = 333 * time.Millisecond

// maxRefillBackoff caps how long the janitor waits before trying again to
// open MinSize connections after a background dial failed: a node that is
// down should not be hammered three times a second per missing connection.
const maxRefillBackoff = 10 * time.Second

// Options configure a Pool. Only Dial and Size are required.
type Options struct {
	// Name identifies the pool in errors, e.g. "pg/app@127.0.0.1:5432 user=app".
	Name string
	// Size is the most connections open at once: leased, idle, being dialed
	// and being closed.
	Size int
	// MinSize connections are kept open by the janitor, dialed in the
	// background, so that a quiet pool does not pay a connect on the next
	// burst. It is clamped to Size.
	MinSize int
	// WaitTimeout bounds how long Get spends waiting in line, dialing and
	// pinging for a connection. 0: until ctx is done.
	WaitTimeout time.Duration
	// IdleTimeout closes connections idle this long, as long as more than
	// MinSize stay open. 0: never.
	IdleTimeout time.Duration
	// Lifetime closes connections older than this when they are idle or
	// returned. Each connection draws its own lifetime uniformly from
	// [0.8*Lifetime, Lifetime] so that a pool never reconnects all at once.
	// 0: forever.
	Lifetime time.Duration
	// MaxWaiting caps the Gets waiting in line at once; a Get that would
	// wait beyond it fails at once with ErrQueueFull. 0: no cap.
	MaxWaiting int
	// CheckDelay: a connection idle longer than this is Ping'ed before Get
	// hands it out. 0: never.
	CheckDelay time.Duration
	// Dial opens and authenticates a connection. It must return when ctx is
	// done: Close cancels the context of background dials and waits for them.
	Dial func(ctx context.Context) (Conn, error)
	// Ping is an optional health check with I/O. An error closes the
	// connection and Get tries another.
	Ping func(ctx context.Context, c Conn) error
	// Alive is an optional cheap check run on every Get, on the Get's
	// goroutine; it must not block on I/O. false closes the connection and
	// Get tries another.
	Alive func(c Conn) bool
	// AliveDelay: a connection returned less than this long ago is handed
	// out without Alive (PgBouncer's server_check_delay, for the cheap
	// check): under load every lease would otherwise pay Alive's system
	// call for a connection that was healthy moments ago. 0: Alive on
	// every Get.
	AliveDelay time.Duration
	// Prefer, if set, picks among idle connections: Get takes the most
	// recently returned one for which Prefer(ctx, c) is true, looking at
	// the preferLook most recent ones; if there is none, it dials a new
	// connection when fewer than Size are open, else takes the most recent
	// idle one (as without Prefer). ctx is the Get's. For connections that differ in
	// what their handshake fixed (MySQL capabilities), so that a client
	// gets one that fits when there is one. It runs under the pool's lock:
	// no I/O, no blocking.
	Prefer func(ctx context.Context, c Conn) bool
	// OnWait, if set, is called once per Get, successful or not, with the
	// time it spent waiting in line, dialing or pinging (0 when a checked
	// idle connection was at hand), for a histogram. It is called on the
	// Get's goroutine, without locks held.
	OnWait func(d time.Duration)
	// JanitorInterval is how often the janitor runs. Default 333ms.
	JanitorInterval time.Duration
}

// DefaultAliveDelay is the AliveDelay of the proxy's pools. A server that
// dies between a connection's return and its next lease this soon after
// fails that lease's first statement, as it would have mid-statement a
// moment earlier; PgBouncer checks nothing for server_check_delay (30 s).
const DefaultAliveDelay = 100 * time.Millisecond

// Stats is a snapshot of a pool, for metrics and the admin views.
type Stats struct {
	// Open counts every connection that holds a slot of Size: Idle + Active +
	// Dialing + those being closed.
	Open, Idle, Active, Dialing int
	// Waiting is the number of Gets in the queue.
	Waiting int
	// Gets counts calls to Get; Waits those that did not find an idle
	// connection at hand (they queued or dialed); WaitTimeouts those that
	// failed because WaitTimeout passed; QueueFull those refused because
	// MaxWaiting clients were in line already.
	Gets, Waits, WaitTimeouts, QueueFull int64
	// Dials counts finished dial attempts, DialErrors the failed ones.
	Dials, DialErrors int64
	// Closed counts connections the pool closed.
	Closed int64
	// MaxWait is the longest a Get has waited.
	MaxWait time.Duration
}

// Pool is the pool of connections to one server node for one user. All
// methods are safe for concurrent use.
type Pool struct {
	opts Options

	mu sync.Mutex
	// A connection's state is its membership in one of these lists.
	dialing, idle, active, closing, revoked serverList
	waiters                                 waiterList
	paused, closed                          bool
	gen                                     uint64 // bumped by Invalidate
	drainedSignaled                         bool

	gets, waits, waitTimeouts, queueFull, dials, dialErrors, closedConns int64

	refillFails int           // consecutive failed background dials
	refillAfter time.Duration // on p.clock; no background dials before this

	epoch         time.Time // origin of p.clock
	putNeedsClock bool      // some option needs idleSince or the lifetime

	maxWait atomic.Int64 // outside mu: updated after the lease, on the Get's goroutine

	drained chan struct{}   // closed once the pool is closed and nothing is open
	stopped chan struct{}   // closed when Close has finished
	ctx     context.Context // of background dials and the janitor; canceled by Close
	cancel  context.CancelFunc
	bg      sync.WaitGroup // the janitor and background dials

	victims []*Server // janitor's scratch space; janitor goroutine only
}

// New creates a pool and starts its janitor, which begins by dialing MinSize
// connections in the background. Close the pool to stop it. New panics
// without Dial or with Size < 1: those are programming errors, and config
// validation must have refused such values first.
func New(o Options) *Pool {
	if o.Dial == nil {
		panic(fmt.Sprintf("pool %q: Options.Dial is required", o.Name))
	}
	if o.Size < 1 {
		panic(fmt.Sprintf("pool %q: Options.Size must be at least 1, got %d", o.Name, o.Size))
	}
	o.MinSize = max(0, min(o.MinSize, o.Size))
	if o.JanitorInterval <= 0 {
		o.JanitorInterval = defaultJanitorInterval
	}
	p := &Pool{
		opts:          o,
		drained:       make(chan struct{}),
		stopped:       make(chan struct{}),
		epoch:         time.Now(),
		putNeedsClock: o.IdleTimeout > 0 || o.Lifetime > 0 || (o.CheckDelay > 0 && o.Ping != nil) || (o.AliveDelay > 0 && o.Alive != nil),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.bg.Add(1)
	go p.janitor()
	return p
}

// Name is Options.Name.
func (p *Pool) Name() string { return p.opts.Name }

// Limits are the options of a running pool that SetLimits changes: what a
// config reload may change without replacing the pool, whose connections
// stay as good as they were.
type Limits struct {
	Size, MinSize, MaxWaiting int
	WaitTimeout               time.Duration
}

// Limits returns the limits in force (New's options, or the last SetLimits).
func (p *Pool) Limits() Limits {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Limits{Size: p.opts.Size, MinSize: p.opts.MinSize, MaxWaiting: p.opts.MaxWaiting, WaitTimeout: p.opts.WaitTimeout}
}

// SetLimits changes the pool's limits. A larger Size serves the Gets in
// line at once; a smaller one closes idle connections beyond it now and
// leased ones when they are Put. A Get already waiting keeps the deadline
// it started with. SetLimits panics with Size < 1, as New does.
func (p *Pool) SetLimits(l Limits) {
	if l.Size < 1 {
		panic(fmt.Sprintf("pool %q: Size must be at least 1, got %d", p.opts.Name, l.Size))
	}
	p.mu.Lock()
	p.opts.Size, p.opts.MinSize = l.Size, max(0, min(l.MinSize, l.Size))
	p.opts.MaxWaiting, p.opts.WaitTimeout = l.MaxWaiting, l.WaitTimeout
	var victims []*Server
	for s := p.idle.tail; s != nil && p.openLocked()-len(victims) > p.opts.Size; s = p.idle.tail {
		p.setState(s, stateClosing)
		victims = append(victims, s)
	}
	if !p.closed {
		p.dispatchLocked()
	}
	p.mu.Unlock()
	p.closeAll(victims)
}

// grant is what a waiter is woken with: a leased connection, a slot to dial
// a connection into, or an error.
type grant struct {
	s    *Server
	dial *Server // in stateDialing, registered on the waiter's behalf
	err  error
}

// Get leases a server connection. It takes the most recently returned idle
// connection that passes Alive (unless it was returned within AliveDelay)
// and Ping (if it sat idle longer than CheckDelay); otherwise it dials one
// if fewer than Size are open; otherwise
// it waits in line. It returns an error wrapping ErrWaitTimeout after
// WaitTimeout, ctx's error when ctx ends first, ErrClosed once the pool is
// closed, and the dial error (wrapped) when the dial it made failed.
func (p *Pool) Get(ctx context.Context) (*Server, error) {
	var l lease
	return p.getWith(ctx, &l)
}

// GetAlive is Get for a retry after a leased connection was found dead
// before anything of its request could run: an idle connection is handed
// out only after Alive, however recently it was returned, as those returned
// with the dead one may have died with it (a server restart, a network
// cut). Without Alive it is Get.
func (p *Pool) GetAlive(ctx context.Context) (*Server, error) {
	l := lease{alive: true}
	return p.getWith(ctx, &l)
}

func (p *Pool) getWith(ctx context.Context, l *lease) (*Server, error) {
	s, err := p.get(ctx, l)
	var d time.Duration
	if l.started {
		d = p.clock() - l.start
		for {
			old := p.maxWait.Load()
			if int64(d) <= old || p.maxWait.CompareAndSwap(old, int64(d)) {
				break
			}
		}
	}
	if p.opts.OnWait != nil {
		p.opts.OnWait(d)
	}
	return s, err
}

// lease is a Get's clock. It starts only when the Get has to do something
// slow (wait in line, dial, ping): a Get served from the idle stack reads no
// clock at all, and WaitTimeout bounds only the time that can add up.
type lease struct {
	started         bool
	alive           bool          // GetAlive: Alive even within AliveDelay
	start, deadline time.Duration // on p.clock; deadline 0: none
}

func (l *lease) begin(p *Pool, now time.Duration) {
	if !l.started {
		l.started = true
		l.start = now
		if p.opts.WaitTimeout > 0 {
			l.deadline = now + p.opts.WaitTimeout
		}
	}
}

// left is the time until the deadline; ok is false without one.
func (l *lease) left(p *Pool) (d time.Duration, ok bool) {
	if l.deadline == 0 {
		return 0, false
	}
	return l.deadline - p.clock(), true
}

func (p *Pool) get(ctx context.Context, l *lease) (*Server, error) {
	// ahead: this Get had a connection that failed its checks, so it had its
	// turn, and keeps its place before anyone who queued meanwhile.
	ahead, counted := false, false
	var w *waiter
	defer func() {
		if w != nil {
			putWaiter(w)
		}
	}()

	p.mu.Lock()
	p.gets++
	for {
		// p.mu is held here.
		if p.closed {
			p.mu.Unlock()
			return nil, p.errClosed()
		}
		if ctx.Err() != nil {
			// A connection this Get discarded may have freed a slot.
			p.dispatchLocked()
			p.mu.Unlock()
			return nil, p.errCanceled(ctx)
		}
		if left, ok := l.left(p); ok && left <= 0 {
			p.waitTimeouts++
			err := p.errTimeoutLocked(p.waiters.n, nil)
			p.dispatchLocked()
			p.mu.Unlock()
			return nil, err
		}

		if !p.paused && (ahead || p.waiters.n == 0) {
			if s := p.pickIdleLocked(ctx); s != nil {
				p.setState(s, stateActive)
				s.reused = true
				p.mu.Unlock()
				if p.healthy(ctx, s, l) {
					return s, nil
				}
				p.discard(s)
				ahead = true
				continue
			}
			if p.openLocked() < p.opts.Size {
				if !counted {
					p.waits++
				}
				l.begin(p, p.clock())
				s := p.registerDialLocked()
				p.mu.Unlock()
				return p.dialFor(ctx, s, l)
			}
		}

		if !ahead && p.opts.MaxWaiting > 0 && p.waiters.n >= p.opts.MaxWaiting {
			// A Get that had its turn already (ahead) is never refused:
			// it is not a new client in line.
			p.queueFull++
			err := fmt.Errorf("%w in pool %q (max %d waiting, %d in use)", ErrQueueFull, p.opts.Name, p.opts.MaxWaiting, p.active.n)
			p.mu.Unlock()
			return nil, err
		}
		if w == nil {
			w = getWaiter()
		}
		if !counted {
			counted = true
			p.waits++
		}
		l.begin(p, p.clock())
		if ahead {
			p.waiters.pushFront(w)
		} else {
			p.waiters.pushBack(w)
		}
		p.mu.Unlock()

		g, err := p.await(ctx, w, l)
		switch {
		case err != nil:
			return nil, err
		case g.err != nil:
			return nil, g.err
		case g.dial != nil:
			return p.dialFor(ctx, g.dial, l)
		}
		if p.healthy(ctx, g.s, l) {
			return g.s, nil
		}
		p.discard(g.s)
		ahead = true
	}
}

// preferLook bounds how many idle connections Prefer looks at per Get.
const preferLook = 16

// pickIdleLocked returns the idle connection Get takes: the most recently
// returned, or with Prefer the most recent one it prefers. When Prefer
// likes none and the pool has room, it returns nil: a new connection is
// dialed rather than one re-made.
func (p *Pool) pickIdleLocked(ctx context.Context) *Server {
	s := p.idle.head
	if s == nil || p.opts.Prefer == nil || p.opts.Prefer(ctx, s.Conn) {
		return s
	}
	for c, i := s.next, 1; c != nil && i < preferLook; c, i = c.next, i+1 {
		if p.opts.Prefer(ctx, c.Conn) {
			return c
		}
	}
	if p.openLocked() < p.opts.Size {
		return nil
	}
	return s
}

// discard closes a leased connection that failed its checks in Get and
// returns with p.mu held, so that the Get that freed the slot can use it
// before anyone who queued after it.
func (p *Pool) discard(s *Server) {
	p.mu.Lock()
	p.setState(s, stateClosing)
	p.mu.Unlock()
	_ = s.Conn.Close()
	p.mu.Lock()
	p.setState(s, stateClosed)
	p.closedConns++
}

// healthy runs the checks a connection must pass before it is handed out.
// Lifetime is checked here only when the clock is read anyway for Ping; the
// janitor and Put enforce it otherwise, and a lifetime is a soft bound.
func (p *Pool) healthy(ctx context.Context, s *Server, l *lease) bool {
	var now time.Duration
	clocked := false
	if p.opts.Alive != nil {
		recent := false
		if p.opts.AliveDelay > 0 && !l.alive {
			now, clocked = p.clock(), true
			recent = now-s.idleSince < p.opts.AliveDelay
		}
		if !recent && !p.opts.Alive(s.Conn) {
			return false
		}
	}
	if p.opts.Ping == nil || p.opts.CheckDelay <= 0 {
		return true
	}
	if !clocked {
		now = p.clock()
	}
	if s.expired(now) {
		return false
	}
	if now-s.idleSince <= p.opts.CheckDelay {
		return true
	}
	l.begin(p, now)
	if left, ok := l.left(p); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, left)
		defer cancel()
	}
	// A failed or interrupted Ping may leave a reply in flight, so the
	// connection is not reusable either way.
	return p.opts.Ping(ctx, s.Conn) == nil
}

// await blocks until the waiter is granted something, ctx ends or the
// deadline passes. A grant can race with giving up: whoever holds p.mu first
// decides. If the grant was made first, it is in w.ch, and it is given back
// rather than dropped.
func (p *Pool) await(ctx context.Context, w *waiter, l *lease) (grant, error) {
	var expired <-chan time.Time
	if left, ok := l.left(p); ok {
		w.timer.Reset(left)
		expired = w.timer.C
	}
	select {
	case g := <-w.ch:
		w.timer.Stop()
		return g, nil
	case <-ctx.Done():
	case <-expired:
	}
	w.timer.Stop()

	p.mu.Lock()
	granted := !w.queued
	if !granted {
		p.waiters.remove(w)
	}
	var err error
	if ctx.Err() != nil {
		err = p.errCanceled(ctx)
	} else {
		p.waitTimeouts++
		err = p.errTimeoutLocked(p.waiters.n, nil)
	}
	p.mu.Unlock()
	if !granted {
		return grant{}, err
	}
	if g := <-w.ch; g.err == nil {
		p.giveBack(g)
	}
	return grant{}, err
}

// giveBack returns a grant that a waiter received but can no longer use.
func (p *Pool) giveBack(g grant) {
	p.mu.Lock()
	if g.dial != nil {
		p.setState(g.dial, stateClosed)
		p.dispatchLocked()
		p.mu.Unlock()
		return
	}
	s := g.s
	if p.closed || s.gen != p.gen {
		p.setState(s, stateClosing)
		p.mu.Unlock()
		p.finishClose(s)
		return
	}
	// idleSince stays as it was: the connection was not used.
	p.reuseLocked(s)
	p.mu.Unlock()
}

// dialFor dials into the slot s for a Get, with the Get's context and
// deadline, and leases the result to it.
func (p *Pool) dialFor(ctx context.Context, s *Server, l *lease) (*Server, error) {
	dctx := ctx
	if left, ok := l.left(p); ok {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, left)
		defer cancel()
	}
	c, err := p.opts.Dial(dctx)
	if err == nil && c == nil {
		err = errNoConn
	}
	now := p.clock()

	p.mu.Lock()
	p.dials++
	if err != nil {
		p.dialErrors++
		p.setState(s, stateClosed)
		if ctx.Err() == nil && l.deadline != 0 && now >= l.deadline {
			p.waitTimeouts++
			err = p.errTimeoutLocked(p.waiters.n, err)
		} else {
			err = fmt.Errorf("connecting to server for pool %q: %w", p.opts.Name, err)
		}
		p.dispatchLocked()
		p.mu.Unlock()
		return nil, err
	}
	p.initLocked(s, c, now)
	if p.closed {
		p.setState(s, stateClosing)
		p.mu.Unlock()
		p.finishClose(s)
		return nil, p.errClosed()
	}
	// A dial that started before Invalidate is leased all the same and
	// closed on Put, like the connections that were leased at that moment.
	s.reused = false
	p.setState(s, stateActive)
	p.mu.Unlock()
	return s, nil
}

// initLocked fills in a freshly dialed connection.
func (p *Pool) initLocked(s *Server, c Conn, now time.Duration) {
	s.Conn = c
	s.created = time.Now()
	s.born = now
	s.idleSince = now
	s.expires = 0
	if l := p.opts.Lifetime; l > 0 {
		s.expires = now + l - time.Duration(rand.Int64N(int64(l/5)+1))
	}
}

// clock reads the pool's monotonic clock. It costs one clock read where
// time.Now costs two (wall and monotonic), and Get and Put are the hot path.
func (p *Pool) clock() time.Duration { return time.Since(p.epoch) }

// registerDialLocked reserves a slot of Size for a dial about to start.
func (p *Pool) registerDialLocked() *Server {
	s := &Server{pool: p, gen: p.gen}
	p.setState(s, stateDialing)
	return s
}

// Put ends a lease. With reuse, the connection goes to the oldest waiter or
// back to the idle stack; without, or when the pool was invalidated or closed
// since, or the connection outlived its lifetime, it is closed, on the
// caller's goroutine. Put of a Server that is not leased panics: a double Put
// would hand one connection to two clients.
func (p *Pool) Put(s *Server, reuse bool) {
	if s == nil || s.pool != p {
		panic(fmt.Sprintf("pool %q: Put of a server connection this pool did not lease", p.opts.Name))
	}
	var now time.Duration
	if p.putNeedsClock {
		now = p.clock()
	}
	p.mu.Lock()
	switch s.state {
	case stateActive:
	case stateRevoked:
		// Drain closed it already.
		p.setState(s, stateClosed)
		p.mu.Unlock()
		return
	default:
		st := s.state
		p.mu.Unlock()
		panic(fmt.Sprintf("pool %q: Put of a server connection that is %s, not leased (double Put?)", p.opts.Name, st))
	}
	// Beyond Size (SetLimits shrank the pool), a returned connection closes.
	if reuse && !p.closed && s.gen == p.gen && !s.expired(now) && p.openLocked() <= p.opts.Size {
		s.idleSince = now
		p.reuseLocked(s)
		p.mu.Unlock()
		return
	}
	p.setState(s, stateClosing)
	p.mu.Unlock()
	p.finishClose(s)
}

// reuseLocked passes on a good active connection: straight to the oldest
// waiter, so that waiters are served before newcomers, else to the top of
// the idle stack.
func (p *Pool) reuseLocked(s *Server) {
	if p.waiters.n > 0 && !p.paused {
		s.reused = true
		p.serveLocked(grant{s: s})
		return
	}
	p.setState(s, stateIdle)
}

// finishClose closes a connection in stateClosing, outside the lock, then
// frees its slot for a waiter.
func (p *Pool) finishClose(s *Server) {
	_ = s.Conn.Close()
	p.mu.Lock()
	p.setState(s, stateClosed)
	p.closedConns++
	p.dispatchLocked()
	p.mu.Unlock()
}

// closeAll is finishClose for a batch.
func (p *Pool) closeAll(ss []*Server) {
	if len(ss) == 0 {
		return
	}
	for _, s := range ss {
		_ = s.Conn.Close()
	}
	p.mu.Lock()
	for _, s := range ss {
		p.setState(s, stateClosed)
	}
	p.closedConns += int64(len(ss))
	p.dispatchLocked()
	p.mu.Unlock()
}

// dispatchLocked serves waiters with what became available: idle
// connections first, then free slots, each given to the oldest waiter as a
// dial of its own (so that a dial error reaches a client that asked).
func (p *Pool) dispatchLocked() {
	for p.waiters.n > 0 && !p.paused && !p.closed {
		if s := p.idle.head; s != nil {
			p.setState(s, stateActive)
			s.reused = true
			p.serveLocked(grant{s: s})
			continue
		}
		if p.openLocked() >= p.opts.Size {
			return
		}
		p.serveLocked(grant{dial: p.registerDialLocked()})
	}
}

func (p *Pool) serveLocked(g grant) {
	w := p.waiters.popFront()
	w.ch <- g // never blocks: one grant per stay in the queue, and cap is 1
}

func (p *Pool) openLocked() int {
	return p.dialing.n + p.idle.n + p.active.n + p.closing.n
}

// takeIdleLocked moves every idle connection to closing and appends it to dst.
func (p *Pool) takeIdleLocked(dst []*Server) []*Server {
	for s := p.idle.head; s != nil; s = p.idle.head {
		p.setState(s, stateClosing)
		dst = append(dst, s)
	}
	return dst
}

// Invalidate is for a server that restarted or failed over: every idle
// connection is closed now and every leased one when it is returned, since
// they all talk to a server that is gone. Dials already under way count as
// leased.
func (p *Pool) Invalidate() {
	p.mu.Lock()
	p.gen++
	victims := p.takeIdleLocked(nil)
	p.mu.Unlock()
	p.closeAll(victims)
}

// Pause stops handing out connections and dialing new ones, e.g. while the
// node is switched over. Gets wait (their WaitTimeout keeps running); leased
// connections finish their work and come back normally.
func (p *Pool) Pause() {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

// Resume ends a Pause and serves the waiters in order.
func (p *Pool) Resume() {
	p.mu.Lock()
	p.paused = false
	p.dispatchLocked()
	p.mu.Unlock()
}

// Close closes the idle connections now, fails every waiting Get with
// ErrClosed and stops the janitor and background dials (waiting for them).
// Connections still leased are closed when they are Put. Close may be called
// more than once.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.stopped
		return
	}
	p.closed = true
	for p.waiters.n > 0 {
		p.serveLocked(grant{err: p.errClosed()})
	}
	victims := p.takeIdleLocked(nil)
	p.checkDrainedLocked()
	p.mu.Unlock()

	p.cancel()
	p.closeAll(victims)
	p.bg.Wait()
	close(p.stopped)
}

// Drain closes the pool like Close, then waits until every leased
// connection has been returned and closed. If ctx ends first, it closes the
// connections still leased (their holders see I/O errors; their Put is then
// a no-op) and returns an error wrapping ctx's.
func (p *Pool) Drain(ctx context.Context) error {
	p.Close()
	select {
	case <-p.drained:
		return nil
	case <-ctx.Done():
		select {
		case <-p.drained: // both were ready; the pool won
			return nil
		default:
		}
	}
	p.mu.Lock()
	var victims []*Server
	for s := p.active.head; s != nil; s = p.active.head {
		p.setState(s, stateRevoked)
		victims = append(victims, s)
	}
	p.closedConns += int64(len(victims))
	p.mu.Unlock()
	for _, s := range victims {
		_ = s.Conn.Close()
	}
	return fmt.Errorf("draining pool %q: closed %d server connections still in use: %w", p.opts.Name, len(victims), ctx.Err())
}

func (p *Pool) checkDrainedLocked() {
	if !p.drainedSignaled && p.openLocked() == 0 {
		p.drainedSignaled = true
		close(p.drained)
	}
}

// Stats returns a snapshot of the pool's counts and counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	st := Stats{
		Open:         p.openLocked(),
		Idle:         p.idle.n,
		Active:       p.active.n,
		Dialing:      p.dialing.n,
		Waiting:      p.waiters.n,
		Gets:         p.gets,
		Waits:        p.waits,
		WaitTimeouts: p.waitTimeouts,
		QueueFull:    p.queueFull,
		Dials:        p.dials,
		DialErrors:   p.dialErrors,
		Closed:       p.closedConns,
	}
	p.mu.Unlock()
	st.MaxWait = time.Duration(p.maxWait.Load())
	return st
}

func (p *Pool) errClosed() error {
	return fmt.Errorf("pool %q: %w", p.opts.Name, ErrClosed)
}

func (p *Pool) errCanceled(ctx context.Context) error {
	return fmt.Errorf("waiting for a server connection in pool %q: %w", p.opts.Name, ctx.Err())
}

// errTimeoutLocked builds the WaitTimeout error. waiting counts the other
// clients still in line; cause is the dial error when the time ran out
// while dialing.
func (p *Pool) errTimeoutLocked(waiting int, cause error) error {
	if p.paused {
		return fmt.Errorf("%w in pool %q within %s (%d in use, %d waiting): %w",
			ErrWaitTimeout, p.opts.Name, p.opts.WaitTimeout, p.active.n, waiting, ErrPaused)
	}
	if cause != nil {
		return fmt.Errorf("%w in pool %q within %s (%d in use, %d waiting): connecting to server: %w",
			ErrWaitTimeout, p.opts.Name, p.opts.WaitTimeout, p.active.n, waiting, cause)
	}
	return fmt.Errorf("%w in pool %q within %s (%d in use, %d waiting)",
		ErrWaitTimeout, p.opts.Name, p.opts.WaitTimeout, p.active.n, waiting)
}
