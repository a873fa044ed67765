package mysqlwire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lagmon"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// Read-your-writes with the check in the same round trip as the read
// (MaxScale's causal_reads): a read that needs a position no replica is
// known to have replayed goes to a replica with
//
//	SELECT @@GLOBAL.gtid_slave_pos                          (MariaDB, no wait:
//	                                                          compared here)
//	SELECT MASTER_GTID_WAIT('<gtid>', <timeout>)            (MariaDB)
//	SELECT WAIT_FOR_EXECUTED_GTID_SET('<gtid set>', <timeout>) (MySQL)
//	SELECT GTID_SUBSET('<gtid set>', @@GLOBAL.gtid_executed) (MySQL, no wait)
//
// written right in front of the client's command, both flushed at once:
// the replica answers both in one round trip. The wait's answer never
// reaches the client. When the replica had the position in time, the
// command's answer is relayed as usual; when not, that answer (of a read:
// it changed nothing) is read off and dropped, the replica's lease ends,
// and the command runs again on the primary. The timeout is
// causal_read_timeout (default 0: the replica answers at once whether it
// has the position).

// checkedLease says whether the command of the lease just taken carries
// a position check; the books of the last failed check, whose command
// has been routed again by now, are closed.
func (s *session) checkedLease(onReplica bool) bool {
	s.reads.Retried()
	if !onReplica {
		s.reads.Drop()
	}
	return s.reads.Checking()
}

// waitQuery is the COM_QUERY of the position check for be's flavor.
func waitQuery(be *backend, pos lagmon.Position, timeout time.Duration) []byte {
	mariadb := flavorOf(be.version) == flavorMariaDB
	if mariadb && timeout <= 0 {
		// No wait: the replica's position, compared here (it also tells
		// the lag monitor how far the replica is). The same bytes for
		// every read: nothing to format.
		return replicaPosQuery
	}
	q := []byte{mysqlproto.ComQuery}
	gtid := strings.ReplaceAll(pos.String(), "'", "")
	secs := strconv.FormatFloat(timeout.Seconds(), 'f', 6, 64)
	if mariadb {
		q = fmt.Appendf(q, "SELECT MASTER_GTID_WAIT('%s', %s)", gtid, secs)
	} else if timeout > 0 {
		q = fmt.Appendf(q, "SELECT WAIT_FOR_EXECUTED_GTID_SET('%s', %s)", gtid, secs)
	} else {
		q = fmt.Appendf(q, "SELECT 1 - GTID_SUBSET('%s', @@GLOBAL.gtid_executed)", gtid)
	}
	return q
}

// replicaPosQuery is MariaDB's check without a wait (read only).
var replicaPosQuery = append([]byte{mysqlproto.ComQuery}, "SELECT @@GLOBAL.gtid_slave_pos"...)

// checkedCommand sends the position check and the client's command p
// (sequence id seq) to the replica of the lease in one write, and reads
// the check's answer. passed: relay the command's answer (rl.response).
// Not passed: the answer was read off, the lease ended, and the command
// must run again (s.reads routes it). A server error inside the
// check (a replica without GTIDs, say) counts as not passed.
func (s *session) checkedCommand(rl *relay, p []byte, seq uint8, kind respKind) (passed bool, err error) {
	pos, start, counted := s.reads.Take()
	be, rt, node := rl.be, s.leaseRT, s.leaseNode
	sent := time.Now()
	if _, err := mysqlproto.WritePacket(be.bw, 0, waitQuery(be, pos, rt.Settings().CausalReadTimeout)); err != nil {
		return false, serverIOError{err}
	}
	if err := rl.command(p, seq); err != nil {
		return false, err
	}
	v, _, err := be.readColumn(0) // NULL: ""
	if err != nil {
		var se *mysqlproto.ServerError
		switch {
		case errors.As(err, &se):
			v = "error"
		case errors.Is(err, mysqlproto.ErrMalformed):
			return false, err
		default:
			return false, serverIOError{err}
		}
	}
	seen := pos
	if flavorOf(be.version) == flavorMariaDB && rt.Settings().CausalReadTimeout <= 0 {
		if g, perr := lagmon.ParseMariaDBGTID(v); perr == nil && g.AtLeast(pos) {
			passed, seen = true, g
		}
	} else {
		passed = v == "0"
	}
	rt.CheckDone(node, seen, passed, counted, sent, time.Since(start))
	if passed {
		return true, nil
	}
	// The command's answer is not the client's: read it off.
	w := rl.w
	rl.w = bufio.NewWriterSize(io.Discard, 64)
	err = rl.response(kind)
	rl.w, rl.wrote, rl.res = w, false, result{}
	s.inTx = false // the client saw nothing of it
	if err != nil {
		return false, err
	}
	s.release(true)
	s.reads.CheckFailed(start)
	return false, nil
}

// notePosition reads the primary's GTID position on the lease's own
// connection after a write transaction ended there, once the client has
// its reply, for a session whose reads after its writes had to wait for
// a sample of the primary (s.reads.WantPosition: a client that writes and then
// reads). Its next read needs no probe of the primary: the position is
// known, and the replica checks it in the read's round trip.
func (s *session) notePosition() {
	if !s.reads.WantPosition() || s.lease == nil || s.leaseNode != nil || !s.leaseWrites || s.inTx ||
		s.pinned != "" || s.hold > 0 || s.diagHold || s.mode != config.PoolTransaction || s.sh != nil || s.leaseRYW == nil {
		return
	}
	rt := s.srv.Rts.Get(s.cluster.Name)
	if rt == nil || !rt.Settings().ReadYourWrites {
		return
	}
	be := s.be
	mariadb := flavorOf(be.version) == flavorMariaDB
	q := "SELECT @@GLOBAL.gtid_executed"
	if mariadb {
		q = "SELECT @@GLOBAL.gtid_binlog_pos"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	v, ok, err := be.queryValue(ctx, q)
	cancel()
	if err != nil || !ok {
		return // the lease's release sees a broken connection
	}
	var pos lagmon.Position
	if mariadb {
		pos, err = lagmon.ParseMariaDBGTID(v)
	} else {
		pos, err = lagmon.ParseMySQLGTID(v)
	}
	if err == nil {
		s.leaseRYW.Known(pos)
		s.leaseWrites = false // booked: the lease's end adds nothing
	}
}
