package replica

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/lagmon"
)

// Reads is one client session's read-your-writes state from one read to
// the next, the same for both wires: the position check the read's lease
// must carry (Pick sets it, the wire takes it with Take when it sends the
// read), when a read whose check failed was routed (CheckFailed: that
// read is routed again now, where AfterFailedCheck says), and whether the
// client reads right after its writes (WantPosition: the wire then reads
// the primary's position behind the client's next write). The wire's
// session goroutine calls every method but WantPosition, which any
// goroutine may call.
type Reads struct {
	check   lagmon.Position
	start   time.Time
	counted bool
	tally   tally // the outcome of a request that is no read, kept for a read on its lease
	failed  time.Time
	want    atomic.Bool
}

// Pick chooses a replica for a read (nil: the primary) under
// Runtime.PickRead's policy: after a failed check where AfterFailedCheck
// says; a request that cannot carry a check (canCheck is the wire's to
// say) by Pick; one that can by PickChecked, with the check it must
// carry kept for Take. w and readAfter are the session's; lock, when not
// nil, guards w; counted says the request reads (PickRead's).
func (r *Reads) Pick(rt *Runtime, w *Writes, readAfter lagmon.Position, why string, lock sync.Locker, canCheck, counted bool) *Node {
	failed := r.failed
	r.check, r.failed = nil, time.Time{}
	r.tally = tally{read: counted}
	p := rt.pickRead(w, readAfter, why, lock, failed, canCheck && failed.IsZero(), &r.tally)
	if p.WantPosition {
		r.want.Store(true)
	}
	r.check, r.start, r.counted = p.Check, p.Start, counted
	return p.Node
}

// Checking says whether the read just routed must carry a check.
func (r *Reads) Checking() bool { return r.check != nil }

// Take returns the check the read must carry, when the read was routed
// and whether it counts as a read (for Runtime.CheckDone), and forgets
// it.
func (r *Reads) Take() (pos lagmon.Position, start time.Time, counted bool) {
	pos, start, counted = r.check, r.start, r.counted
	r.check = nil
	return pos, start, counted
}

// A request that only prepares or describes is routed as a read would
// be, but is no read: its outcome is not counted. When a read then runs
// on the same lease, not routed again (a client that pipelines its
// Execute behind its Describe, or whose Execute comes before that
// lease is returned), the read is counted where that lease went: the
// wire calls Ride. Forget drops what was kept when a lease is routed
// without Pick (to the primary: a write, a pinned session); Checked books
// that the kept request's check passed.

// Ride counts a read that runs on the lease of a request that was no
// read, where that lease went; once, and only when that request needed
// a position. Nothing happens for a lease whose request was counted.
func (r *Reads) Ride(rt *Runtime) {
	if rt != nil {
		r.tally.count(rt)
	}
}

// Kept says whether an outcome is kept for Ride.
func (r *Reads) Kept() bool { return !r.tally.read && r.tally.servedBy != "" }

// Forget drops the outcome kept for Ride.
func (r *Reads) Forget() { r.tally = tally{read: true} }

// Checked books that the check of a request that was no read passed:
// a read riding its lease was served by a replica that checked.
func (r *Reads) Checked() {
	if !r.tally.read {
		r.tally.servedBy = "replica_checked"
	}
}

// Drop forgets the check of a read that did not go to the replica it
// was picked for.
func (r *Reads) Drop() { r.check = nil }

// CheckFailed books a read, routed at routed, whose check did not pass:
// the next Pick routes it again. Retried says it was.
func (r *Reads) CheckFailed(routed time.Time) { r.failed = routed }

// Retried forgets a failed check once its read was routed again.
func (r *Reads) Retried() { r.failed = time.Time{} }

// WantPosition says whether the client reads right after its writes (a
// read found its last write not sampled yet) or hands its position on
// (SetWantPosition).
func (r *Reads) WantPosition() bool { return r.want.Load() }

// SetWantPosition marks a client whose writes' positions are wanted at
// once: one that asked SHOW switchyard.write_position.
func (r *Reads) SetWantPosition() { r.want.Store(true) }
