package pgwire

import (
	"bytes"
	"encoding/binary"
	"maps"
	"slices"
	"strings"
	"unsafe"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/pgframe"
)

// Session state under transaction pooling.
//
// A client's SET and RESET outside a transaction, or inside one that
// commits, outlive the transaction: the proxy reads the resulting value
// back from the server right after the client's request (one extra query
// in the same round trip, only for statements that set something) and
// applies it to every server connection the client gets afterwards
// (syncParams). State that cannot be carried over (LISTEN, temporary
// tables, session advisory locks, WITH HOLD cursors, SQL-level PREPARE)
// pins the client to its server connection for the rest of the session,
// with a log line and a metric, rather than answering wrongly.

// keeps says why c keeps its server connection between transactions:
// router.HoldNone, HoldSession or HoldPinned (pinReason says what).
// Inside a transaction every client keeps it (txStatus says so). Under
// c.mu, or in the main loop.
func (c *clientConn) keeps() router.Hold {
	switch {
	case c.mode != config.PoolTransaction:
		return router.HoldSession
	case c.pinReason != "":
		return router.HoldPinned
	}
	return router.HoldNone
}

// unsafeString views b as a string without copying. The analyzer copies
// whatever it keeps.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// queryText is the SQL of a Query message.
func queryText(raw []byte) string {
	body := raw[5:]
	if n := len(body); n > 0 && body[n-1] == 0 {
		body = body[:n-1]
	}
	return unsafeString(body)
}

// stmtAnalysis is the analyzer's verdict on a global statement, computed
// once per statement.
func (c *clientConn) stmtAnalysis(g *gstmt) *router.Analysis {
	if a := g.an.Get(c.an); a != nil {
		return a
	}
	q, _, _ := pgframe.CString(g.parse[5+len(g.name)+1:])
	return g.an.Of(c.an, string(q))
}

// collect notes what a statement about to run asks of the session. Main
// loop only; the notes are turned into actions by sendMsg.
func (c *clientConn) collect(a *router.Analysis) {
	if a == nil {
		return
	}
	if a.Pin != "" {
		// The relay pins too (a reply over the session-settings cap):
		// pinReason is read under c.mu.
		c.mu.Lock()
		if c.pinReason == "" {
			c.pinNext = a.Pin
		}
		c.mu.Unlock()
	}
	if c.mode != config.PoolTransaction { // router.HoldSession; c.mode never changes
		// Nothing to carry to another server connection, but a startup
		// parameter reset is set to its startup value on this one.
		for _, s := range a.Sets {
			c.noteReset(s)
		}
		return
	}
	if a.RollbackTo {
		c.captureTxn = true
	}
	if a.Chain && a.Statements == 1 {
		c.chainNext = true
	}
	for _, s := range a.Sets {
		switch {
		case s.Local:
		case s.All:
			c.captureAll = true
			c.captureAuth = c.captureAuth || s.Auth
			c.capture = c.capture[:0]
			for k := range c.startupParams {
				c.capture = append(c.capture, k)
			}
			c.noteReset(s)
		case s.Name != "":
			c.capture = append(c.capture, s.Name)
			c.noteReset(s)
			if s.Name == "session_authorization" {
				// SET SESSION AUTHORIZATION also resets the role.
				c.capture = append(c.capture, "role")
			}
		}
	}
}

// noteReset notes in c.restore the startup parameters whose last change
// in the request is a RESET (RESET name, SET name TO DEFAULT, RESET ALL,
// DISCARD ALL). PostgreSQL returns them to their startup values; the
// server connection, where the proxy applied them with SET, to the
// server's defaults. The read-back after the request sets them again
// (captureQuery). Main loop only.
func (c *clientConn) noteReset(s router.SetOp) {
	mark := func(name string, on bool) {
		switch {
		case on && c.restore == nil:
			c.restore = map[string]bool{name: true}
		case on:
			c.restore[name] = true
		default:
			delete(c.restore, name)
		}
	}
	switch {
	case s.Local:
	case s.All:
		clear(c.restore)
		for k := range c.startupParams {
			mark(k, true)
		}
	case s.Name != "":
		_, startup := c.startupParams[s.Name]
		mark(s.Name, s.Reset && startup)
	}
}

