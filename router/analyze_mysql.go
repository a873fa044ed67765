package router

import (
	"fmt"
	"strings"

	// Importing sqlparser registers glog's flags (-v, -logtostderr, ...)
	// on the global flag.CommandLine as a side effect. The switchyard CLI
	// parses its own FlagSet, so they never show up there; anything that
	// calls flag.Parse() on the global set will see them.
	"vitess.io/vitess/go/vt/sqlparser"
)

// MySQL statements are parsed by Vitess's sqlparser: pure Go, goroutine-safe,
// MySQL 8 grammar with MariaDB's common extensions. Where it is stricter than
// the server (BEGIN WORK, COMMIT AND CHAIN, XA, HANDLER, SET x := 1) the text
// gets a ParseError and goes to the primary as a write, which the server
// then runs correctly; the fast path covers BEGIN/COMMIT/ROLLBACK WORK.

type mysqlParser struct{ p *sqlparser.Parser }

func newMySQLParser() *mysqlParser {
	p, err := sqlparser.New(sqlparser.Options{})
	if err != nil {
		// Only a malformed server version string can fail, and none is given.
		panic(fmt.Sprintf("router: vitess sqlparser: %v", err))
	}
	return &mysqlParser{p: p}
}

// errMariaDBComment: the text holds a comment MariaDB runs and the parser
// skips (/*M! ... */, /*!NNNNNN ... */ with a six-digit version).
var errMariaDBComment = fmt.Errorf("MariaDB executable comments (/*M! ... */, /*!NNNNNN ... */) are not understood by the proxy's SQL parser; write the statement without them")

// mariaDBComment reports whether sql holds an executable comment of
// MariaDB's own forms, which the server runs and Vitess's parser takes for
// a plain comment (the 5-digit /*!NNNNN form it reads): /*M! ... */ and
// /*!NNNNNN ... */. A statement that hides code from the parser must not be
// routed or sharded by what the parser sees; such a text is treated as one
// the parser rejects. (Inside a string literal the pattern is a false
// alarm: the statement then goes to the primary, or is refused on a
// sharded database.)
func mariaDBComment(sql string) bool {
	for i := 0; ; {
		j := strings.Index(sql[i:], "/*")
		if j < 0 {
			return false
		}
		i += j + 2
		rest := sql[i:]
		if strings.HasPrefix(rest, "M!") {
			return true
		}
		if strings.HasPrefix(rest, "!") {
			d := 0
			for d < len(rest)-1 && rest[1+d] >= '0' && rest[1+d] <= '9' {
				d++
			}
			if d == 6 {
				return true
			}
		}
	}
}

func (b *builder) mysql(sql string) error {
	if mariaDBComment(sql) {
		return errMariaDBComment
	}
	stmts, err := b.a.my.p.ParseMultiple(sql)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if s == nil {
			continue
		}
		if _, ok := s.(*sqlparser.CommentOnly); ok {
			continue
		}
		b.an.Statements++
		b.myStmt(s)
	}
	return nil
}

