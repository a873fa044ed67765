package pgwire

import (
	"bytes"
	"container/list"
	"encoding/binary"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/pgframe"
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

// gstmt is one proxy-wide prepared statement. Its name and Parse message
// never change.
type gstmt struct {
	name  string
	parse []byte // the Parse message under the global name, ready to send
	// ok is set once a server accepted the Parse: from then on a client's
	// Parse+Sync of it is answered without leasing a server. Clients
	// such as pgbench prepare synchronously in the middle of their
	// pipelines; making them wait for a server there can deadlock a
	// small pool.
	ok atomic.Bool
	// an is what the statement does, by the analyzer of the client that
	// asked (clients of clusters with other function lists, or of one
	// before and after a reload, share the statement).
	an router.Verdict
	// params are the parameter type OIDs: those the Parse declared, then
	// what a server's ParameterDescription said. Shard routing reads
	// binary-format key parameters by them.
	params atomic.Pointer[[]uint32]
	// used is set by every use and cleared by the registry's sweep; elem
	// is the statement's place in the registry's clock, nil once it was
	// forgotten (under the registry's lock).
	used atomic.Bool
	elem *list.Element
	// failed: a server refused its Parse and none ever accepted it; a
	// client's name for it does not exist in PostgreSQL's eyes.
	failed atomic.Bool
	// schema is the registry's schema generation when it was registered.
	schema uint64
	// scope is the name-resolution settings it was registered under
	// (clientConn.stmtScopeLocked): part of its registry key.
	scope string
}

// unnamedDesc holds the parameter types a server described for one
// unnamed Parse of a client: pgx (QueryExecModeDescribeExec) parses its
// statement unnamed without types, asks for the description, and binds
// int8 keys in binary format in its next request, where shard routing
// must read them by the described types. Under the client's mu.
type unnamedDesc struct{ oids []uint32 }

// noteParamTypes records a ParameterDescription message ('t').
func (g *gstmt) noteParamTypes(raw []byte) {
	if oids := pgframe.DecodeOIDs(raw[5:]); oids != nil {
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

// stmtRegistry maps statement text (query and parameter types, as the
// Parse message carries them) to global statements.
//
// Its memory is bounded: beyond max entries (proxy.statement_registry_size)
// or maxRegistryBytes of Parse messages, statements not used lately are
// forgotten, by a second-chance (clock) sweep: every use (a Parse of its
// text, a Bind or Describe once a server accepted it) sets the
// statement's used bit without a lock; the sweep, under the registry's
// lock, walks from the oldest entry, spares those used since it last
// passed (clearing the bit), and drops the first one that was not. A
// client that still names a forgotten statement is not affected: its name
// holds the *gstmt itself, which Bind and Describe prepare wherever it is
// missing under its own proxy name. Only the sharing goes: a later Parse
// of the same text registers a new statement under a new name. A Parse
// the server refused is forgotten at once (forget), so dynamic SQL with
// errors does not fill the registry either.
//
// DDL seen through the proxy (a CREATE, ALTER or DROP command tag) starts
// a new schema generation: a statement registered before it is not shared
// any more, and the next Parse of its text registers it afresh, under a
// new name, which every server connection then prepares anew. A server
// keeps a prepared statement's parameter types, and its result type must
// not change, so a statement prepared before "ALTER TABLE ... TYPE" or
// "DROP TYPE; CREATE TYPE" would answer a client's new Parse with the old
// parameter types, "cached plan must not change result type" or "cache
// lookup failed for type", where PostgreSQL itself prepares the text
// anew. Clients that still name an older statement keep it, and get from
// the server what they would get directly. (DDL that bypasses the proxy
// is not seen.)
type stmtRegistry struct {
	mu     sync.RWMutex
	m      map[regKey]*gstmt
	clock  list.List // of *gstmt, oldest first; under mu
	bytes  int       // sum of len(g.parse) over m; under mu
	next   atomic.Uint64
	schema atomic.Uint64 // the schema generation, bumped by DDL
}

// schemaChanged starts a new schema generation (DDL ran).
func (r *stmtRegistry) schemaChanged() { r.schema.Add(1) }

// maxRegistryBytes bounds the Parse messages the registry keeps, whatever
// the entry count: a stream of one-off megabyte statements churns itself
// out instead of holding statement_registry_size of them.
const maxRegistryBytes = 64 << 20

// touch marks g used, for the registry's sweep. Lock-free: it writes only
// when the bit is clear, so the hot path reads a shared cache line.
func (g *gstmt) touch() {
	if !g.used.Load() {
		g.used.Store(true)
	}
}

// key is the text part of g's registry key: the Parse body after the name.
func (g *gstmt) key() []byte { return g.parse[5+len(g.name)+1:] }

// regKey is a registry key: a Parse body tail and the scope of the
// session that parsed it. The same text under another search_path (or
// role, which "$user" follows) may name other tables, of another shape:
// a server connection that prepared it under one would answer a client of
// the other with "cached plan must not change result type", or with rows
// of the other schema's table. Sessions that set neither share scope "".
type regKey struct{ scope, text string }

// lookup returns the global statement for a Parse body tail under scope,
// or nil (also for one registered before the last DDL).
func (r *stmtRegistry) lookup(key []byte, scope string) *gstmt {
	r.mu.RLock()
	g := r.m[regKey{scope, string(key)}]
	r.mu.RUnlock()
	if g == nil || g.schema != r.schema.Load() {
		return nil
	}
	g.touch()
	return g
}

// get returns the global statement for a Parse body tail (query\0 +
// types) under scope, registering it when new; max is the entry bound.
func (r *stmtRegistry) get(key []byte, scope string, max int) *gstmt {
	if g := r.lookup(key, scope); g != nil {
		return g
	}
	schema := r.schema.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	rk := regKey{scope, string(key)}
	if g := r.m[rk]; g != nil {
		if g.schema == schema {
			g.touch()
			return g
		}
		r.removeLocked(g) // registered before DDL: not shared any more
		metrics.StatementRegistryEvictions.WithLabelValues("schema_changed").Inc()
	}
	name := "sy_" + strconv.FormatUint(r.next.Add(1), 10)
	msg := make([]byte, 5, 5+len(name)+1+len(key))
	msg[0] = 'P'
	msg = append(append(append(msg, name...), 0), key...)
	binary.BigEndian.PutUint32(msg[1:], uint32(len(msg)-1))
	g := &gstmt{name: name, parse: msg, schema: schema, scope: scope}
	if oids := pgframe.ParseParamTypes(msg); oids != nil {
		g.params.Store(&oids)
	}
	if r.m == nil {
		r.m = make(map[regKey]*gstmt)
	}
	// The newcomer starts unused: a one-off text is the first to go at
	// the next sweep, a repeated one has been touched by then.
	r.m[rk] = g
	g.elem = r.clock.PushBack(g)
	r.bytes += len(msg)
	metrics.StatementRegistrySize.Inc()
	r.sweepLocked(max, g)
	return g
}

// sweepLocked forgets statements until the registry is within its bounds,
// sparing keep (the statement being registered).
func (r *stmtRegistry) sweepLocked(max int, keep *gstmt) {
	if max <= 0 {
		max = config.DefaultStatementRegistrySize
	}
	// Two passes over the clock at most: the first clears every used bit.
	for steps := 2 * r.clock.Len(); steps > 0 && (len(r.m) > max || r.bytes > maxRegistryBytes); steps-- {
		e := r.clock.Front()
		g := e.Value.(*gstmt)
		if g == keep || g.used.Swap(false) {
			r.clock.MoveToBack(e)
			continue
		}
		r.removeLocked(g)
		metrics.StatementRegistryEvictions.WithLabelValues("capacity").Inc()
	}
}

func (r *stmtRegistry) removeLocked(g *gstmt) {
	if g.elem == nil {
		return // already forgotten
	}
	r.clock.Remove(g.elem)
	g.elem = nil
	if rk := (regKey{g.scope, string(g.key())}); r.m[rk] == g {
		delete(r.m, rk)
	}
	r.bytes -= len(g.parse)
	metrics.StatementRegistrySize.Dec()
}

// forget drops g from the registry if no server ever accepted it (its
// Parse failed): clients that named it keep their *gstmt, and a Parse of
// the same text registers it afresh.
func (r *stmtRegistry) forget(g *gstmt) {
	if g.ok.Load() {
		return
	}
	g.failed.Store(true)
	r.mu.Lock()
	defer r.mu.Unlock()
	if g.elem != nil && !g.ok.Load() {
		r.removeLocked(g)
		metrics.StatementRegistryEvictions.WithLabelValues("parse_failed").Inc()
	}
}

// len is the number of statements registered.
func (r *stmtRegistry) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.m)
}

// stmtRoom says whether the client may bind name to a statement whose
// Parse body tail is rest: it may rebind a name it has, and add one
// within max_client_prepared_statements and frontend.MaxClientStmtBytes
// (frontend.StmtCap). The refusal is an ERROR (53400); the session goes
// on. Main loop only.
func (c *clientConn) stmtRoom(name, rest []byte) *pgError {
	max := c.srv.Config().Proxy.MaxClientPreparedStatements
	if max <= 0 {
		max = config.DefaultMaxClientPreparedStatements
	}
	_, have := c.stmts[string(name)]
	if !have && len(c.stmts) >= max {
		// Names whose Parse failed do not exist on the server side; the
		// books keep them until a Close, so they go first.
		for n, g := range c.stmts {
			if g.failed.Load() && !g.ok.Load() {
				delete(c.stmts, n)
			}
		}
	}
	why, figure := c.stmtCap.Room(max, len(c.stmts), have, len(name)+len(rest), func() (held int) {
		for n, g := range c.stmts {
			if n != string(name) {
				held += len(n) + len(g.parse)
			}
		}
		return held
	})
	var e *pgError
	switch why {
	case frontend.StmtFits:
		return nil
	case frontend.StmtTooMany:
		e = newError(codeConfigLimitExceeded,
			"too many prepared statements: this connection has %d (switchyard's max_client_prepared_statements = %d)", len(c.stmts), figure)
		e.Hint = "Close statements the client no longer uses (protocol Close, or DEALLOCATE), or raise max_client_prepared_statements in the proxy's config."
	default:
		e = newError(codeConfigLimitExceeded,
			"too many prepared statements: this connection's statements would hold %d bytes (switchyard's limit is %d)", figure, frontend.MaxClientStmtBytes)
		e.Hint = "Close statements the client no longer uses (protocol Close, or DEALLOCATE)."
	}
	if c.stmtCap.Refused(config.Postgres) {
		c.log.Warn("prepared statement refused: client over its cap (further refusals for this client are counted, not logged)", "err", e.Message)
	}
	return e
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

// noopClose closes a statement that never exists: PostgreSQL answers
// CloseComplete and does nothing, which gives the relay a reply to hang
// synthesized replies on when the client's request sent nothing else.
var noopClose = pgframe.AppendCloseStatement(nil, "switchyard_noop")

// The proxy's own statement names, sy_<n>, exist on the servers only. A
// client that names one it did not prepare itself (Bind, Describe, SQL
// EXECUTE or DEALLOCATE) gets what PostgreSQL says of a statement that
// does not exist: the server is sent a name that cannot exist, so its
// transaction fails as it would, and the error is reworded.

// reservedName is what the server is sent in place of a proxy name.
const reservedName = "switchyard: reserved statement name"

var (
	// refusedQuery fails with 26000 on the server.
	refusedQuery = pgframe.Query(`DEALLOCATE "` + reservedName + `"`)
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
	emptyQuery = pgframe.Query("")
)

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

// stmtName is a client's statement name and the global statement it
// names.
type stmtName struct {
	g     *gstmt
	cname string
}

// deallocParse is an unnamed Parse of DEALLOCATE of the global statement
// name, with the parameter types that follow the query text in rest (a
// client's Parse after its statement name).
func deallocParse(name string, rest []byte) []byte {
	_, types, _ := pgframe.CString(rest)
	b := append(make([]byte, 0, 32+len(types)), 'P', 0, 0, 0, 0, 0)
	b = append(append(append(b, `DEALLOCATE "`...), name...), '"', 0)
	b = append(b, types...)
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
	return b
}

// stmtRefused is the error for SQL naming a proxy statement: as for a
// statement that does not exist, or, for PREPARE, a reserved name.
func stmtRefused(name string, a *router.Analysis) []byte {
	if a.Pin != "PREPARE" {
		return stmtMissing(name)
	}
	b, _ := toErrorResponse(&pgError{Severity: "ERROR", Code: codeReservedName,
		Message: `prepared statement name "` + name + `" is reserved`,
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
		if (f.kind == 'Q' || f.kind == 'E') && f.g != nil { // a client's name, rewritten to the global one
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

// isDDLTag reports whether a CommandComplete tag is one of DDL, which may
// change what a prepared statement's text means (CREATE, ALTER, DROP).
func isDDLTag(tag []byte) bool {
	return bytes.HasPrefix(tag, []byte("CREATE ")) || bytes.HasPrefix(tag, []byte("ALTER ")) || bytes.HasPrefix(tag, []byte("DROP "))
}
