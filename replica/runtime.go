package replica

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/lagmon"
)

// Spec describes the runtime of one node set: an unsharded cluster with
// replicas, or one shard with replicas (then named cluster/shardN).
type Spec struct {
	// Protocol labels the metrics: "postgres" or "mysql".
	Protocol string
	// Cluster is the node set as a cluster: Name, Primary, Replicas,
	// the server database and the Settings (max_replica_lag,
	// read_your_writes, lag_poll_interval, causal_read_timeout).
	Cluster config.Cluster
	// User and Password are the lag monitor's credentials.
	User, Password string
	// NewProbe returns the prober of one node (the wire package's: it
	// speaks the protocol). A prober that is an io.Closer is closed when
	// the runtime stops.
	NewProbe func(addr string, primary bool) lagmon.Prober
}

// Specs lists the node sets with replicas of cfg's clusters of protocol
// proto: each unsharded cluster that has replicas, and each shard with
// replicas of a sharded one (named ShardName(cluster, i)). The lag
// monitor logs in as the cluster's monitor_user, else as the first user's
// server credentials (serverCreds: the protocol's rule). newProbe is the
// protocol's prober of one node, logged in so.
func Specs(cfg *config.Config, proto config.Protocol, serverCreds func(*config.User) (string, string),
	newProbe func(cl *config.Cluster, addr string, primary bool, user, password string) lagmon.Prober) []Spec {
	creds := func(cl *config.Cluster) (string, string) {
		if cl.MonitorUser == "" && len(cfg.Users) > 0 {
			return serverCreds(&cfg.Users[0])
		}
		return cl.MonitorUser, cl.MonitorPassword
	}
	var out []Spec
	add := func(cl config.Cluster) {
		if len(cl.Replicas) == 0 || cl.Primary == "" {
			return
		}
		u, pw := creds(&cl)
		c := cl
		out = append(out, Spec{Protocol: string(proto), Cluster: c, User: u, Password: pw,
			NewProbe: func(addr string, primary bool) lagmon.Prober { return newProbe(&c, addr, primary, u, pw) }})
	}
	for i := range cfg.Clusters {
		cl := cfg.Clusters[i]
		if cl.Protocol != proto {
			continue
		}
		if cl.Sharding == nil {
			add(cl)
			continue
		}
		for j, sh := range cl.Shards {
			c := cl
			c.Name = ShardName(cl.Name, j)
			c.Primary, c.Replicas = sh.Primary, sh.Replicas
			if sh.Database != "" {
				c.ServerDatabase = sh.Database
			} else if c.ServerDatabase == "" {
				c.ServerDatabase = cl.Database
			}
			c.Sharding, c.Shards = nil, nil
			add(c)
		}
	}
	return out
}

// ShardName names the runtime of shard i of a sharded cluster.
func ShardName(cluster string, i int) string { return cluster + "/shard" + strconv.Itoa(i) }

// Runtime is the running machinery of one node set with replicas: its lag
// monitor, its replica Set, and the routing metrics. It is built on (re)load
// by a Registry and stopped when a reload replaces it; sessions that still
// hold a stopped runtime route on its last samples.
type Runtime struct {
	Name string
	Mon  *lagmon.Monitor
	Set  *Set

	spec      atomic.Pointer[Spec] // the newest config of the node set (a reload that keeps the runtime updates it)
	closers   []io.Closer
	routed    *prometheus.CounterVec
	fallback  *prometheus.CounterVec // by reason
	collector prometheus.Collector   // lag metrics, once registered
}