// myStmt judges one top-level statement (or the statement inside EXPLAIN
// ANALYZE).
func (b *builder) myStmt(s sqlparser.Statement) {
	switch s := s.(type) {
	case *sqlparser.Select, *sqlparser.Union:
		b.class(Read)
		b.myWalk(s)
	case *sqlparser.Insert:
		switch {
		case s.Action == sqlparser.ReplaceAct:
			b.write("REPLACE")
		case len(s.OnDup) > 0:
			b.write("INSERT ... ON DUPLICATE KEY UPDATE")
		default:
			b.write("INSERT")
		}
		b.myWalk(s)
	case *sqlparser.Update:
		b.write("UPDATE")
		b.myWalk(s)
	case *sqlparser.Delete:
		b.write("DELETE")
		b.myWalk(s)
	case *sqlparser.Set:
		b.class(Session)
		b.mySet(s)
		b.myWalk(s)
	case *sqlparser.Use:
		b.class(Session)
		b.set(SetOp{Name: "database", Value: s.DBName.String()})
	case *sqlparser.Begin:
		b.class(TxnBegin)
		ro := false
		for _, m := range s.TxAccessModes {
			switch m {
			case sqlparser.ReadOnly:
				ro = true
			case sqlparser.ReadWrite:
				ro = false
			}
		}
		if ro {
			b.an.ReadOnlyBegin = true
		} else {
			b.primary("read-write transaction")
		}
	case *sqlparser.Commit, *sqlparser.Rollback:
		b.class(TxnEnd)
	case *sqlparser.SRollback, *sqlparser.Savepoint, *sqlparser.Release:
		b.class(Other)
	case *sqlparser.LockTables:
		b.class(Other)
		b.pin("LOCK TABLES")
	case *sqlparser.UnlockTables:
		b.class(Other)
	case *sqlparser.CallProc:
		b.write("CALL")
		base := strings.ToLower(s.Name.Name.String())
		qualified := base
		if q := s.Name.Qualifier.String(); q != "" {
			qualified = strings.ToLower(q) + "." + base
		}
		if b.a.listed(b.a.sessFn, base, qualified) {
			b.pin("session_functions: " + qualified + "()")
		}
		b.myWalk(s)
	case *sqlparser.Load:
		b.write("LOAD DATA")
	case *sqlparser.PrepareStmt:
		b.class(Session)
		b.pin("PREPARE")
	case *sqlparser.ExecuteStmt:
		b.write("EXECUTE")
		b.myWalk(s)
	case *sqlparser.DeallocateStmt:
		b.class(Session)
		b.deallocate(s.Name.String(), false)
	case *sqlparser.Show, *sqlparser.ExplainTab:
		b.class(Read)
	case *sqlparser.ExplainStmt:
		if s.Type == sqlparser.AnalyzeType && s.Statement != nil {
			b.myStmt(s.Statement)
		} else {
			b.class(Read)
		}
	case *sqlparser.CreateTable:
		b.write("CREATE TABLE")
		if s.Temp {
			b.pin("CREATE TEMPORARY TABLE")
		}
		if s.Select != nil {
			b.myWalk(s.Select)
		}
	case *sqlparser.Kill:
		// The wire layer answers KILL itself; it names a client, not a
		// server thread.
		b.class(Other)
	default:
		b.write(myStmtName(s))
	}
}

