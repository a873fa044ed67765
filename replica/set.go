package replica

import (
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/lagmon"
)

// Node is one replica of a Set. Name and Weight never change after NewSet;
// the rest is updated atomically by Pick, Done and Ban.
type Node struct {
	Name   string // address, the same name the lag monitor knows it by
	Weight int    // relative share of reads, at least 1

	outstanding atomic.Int64
	vt          atomic.Uint64       // virtual time of this node's next read, see Pick
	ban         atomic.Pointer[ban] // nil when not banned
	_           [64]byte            // keep hot counters of different nodes off one cache line
}

type ban struct {
	at, until time.Time
	reason    string
}

// Outstanding returns how many reads picked for n have not called Done yet.
func (n *Node) Outstanding() int64 { return n.outstanding.Load() }

// Options tune a Set.
type Options struct {
	// MaxLag excludes replicas whose lag (lagmon.ReplicaStatus.Lag) is
	// larger. Zero admits only replicas that had replayed everything the
	// primary had written at its newest sample (max_replica_lag = "0s");
	// a negative MaxLag means no limit. A replica whose lag is unknown
	// (lagmon.ReplicaStatus.LagKnown) is excluded whatever the limit,
	// unless the primary cannot be reached at all (PrimaryDown): reads
	// then keep going to the replicas that hold the newest data there is
	// (all the primary had at its last sample, or nothing less than
	// another healthy replica has), as nothing newer can be read.
	MaxLag time.Duration
	// BanFor is how long Ban keeps a replica out at least, default 5s.
	BanFor time.Duration
	// Weights gives nodes a relative share of reads, by name; missing or
	// non-positive means 1.
	Weights map[string]int
	// Now is the clock, for tests. It must be the clock of the Monitor too:
	// a ban ends only after a probe that started after the ban.
	Now func() time.Time
}

// Set is one cluster's (or shard's) replicas for reads: health, load
// balancing, bans. It is safe for concurrent use; a config reload builds a
// new Set rather than changing one.
type Set struct {
	nodes  []*Node
	byName map[string]*Node
	mon    *lagmon.Monitor
	o      Options
	vclock atomic.Uint64 // virtual time of the last pick, see Pick
}

// vscale is the virtual time one read costs a node of weight 1; a node of
// weight w pays vscale/w. 720720 is divisible by every weight up to 16.
const vscale = 720720

// vless compares virtual times modulo 2^64, so wrapping around is harmless.
func vless(a, b uint64) bool { return int64(a-b) < 0 }

