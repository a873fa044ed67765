package router

// The analyzer sits on the path of every query: a wire package hands it the
// text of each statement (simple query, Parse of a prepared statement,
// COM_QUERY, COM_STMT_PREPARE) before a server connection is leased, and
// routes on the verdict. A wrong "read" sends a write to a replica, where it
// fails or, worse, a function with side effects runs on a node that cannot
// keep them; a wrong "write" only costs replica capacity. So every rule here
// errs towards the primary: text the parser rejects, functions it does not
// know, and statements it does not recognise all count as writes.
//
// The same verdict also tells the transaction pooler what the statement does
// to the session (SET, PREPARE, LISTEN, temporary tables, advisory locks),
// because under transaction pooling a server connection is shared, and
// session state either has to be replayed on the next connection or has to
// pin the client to the one it has.
//
// Parsing is the expensive part (a PostgreSQL parse crosses cgo and decodes
// protobuf: 15-40 µs), and applications repeat a small set of statement texts,
// prepared statements above all. Verdicts are therefore cached by text, and
// the few statements that are both very frequent and unambiguous (BEGIN,
// COMMIT, a plain SELECT without any call) are answered without parsing.
// That fast path may only say "read" or "transaction control"; anything it
// is not sure about goes to the parser, so it is never the judge of
// "is this a write".

import (
	"fmt"
	"strings"
)

// Dialect selects the SQL grammar an Analyzer parses.
type Dialect uint8

// Dialects.
const (
	Postgres Dialect = iota + 1
	MySQL
)

func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	}
	return fmt.Sprintf("Dialect(%d)", uint8(d))
}

// Class is what a statement does, as far as routing cares.
type Class uint8

// Classes. For a text that holds several statements, Analysis.Class is the
// strongest of them in the order Write > Read > Session > TxnBegin > TxnEnd >
// Other.
const (
	// Other: affects neither data nor routing by itself (SAVEPOINT,
	// FETCH, CLOSE, UNLOCK TABLES, an empty query).
	Other Class = iota + 1
	// Read only reads data; it may run on a replica unless
	// Analysis.MustPrimary says otherwise.
	Read
	// Write may change data (DML, DDL, sequence advances, unknown
	// functions, anything unparsable). Always MustPrimary.
	Write
	// TxnBegin opens a transaction block.
	TxnBegin
	// TxnEnd closes one (COMMIT, ROLLBACK, PREPARE TRANSACTION).
	TxnEnd
	// Session changes session state only (SET, RESET, DISCARD, USE,
	// DEALLOCATE, PREPARE, LISTEN).
	Session
)

