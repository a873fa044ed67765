package router

import "strings"

// The fast path answers the few statements that dominate traffic and cannot
// be misread, without parsing and without allocating. It only ever answers
// Read (for a SELECT that cannot call anything, lock anything or write
// anywhere), transaction control, or (PostgreSQL) Write for an UPDATE,
// DELETE or INSERT ... VALUES that cannot call anything: what the parser would say of them, a
// write for the primary with no session state, which is all the proxy
// needs to know when routing does not depend on the text (no replicas, no
// shards) and all the parser could add when it does. Such statements carry
// literal values that differ at every execution (pgbench's TPC-B-like
// script), so the verdict cache keyed by text never hits for them. Every
// doubt returns nil and the parser decides. FuzzAnalyze* checks that the parser agrees with every answer it
// gives.

// Shared verdicts: immutable, like everything Analyze returns.
var (
	fastBegin = &Analysis{Class: TxnBegin, Statements: 1, MustPrimary: true, Reason: "read-write transaction"}
	fastEnd   = &Analysis{Class: TxnEnd, Statements: 1}
	fastRead  = &Analysis{Class: Read, Statements: 1}
	// As the parser's builder finishes a lone UPDATE / DELETE.
	fastUpdate = &Analysis{Class: Write, Statements: 1, MustPrimary: true, Reason: "UPDATE"}
	fastDelete = &Analysis{Class: Write, Statements: 1, MustPrimary: true, Reason: "DELETE"}
	fastInsert = &Analysis{Class: Write, Statements: 1, MustPrimary: true, Reason: "INSERT"}
)

// fastPath returns a verdict for the obvious cases, or nil.
func fastPath(d Dialect, sql string) *Analysis {
	s := trimStatement(sql)
	if len(s) < 3 {
		return nil
	}
	switch s[0] | 0x20 {
	case 's':
		if hasPrefixFold(s, "select") {
			if plainSelect(s) {
				return fastRead
			}
			return nil
		}
		if txnWords(s, "start", "transaction") {
			return fastBegin
		}
	case 'b':
		if txnWords(s, "begin", "") ||
			txnWords(s, "begin", "work") ||
			(d == Postgres && txnWords(s, "begin", "transaction")) {
			return fastBegin
		}
	case 'c':
		if txnWords(s, "commit", "") || txnWords(s, "commit", "work") ||
			(d == Postgres && txnWords(s, "commit", "transaction")) {
			return fastEnd
		}
	case 'r':
		if txnWords(s, "rollback", "") || txnWords(s, "rollback", "work") ||
			(d == Postgres && txnWords(s, "rollback", "transaction")) {
			return fastEnd
		}
	case 'e':
		if d == Postgres && (txnWords(s, "end", "") || txnWords(s, "end", "work") ||
			txnWords(s, "end", "transaction")) {
			return fastEnd
		}
	case 'u':
		if d == Postgres && hasPrefixFold(s, "update") && plainStatement(s, len("update")) {
			return fastUpdate
		}
	case 'd':
		if d == Postgres && hasPrefixFold(s, "delete") && plainStatement(s, len("delete")) {
			return fastDelete
		}
	case 'i':
		if d == Postgres && hasPrefixFold(s, "insert") && plainInsert(s) {
			return fastInsert
		}
	case 'a':
		if d == Postgres && (txnWords(s, "abort", "") || txnWords(s, "abort", "work") ||
			txnWords(s, "abort", "transaction")) {
			return fastEnd
		}
	}
	return nil
}

