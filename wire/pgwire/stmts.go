package pgwire

import (
	"container/list"

	"encoding/binary"
	"github.com/switchyard/switchyard/router"
	"strconv"
	"sync"
	"sync/atomic"
)

// Prepared statements under transaction pooling.
//
// A client's statement names live only in its session; on the servers
// every distinct statement (query text plus parameter types) has one
// proxy-wide name, "sy_<n>". A client's Parse binds its name to the global
// statement; the Parse reaches a server only if that server connection has
// not prepared the statement yet. Bind and Describe are rewritten to the
// global name, with a Parse injected first when the connection they run on
// lacks it. Each server connection remembers what it has prepared, up to a
// bound, closing the least recently used beyond it.

// gstmt is one proxy-wide prepared statement. Immutable.
type gstmt struct {
	name  string
	parse []byte // the Parse message under the global name, ready to send
	// ok is set once a server accepted the Parse: from then on a client's
	// Parse+Sync of it is answered without leasing a server. Clients
	// such as pgbench prepare synchronously in the middle of their
	// pipelines; making them wait for a server there can deadlock a
	// small pool.
	ok atomic.Bool
	an atomic.Pointer[router.Analysis] // what the statement does to a session
	// params are the parameter type OIDs: those the Parse declared, then
	// what a server's ParameterDescription said. Shard routing reads
	// binary-format key parameters by them.
	params atomic.Pointer[[]uint32]
}

// noteParamTypes records a ParameterDescription message ('t').
func (g *gstmt) noteParamTypes(raw []byte) {
	if oids := decodeOIDs(raw[5:]); oids != nil {
		g.params.Store(&oids)
	}
}

// paramTypes returns the parameter type OIDs known for the statement.
func (g *gstmt) paramTypes() []uint32 {
	if p := g.params.Load(); p != nil {
		return *p
	}
	return nil
}