// captureQuery reads back the settings names the client just changed.
// Those in restore, startup parameters the client reset, are set to their
// startup values (startup) instead: PostgreSQL's RESET returns them there,
// while the server connection's RESET went to the server's default.
func captureQuery(names []string, restore map[string]bool, startup map[string]string) []byte {
	q := []byte("Q\x00\x00\x00\x00SELECT ")
	if len(names) == 0 {
		q = append(q, "1"...)
	}
	for i, n := range names {
		if i > 0 {
			q = append(q, ", "...)
		}
		if restore[n] {
			// Only where the RESET took effect: a value from SET or
			// set_config (the proxy's, of the startup value, included)
			// has the source "session"; a RESET rolled back with its
			// request (RESET x; SELECT 1/0) leaves it so.
			q = append(q, "CASE WHEN (SELECT source FROM pg_catalog.pg_settings WHERE lower(name) = "...)
			q = appendLiteral(q, n)
			q = append(q, ") = 'session' THEN pg_catalog.current_setting("...)
			q = appendLiteral(q, n)
			q = append(q, ", true) ELSE pg_catalog.set_config("...)
			q = appendLiteral(q, n)
			q = append(q, ", "...)
			q = appendLiteral(q, startup[n])
			q = append(q, ", false) END"...)
			continue
		}
		q = append(q, "pg_catalog.current_setting("...)
		q = appendLiteral(q, n)
		q = append(q, ", true)"...)
	}
	q = append(q, 0)
	binary.BigEndian.PutUint32(q[1:], uint32(len(q)-1))
	return q
}

// noteTxnNamesLocked remembers the settings read back in the open
// transaction: a ROLLBACK TO SAVEPOINT reads them again.
func (c *clientConn) noteTxnNamesLocked(names []string) {
	if len(names) == 0 {
		return
	}
	if c.txnNames == nil {
		c.txnNames = make(map[string]struct{})
	}
	for _, n := range names {
		c.txnNames[n] = struct{}{}
	}
}

// txnSettingsLocked adds to names every setting the open transaction may
// have changed, for the read-back after a ROLLBACK TO SAVEPOINT: it undid
// on the server what the books hold of the transaction's SETs since the
// savepoint, and the server is the one to say what is left. After a
// RESET ALL in the transaction, the client's whole session is read.
func (c *clientConn) txnSettingsLocked(names []string) []string {
	seen := make(map[string]bool, len(names)+len(c.txnNames))
	for _, n := range names {
		seen[n] = true
	}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for n := range c.txnNames {
		add(n)
	}
	for n := range c.txnSets {
		add(n)
	}
	if c.txnResetAll {
		for n := range c.desired {
			add(n)
		}
	}
	return names
}

