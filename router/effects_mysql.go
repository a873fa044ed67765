package router

import (
	"strings"
	"sync"
)

// This file decides what a MySQL COM_QUERY does to the session, not where
// it runs (the analyzer's job, with a real parser). It is the one judge of
// a MySQL text's session effects: Analysis.MySQLEffects hands out the
// verdict computed (and cached) with the analysis, or scans the text when
// there is no analysis (a cluster without replicas does not parse). It is a careful
// scanner, not a parser: it splits multi-statement text on semicolons
// outside strings, identifiers and comments, runs executable comments
// (/*! ... */, /*M! ... */) as code, and looks at the words of each
// statement. Its verdicts are:
//
//   - session SET (session variables, NAMES, CHARACTER SET, ROLE): the
//     statement text is remembered and replayed on the next server
//     connection;
//   - USE db: remembered, replayed with COM_INIT_DB;
//   - SET TRANSACTION (next transaction only): the lease is kept until the
//     next transaction has ended;
//   - things a fresh server connection cannot reproduce (LOCK TABLES,
//     FLUSH ... WITH READ LOCK, GET_LOCK(), user variables @x, CREATE
//     TEMPORARY TABLE, SQL_CALC_FOUND_ROWS, SQL-level PREPARE, HANDLER, XA):
//     the session is pinned to its server connection;
//   - KILL [QUERY|CONNECTION] n: translated by the proxy.
//
// A SET sent as a prepared statement (COM_STMT_PREPARE/EXECUTE) has its
// values in parameters: executing it pins the session (stmt.go).
//
// What it cannot see: the body of a stored procedure, function or
// trigger (CALL p() that sets @x). The server reports such changes itself
// (SERVER_SESSION_STATE_CHANGED, wire/mysqlwire/tracking.go), which pins
// the session; autocommit left off by such a body shows in the server's
// status flags too: that connection is reset before anyone else gets it
// (session.release).

// MySQLEffects is what a MySQL text does to the session.
type MySQLEffects struct {
	Pin    string   // reason to pin; "" when none
	Sets   []string // session SET statements, in order (texts to replay)
	Use    string   // USE target; "" when none
	HasUse bool
	TxNext bool  // SET TRANSACTION without SESSION/GLOBAL
	Kill   *Kill // a KILL statement (ID 0: of a form the proxy refuses)
	Count  int   // statements seen
	// LastInsertID: the statement is exactly SELECT LAST_INSERT_ID()
	// [[AS] alias]; RowCount and FoundRows: SELECT ROW_COUNT() and SELECT
	// FOUND_ROWS() in the same form. Alias is the column name to give
	// the answer.
	LastInsertID bool
	RowCount     bool
	FoundRows    bool
	// ConnectionID: SELECT CONNECTION_ID() in the same form; under a
	// pool the id that names the client's connection (the one KILL
	// takes) is the proxy's, not a server thread's.
	ConnectionID bool
	Alias        string
	// Diagnostics of the previous statement on the connection a
	// statement runs on, which transaction pooling may not be the
	// client's (see "Diagnostics" in the wire packages): DiagWarn, it
	// reads the warnings or errors (SHOW WARNINGS / ERRORS, SHOW COUNT(*)
	// WARNINGS / ERRORS, @@warning_count, @@error_count, GET
	// DIAGNOSTICS); DiagRows, ROW_COUNT() or FOUND_ROWS(); ReadsID,
	// LAST_INSERT_ID in any spelling (the function, @@last_insert_id,
	// @@identity); SetsID, LAST_INSERT_ID(expr), which changes it.
	DiagWarn, DiagRows, ReadsID, SetsID bool
}

type tokKind uint8

const (
	tWord    tokKind = iota // keyword or bare identifier, upper-cased in text
	tIdent                  // `quoted identifier`, unquoted content
	tString                 // 'string' or "string"
	tUserVar                // @name or @'name' (user variable)
	tSysVar                 // @@name
	tNumber                 // digits
	tPunct                  // one byte of punctuation
)

type token struct {
	kind tokKind
	text string // upper-cased for words
	raw  string // as written
}

// ScanMySQL scans query. It never fails: text it cannot make sense of
// yields no effect, and the server judges it. The strings of the result
// point into query.
func ScanMySQL(query string) MySQLEffects {
	var e MySQLEffects
	sc := scanners.Get().(*scanner)
	sc.s, sc.i = query, 0
	for {
		toks, more := sc.statement()
		if len(toks) > 0 {
			e.Count++
			e.statement(toks, sc.last)
		}
		if !more {
			break
		}
	}
	sc.s, sc.last = "", ""
	if cap(sc.toks) <= maxTokens {
		scanners.Put(sc)
	}
	return e
}

