package router

import (
	"fmt"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// PostgreSQL side of shard key extraction: pg_query's tree (PostgreSQL's
// own grammar) reduced to a stmtIR. Only the parts that can carry a key
// or decide a merge are read; everything else is condOther / itemOther.

func (x *KeyExtractor) pgParse(sql string) (*stmtIR, error) {
	if strings.IndexByte(sql, 0) >= 0 {
		// PostgreSQL's parser stops at a NUL; what follows would go
		// unread.
		return nil, fmt.Errorf("NUL byte in statement text")
	}
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, err
	}
	var stmt *pg.Node
	n := 0
	for _, raw := range tree.GetStmts() {
		if s := raw.GetStmt(); s != nil && s.GetNode() != nil {
			stmt = s
			n++
		}
	}
	switch {
	case n == 0:
		return &stmtIR{kind: StmtOther, noKey: "empty query"}, nil
	case n > 1:
		return &stmtIR{kind: StmtOther, noKey: noKeyMultiStatement}, nil
	}
	var ir *stmtIR
	var top any
	switch s := stmt.GetNode().(type) {
	case *pg.Node_SelectStmt:
		ir, top = x.pgSelect(s.SelectStmt), s.SelectStmt
	case *pg.Node_InsertStmt:
		// VALUES lists parse as a SelectStmt, never a subquery.
		ir, top = x.pgInsert(s.InsertStmt), s.InsertStmt
	case *pg.Node_UpdateStmt:
		ir, top = x.pgUpdate(s.UpdateStmt), s.UpdateStmt
	case *pg.Node_DeleteStmt:
		ir, top = x.pgDelete(s.DeleteStmt), s.DeleteStmt
	default:
		return &stmtIR{kind: StmtOther}, nil
	}
	x.pgSubs(ir, stmt, top)
	return ir, nil
}

// pgSubs adds the subqueries of a statement to ir (see stmtIR.subs) and
// drops references to its common table expressions.
func (x *KeyExtractor) pgSubs(ir *stmtIR, stmt *pg.Node, top any) {
	ctes := map[string]bool{}
	pgAny(stmt.ProtoReflect(), func(m protoreflect.Message) bool {
		switch n := m.Interface().(type) {
		case *pg.CommonTableExpr:
			ctes[n.GetCtename()] = true
		case *pg.SelectStmt:
			if any(n) == top || n.GetOp() != pg.SetOperation_SETOP_NONE || len(n.GetValuesLists()) > 0 {
				break
			}
			ir.subs = append(ir.subs, x.pgSelect(n))
		case *pg.InsertStmt:
			if any(n) != top {
				ir.subs = append(ir.subs, &stmtIR{kind: StmtInsert, tables: []tableRef{x.pgRangeVar(n.GetRelation())}, noKey: "a write in WITH"})
			}
		case *pg.UpdateStmt:
			if any(n) != top {
				ir.subs = append(ir.subs, &stmtIR{kind: StmtUpdate, tables: []tableRef{x.pgRangeVar(n.GetRelation())}, noKey: "a write in WITH"})
			}
		case *pg.DeleteStmt:
			if any(n) != top {
				ir.subs = append(ir.subs, &stmtIR{kind: StmtDelete, tables: []tableRef{x.pgRangeVar(n.GetRelation())}, noKey: "a write in WITH"})
			}
		}
		return false
	})
	dropCTEs(ir, ctes, false)
}

func (x *KeyExtractor) pgRangeVar(r *pg.RangeVar) tableRef {
	return x.table(r.GetSchemaname(), r.GetRelname(), r.GetAlias().GetAliasname())
}

func (x *KeyExtractor) pgSelect(s *pg.SelectStmt) *stmtIR {
	ir := &stmtIR{kind: StmtSelect, locks: len(s.GetLockingClause()) > 0}
	if s.GetOp() != pg.SetOperation_SETOP_NONE {
		ir.noKey = "UNION, INTERSECT or EXCEPT"
		x.pgFrom(ir, s.GetLarg().GetFromClause())
		ir.sel = func() *selectIR { return &selectIR{unmergeable: "UNION, INTERSECT or EXCEPT"} }
		return ir
	}
	if len(s.GetValuesLists()) > 0 {
		return ir // VALUES (...): no table
	}
	x.pgFrom(ir, s.GetFromClause())
	if w := s.GetWhereClause(); w != nil {
		ir.where = and(ir.where, pgCond(w))
	}
	ir.links = andLinks(ir.where, ir.links)
	ir.sel = func() *selectIR { return x.pgSelectIR(s) }
	return ir
}

