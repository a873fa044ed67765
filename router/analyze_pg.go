package router

import (
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// PostgreSQL statements are parsed by pg_query, which is PostgreSQL's own
// grammar compiled in through cgo, so anything the server accepts parses
// the same way here. Its tree arrives as protobuf; the walk below goes
// through protobuf reflection, so that a node type added by a future
// grammar is still visited rather than silently skipped.

// cursorOptHold is CURSOR_OPT_HOLD from PostgreSQL's parsenodes.h.
const cursorOptHold = 0x0020

func (b *builder) postgres(sql string) error {
	tree, err := pg.Parse(sql)
	if err != nil {
		return err
	}
	for _, raw := range tree.GetStmts() {
		if raw.GetStmt() == nil || raw.GetStmt().GetNode() == nil {
			continue
		}
		b.an.Statements++
		b.pgStmt(raw.GetStmt())
	}
	return nil
}

// pgStmt judges one top-level statement (or the statement inside EXPLAIN
// ANALYZE).
func (b *builder) pgStmt(n *pg.Node) {
	switch s := n.GetNode().(type) {
	case *pg.Node_SelectStmt:
		b.class(Read)
		if into := s.SelectStmt.GetIntoClause(); into != nil {
			b.write("SELECT INTO")
			if pgTempInto(into) {
				b.pin("SELECT INTO TEMP")
			}
		}
		b.pgWalk(n)
	case *pg.Node_InsertStmt:
		b.write("INSERT")
		b.pgWalk(n)
	case *pg.Node_UpdateStmt:
		b.write("UPDATE")
		b.pgWalk(n)
	case *pg.Node_DeleteStmt:
		b.write("DELETE")
		b.pgWalk(n)
	case *pg.Node_MergeStmt:
		b.write("MERGE")
		b.pgWalk(n)
	case *pg.Node_TransactionStmt:
		b.pgTransaction(s.TransactionStmt)
	case *pg.Node_VariableSetStmt:
		b.class(Session)
		b.pgSet(s.VariableSetStmt)
	case *pg.Node_VariableShowStmt:
		b.class(Read)
	case *pg.Node_DiscardStmt:
		b.class(Session)
		if s.DiscardStmt.GetTarget() == pg.DiscardMode_DISCARD_ALL {
			b.set(SetOp{Reset: true, All: true, Auth: true})
			b.deallocate("", true)
		}
	case *pg.Node_DeallocateStmt:
		b.class(Session)
		b.deallocate(s.DeallocateStmt.GetName(), s.DeallocateStmt.GetIsall())
		b.stmtName(s.DeallocateStmt.GetName())
	case *pg.Node_PrepareStmt:
		// Pinned rather than mapped: the wire layer maps protocol-level
		// prepared statements; SQL-level ones are rare enough to pin.
		b.class(Session)
		b.pin("PREPARE")
		b.stmtName(s.PrepareStmt.GetName())
	case *pg.Node_ExecuteStmt:
		b.write("EXECUTE")
		b.stmtName(s.ExecuteStmt.GetName())
	case *pg.Node_ListenStmt:
		b.class(Session)
		b.pin("LISTEN")
	case *pg.Node_UnlistenStmt:
		b.class(Session)
	case *pg.Node_NotifyStmt:
		b.write("NOTIFY")
	case *pg.Node_DeclareCursorStmt:
		b.class(Read)
		if s.DeclareCursorStmt.GetOptions()&cursorOptHold != 0 {
			b.pin("DECLARE ... WITH HOLD")
		}
		b.pgWalk(n)
	case *pg.Node_FetchStmt, *pg.Node_ClosePortalStmt:
		b.class(Other)
	case *pg.Node_ExplainStmt:
		if e := s.ExplainStmt.GetQuery().GetExecuteStmt(); e != nil {
			b.stmtName(e.GetName()) // EXPLAIN EXECUTE plans a prepared statement
		}
		if pgExplainAnalyze(s.ExplainStmt) && s.ExplainStmt.GetQuery() != nil {
			b.pgStmt(s.ExplainStmt.GetQuery())
		} else {
			b.class(Read) // planning only: nothing runs
		}
	case *pg.Node_CopyStmt:
		c := s.CopyStmt
		if c.GetIsFrom() {
			b.write("COPY FROM")
			b.an.CopyFrom = true
		} else {
			b.class(Read)
			if c.GetFilename() != "" || c.GetIsProgram() {
				b.primary("COPY TO file or program")
			}
		}
		b.pgWalk(n)
	case *pg.Node_LoadStmt:
		b.class(Other)
		b.pin("LOAD")
	case *pg.Node_CallStmt:
		b.write("CALL")
		b.pgWalk(n)
	case *pg.Node_DoStmt:
		// Procedural code the proxy cannot see into: a SET or
		// set_config() inside would change the server connection's
		// session unseen, and the next client would inherit it.
		b.write("DO")
		b.pin("DO block")
	case *pg.Node_LockStmt:
		b.class(Read)
		b.primary("LOCK TABLE")
	case *pg.Node_CreateStmt:
		b.write("CREATE TABLE")
		c := s.CreateStmt
		if pgTemp(c.GetRelation()) && c.GetOncommit() != pg.OnCommitAction_ONCOMMIT_DROP {
			b.pin("CREATE TEMP TABLE")
		}
	case *pg.Node_CreateTableAsStmt:
		b.write("CREATE TABLE AS")
		if pgTempInto(s.CreateTableAsStmt.GetInto()) {
			b.pin("CREATE TEMP TABLE AS")
		}
		if e := s.CreateTableAsStmt.GetQuery().GetExecuteStmt(); e != nil {
			b.stmtName(e.GetName()) // CREATE TABLE AS EXECUTE
		}
		b.pgWalk(s.CreateTableAsStmt.GetQuery())
	case *pg.Node_ViewStmt:
		b.write("CREATE VIEW")
		if pgTemp(s.ViewStmt.GetView()) {
			b.pin("CREATE TEMP VIEW")
		}
	case *pg.Node_CreateSeqStmt:
		b.write("CREATE SEQUENCE")
		if pgTemp(s.CreateSeqStmt.GetSequence()) {
			b.pin("CREATE TEMP SEQUENCE")
		}
	default:
		// DDL, GRANT, VACUUM, CHECKPOINT, ...: whatever it is, the
		// primary can run it and a replica cannot.
		b.write(pgStmtName(n))
		if pgTempNames(n.ProtoReflect()) {
			b.pin("object in pg_temp")
		}
	}
}

// pgTemp reports whether r names a temporary relation: TEMP in the
// statement, or a name qualified by the temporary schema (CREATE TABLE
// pg_temp.t makes a temp table as CREATE TEMP TABLE t does).
func pgTemp(r *pg.RangeVar) bool {
	return r.GetRelpersistence() == "t" || pgTempSchema(r.GetSchemaname())
}

// pgTempSchema reports whether a schema name is the session's temporary
// schema: pg_temp, or its real name pg_temp_<n>. The parser has already
// folded unquoted names to lower case; PostgreSQL compares them exactly.
func pgTempSchema(name string) bool {
	return name == "pg_temp" || strings.HasPrefix(name, "pg_temp_")
}

// pgTempNames reports whether a statement names an object in the
// temporary schema: CREATE FUNCTION pg_temp.f(), CREATE TYPE pg_temp.t,
// CREATE DOMAIN pg_temp.d, ... make session-local objects without TEMP.
// Qualified names are lists of String nodes; relations are RangeVars.
func pgTempNames(m protoreflect.Message) bool {
	switch n := m.Interface().(type) {
	case *pg.RangeVar:
		return pgTemp(n)
	case *pg.String:
		return false
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			if l.Len() >= 2 {
				if s, ok := l.Get(0).Message().Interface().(*pg.Node); ok && pgTempSchema(s.GetString_().GetSval()) {
					found = true
					return false
				}
			}
			for i := 0; i < l.Len() && !found; i++ {
				found = pgTempNames(l.Get(i).Message())
			}
			return !found
		}
		found = pgTempNames(v.Message())
		return !found
	})
	return found
}

