package replica

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/lagmon"
)

// Checked reads: the position check in the same round trip as the read.
//
// A read that needs a position no replica is known to have replayed (the
// client wrote a moment ago, and the monitor's last samples predate the
// write's replay) need not wait for fresh samples: the wire package can
// send it to a replica with a check of the position in front of it, in
// the same round trip (MariaDB MASTER_GTID_WAIT, MySQL
// WAIT_FOR_EXECUTED_GTID_SET, PostgreSQL a statement that fails when
// pg_last_wal_replay_lsn() is behind, skipping the read). When the check
// passes the replica's answer is the client's; when it fails the answer
// is discarded and the read runs again on the primary (or, with
// causal_read_timeout, where Pick's probes find the position).

// PickChecked is Pick for a read that can carry a position check. It
// returns the replica for the read and the position check the read must
// carry there (nil: none, the replica is known to have it, or the read
// needs no position). nil n means the primary, as for Pick. A checked
// read is ended with CheckDone, and its node with Set.Done.
//
// The position of the client's last write is needed first: when no
// primary sample after the write exists yet, the primary is probed now
// (coalesced, as in Pick). sampled says whether it was known when the
// read came.
//
// counted says whether the request is a read to count in the
// read-your-writes metrics (see PickRead).
func (rt *Runtime) PickChecked(w *Writes, readAfter lagmon.Position, why string, lock sync.Locker, counted bool) (n *Node, check lagmon.Position, sampled bool) {
	return rt.pickChecked(w, readAfter, why, lock, &tally{read: counted})
}

// pickChecked is PickChecked; t takes the request's outcome.
func (rt *Runtime) pickChecked(w *Writes, readAfter lagmon.Position, why string, lock sync.Locker, t *tally) (n *Node, check lagmon.Position, sampled bool) {
	causal := func(replica, waited bool, d time.Duration) { t.causal(rt, replica, waited, d) }
	start := time.Now()
	need, known := rt.lockedNeed(w, readAfter, lock)
	sampled = known
	if !known {
		ctx, cancel := context.WithDeadline(context.Background(), start.Add(max(rt.Settings().CausalReadTimeout, freshWait)))
		ok := rt.primaryAfterWrite(ctx, w, lock)
		cancel()
		if ok {
			need, known = rt.lockedNeed(w, readAfter, lock)
		}
		if known {
			// A wait for fresh positions, as Pick's.
			t.waited(rt, time.Since(start))
		} else {
			causal(false, true, time.Since(start))
			rt.Fallback(rt.fallbackReason(false))
			return nil, nil, sampled
		}
	}
	if n = rt.Set.Pick(need); n != nil {
		if need != nil {
			causal(true, false, 0)
		}
		rt.Routed("replica", why)
		return n, nil, sampled
	}
	if need == nil || rt.Set.AllOut() {
		// No replica at all (none healthy, all banned or lagging).
		if need != nil {
			causal(false, false, 0)
		}
		rt.Fallback(rt.fallbackReason(need != nil))
		return nil, nil, sampled
	}
	// No replica is known to have need: one that may have it, healthy
	// and within max_replica_lag, checks for itself.
	if n = rt.Set.Pick(nil); n == nil {
		causal(false, false, 0)
		rt.Fallback(rt.fallbackReason(true))
		return nil, nil, sampled
	}
	rt.Routed("replica", why)
	return n, need, sampled
}

// primaryAfterWrite probes the primary (coalesced) for a position that
// includes the client's last write.
func (rt *Runtime) primaryAfterWrite(ctx context.Context, w *Writes, lock sync.Locker) bool {
	if w == nil {
		return false
	}
	if lock != nil {
		lock.Lock()
	}
	at := w.at
	if lock != nil {
		lock.Unlock()
	}
	return rt.Mon.Fresh(ctx, "", at)
}

func (rt *Runtime) fallbackReason(needed bool) string {
	switch {
	case rt.Set.LagUnknown():
		return "lag_unknown"
	case needed:
		return "read_your_writes"
	}
	return "no_replica"
}

// CheckDone books the outcome of a position check a read carried to n
// (PickChecked's check): passed, the replica had replayed pos when it
// answered, and later reads that need pos go there without a check;
// failed, the read goes elsewhere (the caller asks PickAfterCheck). d is
// the time from the read's routing to the check's answer. counted is
// PickRead's: a request that is not a read books the position only.
func (rt *Runtime) CheckDone(n *Node, pos lagmon.Position, passed, counted bool, at time.Time, d time.Duration) {
	p := rt.spec.Load().Protocol
	if passed {
		rt.Mon.Saw(n.Name, pos, at)
		if counted {
			causalReads.WithLabelValues(p, rt.Name, "replica_checked").Inc()
		}
		return
	}
	if counted {
		causalChecksFailed.WithLabelValues(p, rt.Name).Inc()
	}
}

// AfterFailedCheck decides where a read goes whose check failed on a
// replica (which it was given back with Set.Done): to the primary (nil),
// or, when causal_read_timeout allows a wait, to a replica that the
// probes of Pick find has the position, within that timeout counted
// from start. counted is PickRead's.
func (rt *Runtime) AfterFailedCheck(w *Writes, readAfter lagmon.Position, why string, lock sync.Locker, start time.Time, counted bool) *Node {
	return rt.afterFailedCheck(w, readAfter, why, lock, start, &tally{read: counted})
}

// afterFailedCheck is AfterFailedCheck; t takes the request's outcome.
func (rt *Runtime) afterFailedCheck(w *Writes, readAfter lagmon.Position, why string, lock sync.Locker, start time.Time, t *tally) *Node {
	if rt.Settings().CausalReadTimeout <= 0 {
		t.causal(rt, false, false, 0)
		rt.Fallback(rt.fallbackReason(true))
		return nil
	}
	n, need, known := rt.pickFresh(start, w, readAfter, lock)
	t.causal(rt, n != nil, true, time.Since(start))
	if n == nil {
		rt.Fallback(rt.fallbackReason(need != nil || !known))
		return nil
	}
	rt.Routed("replica", why)
	return n
}

var causalChecksFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "switchyard_causal_checks_failed_total",
	Help: "Position checks sent to a replica in the same round trip as a read that found the replica behind: its answer was discarded and the read ran elsewhere, by protocol and cluster. Checks that passed count in switchyard_causal_reads_total{served_by=\"replica_checked\"}.",
}, []string{"protocol", "cluster"})

func init() { metrics.Registry.MustRegister(causalChecksFailed) }

// Known books the end of a write transaction whose primary position pos
// was read after it ended, on the connection that ran it (so pos covers
// the commit): reads need no primary sample to wait for.
func (w *Writes) Known(pos lagmon.Position) {
	if pos != nil {
		w.pos, w.at = pos, time.Time{}
	}
}