// pgFrom adds the tables of a FROM list (or UPDATE ... FROM, DELETE ...
// USING) to ir, with the conditions and links of their joins.
func (x *KeyExtractor) pgFrom(ir *stmtIR, from []*pg.Node) {
	for _, n := range from {
		x.pgFromItem(ir, n)
	}
}

// pgFromItem adds one FROM item and returns the indexes of its tables.
func (x *KeyExtractor) pgFromItem(ir *stmtIR, n *pg.Node) []int {
	switch f := n.GetNode().(type) {
	case *pg.Node_RangeVar:
		ir.tables = append(ir.tables, x.pgRangeVar(f.RangeVar))
		return []int{len(ir.tables) - 1}
	case *pg.Node_JoinExpr:
		j := f.JoinExpr
		left := x.pgFromItem(ir, j.GetLarg())
		right := x.pgFromItem(ir, j.GetRarg())
		if q := j.GetQuals(); q != nil {
			c := pgCond(q)
			ir.links = andLinks(c, ir.links)
			// Only an inner join's ON filters the result rows; a
			// LEFT JOIN's keeps every row of the left side.
			if j.GetJointype() == pg.JoinType_JOIN_INNER {
				ir.where = and(ir.where, c)
			}
		}
		for _, u := range j.GetUsingClause() {
			name := u.GetString_().GetSval()
			for _, l := range left {
				for _, r := range right {
					ir.links = append(ir.links, [2]colRef{
						{qual: ir.tables[l].refName(), name: name},
						{qual: ir.tables[r].refName(), name: name},
					})
				}
			}
		}
		return append(left, right...)
	}
	// Subqueries and functions in FROM: no table of ours; pgSelectIR
	// marks them unmergeable.
	return nil
}

// pgCol reads a ColumnRef that names one column (not *).
func pgCol(n *pg.Node) (colRef, bool) {
	cr := n.GetColumnRef()
	if cr == nil {
		return colRef{}, false
	}
	f := cr.GetFields()
	if len(f) == 0 {
		return colRef{}, false
	}
	name := f[len(f)-1].GetString_()
	if name == nil {
		return colRef{}, false // t.*
	}
	c := colRef{name: name.GetSval()}
	if len(f) >= 2 {
		c.qual = f[len(f)-2].GetString_().GetSval()
	}
	return c, true
}

// pgCond converts a boolean expression.
func pgCond(n *pg.Node) *cond {
	switch e := n.GetNode().(type) {
	case *pg.Node_BoolExpr:
		b := e.BoolExpr
		var kind condKind
		switch b.GetBoolop() {
		case pg.BoolExprType_AND_EXPR:
			kind = condAnd
		case pg.BoolExprType_OR_EXPR:
			kind = condOr
		default:
			return &cond{}
		}
		c := &cond{kind: kind, kids: make([]*cond, 0, len(b.GetArgs()))}
		for _, a := range b.GetArgs() {
			c.kids = append(c.kids, pgCond(a))
		}
		return c
	case *pg.Node_AExpr:
		a := e.AExpr
		if !pgOpIs(a.GetName(), "=") {
			return &cond{}
		}
		switch a.GetKind() {
		case pg.A_Expr_Kind_AEXPR_OP:
			l, r := a.GetLexpr(), a.GetRexpr()
			if cl, ok := pgCol(l); ok {
				if cr, ok := pgCol(r); ok {
					return &cond{kind: condCols, col: cl, col2: cr}
				}
				if v, ok := pgValue(r); ok {
					return &cond{kind: condEq, col: cl, vals: []KeyRef{v}}
				}
			} else if cr, ok := pgCol(r); ok {
				if v, ok := pgValue(l); ok {
					return &cond{kind: condEq, col: cr, vals: []KeyRef{v}}
				}
			}
		case pg.A_Expr_Kind_AEXPR_IN:
			if cl, ok := pgCol(a.GetLexpr()); ok {
				if vals, ok := pgValues(a.GetRexpr().GetList().GetItems()); ok {
					return &cond{kind: condIn, col: cl, vals: vals}
				}
			}
		case pg.A_Expr_Kind_AEXPR_OP_ANY:
			// key = ANY(ARRAY[1, 2]); an array parameter (= ANY($1))
			// would need the array decoded, which the caller cannot
			// do from a KeyRef: no key.
			if cl, ok := pgCol(a.GetLexpr()); ok {
				r := a.GetRexpr()
				if tc := r.GetTypeCast(); tc != nil {
					r = tc.GetArg()
				}
				if arr := r.GetAArrayExpr(); arr != nil {
					if vals, ok := pgValues(arr.GetElements()); ok {
						return &cond{kind: condIn, col: cl, vals: vals}
					}
				}
			}
		}
	}
	return &cond{}
}