func pgTempInto(into *pg.IntoClause) bool {
	return into != nil && pgTemp(into.GetRel()) && into.GetOnCommit() != pg.OnCommitAction_ONCOMMIT_DROP
}

// pgStmtName names a statement node for Reason: "AlterTableStmt" → "ALTER TABLE" for
// the common ones, the node name otherwise.
func pgStmtName(n *pg.Node) string {
	switch n.GetNode().(type) {
	case *pg.Node_AlterTableStmt:
		return "ALTER TABLE"
	case *pg.Node_DropStmt:
		return "DROP"
	case *pg.Node_TruncateStmt:
		return "TRUNCATE"
	case *pg.Node_IndexStmt:
		return "CREATE INDEX"
	case *pg.Node_GrantStmt:
		return "GRANT"
	case *pg.Node_VacuumStmt:
		return "VACUUM/ANALYZE"
	case *pg.Node_CreateFunctionStmt:
		return "CREATE FUNCTION"
	}
	m := n.ProtoReflect()
	if od := m.Descriptor().Oneofs().ByName("node"); od != nil {
		if fd := m.WhichOneof(od); fd != nil {
			return string(fd.Message().Name())
		}
	}
	return "statement"
}

func (b *builder) pgTransaction(t *pg.TransactionStmt) {
	switch t.GetKind() {
	case pg.TransactionStmtKind_TRANS_STMT_BEGIN, pg.TransactionStmtKind_TRANS_STMT_START:
		b.class(TxnBegin)
		switch {
		case pgSerializableTxn(t.GetOptions()):
			// A hot standby refuses SERIALIZABLE, READ ONLY or not.
			b.primary("serializable transaction")
		case pgReadOnlyTxn(t.GetOptions()):
			b.an.ReadOnlyBegin = true
		default:
			b.primary("read-write transaction")
		}
	case pg.TransactionStmtKind_TRANS_STMT_COMMIT, pg.TransactionStmtKind_TRANS_STMT_ROLLBACK:
		// AND CHAIN opens the next transaction at once, with the same
		// characteristics, on the same connection: still the end of
		// this one for routing purposes.
		b.class(TxnEnd)
		b.an.Chain = b.an.Chain || t.GetChain()
	case pg.TransactionStmtKind_TRANS_STMT_PREPARE:
		b.class(TxnEnd)
		b.primary("PREPARE TRANSACTION")
	case pg.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED:
		b.write("COMMIT PREPARED")
	case pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED:
		b.write("ROLLBACK PREPARED")
	case pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		b.class(Other)
		b.an.RollbackTo = true
	default: // SAVEPOINT, RELEASE
		b.class(Other)
	}
}

