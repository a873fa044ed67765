package mysqlwire

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// Diagnostics and LAST_INSERT_ID under transaction pooling.
//
// What SHOW WARNINGS, @@warning_count, ROW_COUNT(), FOUND_ROWS() and
// LAST_INSERT_ID() report lives on a server connection, and an autocommit
// statement may run on another connection than the client's previous
// one, where they describe another client's statement. The proxy keeps
// them the client's, at no cost to ordinary statements:
//
//   - A statement whose final OK/EOF reports warnings keeps its lease
//     through the next command (ProxySQL's mysql-handle_warnings): a
//     SHOW WARNINGS that follows runs where they are. notePosition does
//     not run on a lease kept so. A client that goes idle after such a
//     statement holds a server connection meanwhile. A failed statement
//     does not keep it (errors are common, and clients that idle after
//     one would hold connections: six clients over a pool of three
//     waited out the pool); SHOW ERRORS after an ERR reads the prelude's
//     empty list.
//   - A statement that reads the diagnostics (router.MySQLEffects
//     DiagWarn, DiagRows) on a connection that does not hold this
//     session's gets a prelude in the same write, in front of it:
//     DO (SELECT LAST_INSERT_ID(n) FROM (SELECT 1) AS d), which clears
//     the warnings (it uses a table), sets the error count to 0, and
//     ROW_COUNT() to 0. Such statements go to the primary. The previous
//     statement had no warnings (else its lease would be kept), so the
//     answer is right, except for the generic forms of ROW_COUNT() and
//     FOUND_ROWS(), which read the prelude's 0 and 1.
//   - SELECT ROW_COUNT() and SELECT FOUND_ROWS() alone ([AS] alias) off
//     the client's connection are answered from what the relay saw of
//     the client's last statement: affected rows of its OK, -1 after a
//     result set or an error; the row count of its last result set.
//   - LAST_INSERT_ID: s.lastID is the session's value: the id of its
//     last OK packet that carried one (the generated id; for an explicit
//     AUTO_INCREMENT value that value, which the function would not
//     return: telling them apart would cost a round trip per INSERT),
//     or, after LAST_INSERT_ID(expr), SELECT LAST_INSERT_ID() read on
//     the lease before it ends (after the client has its answer; one
//     round trip more for such statements only). Statements that read it in any spelling
//     (LAST_INSERT_ID(), @@last_insert_id, @@identity) on a connection
//     whose value is not the session's get SET @@session.last_insert_id
//     = n (or the prelude above) in front; SELECT LAST_INSERT_ID() alone
//     is answered with the value.
//
// Sharded clusters are left as they were: their statements may run on
// several shards.

// diagRecord is what the client's last statement left, as the relay saw
// its final result.
type diagRecord struct {
	rows     int64  // ROW_COUNT(): affected rows of an OK; -1 after a result set or an ERR
	found    uint64 // FOUND_ROWS(): rows of the last result set
	warnings uint16 // of the final OK/EOF
	err      bool   // the statement ended with an ERR
	seen     bool   // a server answered this command
}

// notes the final OK of a statement.
func (s *session) diagOK(ok *mysqlproto.OK) {
	s.diag.rows, s.diag.warnings, s.diag.err, s.diag.seen = int64(ok.AffectedRows), ok.Warnings, false, true
	if ok.LastInsertID != 0 {
		// The generated id, as the function returns it, or an explicit
		// AUTO_INCREMENT value, which the function does not return but
		// the OK carries all the same: telling them apart would cost a
		// round trip after every INSERT. (The connection's value is not
		// taken as the session's: for an explicit id it is not.)
		s.lastID = ok.LastInsertID
	}
}

// diagResultSet notes the end of a result set of n rows whose terminator
// carried warnings.
func (s *session) diagResultSet(warnings uint16, n uint64) {
	s.diag.rows, s.diag.found, s.diag.warnings, s.diag.err, s.diag.seen = -1, n, warnings, false, true
}

func (s *session) diagERR() {
	s.diag.rows, s.diag.err, s.diag.warnings, s.diag.seen = -1, true, 0, true
}