// pgOpIs reports whether an operator name is op, unqualified or in
// pg_catalog (OPERATOR(pg_catalog.=)).
func pgOpIs(name []*pg.Node, op string) bool {
	switch len(name) {
	case 1:
		return name[0].GetString_().GetSval() == op
	case 2:
		return name[0].GetString_().GetSval() == "pg_catalog" && name[1].GetString_().GetSval() == op
	}
	return false
}

func pgValues(items []*pg.Node) ([]KeyRef, bool) {
	if len(items) == 0 {
		return nil, false
	}
	vals := make([]KeyRef, 0, len(items))
	for _, it := range items {
		v, ok := pgValue(it)
		if !ok {
			return nil, false
		}
		vals = append(vals, v)
	}
	return vals, true
}

// pgValue reads a key value: an integer or string constant, a $n
// parameter, or either under a type cast.
func pgValue(n *pg.Node) (KeyRef, bool) {
	switch e := n.GetNode().(type) {
	case *pg.Node_AConst:
		switch v := e.AConst.GetVal().(type) {
		case *pg.A_Const_Ival:
			return KeyRef{Literal: int64(v.Ival.GetIval())}, true
		case *pg.A_Const_Sval:
			return KeyRef{Literal: v.Sval.GetSval()}, true
		case *pg.A_Const_Fval:
			// Integers beyond int32 arrive as "float" text. Decimals
			// (1.5, 1e3) have no canonical text to hash: no key.
			if i, err := strconv.ParseInt(v.Fval.GetFval(), 10, 64); err == nil {
				return KeyRef{Literal: i}, true
			}
		}
	case *pg.Node_ParamRef:
		if p := int(e.ParamRef.GetNumber()); p > 0 {
			return KeyRef{Param: p}, true
		}
	case *pg.Node_TypeCast:
		v, ok := pgValue(e.TypeCast.GetArg())
		if !ok {
			return KeyRef{}, false
		}
		if s, isStr := v.Literal.(string); isStr && pgIntType(e.TypeCast.GetTypeName()) {
			// '042'::int is the integer 42, as the server reads it
			// (spaces, sign and leading zeros allowed); anything
			// fancier (0x2a, 1_000) is not guessed at.
			i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return KeyRef{}, false
			}
			return KeyRef{Literal: i}, true
		}
		return v, true
	}
	return KeyRef{}, false
}

func pgIntType(t *pg.TypeName) bool {
	names := t.GetNames()
	if len(names) == 0 || len(t.GetArrayBounds()) > 0 {
		return false
	}
	switch names[len(names)-1].GetString_().GetSval() {
	case "int2", "int4", "int8", "int", "integer", "smallint", "bigint":
		return true
	}
	return false
}

func pgHasCurrentOf(n *pg.Node) bool {
	return pgAny(n.ProtoReflect(), func(m protoreflect.Message) bool {
		_, ok := m.Interface().(*pg.CurrentOfExpr)
		return ok
	})
}

// pgAny reports whether f is true for m or any message below it.
func pgAny(m protoreflect.Message, f func(protoreflect.Message) bool) bool {
	if f(m) {
		return true
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && !found; i++ {
				found = pgAny(l.Get(i).Message(), f)
			}
		} else {
			found = pgAny(v.Message(), f)
		}
		return !found
	})
	return found
}