// captureRowLocked records the values of a capture query's DataRow.
func (c *clientConn) captureRowLocked(f *expect, raw []byte) {
	b := raw[5:]
	if len(b) < 2 {
		return
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	for i := 0; i < n && i < len(f.names) && len(b) >= 4; i++ {
		l := int(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
		if l < 0 || l > len(b) {
			continue // NULL: no such setting
		}
		f.vals = append(f.vals, [2]string{f.names[i], string(b[:l])})
		b = b[l:]
	}
}

// applyCaptureLocked makes what the client set part of its session: at
// once when no transaction is open, at commit otherwise.
func (c *clientConn) applyCaptureLocked(f *expect, status byte, sc *serverConn) {
	inTx := status != 'I'
	if f.all && !f.failed {
		if inTx {
			// What the transaction set before its RESET ALL is gone.
			c.txnResetAll = true
			clear(c.txnSets)
		} else {
			c.resetDesiredLocked(!f.auth)
			clearApplied(sc.applied, !f.auth)
		}
	}
	for _, kv := range f.vals {
		if inTx {
			if c.txnSets == nil {
				c.txnSets = make(map[string]string)
				c.txnPrev = make(map[string]*string)
			}
			if _, saved := c.txnPrev[kv[0]]; !saved {
				var prev *string
				if v, ok := sc.applied[kv[0]]; ok {
					prev = &v
				}
				c.txnPrev[kv[0]] = prev
			}
			c.txnSets[kv[0]] = kv[1]
		} else {
			c.desired[kv[0]] = kv[1]
		}
		sc.applied[kv[0]] = kv[1]
	}
	c.settingsCapLocked()
	c.noteIsolationLocked()
}

// failedRequestLocked notes that the request at the head of the books
// failed: its implicit transaction rolled back, or its transaction block
// is aborted. A read-back behind it does not take its RESET ALL as done
// (the values it reads are the server's all the same).
func (c *clientConn) failedRequestLocked() {
	q := &c.expects
	for i := 0; i < q.len(); i++ {
		switch e := q.at(i); e.kind {
		case 'Q', 'F', 'S':
			// The end of the request; the read-back follows it.
			if i+1 < q.len() {
				if r := q.at(i + 1); r.act == actCapture {
					r.failed = true
				}
			}
			return
		}
	}
}

// noteIsolationLocked notes whether the session's transactions are
// SERIALIZABLE by default (SET default_transaction_isolation, SET SESSION
// CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL, a startup parameter).
func (c *clientConn) noteIsolationLocked() {
	c.serializable.Store(strings.EqualFold(c.desired["default_transaction_isolation"], "serializable"))
}

// stmtScopeLocked is the scope of the client's prepared statements in
// the proxy-wide registry (regKey): the settings by which the server
// resolves the names in a statement's text, search_path and role, where
// the client set them (in its open transaction, or in its session).
func (c *clientConn) stmtScopeLocked() string {
	get := func(name string) string {
		if v, ok := c.txnSets[name]; ok {
			return v
		}
		return c.desired[name]
	}
	sp, role := get("search_path"), get("role")
	if sp == "" && role == "" {
		return ""
	}
	return sp + "\x00" + role
}

// pref is the session's routing preference: SET switchyard.target, or the
// primary for a SERIALIZABLE session, since hot standbys refuse
// "cannot use serializable mode in a hot standby" whatever the statement.
// Main loop.
func (c *clientConn) pref() router.Preference {
	if c.serializable.Load() {
		return router.PreferPrimary
	}
	return c.routing.Pref
}

// The settings a client's session carries (desired, and those of its open
// transaction) are bounded: beyond maxClientSettings names or
// maxClientSettingsBytes, the session is pinned to its server connection,
// which holds them, and the proxy records no more. The client sees
// nothing but PostgreSQL's own behaviour; the pin is logged and counted.
const (
	maxClientSettings      = 1000
	maxClientSettingsBytes = 1 << 20
)

func (c *clientConn) settingsCapLocked() {
	n, size := len(c.desired)+len(c.txnSets), 0
	if n <= maxClientSettings {
		for k, v := range c.desired {
			size += len(k) + len(v)
		}
		for k, v := range c.txnSets {
			size += len(k) + len(v)
		}
	}
	if n > maxClientSettings || size > maxClientSettingsBytes {
		c.pinLocked("session settings over the proxy's cap")
	}
}

// endTxnLocked settles the settings of a transaction that just ended.
func (c *clientConn) endTxnLocked(sc *serverConn) {
	clear(c.txnNames)
	if c.txnSets == nil && !c.txnResetAll {
		return
	}
	if c.txnCommitted {
		if c.txnResetAll {
			c.resetDesiredLocked(true) // RESET ALL: DISCARD ALL cannot run in a transaction
			// The server connection has what was set after the RESET
			// ALL, and nothing else the books held (but the role, which
			// RESET ALL keeps).
			clearApplied(sc.applied, true)
			maps.Copy(sc.applied, c.txnSets)
		}
		for k, v := range c.txnSets {
			c.desired[k] = v
		}
	} else {
		for k, prev := range c.txnPrev {
			if prev == nil {
				delete(sc.applied, k)
			} else {
				sc.applied[k] = *prev
			}
		}
	}
	c.txnSets, c.txnPrev, c.txnResetAll, c.txnCommitted = nil, nil, false, false
	c.noteIsolationLocked()
}

// noResetAll are the settings RESET ALL leaves as they are (PostgreSQL's
// GUC_NO_RESET_ALL); DISCARD ALL resets them too (SET SESSION
// AUTHORIZATION DEFAULT). Booked as reset, a role the server kept would
// reach the next client of the connection.
var noResetAll = [...]string{"role", "session_authorization"}

// resetDesiredLocked sets the client's settings back to its startup
// parameters: RESET ALL (keepAuth) or DISCARD ALL.
func (c *clientConn) resetDesiredLocked(keepAuth bool) {
	var kept [len(noResetAll)]*string
	if keepAuth {
		for i, k := range noResetAll {
			if v, ok := c.desired[k]; ok {
				kept[i] = &v
			}
		}
	}
	clear(c.desired)
	for k, v := range c.startupParams {
		c.desired[k] = v
	}
	for i, k := range noResetAll {
		if kept[i] != nil {
			c.desired[k] = *kept[i]
		}
	}
	c.noteIsolationLocked()
}

// clearApplied forgets what was applied on a server connection after it
// ran RESET ALL (keepAuth) or DISCARD ALL.
func clearApplied(applied map[string]string, keepAuth bool) {
	for k := range applied {
		if !keepAuth || !slices.Contains(noResetAll[:], k) {
			delete(applied, k)
		}
	}
}

// noteTagLocked remembers whether the transaction being ended commits.
// After COMMIT or ROLLBACK AND CHAIN (f.chain) the status stays 'T', so
// the transaction that ended is settled at its tag.
func (c *clientConn) noteTagLocked(raw []byte, f *expect, sc *serverConn) {
	if c.txnSets != nil || c.txnResetAll {
		c.txnCommitted = bytes.HasPrefix(raw[5:], []byte("COMMIT"))
		if f.chain && (c.txnCommitted || bytes.HasPrefix(raw[5:], []byte("ROLLBACK"))) {
			c.endTxnLocked(sc)
		}
	}
}

// pinLocked keeps the client on its server connection from now on.
func (c *clientConn) pinLocked(reason string) {
	if c.pinReason != "" {
		return
	}
	c.pinReason = reason
	metrics.PinnedSessions.WithLabelValues("postgres").Inc()
	metrics.Pins.WithLabelValues("postgres", reason).Inc()
	c.log.Info("session pinned to its server connection", "reason", reason)
}

// answerLocally handles, without a server, the statements about prepared
// statements and session state that only the proxy's books hold:
// DEALLOCATE of the client's statements and DISCARD ALL, outside a
// transaction. It reports whether it answered.
func (c *clientConn) answerLocally(a *router.Analysis) bool {
	if a.Statements != 1 || a.Deallocate == nil || c.keeps() != router.HoldNone {
		return false
	}
	var tag string
	switch {
	case len(a.Sets) > 0 && a.Sets[0].All:
		clear(c.stmts)
		c.mu.Lock()
		c.resetDesiredLocked(false)
		c.mu.Unlock()
		tag = "DISCARD ALL"
	case a.Deallocate.All:
		clear(c.stmts)
		tag = "DEALLOCATE ALL"
	default:
		if _, ok := c.stmts[a.Deallocate.Name]; !ok {
			return false
		}
		delete(c.stmts, a.Deallocate.Name)
		tag = "DEALLOCATE"
	}
	c.answer(pgframe.AppendCommandComplete(make([]byte, 0, 32), tag), c.localStatus())
	return true
}