// NewRuntime builds the runtime of s, reads every node once (so the first
// reads do not all go to the primary) and starts its monitor.
func NewRuntime(s Spec) *Runtime {
	st := s.Cluster.Settings
	rt := &Runtime{Name: s.Cluster.Name}
	rt.spec.Store(&s)
	probe := func(addr string, primary bool) lagmon.Prober {
		p := s.NewProbe(addr, primary)
		if c, ok := p.(io.Closer); ok {
			rt.closers = append(rt.closers, c)
		}
		return p
	}
	prim := probe(s.Cluster.Primary, true)
	probes := make(map[string]lagmon.Prober, len(s.Cluster.Replicas))
	for _, r := range s.Cluster.Replicas {
		probes[r] = probe(r, false)
	}
	rt.Mon = lagmon.New(prim, probes, lagmon.Options{Interval: st.LagPollInterval})
	rt.Set = NewSet(s.Cluster.Replicas, rt.Mon, Options{MaxLag: st.MaxReplicaLag})
	rt.routed = metrics.Routed.MustCurryWith(prometheus.Labels{"protocol": s.Protocol, "cluster": rt.Name})
	rt.fallback = metrics.ReadFallbacks.MustCurryWith(prometheus.Labels{"protocol": s.Protocol, "cluster": rt.Name})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	rt.Mon.PollNow(ctx)
	cancel()
	rt.Mon.Start()
	return rt
}

// Settings are the node set's settings in the config in force.
func (rt *Runtime) Settings() config.Settings { return rt.spec.Load().Cluster.Settings }

// Replicas are the replicas' addresses, in config order.
func (rt *Runtime) Replicas() []string { return rt.spec.Load().Cluster.Replicas }

// sameAs says whether rt still describes s: same nodes, monitor
// credentials and the settings the monitor and routing read. A reload
// that changes only the rest (pool sizes, timeouts of the pools) keeps the
// runtime running, with its samples, instead of reconnecting every probe.
func (rt *Runtime) sameAs(s Spec) bool {
	a, b := *rt.spec.Load(), s
	return a.Protocol == b.Protocol && a.Cluster.Primary == b.Cluster.Primary &&
		slices.Equal(a.Cluster.Replicas, b.Cluster.Replicas) &&
		a.Cluster.ServerDatabase == b.Cluster.ServerDatabase && a.Cluster.Database == b.Cluster.Database &&
		a.User == b.User && a.Password == b.Password &&
		monitorSettings(a.Cluster.Settings) == monitorSettings(b.Cluster.Settings)
}

// monitorSettings is the part of a cluster's settings that its runtime
// reads.
func monitorSettings(st config.Settings) config.Settings {
	return config.Settings{
		MaxReplicaLag:     st.MaxReplicaLag,
		ReadYourWrites:    st.ReadYourWrites,
		LagPollInterval:   st.LagPollInterval,
		CausalReadTimeout: st.CausalReadTimeout,
		ConnectTimeout:    st.ConnectTimeout,
		ServerTLS:         st.ServerTLS,
		ServerTLSCA:       st.ServerTLSCA,

		ServerAllowCleartextPassword: st.ServerAllowCleartextPassword,
	}
}

func (rt *Runtime) register() {
	if rt.collector != nil {
		return
	}
	c := rt.Mon.Collector(rt.Name)
	if err := metrics.Registry.Register(c); err == nil {
		rt.collector = c
	}
}

// stop stops the monitor and closes the probes' connections.
func (rt *Runtime) stop() {
	if rt.collector != nil {
		metrics.Registry.Unregister(rt.collector)
		rt.collector = nil
	}
	rt.Mon.Stop()
	for _, c := range rt.closers {
		_ = c.Close()
	}
}

// Routed counts a routing decision (target "primary" or "replica") and
// its reason in switchyard_routed_transactions_total.
func (rt *Runtime) Routed(target, reason string) { rt.routed.WithLabelValues(target, reason).Inc() }

// Fallback counts a read that went to the primary because no replica
// could take it, and why.
func (rt *Runtime) Fallback(reason string) {
	rt.fallback.WithLabelValues(reason).Inc()
	rt.Routed("primary", reason)
}