// NewSet returns a Set of the named replicas (duplicates are dropped). mon
// tells health, lag and replayed positions; the names must be the ones mon
// was created with, and a name mon does not know never gets reads. mon may
// be nil: then only bans are checked, and a Pick that needs a position
// finds no replica.
func NewSet(nodes []string, mon *lagmon.Monitor, o Options) *Set {
	if o.BanFor <= 0 {
		o.BanFor = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Set{byName: make(map[string]*Node, len(nodes)), mon: mon, o: o}
	for _, name := range nodes {
		if _, dup := s.byName[name]; dup {
			continue
		}
		n := &Node{Name: name, Weight: max(o.Weights[name], 1)}
		s.nodes = append(s.nodes, n)
		s.byName[name] = n
	}
	return s
}

// Pick chooses the replica for one read: among the nodes that are not
// banned, healthy per the monitor, lagging at most MaxLag and (when need is
// not nil) have replayed need, the one with the fewest outstanding requests
// per unit of weight. It returns nil when no node qualifies: the caller
// reads from the primary. Pick counts the read as outstanding on the chosen
// node; the caller calls Done when the read's transaction ends.
//
// Ties, which are the rule under light load when nothing is outstanding,
// go to the node whose turn it is in a weighted round robin (each node
// carries a virtual time that advances by 1/weight per read, and the
// earliest wins), so reads still spread in proportion to the weights, over
// the eligible nodes only. A node coming back from a ban or from lagging
// joins the rotation at its end instead of catching up on the turns it
// missed.
func (s *Set) Pick(need lagmon.Position) *Node {
	var (
		now            time.Time
		best           *Node
		bestOut, bestW int64
		bestVT         uint64
	)
	v := s.vclock.Load()
	for _, nd := range s.nodes {
		if !s.eligible(nd, need, &now) {
			continue
		}
		out, w, vt := nd.outstanding.Load(), int64(nd.Weight), nd.vt.Load()
		if vless(vt, v) {
			// Out of the rotation for a while (banned, lagging, busy):
			// rejoin at its end, once.
			if nd.vt.CompareAndSwap(vt, v+vscale/uint64(w)) {
				vt = v + vscale/uint64(w)
			} else {
				vt = nd.vt.Load()
			}
		}
		// out/w < bestOut/bestW without division.
		if best == nil || out*bestW < bestOut*w || out*bestW == bestOut*w && vless(vt, bestVT) {
			best, bestOut, bestW, bestVT = nd, out, w, vt
		}
	}
	if best == nil {
		return nil
	}
	best.outstanding.Add(1)
	s.vclock.Store(bestVT)
	best.vt.Store(bestVT + vscale/uint64(bestW))
	return best
}

// eligible reports whether nd may serve a read that needs position need
// (nil: any). It ends a ban that is over. now caches the clock across the
// nodes of one Pick; it is read only when a node is banned.
func (s *Set) eligible(nd *Node, need lagmon.Position, now *time.Time) bool {
	b := nd.ban.Load()
	if b != nil {
		if now.IsZero() {
			*now = s.o.Now()
		}
		if now.Before(b.until) {
			return false
		}
	}
	if s.mon == nil {
		if b != nil {
			nd.ban.CompareAndSwap(b, nil)
		}
		return need == nil
	}
	st := s.mon.Replica(nd.Name)
	if b != nil {
		if !st.Healthy || !st.SampledAt.After(b.at) {
			return false // the period is over, but no probe since the ban has succeeded
		}
		nd.ban.CompareAndSwap(b, nil)
	}
	if !st.Healthy || need != nil && !st.Position.AtLeast(need) {
		return false
	}
	if !st.LagKnown {
		// Unknown lag is not zero: no reads, unless the primary cannot
		// be reached at all, when the newest data there is is on the
		// replicas that are not behind.
		return st.PrimaryDown && s.newest(nd, st.Position)
	}
	return s.o.MaxLag < 0 || st.Lag <= s.o.MaxLag
}

// newest reports whether pos, nd's replayed position, holds the newest
// data that can be read while the primary is down: everything the primary
// had at its last sample, or else nothing less than any other healthy
// replica has (positions that do not compare, GTID sets of different
// domains say, count as not behind).
func (s *Set) newest(nd *Node, pos lagmon.Position) bool {
	if last, _, _ := s.mon.Primary(); last != nil && pos.AtLeast(last) {
		return true
	}
	for _, o := range s.nodes {
		if o == nd {
			continue
		}
		if st := s.mon.Replica(o.Name); st.Healthy && st.Position.AtLeast(pos) && !pos.AtLeast(st.Position) {
			return false // o has all nd has, and more
		}
	}
	return true
}

// Done ends a read that Pick gave to n. A nil n (Pick found no replica)
// is ignored, so Done(s.Pick(need)) pairs up without a check. Calling Done
// more often than Pick returned n panics: the count would be wrong forever.
func (s *Set) Done(n *Node) {
	if n == nil {
		return
	}
	if n.outstanding.Add(-1) < 0 {
		panic("replica: Done called more often than Pick returned " + n.Name)
	}
}

// Ban keeps replica name from getting reads, for instance because a
// connection to it was refused. The ban ends by itself after BanFor, once
// the monitor has read the replica's position by a probe started after the
// ban (without a monitor, after BanFor). Banning a banned node starts its
// ban again. Unknown names are ignored.
func (s *Set) Ban(name string, reason string) {
	n, ok := s.byName[name]
	if !ok {
		return
	}
	now := s.o.Now()
	n.ban.Store(&ban{at: now, until: now.Add(s.o.BanFor), reason: reason})
}

// NodeStatus is a Set's view of one replica, for admin views and metrics.
type NodeStatus struct {
	Name        string
	Weight      int
	Outstanding int64
	Banned      bool
	BanReason   string
	BannedUntil time.Time // end of the ban period (the node may stay out longer, see Ban)
	Healthy     bool      // per the monitor; true without one
	LagKnown    bool      // per the monitor; true without one
	Lag         time.Duration
	LagBytes    int64 // -1: not applicable or unknown
	Err         error // the monitor's last probe error
	Eligible    bool  // would get a read that needs no position now
}

// Status returns the state of every node, in the order NewSet got them.
func (s *Set) Status() []NodeStatus {
	out := make([]NodeStatus, 0, len(s.nodes))
	var now time.Time
	for _, n := range s.nodes {
		ns := NodeStatus{Name: n.Name, Weight: n.Weight, Healthy: true, LagKnown: true, LagBytes: -1}
		ns.Eligible = s.eligible(n, nil, &now)
		ns.Outstanding = n.outstanding.Load()
		if b := n.ban.Load(); b != nil {
			ns.Banned, ns.BanReason, ns.BannedUntil = true, b.reason, b.until
		}
		if s.mon != nil {
			st := s.mon.Replica(n.Name)
			ns.Healthy, ns.LagKnown, ns.Lag, ns.LagBytes, ns.Err = st.Healthy, st.LagKnown, st.Lag, st.LagBytes, st.Err
		}
		out = append(out, ns)
	}
	return out
}

// LagUnknown reports whether some replica would take reads but for its
// lag being unknown (the primary cannot be probed), and none takes them:
// reads then go to the primary for that reason, which a metric shows.
func (s *Set) LagUnknown() bool {
	if s.mon == nil {
		return false
	}
	unknown := false
	var now time.Time
	for _, n := range s.nodes {
		if s.eligible(n, nil, &now) {
			return false
		}
		if b := n.ban.Load(); b != nil {
			continue
		}
		if st := s.mon.Replica(n.Name); st.Healthy && !st.LagKnown && !st.PrimaryDown {
			unknown = true
		}
	}
	return unknown
}

// AllOut reports whether no replica could take a read right now (one that
// needs no position), so reads fall back to the primary: for a metric and
// an alert.
func (s *Set) AllOut() bool {
	var now time.Time
	for _, n := range s.nodes {
		if s.eligible(n, nil, &now) {
			return false
		}
	}
	return true
}