func (x *KeyExtractor) pgInsert(s *pg.InsertStmt) *stmtIR {
	ir := &stmtIR{kind: StmtInsert, tables: []tableRef{x.pgRangeVar(s.GetRelation())}}
	key := ir.tables[0].key
	if oc := s.GetOnConflictClause(); oc != nil && oc.GetAction() == pg.OnConflictAction_ONCONFLICT_UPDATE {
		for _, t := range oc.GetTargetList() {
			if key != "" && t.GetResTarget().GetName() == key {
				ir.setsKey = true
			}
		}
	}
	if key == "" {
		return ir
	}
	sel := s.GetSelectStmt().GetSelectStmt()
	switch {
	case sel == nil:
		ir.noKey = "INSERT ... DEFAULT VALUES"
		return ir
	case len(sel.GetValuesLists()) == 0:
		ir.noKey = "INSERT ... SELECT"
		return ir
	case len(s.GetCols()) == 0:
		ir.noKey = "INSERT without a column list"
		return ir
	}
	idx := -1
	for i, c := range s.GetCols() {
		if c.GetResTarget().GetName() == key {
			idx = i
			break
		}
	}
	if idx < 0 {
		ir.noKey = "INSERT does not set the key column " + key
		return ir
	}
	rows := sel.GetValuesLists()
	ir.rowKeys = make([]KeyRef, 0, len(rows))
	for i, row := range rows {
		items := row.GetList().GetItems()
		if idx >= len(items) {
			ir.noKey, ir.rowKeys = fmt.Sprintf("row %d has no value for the key column", i+1), nil
			return ir
		}
		v, ok := pgValue(items[idx])
		if !ok {
			ir.noKey, ir.rowKeys = fmt.Sprintf("row %d: the key is not a constant or a parameter", i+1), nil
			return ir
		}
		ir.rowKeys = append(ir.rowKeys, v)
	}
	return ir
}

func (x *KeyExtractor) pgUpdate(s *pg.UpdateStmt) *stmtIR {
	ir := &stmtIR{kind: StmtUpdate, tables: []tableRef{x.pgRangeVar(s.GetRelation())}}
	if key := ir.tables[0].key; key != "" {
		for _, t := range s.GetTargetList() {
			if t.GetResTarget().GetName() == key {
				ir.setsKey = true
			}
		}
	}
	x.pgFrom(ir, s.GetFromClause())
	x.pgWhere(ir, s.GetWhereClause())
	return ir
}

func (x *KeyExtractor) pgDelete(s *pg.DeleteStmt) *stmtIR {
	ir := &stmtIR{kind: StmtDelete, tables: []tableRef{x.pgRangeVar(s.GetRelation())}}
	x.pgFrom(ir, s.GetUsingClause())
	x.pgWhere(ir, s.GetWhereClause())
	return ir
}

func (x *KeyExtractor) pgWhere(ir *stmtIR, w *pg.Node) {
	if w == nil {
		return
	}
	if pgHasCurrentOf(w) {
		ir.noKey = "WHERE CURRENT OF"
	}
	ir.where = and(ir.where, pgCond(w))
	ir.links = andLinks(ir.where, ir.links)
}

// pgAggregates are PostgreSQL's built-in aggregates other than the four
// the proxy combines: none of them can be merged from per-shard answers.
var pgAggregates = map[string]struct{}{
	"avg": {}, "array_agg": {}, "string_agg": {}, "bool_and": {}, "bool_or": {}, "every": {},
	"bit_and": {}, "bit_or": {}, "bit_xor": {}, "json_agg": {}, "jsonb_agg": {},
	"json_object_agg": {}, "jsonb_object_agg": {}, "json_objectagg": {}, "json_arrayagg": {},
	"json_agg_strict": {}, "jsonb_agg_strict": {}, "json_object_agg_strict": {},
	"json_object_agg_unique": {}, "json_object_agg_unique_strict": {},
	"jsonb_object_agg_strict": {}, "jsonb_object_agg_unique": {}, "jsonb_object_agg_unique_strict": {},
	"xmlagg": {}, "range_agg": {}, "range_intersect_agg": {}, "any_value": {},
	"stddev": {}, "stddev_pop": {}, "stddev_samp": {}, "variance": {}, "var_pop": {}, "var_samp": {},
	"corr": {}, "covar_pop": {}, "covar_samp": {}, "regr_avgx": {}, "regr_avgy": {}, "regr_count": {},
	"regr_intercept": {}, "regr_r2": {}, "regr_slope": {}, "regr_sxx": {}, "regr_sxy": {}, "regr_syy": {},
	"percentile_cont": {}, "percentile_disc": {}, "mode": {}, "rank": {}, "dense_rank": {},
	"percent_rank": {}, "cume_dist": {},
}