// pgReadOnlyTxn reports whether the last transaction_read_only option of a
// BEGIN/START TRANSACTION is true.
func pgReadOnlyTxn(opts []*pg.Node) bool {
	ro := false
	for _, o := range opts {
		d := o.GetDefElem()
		if d.GetDefname() == "transaction_read_only" {
			ro = d.GetArg().GetAConst().GetIval().GetIval() != 0
		}
	}
	return ro
}

// pgSerializableTxn reports whether the last transaction_isolation option
// of a BEGIN/START TRANSACTION is SERIALIZABLE.
func pgSerializableTxn(opts []*pg.Node) bool {
	ser := false
	for _, o := range opts {
		d := o.GetDefElem()
		if d.GetDefname() == "transaction_isolation" {
			ser = strings.EqualFold(d.GetArg().GetAConst().GetSval().GetSval(), "serializable")
		}
	}
	return ser
}

// pgExplainAnalyze reports whether EXPLAIN runs its statement: ANALYZE
// present and not switched off.
func pgExplainAnalyze(e *pg.ExplainStmt) bool {
	on := false
	for _, o := range e.GetOptions() {
		d := o.GetDefElem()
		if d.GetDefname() != "analyze" {
			continue
		}
		on = true
		switch v := d.GetArg(); {
		case v == nil:
		case v.GetString_() != nil:
			switch strings.ToLower(v.GetString_().GetSval()) {
			case "false", "off", "0", "no":
				on = false
			}
		case v.GetInteger() != nil:
			on = v.GetInteger().GetIval() != 0
		case v.GetBoolean() != nil:
			on = v.GetBoolean().GetBoolval()
		case v.GetAConst() != nil:
			c := v.GetAConst()
			on = !(c.GetBoolval() != nil && !c.GetBoolval().GetBoolval()) &&
				!(c.GetIval() != nil && c.GetIval().GetIval() == 0)
		}
	}
	return on
}

