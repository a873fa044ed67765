package replica

import (
	"sync"
	"time"

	"github.com/switchyard/switchyard/lagmon"
)

// ReadPick is where PickRead sends a read.
type ReadPick struct {
	Node  *Node           // nil: the primary
	Check lagmon.Position // the position a check in front of the read must find on Node (nil: no check)
	Start time.Time       // when the checked read was routed (Check only)
	// WantPosition: the position of the client's last write was not
	// sampled yet when the read came, a client that reads right after
	// its writes; the wire reads the primary's position after its next
	// write.
	WantPosition bool
}

// PickRead is a read's choice of a replica under read-your-writes, the
// one policy of both wires. failed, when not zero, is when the read was
// routed before its check failed on a replica: it goes where
// AfterFailedCheck says. Otherwise a read whose request cannot carry a
// check (canCheck is the wire's to say; read_your_writes off counts as
// cannot) is Pick's; one that can is PickChecked's, and a check it must
// carry is in the answer. w and readAfter are the session's (lock, when
// not nil, guards w, as for Pick).
//
// counted says whether the request reads: a request that only prepares
// or describes statements (MySQL COM_STMT_PREPARE, a PostgreSQL batch
// without Execute) goes where a read would, with the same position
// (the statement must see the client's tables), but it is no read of the
// client's: switchyard_causal_reads_total, _checks_failed_total and
// _read_wait_seconds count reads only, so that they add up to the
// client's reads.
func (rt *Runtime) PickRead(w *Writes, readAfter lagmon.Position, why string, lock sync.Locker, failed time.Time, canCheck, counted bool) ReadPick {
	return rt.pickRead(w, readAfter, why, lock, failed, canCheck, &tally{read: counted})
}

// pickRead is PickRead; t takes the request's outcome (Reads keeps that
// of a request that is no read, for a read on its lease).
func (rt *Runtime) pickRead(w *Writes, readAfter lagmon.Position, why string, lock sync.Locker, failed time.Time, canCheck bool, t *tally) ReadPick {
	if !failed.IsZero() {
		return ReadPick{Node: rt.afterFailedCheck(w, readAfter, why, lock, failed, t)}
	}
	if !canCheck || !rt.Settings().ReadYourWrites {
		return ReadPick{Node: rt.pick(w, readAfter, why, lock, t)}
	}
	r := ReadPick{Start: time.Now()}
	var sampled bool
	r.Node, r.Check, sampled = rt.pickChecked(w, readAfter, why, lock, t)
	r.WantPosition = !sampled
	if r.Node == nil {
		r.Check = nil
	}
	return r
}