// pgAggName reports whether f is an aggregate call (or, with OVER, a
// window call) and its lower-case name.
func pgAggName(f *pg.FuncCall) (string, bool) {
	names := f.GetFuncname()
	if len(names) == 0 {
		return "", false
	}
	name := strings.ToLower(names[len(names)-1].GetString_().GetSval())
	builtin := len(names) == 1 || len(names) == 2 && names[0].GetString_().GetSval() == "pg_catalog"
	if f.GetAggStar() || f.GetAggDistinct() || f.GetAggFilter() != nil || len(f.GetAggOrder()) > 0 || f.GetAggWithinGroup() {
		return name, true // only aggregates take these
	}
	if builtin {
		switch name {
		case "count", "sum", "min", "max":
			return name, true
		}
		if _, ok := pgAggregates[name]; ok {
			return name, true
		}
	}
	return name, false
}

// pgSelectIR reads what a merge needs from a plain SELECT.
func (x *KeyExtractor) pgSelectIR(s *pg.SelectStmt) *selectIR {
	sel := &selectIR{
		groupBy:  len(s.GetGroupClause()) > 0,
		distinct: len(s.GetDistinctClause()) > 0,
		having:   s.GetHavingClause() != nil,
	}
	switch {
	case s.GetWithClause() != nil:
		sel.unmergeable = "WITH (a common table expression)"
	case len(s.GetWindowClause()) > 0:
		sel.unmergeable = "a window function"
	case s.GetLimitOption() == pg.LimitOption_LIMIT_OPTION_WITH_TIES:
		sel.unmergeable = "FETCH ... WITH TIES"
	case s.GetIntoClause() != nil:
		sel.unmergeable = "SELECT INTO"
	}
	for _, f := range s.GetFromClause() {
		if sel.unmergeable == "" {
			sel.unmergeable = pgFromUnmergeable(f)
		}
	}
	if sel.unmergeable == "" && s.GetWhereClause() != nil && pgHasSubquery(s.GetWhereClause()) {
		sel.unmergeable = "a subquery"
	}
	for _, t := range s.GetTargetList() {
		sel.items = append(sel.items, pgItem(t.GetResTarget()))
	}
	for _, o := range s.GetSortClause() {
		sel.order = append(sel.order, pgOrder(o.GetSortBy()))
	}
	sel.limit = pgBound(s.GetLimitCount())
	sel.offset = pgBound(s.GetLimitOffset())
	return sel
}

// pgFromUnmergeable says why a FROM item's rows cannot be merged from
// per-shard answers: a subquery (it may aggregate), a function (every
// shard returns the same rows).
func pgFromUnmergeable(n *pg.Node) string {
	switch f := n.GetNode().(type) {
	case *pg.Node_RangeVar:
		return ""
	case *pg.Node_JoinExpr:
		if r := pgFromUnmergeable(f.JoinExpr.GetLarg()); r != "" {
			return r
		}
		if r := pgFromUnmergeable(f.JoinExpr.GetRarg()); r != "" {
			return r
		}
		if q := f.JoinExpr.GetQuals(); q != nil && pgHasSubquery(q) {
			return "a subquery"
		}
		return ""
	case *pg.Node_RangeSubselect:
		return "a subquery in FROM"
	case *pg.Node_RangeFunction:
		return "a function in FROM"
	}
	return "FROM " + pgNodeName(n)
}

func pgNodeName(n *pg.Node) string {
	m := n.ProtoReflect()
	if od := m.Descriptor().Oneofs().ByName("node"); od != nil {
		if fd := m.WhichOneof(od); fd != nil {
			return string(fd.Message().Name())
		}
	}
	return "item"
}

func pgHasSubquery(n *pg.Node) bool {
	return pgAny(n.ProtoReflect(), func(m protoreflect.Message) bool {
		_, ok := m.Interface().(*pg.SubLink)
		return ok
	})
}