func (b *builder) pgSet(s *pg.VariableSetStmt) {
	name := strings.ToLower(s.GetName())
	switch s.GetKind() {
	case pg.VariableSetKind_VAR_SET_VALUE:
		b.set(SetOp{Name: name, Value: pgSimpleValue(s.GetArgs()), Local: s.GetIsLocal()})
		if name == "search_path" && pgTempInPath(s.GetArgs()) {
			// With pg_temp in the search_path, CREATE TABLE t (no TEMP,
			// no schema) may make a temp table: when pg_temp comes
			// before every schema that exists, which the proxy cannot
			// know. Even SET LOCAL: the table outlives the transaction.
			b.pin("search_path with pg_temp")
		}
	case pg.VariableSetKind_VAR_SET_DEFAULT:
		b.set(SetOp{Name: name, Reset: true, Local: s.GetIsLocal()})
	case pg.VariableSetKind_VAR_SET_CURRENT:
		b.set(SetOp{Name: name, Local: s.GetIsLocal()})
	case pg.VariableSetKind_VAR_SET_MULTI:
		switch name {
		case "transaction":
			// SET TRANSACTION ...: this transaction only.
			for _, a := range s.GetArgs() {
				d := a.GetDefElem()
				b.set(SetOp{Name: d.GetDefname(), Value: pgSimpleValue([]*pg.Node{d.GetArg()}), Local: true})
			}
		case "session characteristics":
			// SET SESSION CHARACTERISTICS AS TRANSACTION ... is SET
			// default_transaction_... for the session.
			for _, a := range s.GetArgs() {
				d := a.GetDefElem()
				b.set(SetOp{Name: "default_" + d.GetDefname(), Value: pgSimpleValue([]*pg.Node{d.GetArg()}), Local: s.GetIsLocal()})
			}
		default: // "transaction snapshot"
			b.set(SetOp{Name: strings.ReplaceAll(name, " ", "_"), Value: pgSimpleValue(s.GetArgs()), Local: true})
		}
	case pg.VariableSetKind_VAR_RESET:
		b.set(SetOp{Name: name, Reset: true})
	case pg.VariableSetKind_VAR_RESET_ALL:
		b.set(SetOp{Reset: true, All: true})
	}
}

// pgTempInPath reports whether SET search_path's arguments name the
// temporary schema. A quoted list ('pg_temp, public') is split too, to err
// on the side of pinning.
func pgTempInPath(args []*pg.Node) bool {
	for _, a := range args {
		if SearchPathNamesTemp(a.GetAConst().GetSval().GetSval()) {
			return true
		}
	}
	return false
}

// SearchPathNamesTemp reports whether a PostgreSQL search_path value (as
// SHOW prints it, or a startup parameter: "pg_temp, public") names the
// temporary schema, where an unqualified CREATE TABLE may then make a
// temp table. A session with such a search_path pins.
func SearchPathNamesTemp(path string) bool {
	for _, part := range strings.Split(path, ",") {
		if pgTempSchema(strings.Trim(part, " \t\"")) {
			return true
		}
	}
	return false
}

// pgSimpleValue renders a single constant argument; anything else is "".
func pgSimpleValue(args []*pg.Node) string {
	if len(args) != 1 {
		return ""
	}
	c := args[0].GetAConst()
	if c == nil || c.GetIsnull() {
		return ""
	}
	switch v := c.GetVal().(type) {
	case *pg.A_Const_Sval:
		return v.Sval.GetSval()
	case *pg.A_Const_Ival:
		return strconv.FormatInt(int64(v.Ival.GetIval()), 10)
	case *pg.A_Const_Fval:
		return v.Fval.GetFval()
	case *pg.A_Const_Boolval:
		return strconv.FormatBool(v.Boolval.GetBoolval())
	case *pg.A_Const_Bsval:
		return v.Bsval.GetBsval()
	}
	return ""
}

// pgWalk visits every node under n that runs when the statement runs, and
// judges function calls, row locks, SELECT INTO and data-modifying
// statements nested in a query.
func (b *builder) pgWalk(n *pg.Node) {
	if n == nil {
		return
	}
	b.pgVisit(n.ProtoReflect())
}