// decodeOIDs reads an int16 count followed by that many int32 OIDs (the
// tail of Parse, and ParameterDescription). nil when malformed or empty.
func decodeOIDs(b []byte) []uint32 {
	if len(b) < 2 {
		return nil
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n == 0 || len(b) < 4*n {
		return nil
	}
	oids := make([]uint32, n)
	for i := range oids {
		oids[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return oids
}

// parseParamTypes reads the declared parameter types of a Parse message.
func parseParamTypes(raw []byte) []uint32 {
	_, rest, ok := cstring(raw[5:])
	if !ok {
		return nil
	}
	_, rest, ok = cstring(rest)
	if !ok {
		return nil
	}
	return decodeOIDs(rest)
}

// stmtRegistry maps statement text (query and parameter types, as the
// Parse message carries them) to global statements.
type stmtRegistry struct {
	mu   sync.RWMutex
	m    map[string]*gstmt
	next atomic.Uint64
}

// lookup returns the global statement for a Parse body tail, or nil.
func (r *stmtRegistry) lookup(key []byte) *gstmt {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.m[string(key)]
}

// get returns the global statement for a Parse body tail (query\0 + types).
func (r *stmtRegistry) get(key []byte) *gstmt {
	r.mu.RLock()
	g := r.m[string(key)]
	r.mu.RUnlock()
	if g != nil {
		return g
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if g = r.m[string(key)]; g != nil {
		return g
	}
	name := "sy_" + strconv.FormatUint(r.next.Add(1), 10)
	msg := make([]byte, 5, 5+len(name)+1+len(key))
	msg[0] = 'P'
	msg = append(append(append(msg, name...), 0), key...)
	binary.BigEndian.PutUint32(msg[1:], uint32(len(msg)-1))
	g = &gstmt{name: name, parse: msg}
	if oids := parseParamTypes(msg); oids != nil {
		g.params.Store(&oids)
	}
	if r.m == nil {
		r.m = make(map[string]*gstmt)
	}
	r.m[string(key)] = g
	return g
}

// stmtCache is what one server connection has prepared, in LRU order.
// Guarded by the leasing client's mu while leased.
type stmtCache struct {
	max int
	ll  list.List // of *gstmt, most recently used at the front
	m   map[string]*list.Element
}

func (s *stmtCache) has(g *gstmt) bool {
	if e, ok := s.m[g.name]; ok {
		s.ll.MoveToFront(e)
		return true
	}
	return false
}

// add records g as prepared and returns the statement it evicts, if any,
// which the caller closes on the server.
func (s *stmtCache) add(g *gstmt) (evicted *gstmt) {
	if s.m == nil {
		s.m = make(map[string]*list.Element)
	}
	if _, ok := s.m[g.name]; ok {
		return nil
	}
	s.m[g.name] = s.ll.PushFront(g)
	if s.max > 0 && s.ll.Len() > s.max {
		e := s.ll.Back()
		evicted = e.Value.(*gstmt)
		s.ll.Remove(e)
		delete(s.m, evicted.name)
	}
	return evicted
}

func (s *stmtCache) remove(g *gstmt) {
	if e, ok := s.m[g.name]; ok {
		s.ll.Remove(e)
		delete(s.m, g.name)
	}
}

func (s *stmtCache) clear() {
	s.ll.Init()
	s.m = nil
}

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) (s, rest []byte, ok bool) {
	for i, x := range b {
		if x == 0 {
			return b[:i], b[i+1:], true
		}
	}
	return nil, nil, false
}

// closeMsg encodes Close of a statement.
func closeMsg(dst []byte, name string) []byte {
	n := 4 + 1 + len(name) + 1
	dst = append(dst, 'C', byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 'S')
	return append(append(dst, name...), 0)
}

// noopClose closes a statement that never exists: PostgreSQL answers
// CloseComplete and does nothing, which gives the relay a reply to hang
// synthesized replies on when the client's request sent nothing else.
var noopClose = closeMsg(nil, "switchyard_noop")

// The proxy's own statement names, sy_<n>, exist on the servers only. A
// client that names one it did not prepare itself (Bind, Describe, SQL
// EXECUTE or DEALLOCATE) gets what PostgreSQL says of a statement that
// does not exist: the server is sent a name that cannot exist, so its
// transaction fails as it would, and the error is reworded.

// reservedName is what the server is sent in place of a proxy name.
const reservedName = "switchyard: reserved statement name"

var (
	// refusedQuery fails with 26000 on the server.
	refusedQuery = simpleQuery(`DEALLOCATE "` + reservedName + `"`)
	// refusedParse fails (a syntax error) and creates nothing.
	refusedParse = func() []byte {
		b := []byte{'P', 0, 0, 0, 0}
		b = append(append(b, reservedName...), 0)
		b = append(append(b, "switchyard refused"...), 0)
		b = append(b, 0, 0)
		binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
		return b
	}()
	// emptyQuery is answered with EmptyQueryResponse and ReadyForQuery.
	emptyQuery = simpleQuery("")
)

// simpleQuery encodes a Query message.
func simpleQuery(sql string) []byte {
	b := []byte{'Q', 0, 0, 0, 0}
	b = append(append(b, sql...), 0)
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
	return b
}

// isProxyName reports whether name has the form of the proxy's statement
// names.
func isProxyName[T string | []byte](name T) bool {
	if len(name) < 4 || name[0] != 's' || name[1] != 'y' || name[2] != '_' {
		return false
	}
	for i := 3; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return false
		}
	}
	return true
}

// mentionsProxyName is a cheap filter for statement texts that may refer
// to a proxy name (case-insensitive "sy_"), before asking the analyzer.
func mentionsProxyName(b []byte) bool {
	for i := 0; i+2 < len(b); i++ {
		if b[i+2] == '_' && b[i]|0x20 == 's' && b[i+1]|0x20 == 'y' {
			return true
		}
	}
	return false
}

// reservedIn returns the first proxy name among the SQL-level statement
// names a text refers to, or "".
func reservedIn(names []string) string {
	for _, n := range names {
		if isProxyName(n) {
			return n
		}
	}
	return ""
}

// stmtMissing is PostgreSQL's error for a statement name that does not
// exist, said of a proxy name.
func stmtMissing(name string) []byte {
	b, _ := toErrorResponse(&pgError{Severity: "ERROR", Code: codeInvalidSQLStatementName,
		Message: `prepared statement "` + name + `" does not exist`,
		Hint:    "statement names sy_<n> are the proxy's own; prepare statements under names of your own"}).Encode(nil)
	return b
}

// noteStmtTagLocked keeps the books of prepared statements true when SQL
// the client sent dropped statements on the server (in a transaction, in
// a pinned session, in session mode, or through the extended protocol):
// read from the command tag, so only what the server did counts.
func (c *clientConn) noteStmtTagLocked(raw []byte, f *expect, sc *serverConn) {
	tag := raw[5:]
	if n := len(tag); n > 0 && tag[n-1] == 0 {
		tag = tag[:n-1]
	}
	if len(tag) < 10 || tag[0] != 'D' {
		return
	}
	switch string(tag) {
	case "DEALLOCATE ALL", "DISCARD ALL":
		sc.stmts.clear()
		c.stmtDropAll, c.stmtDrops = true, c.stmtDrops[:0]
	case "DEALLOCATE":
		if f.kind == 'Q' && f.g != nil { // a client's name, rewritten to the global one
			sc.stmts.remove(f.g)
			c.stmtDrops = append(c.stmtDrops, f.cname)
		}
	}
}

// applyStmtDropsLocked forgets the client statement names the server
// dropped. Main loop, c.mu held.
func (c *clientConn) applyStmtDropsLocked() {
	if c.stmtDropAll {
		clear(c.stmts)
	}
	for _, n := range c.stmtDrops {
		delete(c.stmts, n)
	}
	c.stmtDrops, c.stmtDropAll = c.stmtDrops[:0], false
}