// Pick chooses the replica for a read the router lets a replica serve
// (why is the router's reason, for the metric). w is the client's writes
// on this node set's primary (nil: none), readAfter a position the
// application handed over (SET switchyard.read_after; nil: none); lock,
// when not nil, guards w. nil means the read goes to the primary (counted
// as a fallback, with the reason). A node returned is ended with
// rt.Set.Done.
//
// A read that needs a position (the client has written) is decided with
// fresh information, not the last poll's: when no primary sample after
// the write exists yet, the primary is probed now; when no replica's last
// sample shows the position, the replicas are probed now, and again until
// one has replayed it or causal_read_timeout has passed (at least
// freshWait: one round of probes). Probes are coalesced per node (see
// lagmon.Monitor.Fresh), so concurrent readers share them.
func (rt *Runtime) Pick(w *Writes, readAfter lagmon.Position, why string, lock sync.Locker) *Node {
	return rt.pick(w, readAfter, why, lock, &tally{read: true})
}

// pick is Pick; t takes the request's outcome for the read-your-writes
// metrics (see PickRead).
func (rt *Runtime) pick(w *Writes, readAfter lagmon.Position, why string, lock sync.Locker, t *tally) *Node {
	start := time.Now()
	need, known := rt.lockedNeed(w, readAfter, lock)
	var n *Node
	if known {
		n = rt.Set.Pick(need)
	}
	waited := false
	if n == nil && (need != nil || !known) && !rt.Set.AllOut() {
		waited = true
		n, need, known = rt.pickFresh(start, w, readAfter, lock)
	}
	if need != nil || !known {
		t.causal(rt, n != nil, waited, time.Since(start))
	}
	if n == nil {
		reason := "no_replica"
		switch {
		case rt.Set.LagUnknown():
			reason = "lag_unknown"
		case !known || need != nil:
			reason = "read_your_writes"
		}
		rt.Fallback(reason)
		return nil
	}
	rt.Routed("replica", why)
	return n
}

// freshWait bounds a read's wait for fresh positions when
// causal_read_timeout is shorter: one round trip to the primary and one
// to the replicas, on loopback well under a millisecond.
const freshWait = 25 * time.Millisecond

// pickFresh is Pick's second try, with positions probed now.
func (rt *Runtime) pickFresh(start time.Time, w *Writes, readAfter lagmon.Position, lock sync.Locker) (*Node, lagmon.Position, bool) {
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(max(rt.Settings().CausalReadTimeout, freshWait)))
	defer cancel()
	need, known := rt.lockedNeed(w, readAfter, lock)
	if !known {
		if lock != nil {
			lock.Lock()
		}
		at := w.at
		if lock != nil {
			lock.Unlock()
		}
		if !rt.Mon.Fresh(ctx, "", at) {
			return nil, need, false
		}
		if need, known = rt.lockedNeed(w, readAfter, lock); !known {
			return nil, need, false
		}
	}
	if n := rt.Set.Pick(need); n != nil {
		return n, need, true
	}
	// Probe the replicas until one has replayed need: each round is one
	// round trip per replica (in parallel, shared with other readers);
	// replay on a healthy replica takes about that, so the first rounds
	// follow each other at once, later ones a millisecond apart (a paused
	// replica is not probed flat out for causal_read_timeout).
	names := rt.Mon.Names()
	for round := 0; ctx.Err() == nil; round++ {
		if round >= 3 {
			select {
			case <-ctx.Done():
				return nil, need, true
			case <-time.After(time.Millisecond):
			}
		}
		now := time.Now()
		var wg sync.WaitGroup
		for _, name := range names {
			wg.Go(func() { rt.Mon.Fresh(ctx, name, now) })
		}
		wg.Wait()
		if n := rt.Set.Pick(need); n != nil {
			return n, need, true
		}
	}
	return nil, need, true
}