// Clone returns e with its own copies of the strings that point into the
// scanned text (Use, Alias, Sets; Pin is a constant or built anew, Kill
// holds no text), for a caller that scanned a buffer it will reuse:
// copying only what is kept, and nothing for a statement with no effect,
// rather than the whole text.
func (e MySQLEffects) Clone() MySQLEffects {
	e.Use, e.Alias = strings.Clone(e.Use), strings.Clone(e.Alias)
	if e.Sets != nil {
		sets := make([]string, len(e.Sets))
		for i, s := range e.Sets {
			sets[i] = strings.Clone(s)
		}
		e.Sets = sets
	}
	return e
}

// scanners keeps token buffers between scans.
var scanners = sync.Pool{New: func() any { return new(scanner) }}

// MySQLEffects returns what the MySQL text a was made from does to the
// session, scanned once with the analysis; ok is false when a has none (a
// is nil, or a verdict of the fast path, which does not scan): then the
// caller scans the text with ScanMySQL. Its strings never alias the
// caller's buffers.
func (a *Analysis) MySQLEffects() (e MySQLEffects, ok bool) {
	if a == nil || a.mysql == nil {
		return MySQLEffects{}, false
	}
	return *a.mysql, true
}

func (e *MySQLEffects) pinFor(reason string) {
	if e.Pin == "" {
		e.Pin = reason
	}
}

func (e *MySQLEffects) statement(toks []token, text string) {
	word := func(i int) string {
		if i < len(toks) && toks[i].kind == tWord {
			return toks[i].text
		}
		return ""
	}
	for i, t := range toks {
		switch t.kind {
		case tUserVar:
			if userVarWritten(toks, i) {
				e.pinFor("user variable " + t.text)
			}
		case tWord:
			switch t.text {
			case "GET_LOCK":
				if i+1 < len(toks) && toks[i+1].kind == tPunct && toks[i+1].text == "(" {
					e.pinFor("GET_LOCK()")
				}
			case "SQL_CALC_FOUND_ROWS":
				e.pinFor("SQL_CALC_FOUND_ROWS")
			case "ROW_COUNT", "FOUND_ROWS":
				if i+1 < len(toks) && toks[i+1].text == "(" {
					e.DiagRows = true
				}
			case "LAST_INSERT_ID":
				if i+1 < len(toks) && toks[i+1].text == "(" {
					e.ReadsID = true
					if i+2 < len(toks) && toks[i+2].text != ")" {
						e.SetsID = true
					}
				}
			}
		case tSysVar:
			name := t.text
			if j := strings.IndexByte(name, '.'); j >= 0 {
				if name[:j] == "GLOBAL" {
					break
				}
				name = name[j+1:]
			}
			switch name {
			case "WARNING_COUNT", "ERROR_COUNT":
				e.DiagWarn = true
			case "LAST_INSERT_ID", "IDENTITY":
				e.ReadsID = true
			}
		}
	}
	if len(toks) >= 4 && word(0) == "SELECT" && toks[2].text == "(" && toks[3].text == ")" {
		rest := toks[4:]
		if len(rest) > 0 && rest[0].kind == tWord && rest[0].text == "AS" {
			rest = rest[1:]
		}
		alias := ""
		switch {
		case len(rest) == 0:
			alias = toks[1].text + "()"
		case len(rest) == 1 && (rest[0].kind == tWord || rest[0].kind == tIdent || rest[0].kind == tString):
			alias = rest[0].raw
		}
		if alias != "" {
			switch word(1) {
			case "LAST_INSERT_ID":
				e.LastInsertID, e.Alias = true, alias
			case "ROW_COUNT":
				e.RowCount, e.Alias = true, alias
			case "FOUND_ROWS":
				e.FoundRows, e.Alias = true, alias
			case "CONNECTION_ID":
				e.ConnectionID, e.Alias = true, alias
			}
		}
	}
	switch word(0) {
	case "SHOW":
		w := word(1)
		if w == "COUNT" {
			w = word(5) // SHOW COUNT(*) WARNINGS
		}
		if w == "WARNINGS" || w == "ERRORS" {
			e.DiagWarn = true
		}
	case "GET":
		switch word(1) {
		case "DIAGNOSTICS", "CURRENT", "STACKED":
			e.DiagWarn = true
		}
	case "USE":
		if len(toks) >= 2 && (toks[1].kind == tWord || toks[1].kind == tIdent) {
			e.Use, e.HasUse = toks[1].raw, true
		}
	case "SET":
		switch word(1) {
		case "GLOBAL", "PERSIST", "PERSIST_ONLY", "PASSWORD", "DEFAULT", "STATEMENT":
			return
		case "TRANSACTION":
			e.TxNext = true
			return
		}
		if len(toks) > 1 && toks[1].kind == tSysVar && strings.HasPrefix(toks[1].text, "GLOBAL.") {
			return
		}
		for _, t := range toks[1:] {
			if (t.kind == tWord || t.kind == tSysVar) && strings.HasSuffix(t.text, "SESSION_TRACK_STATE_CHANGE") {
				// The proxy turns it on for every server connection to
				// see state changes it cannot read in SQL; replayed, a
				// client's SET could turn that off.
				e.pinFor("SET session_track_state_change")
				return
			}
		}
		for i := 1; i+1 < len(toks); i++ {
			t := toks[i]
			if t.kind != tWord && t.kind != tSysVar || toks[i+1].text != "=" && toks[i+1].text != ":" {
				continue // not a variable being assigned
			}
			name := t.text
			if j := strings.LastIndexByte(name, '.'); j >= 0 {
				name = name[j+1:]
			}
			switch name {
			case "INSERT_ID", "RAND_SEED1", "RAND_SEED2":
				// Used once, by the next INSERT or RAND(): replayed on
				// every later server connection, the value would be
				// used again (a second INSERT got the same id: 1062).
				e.pinFor("SET " + strings.ToLower(name))
			case "LAST_INSERT_ID", "IDENTITY":
				// As LAST_INSERT_ID(expr): the value becomes the
				// session's, read back before the lease ends.
				e.SetsID = true
			}
		}
		if e.Pin == "" {
			e.Sets = append(e.Sets, strings.TrimSpace(text))
		}
	case "LOCK":
		e.pinFor("LOCK TABLES")
	case "FLUSH":
		for i := range toks {
			if word(i) == "LOCK" {
				e.pinFor("FLUSH ... WITH READ LOCK")
			}
		}
	case "CREATE":
		for i := 1; i < len(toks) && i < 4; i++ {
			if word(i) == "TEMPORARY" {
				e.pinFor("temporary table")
			}
		}
	case "PREPARE":
		e.pinFor("SQL PREPARE")
	case "HANDLER":
		e.pinFor("HANDLER")
	case "XA":
		e.pinFor("XA transaction")
	case "KILL":
		// ID 0 (a KILL of another form): refused as unknown.
		k, _ := ParseKill(text)
		e.Kill = &k
	}
}