func (c Class) String() string {
	switch c {
	case Other:
		return "other"
	case Read:
		return "read"
	case Write:
		return "write"
	case TxnBegin:
		return "begin"
	case TxnEnd:
		return "end"
	case Session:
		return "session"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// strength orders classes for multi-statement texts.
func (c Class) strength() int {
	switch c {
	case Write:
		return 5
	case Read:
		return 4
	case Session:
		return 3
	case TxnBegin:
		return 2
	case TxnEnd:
		return 1
	}
	return 0
}

// Hint is a routing hint the application wrote into a comment.
type Hint uint8

// Hints.
const (
	HintNone Hint = iota
	// HintPrimary: /* switchyard:primary */
	HintPrimary
	// HintReplica: /* switchyard:replica */. Advisory: a router must not
	// send a Write or a MustPrimary statement to a replica because of it.
	HintReplica
)

func (h Hint) String() string {
	switch h {
	case HintNone:
		return "none"
	case HintPrimary:
		return "primary"
	case HintReplica:
		return "replica"
	}
	return fmt.Sprintf("Hint(%d)", uint8(h))
}

// SetOp is one change to session state made by SET, RESET, DISCARD ALL or
// (MySQL) USE.
type SetOp struct {
	// Name is the lower-case parameter name; "" for RESET ALL and
	// DISCARD ALL. MySQL: SET NAMES is "names", SET CHARACTER SET is
	// "character_set", USE is "database". PostgreSQL SET TRANSACTION
	// gives transaction_isolation / transaction_read_only /
	// transaction_deferrable (Local), SET SESSION CHARACTERISTICS AS
	// TRANSACTION gives default_transaction_*.
	Name string
	// Value is the literal value when it is a single constant or bare
	// word, else "" (lists, expressions, DEFAULT).
	Value string
	// Reset: RESET name, SET name TO DEFAULT, RESET ALL, DISCARD ALL.
	Reset bool
	// All: RESET ALL or DISCARD ALL.
	All bool
	// Auth: DISCARD ALL, which also resets role and session_authorization;
	// PostgreSQL's RESET ALL leaves those two (GUC_NO_RESET_ALL).
	Auth bool
	// Local: lasts only for the current (PostgreSQL SET LOCAL, SET
	// TRANSACTION) or next (MySQL SET TRANSACTION) transaction, so a
	// pooler must not replay it on another connection.
	Local bool
}

// Deallocate is a PostgreSQL DEALLOCATE [PREPARE] name | ALL (or MySQL
// DEALLOCATE PREPARE name). DISCARD ALL also yields All.
type Deallocate struct {
	Name string
	All  bool
}

// Analysis is the verdict on one query string (which may hold several
// statements). It is immutable once returned and shared through the cache:
// callers must not modify it or anything it points to.
type Analysis struct {
	// Class is the strongest class among the statements (see Class).
	Class Class
	// Statements is the number of non-empty statements in the text (0
	// for an empty or comment-only text, and when ParseError is set).
	Statements int
	// MustPrimary: the text may not run on a replica. True for every
	// Write, and for reads that still need the primary: row locks (FOR
	// UPDATE / SHARE / NO KEY UPDATE / KEY SHARE, LOCK IN SHARE MODE),
	// currval/lastval, LAST_INSERT_ID(), ROW_COUNT(), advisory and named
	// locks, LOCK TABLE, a read-write BEGIN (the whole transaction goes to
	// the primary), and anything with a Pin.
	MustPrimary bool
	// Reason says why MustPrimary or Write, for logs: "UPDATE",
	// "FOR UPDATE", "nextval()", "function my_func()", "parse error"...
	// A write's reason wins over a read's.
	Reason string
	// SequenceState: the text calls currval() or lastval(), which read
	// what the session's earlier nextval() left on its connection
	// (PostgreSQL).
	SequenceState bool
	// ReadOnlyBegin: BEGIN READ ONLY / START TRANSACTION READ ONLY, a
	// transaction that may run on a replica.
	ReadOnlyBegin bool
	// Hint comes from a comment /* switchyard:primary */ or
	// /* switchyard:replica */ (or -- / # line comments) anywhere in the
	// text; primary wins if both appear.
	Hint Hint
	// Sets lists session-level SET/RESET/DISCARD ALL/USE, in order.
	// MySQL user variables (@x) are not listed: they pin instead.
	Sets []SetOp
	// Value is Sets[0].Value when the text changes exactly one setting.
	Value string
	// Deallocate is set by DEALLOCATE and DISCARD ALL.
	Deallocate *Deallocate
	// StatementNames are the SQL-level prepared statement names the text
	// refers to (PostgreSQL PREPARE, EXECUTE, DEALLOCATE), as the server
	// would see them (unquoted names folded to lower case).
	StatementNames []string
	// CopyFrom: the text runs COPY ... FROM (PostgreSQL): the server may
	// take what follows the statement on its connection for copy data.
	CopyFrom bool
	// RollbackTo: the text rolls back to a savepoint (PostgreSQL ROLLBACK
	// TO SAVEPOINT), undoing the session settings changed since.
	RollbackTo bool
	// Chain: COMMIT AND CHAIN / ROLLBACK AND CHAIN (PostgreSQL), which end
	// the transaction and open the next one at once.
	Chain bool
	// Pin, when not empty, says why the text creates session state that
	// a transaction pooler cannot carry to another server connection
	// (LISTEN, temporary tables, session advisory locks, WITH HOLD
	// cursors, SQL PREPARE, LOAD; MySQL LOCK TABLES, GET_LOCK, user
	// variables, SQL_CALC_FOUND_ROWS/FOUND_ROWS()). Implies MustPrimary.
	Pin string
	// ParseError is the parser's complaint when it rejected the text.
	// Then Class is Write and MustPrimary is true: the safe default, and
	// the server will report the error to the client.
	ParseError string

	// mysql is what a MySQL text does to the session (MySQLEffects),
	// scanned once with the analysis; nil for PostgreSQL and for the
	// fast path's shared verdicts.
	mysql *MySQLEffects
}

// Options tune how function calls are judged.
type Options struct {
	// WriteFunctions are functions known to write; a statement calling
	// one is a Write. ReadOnlyFunctions are user functions known not to
	// write; calling them keeps a read a read. Names are lower-case; an
	// entry "f" matches f() in any schema, "s.f" only a call written
	// s.f(). Functions in neither list that are not built-in read-only
	// ones are treated as writes. The built-in special cases (nextval,
	// advisory locks, GET_LOCK, ...) cannot be overridden.
	WriteFunctions, ReadOnlyFunctions []string
	// SessionFunctions are functions (and procedures) that change session
	// state the proxy cannot see: calling one pins the session. They
	// count as writes too.
	SessionFunctions []string
}

// Default cache bounds: entries, total bytes of statement text, and the
// longest text worth caching (longer ones are typically bulk INSERTs with
// inline values, which never repeat).
const (
	defaultCacheEntries = 10000
	defaultCacheBytes   = 16 << 20
	maxCachedText       = 64 << 10
)

// Analyzer classifies statement texts of one dialect. It is safe for
// concurrent use; verdicts are cached by text.
type Analyzer struct {
	dialect Dialect
	writeFn map[string]struct{}
	readFn  map[string]struct{}
	sessFn  map[string]struct{}
	my      *mysqlParser
	cache   *verdictCache
}

// NewAnalyzer returns an Analyzer for d. It panics on an unknown dialect.
func NewAnalyzer(d Dialect, o Options) *Analyzer {
	return newAnalyzer(d, o, defaultCacheEntries, defaultCacheBytes)
}

func newAnalyzer(d Dialect, o Options, entries, bytes int) *Analyzer {
	a := &Analyzer{
		dialect: d,
		writeFn: nameSet(o.WriteFunctions),
		readFn:  nameSet(o.ReadOnlyFunctions),
		sessFn:  nameSet(o.SessionFunctions),
		cache:   newVerdictCache(entries, bytes),
	}
	switch d {
	case Postgres:
	case MySQL:
		a.my = newMySQLParser()
	default:
		panic(fmt.Sprintf("router: NewAnalyzer: unknown dialect %d", d))
	}
	return a
}

func nameSet(names []string) map[string]struct{} {
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
			m[n] = struct{}{}
		}
	}
	return m
}