var (
	causalReads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_causal_reads_total",
		Help: "Reads that needed a position (the client's own write, or SET switchyard.read_after), once each, by protocol, cluster and where they went: replica (a replica was known to have it), replica_checked (a replica checked it in the read's round trip), replica_after_wait (after probing the positions now, up to causal_read_timeout), primary (no replica had it in time). Requests that only prepare or describe statements are not reads.",
	}, []string{"protocol", "cluster", "served_by"})
	causalWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchyard_causal_read_wait_seconds",
		Help:    "Time a read that needed a position spent finding a replica that has it (fresh probes of the positions), by protocol and cluster.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
	}, []string{"protocol", "cluster"})
)

func init() { metrics.Registry.MustRegister(causalReads, causalWait) }

// tally takes the read-your-writes outcome of one routed request for
// switchyard_causal_reads_total and the wait histogram: a read's is
// counted at once; that of a request that only prepares or describes
// (no read: read false) is kept, and counted by the read that runs on
// its lease after it (Reads.Ride), if one does.
type tally struct {
	read     bool
	servedBy string // kept: where the request went ("": nowhere yet)
	waits    [2]time.Duration
	nwaits   int
}

// served books where the request went (served_by).
func (t *tally) served(rt *Runtime, servedBy string) {
	if t.read {
		causalReads.WithLabelValues(rt.spec.Load().Protocol, rt.Name, servedBy).Inc()
		return
	}
	t.servedBy = servedBy
}

// waited books a wait for fresh positions.
func (t *tally) waited(rt *Runtime, d time.Duration) {
	if t.read {
		causalWait.WithLabelValues(rt.spec.Load().Protocol, rt.Name).Observe(d.Seconds())
		return
	}
	if t.nwaits < len(t.waits) {
		t.waits[t.nwaits] = d
		t.nwaits++
	}
}

// causal books a read that needed a position, served by a replica or
// the primary, after a wait of d for fresh positions or not.
func (t *tally) causal(rt *Runtime, replica, waited bool, d time.Duration) {
	servedBy := "primary"
	if replica {
		servedBy = "replica"
		if waited {
			servedBy = "replica_after_wait"
		}
	}
	t.served(rt, servedBy)
	if waited {
		t.waited(rt, d)
	}
}

// count counts what t kept, once.
func (t *tally) count(rt *Runtime) {
	if t.read || t.servedBy == "" {
		return
	}
	k := *t
	*t = tally{read: true}
	k.read = true
	k.served(rt, k.servedBy)
	for _, d := range k.waits[:k.nwaits] {
		k.waited(rt, d)
	}
}

func (rt *Runtime) lockedNeed(w *Writes, readAfter lagmon.Position, lock sync.Locker) (lagmon.Position, bool) {
	if lock != nil {
		lock.Lock()
		defer lock.Unlock()
	}
	return rt.Need(w, readAfter)
}

// Writes is what read-your-writes knows of one client's writes on one
// primary (a cluster's, or a shard's). It is the client session's: the
// caller serializes access.
type Writes struct {
	at  time.Time       // when the last write ended, until its position is known
	pos lagmon.Position // a primary position that includes the last write
}

// Wrote books a write transaction that ended (committed or rolled back)
// at now.
func (w *Writes) Wrote(now time.Time) { w.at = now }

// Need is what a replica must have replayed to serve a client whose
// writes are w (nil: none) and who asked to read after readAfter (nil:
// nothing): the primary position sampled after its last write ended, or
// readAfter, whichever is later. known is false while the position of a
// write is not sampled yet; the read then goes to the primary.
func (rt *Runtime) Need(w *Writes, readAfter lagmon.Position) (need lagmon.Position, known bool) {
	if w != nil {
		if !w.at.IsZero() && rt.Settings().ReadYourWrites {
			pos, ok := rt.Mon.PrimaryAfter(w.at)
			if !ok {
				return nil, false
			}
			w.pos, w.at = pos, time.Time{}
		}
		need = w.pos
	}
	if readAfter != nil && (need == nil || !need.AtLeast(readAfter)) {
		need = readAfter
	}
	return need, true
}

