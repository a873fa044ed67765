package lagmon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Prober reads one node's position: for a primary its current write
// position (pg_current_wal_lsn(), @@gtid_binlog_pos, @@gtid_executed), for a
// replica what it has replayed (pg_last_wal_replay_lsn(), @@gtid_slave_pos,
// @@gtid_executed). The wire packages implement it with a real connection.
//
// Probe must return soon after ctx is done: a Monitor never starts a second
// probe of a node while one is running, reports a node whose probe hangs as
// failing, and Stop waits for running probes to return.
type Prober interface {
	Probe(ctx context.Context) (Position, error)
}

// Options tune a Monitor. Zero values mean the defaults.
type Options struct {
	Interval time.Duration // poll period, default 50ms
	Timeout  time.Duration // per probe, default 1s
	// History is how many primary samples are kept to turn positions into
	// lag in seconds, default 2000. Consecutive samples with the same
	// position count once, so an idle primary does not use up the history.
	// A replica further behind than the oldest kept sample shows the age of
	// that sample as its lag (a lower bound), and its lag is not known.
	History int
	// FailAfter is the number of consecutive probe failures after which a
	// node is reported unhealthy, default 3.
	FailAfter int
	// Now is the clock, for tests. Sample times come from it, so the times
	// passed to PrimaryAfter must come from the same clock (time.Now by
	// default).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = 50 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.History <= 0 {
		o.History = 2000
	}
	if o.FailAfter <= 0 {
		o.FailAfter = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// ReplicaStatus is what is known of a replica, as of its last probe.
type ReplicaStatus struct {
	Position  Position  // last replayed position (nil if never probed OK)
	SampledAt time.Time // when the probe that read Position started
	// Healthy: probed OK at least once, and fewer than FailAfter
	// consecutive probes have failed since.
	Healthy bool
	// Lag is how far behind in time the replica was at SampledAt: 0 if its
	// position is at least the newest primary sample, else SampledAt minus
	// the time the primary was first sampled at a position the replica has
	// not reached. An idle primary therefore never makes a replica look
	// lagged. Its resolution is the poll interval.
	Lag time.Duration
	// LagBytes is, for PostgreSQL, the newest primary LSN minus the
	// replica's (0 if the replica is ahead of that sample); -1 when not
	// applicable (GTIDs, or no primary sample yet).
	LagBytes int64
	// LagKnown is false when Lag means nothing: the primary has not been
	// sampled yet, or its probes fail now, so the replica's position
	// cannot be compared with anything current. Unknown lag is not zero:
	// the replica package gives such a replica no reads.
	LagKnown bool
	// PrimaryDown: the lag is unknown because the primary cannot be
	// reached at all (its last probes failed with ErrUnreachable, not
	// merely late). Reads cannot go to the primary then either, so the
	// replica package still gives reads to the replicas that hold the
	// newest data there is.
	PrimaryDown bool
	Err         error // error of the last probe, nil if it succeeded
}

// ErrUnreachable marks a probe error of a node that could not be reached
// (connection refused, reset, closed), as opposed to a node that answered
// with an error (authentication failed, permission denied) or that did not
// answer in time. Probers wrap their connection errors with it
// (Unreachable).
//
// A timeout is not proof that a node is down: a busy primary answers a
// probe late, and taking it for down would hand reads to replicas whose
// lag nobody knows (a paused replica, say). So a probe that times out is
// a failure, never ErrUnreachable.
var ErrUnreachable = errors.New("unreachable")

// Unreachable wraps err, a failure to reach a node, with ErrUnreachable,
// unless err is a timeout (see ErrUnreachable), which it returns as is.
func Unreachable(err error) error {
	if IsTimeout(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnreachable, err)
}

// IsTimeout reports whether err says that something did not happen in time
// (a context deadline, a network timeout) rather than that it failed.
func IsTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// Monitor polls a primary and its replicas and answers, from the last
// samples, how far behind each replica is. Its query methods are safe for
// concurrent use and cheap (an atomic load, plus a map lookup by name);
// PrimaryAfter takes a read lock on the primary's history.
type Monitor struct {
	o        Options
	primary  *node // nil if New got no primary
	replicas map[string]*node
	names    []string // sorted
	all      []*node

	hmu  sync.RWMutex
	hist []sample // ring of the primary's samples, oldest at head
	head int
	n    int

	runMu  sync.Mutex
	cancel context.CancelFunc // non-nil while started
	loops  sync.WaitGroup
}

// sample is a run of consecutive primary probes that read the same
// position: the first started at first, the last at last.
type sample struct {
	pos         Position
	first, last time.Time
}

type node struct {
	name    string
	p       Prober
	primary bool
	sem     chan struct{} // held while a Probe call runs: never two at once

	mu    sync.Mutex // serializes recording results
	fails int        // consecutive failures
	last  time.Time  // start of the newest recorded probe

	st atomic.Pointer[ReplicaStatus] // never nil

	fmu    sync.Mutex
	flight *flight // the on-demand probe under way (Fresh), nil if none
}

// flight is one on-demand probe of a node, shared by every Fresh call that
// needs a sample from a probe started at or after start.
type flight struct {
	start time.Time
	done  chan struct{}
}

var errNoPosition = errors.New("prober returned no position and no error")

// New returns a Monitor of primary and replicas (keyed by replica name, the
// address the replica package and the pools use). Nothing is polled until
// Start or PollNow.
func New(primary Prober, replicas map[string]Prober, o Options) *Monitor {
	m := &Monitor{
		o:        o.withDefaults(),
		replicas: make(map[string]*node, len(replicas)),
	}
	m.hist = make([]sample, m.o.History)
	newNode := func(name string, p Prober, primary bool) *node {
		n := &node{name: name, p: p, primary: primary, sem: make(chan struct{}, 1)}
		n.st.Store(&ReplicaStatus{LagBytes: -1})
		m.all = append(m.all, n)
		return n
	}
	if primary != nil {
		m.primary = newNode("primary", primary, true)
	}
	for name := range replicas {
		m.names = append(m.names, name)
	}
	slices.Sort(m.names)
	for _, name := range m.names {
		m.replicas[name] = newNode(name, replicas[name], false)
	}
	return m
}

// Start polls every node each Interval, one goroutine per node, so a slow
// node does not delay the others. Calling Start on a started Monitor does
// nothing; after Stop, Start starts again.
func (m *Monitor) Start() {
	m.runMu.Lock()
	defer m.runMu.Unlock()
	if m.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	for _, n := range m.all {
		m.loops.Go(func() { m.loop(ctx, n) })
	}
}

// Stop stops polling and waits until no probe is running. It is
// idempotent. The last known statuses stay readable.
func (m *Monitor) Stop() {
	m.runMu.Lock()
	defer m.runMu.Unlock()
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.loops.Wait()
	m.cancel = nil
	for _, n := range m.all {
		n.sem <- struct{}{} // a probe abandoned by its poller may still run
		<-n.sem
	}
}

func (m *Monitor) loop(ctx context.Context, n *node) {
	t := time.NewTicker(m.o.Interval)
	defer t.Stop()
	for {
		m.poll(ctx, n)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PollNow probes every node once, in parallel, and returns when all
// results are recorded (or ctx is done). For tests and for startup, so the
// first reads do not all go to the primary.
//
// The primary is read first, so that the replicas' lag is known from their
// first sample (a replica sampled before any primary sample has unknown lag).
func (m *Monitor) PollNow(ctx context.Context) {
	if m.primary != nil {
		m.poll(ctx, m.primary)
	}
	var wg sync.WaitGroup
	for _, n := range m.all {
		if n != m.primary {
			wg.Go(func() { m.poll(ctx, n) })
		}
	}
	wg.Wait()
}

type result struct {
	pos Position
	err error
}

// poll runs one probe of n and records its result. A probe that does not
// return within Timeout (plus a grace period for the Prober to notice its
// context) counts as a failure; it keeps n's semaphore until it does return,
// and later polls that cannot get the semaphore count as failures too, so a
// hung connection makes the node unhealthy instead of freezing its status.
func (m *Monitor) poll(ctx context.Context, n *node) {
	wait := m.o.Timeout + max(m.o.Timeout/2, 10*time.Millisecond)
	watchdog := time.NewTimer(wait)
	defer watchdog.Stop()
	select {
	case n.sem <- struct{}{}:
	case <-ctx.Done():
		return
	case <-watchdog.C:
		m.record(n, m.o.Now(), nil, fmt.Errorf("lagmon: probe of %s: the previous probe has not returned", n.name))
		return
	}
	start := m.o.Now()
	pctx, cancel := context.WithTimeout(ctx, m.o.Timeout)
	defer cancel()
	res := make(chan result, 1)
	go func() {
		defer func() { <-n.sem }()
		defer func() {
			if v := recover(); v != nil {
				res <- result{err: fmt.Errorf("prober panicked: %v", v)}
			}
		}()
		pos, err := n.p.Probe(pctx)
		res <- result{pos, err}
	}()
	watchdog.Reset(wait)
	select {
	case r := <-res:
		if ctx.Err() != nil {
			return // stopping: a failure now says nothing about the node
		}
		if r.err == nil && r.pos == nil {
			r.err = errNoPosition
		}
		if r.err != nil {
			r.err = fmt.Errorf("lagmon: probe of %s: %w", n.name, r.err)
		}
		m.record(n, start, r.pos, r.err)
	case <-watchdog.C:
		m.record(n, start, nil, fmt.Errorf("lagmon: probe of %s did not return within %v: %w", n.name, m.o.Timeout, context.DeadlineExceeded))
	case <-ctx.Done():
	}
}

// record publishes the result of a probe of n that started at start.
func (m *Monitor) record(n *node, start time.Time, pos Position, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if start.Before(n.last) {
		return // a newer probe (PollNow racing the loop) is already recorded
	}
	n.last = start
	st := *n.st.Load()
	if err != nil {
		n.fails++
		st.Err = err
		st.Healthy = st.Position != nil && n.fails < m.o.FailAfter
		n.st.Store(&st)
		return
	}
	n.fails = 0
	st.Position, st.SampledAt, st.Healthy, st.Err = pos, start, true, nil
	if n.primary {
		m.addSample(pos, start)
	} else {
		st.Lag, st.LagBytes, st.LagKnown = m.lagOf(pos, start)
	}
	n.st.Store(&st)
}

func samePosition(a, b Position) bool { return a.AtLeast(b) && b.AtLeast(a) }

// at returns the i-th oldest sample; the caller holds hmu.
func (m *Monitor) at(i int) *sample { return &m.hist[(m.head+i)%len(m.hist)] }

func (m *Monitor) addSample(pos Position, at time.Time) {
	m.hmu.Lock()
	defer m.hmu.Unlock()
	if m.n > 0 {
		if s := m.at(m.n - 1); samePosition(s.pos, pos) {
			s.last = at
			return
		}
	}
	if m.n == len(m.hist) {
		m.head = (m.head + 1) % len(m.hist)
		m.n--
	}
	*m.at(m.n) = sample{pos: pos, first: at, last: at}
	m.n++
}

// lagOf computes a replica's lag from its position pos, read by a probe
// started at at, and the primary's history; known is false without a
// primary sample.
func (m *Monitor) lagOf(pos Position, at time.Time) (lag time.Duration, bytes int64, known bool) {
	m.hmu.RLock()
	defer m.hmu.RUnlock()
	if m.n == 0 {
		return 0, -1, false
	}
	newest := m.at(m.n - 1)
	bytes = -1
	if r, ok := pos.(LSN); ok {
		if p, ok := newest.pos.(LSN); ok {
			bytes = 0
			if p > r {
				bytes = int64(p - r)
			}
		}
	}
	if pos.AtLeast(newest.pos) {
		return 0, bytes, true
	}
	// Positions grow along the history, so the samples the replica has
	// reached are a prefix: find the first one it has not.
	lo, hi := 0, m.n-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if pos.AtLeast(m.at(mid).pos) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	lag = max(at.Sub(m.at(lo).first), 0)
	// Behind even the oldest kept sample: the lag is at least that
	// sample's age, and may be any more. That bound says nothing of
	// whether the replica is within a limit, above all for a young
	// history (a monitor that has just started, at the proxy's start or
	// after a reload that changed the lag settings, would otherwise rate
	// a replica hours behind as milliseconds behind): unknown.
	return lag, bytes, lo > 0
}

// Fresh makes sure node name ("" for the primary) has a sample from a
// probe started at or after after, probing it now if needed, and reports
// whether it has (false when the probe failed or ctx ended first). Calls
// are coalesced: one on-demand probe per node runs at a time, and every
// caller whose after is not later than its start shares its result, so a
// burst of reads costs one round trip per node, not one per read.
func (m *Monitor) Fresh(ctx context.Context, name string, after time.Time) bool {
	n := m.primary
	if name != "" {
		n = m.replicas[name]
	}
	if n == nil {
		return false
	}
	for {
		if st := n.st.Load(); st.Err == nil && !st.SampledAt.Before(after) && st.Position != nil {
			return true
		}
		n.fmu.Lock()
		f := n.flight
		mine := false
		if f == nil {
			f = &flight{start: m.o.Now(), done: make(chan struct{})}
			n.flight, mine = f, true
		}
		n.fmu.Unlock()
		if mine {
			go func() {
				m.poll(context.Background(), n)
				n.fmu.Lock()
				n.flight = nil
				n.fmu.Unlock()
				close(f.done)
			}()
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return false
		}
		if !f.start.Before(after) {
			st := n.st.Load()
			return st.Err == nil && !st.SampledAt.Before(after) && st.Position != nil
		}
		// That probe started too early to count: go again.
	}
}

// PrimaryAfter returns the first primary position sampled at or after t
// (that is, by a probe started at or after t), if there is one yet. A write
// committed at t is included in it, so a replica CaughtUp to it shows that
// write. t must come from the Monitor's clock (time.Now unless Options.Now
// says otherwise). When t is older than the kept history, the oldest kept
// sample is returned: later than needed, never too early.
func (m *Monitor) PrimaryAfter(t time.Time) (Position, bool) {
	m.hmu.RLock()
	defer m.hmu.RUnlock()
	lo, hi := 0, m.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if m.at(mid).last.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == m.n {
		return nil, false
	}
	return m.at(lo).pos, true
}

// Replica returns what is known of replica name. An unknown name gets the
// zero status (not healthy) with LagBytes -1. While the primary's probes
// fail (it is not Healthy), no replica's lag is known: its last samples
// say nothing about what the primary has written since (PrimaryDown tells
// whether the primary cannot be reached at all).
func (m *Monitor) Replica(name string) ReplicaStatus {
	if n, ok := m.replicas[name]; ok {
		st := *n.st.Load()
		if m.primary == nil {
			st.LagKnown = false
		} else if ps := m.primary.st.Load(); !ps.Healthy {
			st.LagKnown = false
			st.PrimaryDown = errors.Is(ps.Err, ErrUnreachable)
		}
		return st
	}
	return ReplicaStatus{LagBytes: -1}
}

// CaughtUp reports whether replica name is healthy and has replayed at
// least p. A nil p asks for nothing: true for any healthy replica.
func (m *Monitor) CaughtUp(name string, p Position) bool {
	n, ok := m.replicas[name]
	if !ok {
		return false
	}
	st := n.st.Load()
	return st.Healthy && (p == nil || st.Position.AtLeast(p))
}

// Primary returns the primary's last sampled position, when that probe
// started, and whether the primary is healthy (fewer than FailAfter
// consecutive failures since a successful probe).
func (m *Monitor) Primary() (pos Position, at time.Time, healthy bool) {
	if m.primary == nil {
		return nil, time.Time{}, false
	}
	st := m.primary.st.Load()
	return st.Position, st.SampledAt, st.Healthy
}

// PrimaryErr returns the error of the primary's last probe, nil if it
// succeeded (for logs and admin views).
func (m *Monitor) PrimaryErr() error {
	if m.primary == nil {
		return nil
	}
	return m.primary.st.Load().Err
}

// Names returns the replica names, sorted.
func (m *Monitor) Names() []string { return slices.Clone(m.names) }

// Saw records that replica name had replayed at least pos at a moment
// no earlier than at: learned from a check a read carried to it (a
// position check in the same round trip as the read), not from a probe.
// It only moves the replica's position forward, and only when it is
// healthy: later reads that need pos are then served by it without a
// check. Unknown names are ignored.
func (m *Monitor) Saw(name string, pos Position, at time.Time) {
	n, ok := m.replicas[name]
	if !ok || pos == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	st := *n.st.Load()
	if !st.Healthy || st.Position == nil || st.Position.AtLeast(pos) || !pos.AtLeast(st.Position) {
		return
	}
	st.Position = pos
	if at.After(st.SampledAt) {
		st.SampledAt = at
	}
	st.Lag, st.LagBytes, st.LagKnown = m.lagOf(pos, st.SampledAt)
	n.st.Store(&st)
}