func myStmtName(s sqlparser.Statement) string {
	switch s.(type) {
	case *sqlparser.AlterTable:
		return "ALTER TABLE"
	case *sqlparser.DropTable:
		return "DROP TABLE"
	case *sqlparser.TruncateTable:
		return "TRUNCATE"
	case *sqlparser.OtherAdmin:
		return "admin statement" // DO, OPTIMIZE, REPAIR, ...
	case *sqlparser.Flush:
		return "FLUSH"
	case *sqlparser.Analyze:
		return "ANALYZE TABLE"
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", s), "*sqlparser.")
}

func (b *builder) mySet(s *sqlparser.Set) {
	for _, e := range s.Exprs {
		v := e.Var
		name := v.Name.Lowered()
		switch v.Scope {
		case sqlparser.VariableScope:
			// @x = ...: the walk pins.
			continue
		case sqlparser.GlobalScope, sqlparser.PersistSysScope, sqlparser.PersistOnlySysScope,
			sqlparser.VitessMetadataScope:
			b.write("SET GLOBAL")
			continue
		}
		switch name {
		case "charset", "character set", "character_set":
			name = "character_set"
		}
		op := SetOp{Name: name, Value: mySimpleValue(e.Expr), Local: v.Scope == sqlparser.NextTxScope}
		if _, ok := e.Expr.(*sqlparser.Default); ok {
			op.Reset = true
		}
		b.set(op)
	}
}

// mySimpleValue renders a literal or a bare word (SET autocommit = ON,
// sql_mode = TRADITIONAL); anything else is "".
func mySimpleValue(e sqlparser.Expr) string {
	switch e := e.(type) {
	case *sqlparser.Literal:
		return e.Val
	case sqlparser.BoolVal:
		if e {
			return "1"
		}
		return "0"
	case *sqlparser.ColName:
		if e.Qualifier.IsEmpty() {
			return e.Name.String()
		}
	}
	return ""
}

// myWalk visits every node of a statement that runs, and judges function
// calls, user variables, row locks and SELECT options.
func (b *builder) myWalk(n sqlparser.SQLNode) {
	_ = sqlparser.Walk(func(n sqlparser.SQLNode) (bool, error) {
		switch n := n.(type) {
		case *sqlparser.Select:
			b.myLock(n.Lock)
			b.myInto(n.Into)
			if n.SQLCalcFoundRows {
				b.pin("SQL_CALC_FOUND_ROWS")
			}
		case *sqlparser.Union:
			b.myLock(n.Lock)
			b.myInto(n.Into)
		case *sqlparser.Variable:
			if n.Scope == sqlparser.VariableScope {
				b.pin("user variable")
			}
		case *sqlparser.LockingFunc:
			switch n.Type {
			case sqlparser.GetLock:
				b.pin("GET_LOCK()")
			case sqlparser.ReleaseLock:
				b.primary("RELEASE_LOCK()")
			case sqlparser.ReleaseAllLocks:
				b.primary("RELEASE_ALL_LOCKS()")
			default: // IS_FREE_LOCK, IS_USED_LOCK: locks live on one server
				b.primary("named lock function")
			}
		case *sqlparser.Nextval:
			b.write("NEXT VALUE")
		case *sqlparser.FuncExpr:
			b.myFunc(n)
		}
		return true, nil
	}, n)
}

func (b *builder) myLock(l sqlparser.Lock) {
	switch l {
	case sqlparser.NoLock:
	case sqlparser.ShareModeLock:
		b.primary("LOCK IN SHARE MODE")
	case sqlparser.ForShareLock, sqlparser.ForShareLockNoWait, sqlparser.ForShareLockSkipLocked:
		b.primary("FOR SHARE")
	default:
		b.primary("FOR UPDATE")
	}
}

func (b *builder) myInto(into *sqlparser.SelectInto) {
	if into == nil {
		return
	}
	if into.Type == sqlparser.IntoVariables {
		b.pin("user variable") // SELECT ... INTO @x
		return
	}
	b.write("SELECT INTO OUTFILE")
}

func (b *builder) myFunc(f *sqlparser.FuncExpr) {
	base := f.Name.Lowered()
	qualified := base
	builtin := f.Qualifier.IsEmpty()
	if !builtin {
		qualified = strings.ToLower(f.Qualifier.String()) + "." + base
	}
	if builtin {
		switch base {
		case "last_insert_id", "row_count":
			// Session state of the connection that ran the previous
			// statement: only the primary can have it.
			b.primary(base + "()")
			return
		case "found_rows":
			b.pin("FOUND_ROWS()")
			return
		case "nextval", "setval": // MariaDB sequences
			b.write(base + "()")
			return
		case "lastval":
			b.primary(base + "()")
			return
		}
	}
	b.function(base, qualified, builtin, mysqlReadOnlyFuncs)
}

// comments returns the text of every comment in sql as Vitess's tokenizer
// sees them (not inside string literals; /*! ... */ is code, not a comment).
func (p *mysqlParser) comments(sql string) []string {
	var out []string
	t := p.p.NewStringTokenizer(sql)
	for guard := 0; guard <= len(sql)+1; guard++ {
		typ, val := t.Scan()
		switch typ {
		case 0, sqlparser.LEX_ERROR:
			return out
		case sqlparser.COMMENT:
			out = append(out, val)
		}
	}
	return out
}

// proxySet recognises SET switchyard.<name> = <value>, the proxy's own
// session settings, which Vitess's grammar rejects (dotted names). Only
// called on text the parser already refused; it claims nothing else.
func proxySet(sql string) (SetOp, bool) {
	s := trimStatement(sql)
	if !hasPrefixFold(s, "set") || len(s) < 4 || !isSpace(s[3]) {
		return SetOp{}, false
	}
	s = strings.TrimLeft(s[3:], " \t\r\n")
	if !hasPrefixFold(s, "switchyard.") {
		return SetOp{}, false
	}
	i := len("switchyard.")
	for i < len(s) && (isWordByte(s[i]) && s[i] != '$') {
		i++
	}
	if i == len("switchyard.") {
		return SetOp{}, false
	}
	name := strings.ToLower(s[:i])
	rest := strings.TrimLeft(s[i:], " \t\r\n")
	switch {
	case strings.HasPrefix(rest, ":="):
		rest = rest[2:]
	case strings.HasPrefix(rest, "="):
		rest = rest[1:]
	default:
		return SetOp{}, false
	}
	rest = strings.TrimLeft(rest, " \t\r\n")
	var val string
	switch {
	case len(rest) >= 2 && (rest[0] == '\'' || rest[0] == '"') && rest[len(rest)-1] == rest[0]:
		val = rest[1 : len(rest)-1]
		if strings.ContainsAny(val, "'\"\\") {
			return SetOp{}, false
		}
	default:
		for j := 0; j < len(rest); j++ {
			if !isWordByte(rest[j]) && rest[j] != '-' && rest[j] != '.' && rest[j] != ':' && rest[j] != '/' {
				return SetOp{}, false
			}
		}
		val = rest
	}
	if val == "" {
		return SetOp{}, false
	}
	return SetOp{Name: name, Value: val}, true
}