// ErrWritePositionUnknown is WritePosition's answer when no sample of the
// primary since the client's last write could be had: the previous
// position would not cover that write, and a token of it would let
// another connection read stale data.
var ErrWritePositionUnknown = errors.New("the primary's position after your last write could not be read (is the primary reachable?): no token covers that write yet; try again")

// WritePosition answers SHOW switchyard.write_position: the position of
// the client's last write as text another connection can pass to SET
// switchyard.read_after ("" when the client has not written). When no
// sample of the primary since the write exists yet, the primary is probed
// now (coalesced, as for a read), for up to 2s; when none can be had by
// then, ErrWritePositionUnknown. lock guards w (nil: none needed).
func (rt *Runtime) WritePosition(w *Writes, lock sync.Locker) (string, error) {
	if rt == nil || w == nil {
		return "", nil
	}
	deadline := time.Now().Add(2 * time.Second)
	for probed := false; ; probed = true {
		_, known := rt.lockedNeed(w, nil, lock)
		if lock != nil {
			lock.Lock()
		}
		pos := w.pos
		if lock != nil {
			lock.Unlock()
		}
		if !known && !time.Now().Before(deadline) {
			return "", ErrWritePositionUnknown
		}
		if known {
			if pos == nil {
				return "", nil
			}
			return pos.String(), nil
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if !rt.primaryAfterWrite(ctx, w, lock) || probed {
			// The probe failed (or did not do): wait for a poll, or the
			// deadline.
			select {
			case <-ctx.Done():
			case <-time.After(max(rt.Settings().LagPollInterval/2, time.Millisecond)):
			}
		}
		cancel()
	}
}

// WritesByPrimary is a client's Writes per primary, for a sharded
// database: positions of two shards' primaries do not compare.
type WritesByPrimary map[string]*Writes

// For returns the client's Writes on the primary keyed k, adding them.
func (m *WritesByPrimary) For(k string) *Writes {
	w := (*m)[k]
	if w == nil {
		if *m == nil {
			*m = make(WritesByPrimary)
		}
		w = &Writes{}
		(*m)[k] = w
	}
	return w
}

// Registry holds the runtimes of one front end by name, as one snapshot
// replaced whole on reload; lookups are lock-free.
type Registry struct {
	mu     sync.Mutex // serializes Reload and Close
	cur    atomic.Pointer[map[string]*Runtime]
	closed bool
}

// Reload makes specs the node sets in force: a runtime whose spec did not
// change (see sameAs) is kept with its samples, the others are built anew,
// and the replaced ones are stopped once the new snapshot is published.
func (r *Registry) Reload(specs []Spec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	old := r.snapshot()
	next := make(map[string]*Runtime, len(specs))
	for _, s := range specs {
		if rt := old[s.Cluster.Name]; rt != nil && rt.sameAs(s) {
			rt.spec.Store(&s)
			next[s.Cluster.Name] = rt
			continue
		}
		next[s.Cluster.Name] = NewRuntime(s)
	}
	r.cur.Store(&next)
	for name, rt := range old {
		if next[name] != rt {
			rt.stop()
		}
	}
	for _, rt := range next {
		rt.register() // after the replaced ones let go of their metrics
	}
}

func (r *Registry) snapshot() map[string]*Runtime {
	if m := r.cur.Load(); m != nil {
		return *m
	}
	return nil
}

// Get returns the runtime named name (a cluster, or ShardName of a
// shard), nil when it has no replicas.
func (r *Registry) Get(name string) *Runtime { return r.snapshot()[name] }

// All returns the runtimes in force, by name (a copy).
func (r *Registry) All() map[string]*Runtime { return maps.Clone(r.snapshot()) }

// Close stops every runtime; later Reloads do nothing.
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if m := r.cur.Swap(nil); m != nil {
		for _, rt := range *m {
			rt.stop()
		}
	}
}