// planDiag decides, for a statement with effects e about to run, whether
// it needs a prelude or is answered from the record. held says the lease
// was kept from the previous command (which ran on it). It returns the
// COM_QUERY to send in place of the client's, or nil.
func (s *session) planDiag(e *router.MySQLEffects, held, text bool) []byte {
	// The command loop cleared prelude and diagPrimary.
	s.curSetsID, s.curDiagWarn = e.SetsID, e.DiagWarn
	if s.sh != nil || !(e.DiagWarn || e.DiagRows || e.ReadsID) {
		return nil
	}
	if e.ReadsID && !s.idHere && s.idDirty && s.lease != nil {
		s.takeID() // an insert on this lease: learn the value first
	}
	if text && e.Count == 1 {
		switch {
		case e.LastInsertID && !s.idHere:
			return constQuery(strconv.FormatUint(s.lastID, 10), "UNSIGNED", e.Alias)
		case e.RowCount && !held:
			return constQuery(strconv.FormatInt(s.diag.rows, 10), "SIGNED", e.Alias)
		case e.FoundRows && !held:
			return constQuery(strconv.FormatUint(s.diag.found, 10), "UNSIGNED", e.Alias)
		}
	}
	needDiag := e.DiagWarn && !s.diagHere || e.DiagRows && !held
	switch {
	case needDiag && !s.idHere:
		s.prelude = append(s.prelude, mysqlproto.ComQuery)
		s.prelude = append(s.prelude, "DO (SELECT LAST_INSERT_ID("...)
		s.prelude = strconv.AppendUint(s.prelude, s.lastID, 10)
		s.prelude = append(s.prelude, ") FROM (SELECT 1) AS switchyard_diag)"...)
	case needDiag:
		s.prelude = append(s.prelude, mysqlproto.ComQuery)
		s.prelude = append(s.prelude, "DO (SELECT 1 FROM (SELECT 1) AS switchyard_diag)"...)
	case e.ReadsID && !s.idHere:
		s.prelude = append(s.prelude, mysqlproto.ComQuery)
		s.prelude = append(s.prelude, "SET @@session.last_insert_id = "...)
		s.prelude = strconv.AppendUint(s.prelude, s.lastID, 10)
	default:
		return nil
	}
	s.preludeDiag = needDiag
	s.diagPrimary = true
	return nil
}

// constQuery is a COM_QUERY that returns v as CAST(v AS typ) in a column
// named alias.
func constQuery(v, typ, alias string) []byte {
	q := []byte{mysqlproto.ComQuery}
	q = append(q, "SELECT CAST("...)
	q = append(q, v...)
	q = append(q, " AS "...)
	q = append(q, typ...)
	q = append(q, ") AS `"...)
	q = append(q, strings.ReplaceAll(alias, "`", "``")...)
	return append(q, '`')
}

// sendPrelude writes the prelude in front of the command (flushed with it).
func (s *session) sendPrelude(be *backend) error {
	if _, err := mysqlproto.WritePacket(be.bw, 0, s.prelude); err != nil {
		return serverIOError{err}
	}
	return nil
}

// readPrelude reads the prelude's answer (sent with the command); an
// ERR is ignored: the command runs as it would have.
func (s *session) readPrelude(be *backend) error {
	p, _, err := be.readPacket()
	if err != nil {
		return serverIOError{err}
	}
	if len(p) == 0 || p[0] != mysqlproto.HeaderOK && p[0] != mysqlproto.HeaderERR {
		return serverIOError{mysqlproto.ErrMalformed}
	}
	if p[0] == mysqlproto.HeaderOK {
		s.idHere = true
		if s.preludeDiag {
			s.diagHere = true
		}
	}
	return nil
}

// noteDiag decides, after a command, whether its lease is kept for the
// next one because the statement left warnings or an error there.
func (s *session) noteDiag() {
	held := s.diagHold
	s.diagHold = s.lease != nil && s.diag.seen && s.diag.warnings > 0 && s.sh == nil
	if held && s.curDiagWarn && s.diagHere && s.lease != nil {
		s.diagHold = true // SHOW WARNINGS leaves them: @@warning_count may follow
	}
	if s.diagHold {
		s.diagHere = true
	}
	if s.lease != nil && s.curSetsID {
		s.idDirty, s.idHere = true, true // LAST_INSERT_ID(expr) made it the session's
	}
}

// takeID reads the lease's LAST_INSERT_ID() after LAST_INSERT_ID(expr)
// ran on it (s.idDirty), which made the connection's value the session's.
func (s *session) takeID() {
	be := s.be
	s.idDirty = false
	if be == nil || be.broken {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	v, ok, err := be.queryValue(ctx, "SELECT LAST_INSERT_ID()")
	cancel()
	if err != nil || !ok {
		return
	}
	id, perr := strconv.ParseUint(v, 10, 64)
	if perr != nil {
		return
	}
	if s.idHere {
		s.lastID = id
	}
}

// leaseDiagReset forgets what the previous lease's connection held.
func (s *session) leaseDiagReset() {
	s.diagHere, s.idHere, s.idDirty, s.diagHold = false, false, false, false
}

// diagHoldIdle bounds how long a lease kept for a statement's warnings
// (diagHold) waits for the client's next command: a client that goes idle
// after one must not hold a server connection of the pool meanwhile. A
// SHOW WARNINGS later than that reads an empty list, as after a statement
// without warnings (the prelude).
const diagHoldIdle = time.Second

// awaitDiagHold waits, while a lease is kept for warnings, up to
// diagHoldIdle for the client's next command to start arriving; then the
// lease goes back to the pool. What arrived stays in s.rest for
// readHeader.
func (s *session) awaitDiagHold() error {
	if !s.diagHold || s.lease == nil || len(s.rest) > 0 || s.inTx || s.keeps() != router.HoldNone {
		return nil
	}
	_ = s.nc.SetReadDeadline(time.Now().Add(diagHoldIdle))
	n, err := s.nc.Read(s.in[:])
	_ = s.nc.SetReadDeadline(time.Time{})
	if n > 0 {
		s.rest = s.in[:n]
		return nil
	}
	if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
		s.diagHold = false
		if s.idDirty {
			s.takeID()
		}
		s.release(true) // forgets what the connection held (leaseDiagReset)
		return nil
	}
	if err == nil {
		return nil
	}
	return err
}