// Dialect reports the grammar a parses.
func (a *Analyzer) Dialect() Dialect { return a.dialect }

// Analyze returns the verdict on sql. The result is shared: do not modify it.
func (a *Analyzer) Analyze(sql string) *Analysis {
	if an := fastPath(a.dialect, sql); an != nil {
		return an
	}
	if an, ok := a.cache.get(sql); ok {
		return an
	}
	// The caller's string may alias a reused network buffer; the cache
	// key and everything the verdict points into must not.
	sql = strings.Clone(sql)
	an := a.analyze(sql)
	a.cache.put(sql, an)
	return an
}

// analyze parses sql and builds its verdict, bypassing fast path and cache.
func (a *Analyzer) analyze(sql string) *Analysis {
	b := builder{a: a, an: &Analysis{}}
	var err error
	if strings.IndexByte(sql, 0) >= 0 {
		// PostgreSQL's parser stops at a NUL; what follows would go
		// unjudged.
		err = fmt.Errorf("NUL byte in statement text")
	} else {
		err = a.parse(&b, sql)
	}
	hint := scanHint(a, sql)
	var an *Analysis
	if err != nil {
		an = &Analysis{
			Class:       Write,
			MustPrimary: true,
			Reason:      "parse error",
			Hint:        hint,
			ParseError:  err.Error(),
		}
	} else {
		an = b.finish()
		an.Hint = hint
	}
	if a.dialect == MySQL {
		e := ScanMySQL(sql)
		an.mysql = &e
	}
	return an
}

// parse runs the dialect's parser; a panic inside it becomes an error.
func (a *Analyzer) parse(b *builder, sql string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parser panic: %v", r)
		}
	}()
	if a.dialect == Postgres {
		return b.postgres(sql)
	}
	err = b.mysql(sql)
	if err != nil {
		// Vitess does not know SET of a dotted name; the proxy's own
		// settings (SET switchyard.target = replica) use one.
		if op, ok := proxySet(sql); ok {
			*b = builder{a: a, an: &Analysis{}}
			b.an.Statements = 1
			b.class(Session)
			b.set(op)
			return nil
		}
	}
	return err
}