func (b *builder) pgVisit(m protoreflect.Message) {
	switch n := m.Interface().(type) {
	case *pg.FuncCall:
		b.pgFunc(n)
	case *pg.LockingClause:
		b.primary(pgLockName(n.GetStrength()))
	case *pg.IntoClause:
		b.write("SELECT INTO")
		if pgTempInto(n) {
			b.pin("SELECT INTO TEMP")
		}
	case *pg.InsertStmt, *pg.UpdateStmt, *pg.DeleteStmt, *pg.MergeStmt:
		// Below a SELECT this can only be a CTE; for a top-level
		// INSERT/UPDATE/DELETE the statement's own reason came first.
		b.write("data-modifying CTE")
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				b.pgVisit(l.Get(i).Message())
			}
			return true
		}
		b.pgVisit(v.Message())
		return true
	})
}

func pgLockName(s pg.LockClauseStrength) string {
	switch s {
	case pg.LockClauseStrength_LCS_FORKEYSHARE:
		return "FOR KEY SHARE"
	case pg.LockClauseStrength_LCS_FORSHARE:
		return "FOR SHARE"
	case pg.LockClauseStrength_LCS_FORNOKEYUPDATE:
		return "FOR NO KEY UPDATE"
	}
	return "FOR UPDATE"
}

// pgFunc judges one function call.
func (b *builder) pgFunc(f *pg.FuncCall) {
	parts := make([]string, 0, 3)
	for _, p := range f.GetFuncname() {
		parts = append(parts, strings.ToLower(p.GetString_().GetSval()))
	}
	if len(parts) == 0 {
		return
	}
	base := parts[len(parts)-1]
	qualified := strings.Join(parts, ".")
	// Unqualified names resolve to pg_catalog first (it leads every
	// search_path unless placed explicitly), so they are built-ins when a
	// built-in of that name exists.
	builtin := len(parts) == 1 || len(parts) == 2 && parts[0] == "pg_catalog"
	if builtin {
		switch base {
		case "nextval", "setval":
			b.write(base + "()")
			return
		case "currval", "lastval":
			b.primary(base + "()")
			b.an.SequenceState = true
			return
		case "pg_advisory_lock", "pg_advisory_lock_shared",
			"pg_try_advisory_lock", "pg_try_advisory_lock_shared":
			b.primary(base + "()")
			b.pin(base + "()")
			return
		case "pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all",
			"pg_advisory_xact_lock", "pg_advisory_xact_lock_shared",
			"pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared":
			b.primary(base + "()")
			return
		case "set_config":
			// set_config(name, value, is_local): session state unless
			// is_local is literally true (PostgREST-style per-transaction
			// settings pass true).
			args := f.GetArgs()
			if len(args) != 3 || !args[2].GetAConst().GetBoolval().GetBoolval() {
				b.pin("set_config()")
			} else if strings.EqualFold(args[0].GetAConst().GetSval().GetSval(), "search_path") &&
				(args[1].GetAConst() == nil || SearchPathNamesTemp(args[1].GetAConst().GetSval().GetSval())) {
				// Local, but a temp table created under it outlives the
				// transaction, as with SET LOCAL search_path (pgSet).
				b.pin("search_path with pg_temp")
			}
			return
		case "pg_notify":
			b.write("pg_notify()")
			return
		}
	}
	b.function(base, qualified, builtin, pgReadOnlyFuncs)
}

// pgComments returns the text of every comment in sql, as PostgreSQL's
// scanner sees them (so not the insides of string literals or dollar
// quotes). A text the scanner rejects yields none.
func pgComments(sql string) []string {
	r, err := pg.Scan(sql)
	if err != nil {
		return nil
	}
	var out []string
	for _, t := range r.GetTokens() {
		if t.GetToken() == pg.Token_C_COMMENT || t.GetToken() == pg.Token_SQL_COMMENT {
			s, e := int(t.GetStart()), int(t.GetEnd())
			if 0 <= s && s <= e && e <= len(sql) {
				out = append(out, sql[s:e])
			}
		}
	}
	return out
}