// userVarWritten reports whether the user variable at toks[i] is assigned
// (SET @x, @x := ..., INTO @x) or used by a SET statement, whose replay on
// another connection would read it there. Reading @x elsewhere needs no pin:
// a session that assigned one is pinned already, and a pinned connection
// is reset before anyone else gets it, so no variable leaks.
func userVarWritten(toks []token, i int) bool {
	if i >= maxTokens {
		return true // past the limit the neighbours were not kept
	}
	if len(toks) > 0 && toks[0].kind == tWord && toks[0].text == "SET" {
		return true
	}
	if i+2 < len(toks) && toks[i+1].text == ":" && toks[i+2].text == "=" {
		return true
	}
	j := i - 1
	for j >= 1 && toks[j].kind == tPunct && toks[j].text == "," && toks[j-1].kind == tUserVar {
		j -= 2
	}
	return j >= 0 && toks[j].kind == tWord && toks[j].text == "INTO"
}

// scanner walks SQL text statement by statement.
type scanner struct {
	s    string
	i    int
	last string // text of the statement statement() returned
	toks []token
}

// statement returns the tokens of the next statement and whether more text
// follows its semicolon.
func (sc *scanner) statement() ([]token, bool) {
	sc.toks = sc.toks[:0]
	start := sc.i
	inExec := false // inside /*! ... */
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		switch {
		case c == ';':
			sc.last = sc.s[start:sc.i]
			sc.i++
			return sc.toks, sc.i < len(sc.s)
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			sc.i++
		case c == '#':
			sc.skipLine()
		case c == '-' && strings.HasPrefix(sc.s[sc.i:], "--") &&
			(sc.i+2 == len(sc.s) || scanSpace(sc.s[sc.i+2])):
			sc.skipLine()
		case c == '/' && strings.HasPrefix(sc.s[sc.i:], "/*"):
			rest := sc.s[sc.i+2:]
			switch {
			case strings.HasPrefix(rest, "!"):
				sc.i += 3
				for sc.i < len(sc.s) && sc.s[sc.i] >= '0' && sc.s[sc.i] <= '9' {
					sc.i++
				}
				inExec = true
			case strings.HasPrefix(rest, "M!"):
				sc.i += 4
				for sc.i < len(sc.s) && sc.s[sc.i] >= '0' && sc.s[sc.i] <= '9' {
					sc.i++
				}
				inExec = true
			default:
				end := strings.Index(rest, "*/")
				if end < 0 {
					sc.i = len(sc.s)
				} else {
					sc.i += 2 + end + 2
				}
			}
		case c == '*' && inExec && strings.HasPrefix(sc.s[sc.i:], "*/"):
			inExec = false
			sc.i += 2
		case c == '\'' || c == '"':
			sc.add(tString, sc.quoted(c))
		case c == '`':
			sc.add(tIdent, sc.quoted(c))
		case c == '@':
			sc.variable()
		case scanWordByte(c):
			j := sc.i
			for j < len(sc.s) && scanWordByte(sc.s[j]) {
				j++
			}
			w := sc.s[sc.i:j]
			sc.i = j
			if isDigits(w) {
				sc.add(tNumber, w)
			} else {
				sc.addRaw(tWord, strings.ToUpper(w), w)
			}
		default:
			sc.add(tPunct, sc.s[sc.i:sc.i+1])
			sc.i++
		}
	}
	sc.last = sc.s[start:]
	return sc.toks, false
}