// builder accumulates the verdict while the statements are walked.
type builder struct {
	a             *Analyzer
	an            *Analysis
	writeReason   string
	primaryReason string
}

func (b *builder) class(c Class) {
	if b.an.Class == 0 || c.strength() > b.an.Class.strength() {
		b.an.Class = c
	}
}

func (b *builder) write(reason string) {
	b.class(Write)
	if b.writeReason == "" {
		b.writeReason = reason
	}
}

func (b *builder) primary(reason string) {
	if b.primaryReason == "" {
		b.primaryReason = reason
	}
}

func (b *builder) pin(reason string) {
	if b.an.Pin == "" {
		b.an.Pin = reason
	}
}

func (b *builder) set(op SetOp) { b.an.Sets = append(b.an.Sets, op) }

func (b *builder) deallocate(name string, all bool) {
	if d := b.an.Deallocate; d != nil && d.All {
		return
	}
	b.an.Deallocate = &Deallocate{Name: name, All: all}
}

func (b *builder) stmtName(name string) {
	if name != "" {
		b.an.StatementNames = append(b.an.StatementNames, name)
	}
}

func (b *builder) finish() *Analysis {
	an := b.an
	if an.Class == 0 {
		an.Class = Other
	}
	switch {
	case an.Class == Write:
		an.MustPrimary = true
		an.Reason = b.writeReason
	case b.primaryReason != "":
		an.MustPrimary = true
		an.Reason = b.primaryReason
	case an.Pin != "":
		an.MustPrimary = true
		an.Reason = an.Pin
	}
	if len(an.Sets) == 1 {
		an.Value = an.Sets[0].Value
	}
	return an
}

// function judges a call of a function that is not one of the dialect's
// special cases. base is the lower-case unqualified name, qualified the
// name as written (lower-case); builtin says the call may resolve to a
// built-in (unqualified, or in pg_catalog).
func (b *builder) function(base, qualified string, builtin bool, builtins map[string]struct{}) {
	if b.a.listed(b.a.sessFn, base, qualified) {
		b.write("function " + qualified + "()")
		b.pin("session_functions: " + qualified + "()")
		return
	}
	if b.a.listed(b.a.writeFn, base, qualified) {
		b.write("function " + qualified + "()")
		return
	}
	if b.a.listed(b.a.readFn, base, qualified) {
		return
	}
	if builtin {
		if _, ok := builtins[base]; ok {
			return
		}
	}
	b.write("function " + qualified + "()")
}

func (a *Analyzer) listed(set map[string]struct{}, base, qualified string) bool {
	if len(set) == 0 {
		return false
	}
	if _, ok := set[qualified]; ok {
		return true
	}
	_, ok := set[base]
	return ok
}

// scanHint looks for a switchyard:primary / switchyard:replica hint inside
// a comment. The substring test keeps the common case cheap; only texts
// that mention the word are tokenized, so that a hint-like string literal
// does not count.
func scanHint(a *Analyzer, sql string) Hint {
	if indexFold(sql, "switchyard:") < 0 {
		return HintNone
	}
	var comments []string
	if a.dialect == Postgres {
		comments = pgComments(sql)
	} else {
		comments = a.my.comments(sql)
	}
	h := HintNone
	for _, c := range comments {
		for rest := c; ; {
			i := indexFold(rest, "switchyard:")
			if i < 0 {
				break
			}
			rest = rest[i+len("switchyard:"):]
			switch {
			case hasPrefixFold(rest, "primary"):
				return HintPrimary
			case hasPrefixFold(rest, "replica"):
				h = HintReplica
			}
		}
	}
	return h
}

// indexFold is strings.Index with ASCII case folding; pattern must be
// lower-case.
func indexFold(s, pattern string) int {
	for i := 0; i+len(pattern) <= len(s); i++ {
		if s[i]|0x20 == pattern[0] && hasPrefixFold(s[i:], pattern) {
			return i
		}
	}
	return -1
}

// hasPrefixFold reports whether s starts with the lower-case ASCII prefix.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}