// trimStatement drops surrounding white space and one trailing semicolon.
func trimStatement(s string) string {
	i, j := 0, len(s)
	for i < j && isSpace(s[i]) {
		i++
	}
	for j > i && isSpace(s[j-1]) {
		j--
	}
	if j > i && s[j-1] == ';' {
		j--
		for j > i && isSpace(s[j-1]) {
			j--
		}
	}
	return s[i:j]
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isWordByte(c byte) bool { return byteClass[c] == bcWord }

// txnWords reports whether s is exactly the word w1, or w1 and w2 separated
// by white space (case-insensitive; w1, w2 lower-case).
func txnWords(s, w1, w2 string) bool {
	if !hasPrefixFold(s, w1) {
		return false
	}
	rest := s[len(w1):]
	if w2 == "" {
		return rest == ""
	}
	if rest == "" || !isSpace(rest[0]) {
		return false
	}
	for rest != "" && isSpace(rest[0]) {
		rest = rest[1:]
	}
	return len(rest) == len(w2) && hasPrefixFold(rest, w2)
}

// plainSelect reports whether s (trimmed, starting with "select") is a
// SELECT that can only read: no parenthesis (so no function call, subquery
// or CTE body), no semicolon (one statement), no comment (so no hint), no
// '@' (MySQL variables), no NUL, and none of the words FOR (FOR UPDATE/SHARE,
// NEXT VALUE FOR), INTO, LOCK (LOCK IN SHARE MODE), NEXT or SQL_CALC_FOUND_ROWS,
// wherever they appear, string literals included: a false "no" only costs
// a parse.
func plainSelect(s string) bool { return plainStatement(s, len("select")) }

// plainStatement is plainSelect's scan for a statement whose first word,
// n bytes long, the caller has matched: the same bytes and words are
// refused. In an UPDATE or DELETE this rules out function calls, subqueries
// (so nested data-modifying statements and locking clauses), CTEs (WITH
// comes first), comments (hints), and a second statement.
func plainStatement(s string, n int) bool {
	if len(s) > n && byteClass[s[n]] == bcWord {
		return false // selectx, update_log...
	}
	return plainWords(s)
}

// plainInsert reports whether s (trimmed, starting with "insert") is
// INSERT INTO name [(columns)] VALUES (row) [, (row)...] followed by clauses
// without parentheses (RETURNING, ON CONFLICT DO NOTHING), every part
// passing plainWords, with no parenthesis inside a column list or a row.
// Every '(' in s is then one of those openers (any other is refused), so
// none can be a function call, a subquery or a CTE: a '(' inside a string
// literal or quoted identifier only makes the scan see different groups,
// and each group is refused if it holds a '(' of its own.
func plainInsert(s string) bool {
	if len(s) <= len("insert") || !isSpace(s[len("insert")]) {
		return false
	}
	rest, ok := nextWord(s[len("insert"):], "into")
	if !ok || rest == "" || !isSpace(rest[0]) {
		return false
	}
	rest = trimLeftSpace(rest)
	i := 0
	for i < len(rest) && (byteClass[rest[i]] == bcWord || rest[i] == '.') {
		i++
	}
	if i == 0 {
		return false
	}
	rest = trimLeftSpace(rest[i:])
	group := func() bool { // rest starts with '('
		j := strings.IndexByte(rest, ')')
		if j < 0 || !plainWords(rest[1:j]) {
			return false
		}
		rest = trimLeftSpace(rest[j+1:])
		return true
	}
	if rest != "" && rest[0] == '(' && !group() {
		return false
	}
	rest, ok = nextWord(rest, "values")
	if !ok {
		return false
	}
	for {
		rest = trimLeftSpace(rest)
		if rest == "" || rest[0] != '(' || !group() {
			return false
		}
		if rest == "" || rest[0] != ',' {
			break
		}
		rest = rest[1:]
	}
	return plainWords(rest)
}

// nextWord returns what follows the word w (lower-case) at the start of
// s after optional white space, and whether it is there as a whole word.
func nextWord(s, w string) (string, bool) {
	s = trimLeftSpace(s)
	if !hasPrefixFold(s, w) || (len(s) > len(w) && byteClass[s[len(w)]] == bcWord) {
		return s, false
	}
	return s[len(w):], true
}

func trimLeftSpace(s string) string {
	for s != "" && isSpace(s[0]) {
		s = s[1:]
	}
	return s
}

// plainWords is the byte and word scan of plainStatement.
func plainWords(s string) bool {
	wordStart := -1
	for i := 0; i < len(s); i++ {
		switch byteClass[s[i]] {
		case bcWord:
			if wordStart < 0 {
				wordStart = i
			}
			continue
		case bcReject:
			return false
		case bcDash:
			if i+1 < len(s) && s[i+1] == '-' {
				return false
			}
		case bcSlash:
			if i+1 < len(s) && s[i+1] == '*' {
				return false
			}
		}
		if wordStart >= 0 {
			if suspiciousWord(s[wordStart:i]) {
				return false
			}
			wordStart = -1
		}
	}
	return wordStart < 0 || !suspiciousWord(s[wordStart:])
}

// Byte classes for plainStatement: one table lookup per byte.
const (
	bcOther  uint8 = iota
	bcWord         // identifier or keyword byte (non-ASCII counts: UTF-8 identifiers)
	bcReject       // ( ; @ # { NUL: never in a plain SELECT the fast path may answer
	bcDash         // '-': a comment if doubled
	bcSlash        // '/': a comment if followed by '*'
)

var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c == '_' || c == '$' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80:
			t[c] = bcWord
		case c == '(' || c == ';' || c == '@' || c == '#' || c == '{' || c == 0:
			t[c] = bcReject
		case c == '-':
			t[c] = bcDash
		case c == '/':
			t[c] = bcSlash
		}
	}
	return t
}()

func suspiciousWord(w string) bool {
	switch len(w) {
	case 3:
		return hasPrefixFold(w, "for")
	case 4:
		// NEXT: Vitess reads SELECT NEXT n VALUES FROM seq as a
		// sequence advance.
		return hasPrefixFold(w, "into") || hasPrefixFold(w, "lock") || hasPrefixFold(w, "next")
	case 19:
		return hasPrefixFold(w, "sql_calc_found_rows")
	}
	return false
}