func (sc *scanner) add(k tokKind, text string) { sc.addRaw(k, text, text) }

// addRaw keeps every token of the first maxTokens, then only the markers
// that pin anywhere in a statement: a huge INSERT costs no huge slice.
func (sc *scanner) addRaw(k tokKind, text, raw string) {
	if len(sc.toks) >= maxTokens {
		switch {
		case k == tUserVar:
		case k == tPunct && text == "(" && sc.toks[len(sc.toks)-1].text == "GET_LOCK":
		case k == tWord && (text == "GET_LOCK" || text == "SQL_CALC_FOUND_ROWS"):
		default:
			return
		}
	}
	sc.toks = append(sc.toks, token{k, text, raw})
}

const maxTokens = 4096

func (sc *scanner) skipLine() {
	for sc.i < len(sc.s) && sc.s[sc.i] != '\n' {
		sc.i++
	}
}

// quoted reads a quoted string or identifier starting at sc.i and returns
// its raw content. A doubled quote is an escaped quote; in strings a
// backslash escapes the next byte (NO_BACKSLASH_ESCAPES is not honoured:
// the scanner then errs on the side of staying inside the string).
func (sc *scanner) quoted(q byte) string {
	start := sc.i + 1
	i := start
	for i < len(sc.s) {
		c := sc.s[i]
		switch {
		case c == '\\' && q != '`':
			i += 2
			continue
		case c == q:
			if i+1 < len(sc.s) && sc.s[i+1] == q {
				i += 2
				continue
			}
			sc.i = i + 1
			return sc.s[start:i]
		}
		i++
	}
	sc.i = len(sc.s)
	return sc.s[start:]
}

// variable reads @@sysvar or @uservar. An @ right after a quote or a word
// character is the user@host of an account name, not a variable.
func (sc *scanner) variable() {
	if sc.i > 0 {
		p := sc.s[sc.i-1]
		if p == '\'' || p == '"' || p == '`' || scanWordByte(p) {
			sc.add(tPunct, "@")
			sc.i++
			return
		}
	}
	if strings.HasPrefix(sc.s[sc.i:], "@@") {
		j := sc.i + 2
		for j < len(sc.s) && (scanWordByte(sc.s[j]) || sc.s[j] == '.') {
			j++
		}
		sc.add(tSysVar, strings.ToUpper(sc.s[sc.i+2:j]))
		sc.i = j
		return
	}
	j := sc.i + 1
	if j < len(sc.s) && (sc.s[j] == '\'' || sc.s[j] == '"' || sc.s[j] == '`') {
		sc.i = j
		name := sc.quoted(sc.s[j])
		sc.add(tUserVar, "@"+name)
		return
	}
	for j < len(sc.s) && (scanWordByte(sc.s[j]) || sc.s[j] == '.') {
		j++
	}
	sc.add(tUserVar, sc.s[sc.i:j])
	sc.i = j
}

func scanSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

func scanWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