// pgItem reads one select-list entry.
func pgItem(t *pg.ResTarget) selItem {
	val := t.GetVal()
	it := selItem{name: t.GetName()}
	if cr := val.GetColumnRef(); cr != nil {
		f := cr.GetFields()
		if len(f) > 0 && f[len(f)-1].GetAStar() != nil {
			return selItem{kind: itemStar}
		}
		c, _ := pgCol(val)
		it.kind, it.col = itemCol, c
		if it.name == "" {
			it.name = c.name
		}
		return it
	}
	if fc := val.GetFuncCall(); fc != nil {
		name, agg := pgAggName(fc)
		if it.name == "" {
			it.name = name
		}
		switch {
		case fc.GetOver() != nil:
			it.bad = "a window function"
			return it
		case agg:
			if pgBadInside(append(fc.GetArgs()[:len(fc.GetArgs()):len(fc.GetArgs())], fc.GetAggFilter())) != "" {
				it.bad = "an aggregate inside an aggregate"
				return it
			}
			switch name {
			case "count", "sum", "min", "max":
				if fc.GetAggDistinct() && (name == "count" || name == "sum") {
					it.bad = strings.ToUpper(name) + "(DISTINCT)"
					return it
				}
				if fc.GetAggWithinGroup() {
					break
				}
				it.kind = itemAgg
				it.agg = map[string]AggFunc{"count": AggCount, "sum": AggSum, "min": AggMin, "max": AggMax}[name]
				return it
			}
			it.bad = "aggregate " + strings.ToUpper(name) + "()"
			return it
		}
	}
	if r := pgBadInside([]*pg.Node{val}); r != "" {
		it.bad = r
	}
	return it
}

// pgBadInside says why an expression prevents a merge: an aggregate or a
// window call inside it, or a subquery.
func pgBadInside(nodes []*pg.Node) string {
	reason := ""
	for _, n := range nodes {
		if n == nil {
			continue
		}
		pgAny(n.ProtoReflect(), func(m protoreflect.Message) bool {
			switch v := m.Interface().(type) {
			case *pg.FuncCall:
				if v.GetOver() != nil {
					reason = "a window function"
					return true
				}
				if _, agg := pgAggName(v); agg {
					reason = "an aggregate inside an expression"
					return true
				}
			case *pg.SubLink:
				reason = "a subquery"
				return true
			}
			return false
		})
		if reason != "" {
			break
		}
	}
	return reason
}

func pgOrder(s *pg.SortBy) orderItem {
	o := orderItem{desc: s.GetSortbyDir() == pg.SortByDir_SORTBY_DESC}
	switch s.GetSortbyNulls() {
	case pg.SortByNulls_SORTBY_NULLS_FIRST:
		o.nulls = 1
	case pg.SortByNulls_SORTBY_NULLS_LAST:
		o.nulls = -1
	}
	if s.GetSortbyDir() == pg.SortByDir_SORTBY_USING {
		return o // an expression ordering: not mergeable
	}
	n := s.GetNode()
	if c := n.GetAConst(); c != nil {
		if iv, ok := c.GetVal().(*pg.A_Const_Ival); ok {
			o.pos = int(iv.Ival.GetIval())
			if o.pos < 1 {
				o.pos = 0 // the server rejects it
			}
		}
		return o
	}
	if c, ok := pgCol(n); ok {
		o.col = &c
	}
	return o
}

// pgBound reads LIMIT or OFFSET: a constant, a parameter, or NULL / ALL
// (no limit).
func pgBound(n *pg.Node) bound {
	if n == nil {
		return bound{}
	}
	if c := n.GetAConst(); c != nil && c.GetIsnull() {
		return bound{}
	}
	v, ok := pgValue(n)
	if !ok {
		return bound{set: true, bad: true}
	}
	if v.Param > 0 {
		return bound{set: true, param: v.Param}
	}
	if i, ok := v.Literal.(int64); ok && i >= 0 {
		return bound{set: true, n: i}
	}
	return bound{set: true, bad: true}
}

// shardKeyPGComments returns the text of every comment in sql as
// PostgreSQL's scanner sees them (not inside string literals or dollar
// quotes).
func shardKeyPGComments(sql string) []string {
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
