package router

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"vitess.io/vitess/go/vt/sqlparser"
)

// MySQL side of shard key extraction: Vitess's tree reduced to a stmtIR.
// Vitess numbers the ? placeholders :v1, :v2, ... in text order, which is
// the order of the parameters of COM_STMT_EXECUTE.

// shardKeyParser is the parser all KeyExtractors share; it is
// goroutine-safe and has no per-statement state.
var shardKeyParser = sync.OnceValue(func() *sqlparser.Parser {
	p, err := sqlparser.New(sqlparser.Options{})
	if err != nil {
		panic(fmt.Sprintf("router: vitess sqlparser: %v", err))
	}
	return p
})

func (x *KeyExtractor) myParse(sql string) (*stmtIR, error) {
	if mariaDBComment(sql) {
		return nil, errMariaDBComment
	}
	stmts, err := shardKeyParser().ParseMultiple(sql)
	if err != nil {
		return nil, err
	}
	var stmt sqlparser.Statement
	n := 0
	for _, s := range stmts {
		if _, ok := s.(*sqlparser.CommentOnly); s != nil && !ok {
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
	switch s := stmt.(type) {
	case *sqlparser.Select:
		ir = x.mySelect(s)
	case *sqlparser.Union:
		ir = &stmtIR{kind: StmtSelect, noKey: "UNION"}
		if l, ok := s.Left.(*sqlparser.Select); ok {
			x.myFrom(ir, l.From)
		}
		ir.sel = func() *selectIR { return &selectIR{unmergeable: "UNION"} }
	case *sqlparser.Insert:
		ir = x.myInsert(s)
	case *sqlparser.Update:
		ir = x.myUpdate(s)
	case *sqlparser.Delete:
		ir = x.myDelete(s)
	default:
		ir = &stmtIR{kind: StmtOther}
		_ = sqlparser.Walk(func(node sqlparser.SQLNode) (bool, error) {
			ir.noteDatabase(node)
			return true, nil
		}, stmt)
		return ir, nil
	}
	x.mySubs(ir, stmt) // notes the databases in its walk
	return ir, nil
}

// noteDatabase adds to ir.databases a database that node names other than
// the catalogs, as written, once: a table's qualifier (orders_0.orders,
// in any clause, a column's db.table.col included) or SHOW ... FROM db.
// (USE is the session's, not the statement's.)
func (ir *stmtIR) noteDatabase(node sqlparser.SQLNode) {
	add := func(db string) {
		if db != "" && !myCatalogSchema(db) && !slices.Contains(ir.databases, db) {
			ir.databases = append(ir.databases, db)
		}
	}
	switch n := node.(type) {
	case sqlparser.TableName:
		add(n.Qualifier.String())
	case *sqlparser.ShowBasic:
		add(n.DbName.String())
		add(n.Tbl.Qualifier.String())
	}
}

// mySubs adds the subqueries of a statement to ir (see stmtIR.subs) and
// the databases it names (noteDatabase), and drops references to its
// common table expressions.
func (x *KeyExtractor) mySubs(ir *stmtIR, top sqlparser.Statement) {
	ctes := map[string]bool{}
	write := func(kind StmtKind, te sqlparser.TableExpr) {
		sub := &stmtIR{kind: kind, noKey: "a write in WITH"}
		x.myFromItem(sub, te)
		ir.subs = append(ir.subs, sub)
	}
	_ = sqlparser.Walk(func(node sqlparser.SQLNode) (bool, error) {
		ir.noteDatabase(node)
		switch n := node.(type) {
		case *sqlparser.CommonTableExpr:
			ctes[strings.ToLower(n.ID.String())] = true
		case *sqlparser.Select:
			if sqlparser.Statement(n) != top {
				ir.subs = append(ir.subs, x.mySelect(n))
			}
		case *sqlparser.Insert:
			if sqlparser.Statement(n) != top {
				write(StmtInsert, n.Table)
			}
		case *sqlparser.Update:
			if sqlparser.Statement(n) != top && len(n.TableExprs) > 0 {
				write(StmtUpdate, n.TableExprs[0])
			}
		case *sqlparser.Delete:
			if sqlparser.Statement(n) != top && len(n.TableExprs) > 0 {
				write(StmtDelete, n.TableExprs[0])
			}
		}
		return true, nil
	}, top)
	dropCTEs(ir, ctes, true)
}

func (x *KeyExtractor) mySelect(s *sqlparser.Select) *stmtIR {
	ir := &stmtIR{kind: StmtSelect, locks: s.Lock != sqlparser.NoLock}
	x.myFrom(ir, s.From)
	if len(ir.tables) == 1 && ir.tables[0].name == "dual" && ir.tables[0].schema == "" {
		ir.tables = nil // SELECT 1 FROM DUAL
	}
	if s.Where != nil {
		ir.where = and(ir.where, x.myCond(s.Where.Expr))
	}
	ir.links = andLinks(ir.where, ir.links)
	ir.sel = func() *selectIR { return x.mySelectIR(s) }
	return ir
}

func (x *KeyExtractor) myFrom(ir *stmtIR, from []sqlparser.TableExpr) {
	for _, te := range from {
		x.myFromItem(ir, te)
	}
}

func (x *KeyExtractor) myFromItem(ir *stmtIR, te sqlparser.TableExpr) []int {
	switch t := te.(type) {
	case *sqlparser.AliasedTableExpr:
		if tn, ok := t.Expr.(sqlparser.TableName); ok {
			ir.tables = append(ir.tables, x.table(tn.Qualifier.String(), tn.Name.String(), t.As.String()))
			return []int{len(ir.tables) - 1}
		}
	case *sqlparser.JoinTableExpr:
		left := x.myFromItem(ir, t.LeftExpr)
		right := x.myFromItem(ir, t.RightExpr)
		if t.Condition != nil {
			if t.Condition.On != nil {
				c := x.myCond(t.Condition.On)
				ir.links = andLinks(c, ir.links)
				if t.Join == sqlparser.NormalJoinType || t.Join == sqlparser.StraightJoinType {
					ir.where = and(ir.where, c)
				}
			}
			for _, u := range t.Condition.Using {
				name := u.Lowered()
				for _, l := range left {
					for _, r := range right {
						ir.links = append(ir.links, [2]colRef{
							{qual: x.ident(ir.tables[l].refName()), name: name},
							{qual: x.ident(ir.tables[r].refName()), name: name},
						})
					}
				}
			}
		}
		return append(left, right...)
	case *sqlparser.ParenTableExpr:
		var all []int
		for _, e := range t.Exprs {
			all = append(all, x.myFromItem(ir, e)...)
		}
		return all
	}
	return nil
}

func (x *KeyExtractor) myCol(e sqlparser.Expr) (colRef, bool) {
	c, ok := e.(*sqlparser.ColName)
	if !ok {
		return colRef{}, false
	}
	return colRef{qual: x.ident(c.Qualifier.Name.String()), name: c.Name.Lowered()}, true
}

func (x *KeyExtractor) myCond(e sqlparser.Expr) *cond {
	switch e := e.(type) {
	case *sqlparser.AndExpr:
		return &cond{kind: condAnd, kids: []*cond{x.myCond(e.Left), x.myCond(e.Right)}}
	case *sqlparser.OrExpr:
		return &cond{kind: condOr, kids: []*cond{x.myCond(e.Left), x.myCond(e.Right)}}
	case *sqlparser.ComparisonExpr:
		switch e.Operator {
		case sqlparser.EqualOp, sqlparser.NullSafeEqualOp:
			if cl, ok := x.myCol(e.Left); ok {
				if cr, ok := x.myCol(e.Right); ok {
					return &cond{kind: condCols, col: cl, col2: cr}
				}
				if v, ok := myValue(e.Right); ok {
					return &cond{kind: condEq, col: cl, vals: []KeyRef{v}}
				}
			} else if cr, ok := x.myCol(e.Right); ok {
				if v, ok := myValue(e.Left); ok {
					return &cond{kind: condEq, col: cr, vals: []KeyRef{v}}
				}
			}
		case sqlparser.InOp:
			if cl, ok := x.myCol(e.Left); ok {
				if tuple, ok := e.Right.(sqlparser.ValTuple); ok && len(tuple) > 0 {
					vals := make([]KeyRef, 0, len(tuple))
					for _, it := range tuple {
						v, ok := myValue(it)
						if !ok {
							return &cond{}
						}
						vals = append(vals, v)
					}
					return &cond{kind: condIn, col: cl, vals: vals}
				}
			}
		}
	}
	return &cond{}
}

// myValue reads a key value: an integer or string literal (with an
// optional character set introducer), a negative integer, or a ?
// placeholder.
func myValue(e sqlparser.Expr) (KeyRef, bool) {
	switch e := e.(type) {
	case *sqlparser.Literal:
		switch e.Type {
		case sqlparser.IntVal:
			if i, err := strconv.ParseInt(e.Val, 10, 64); err == nil {
				return KeyRef{Literal: i}, true
			}
		case sqlparser.StrVal:
			return KeyRef{Literal: e.Val}, true
		}
	case *sqlparser.UnaryExpr:
		if l, ok := e.Expr.(*sqlparser.Literal); ok && e.Operator == sqlparser.UMinusOp && l.Type == sqlparser.IntVal {
			if i, err := strconv.ParseInt("-"+l.Val, 10, 64); err == nil {
				return KeyRef{Literal: i}, true
			}
		}
	case *sqlparser.Argument:
		if p, ok := myParam(e.Name); ok {
			return KeyRef{Param: p}, true
		}
	case *sqlparser.IntroducerExpr:
		if l, ok := e.Expr.(*sqlparser.Literal); ok && l.Type == sqlparser.StrVal {
			return KeyRef{Literal: l.Val}, true
		}
	}
	return KeyRef{}, false
}

// myParam reads the ordinal of a ? placeholder, which Vitess names v<n>.
func myParam(name string) (int, bool) {
	if !strings.HasPrefix(name, "v") {
		return 0, false
	}
	n, err := strconv.Atoi(name[1:])
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

func (x *KeyExtractor) myInsert(s *sqlparser.Insert) *stmtIR {
	ir := &stmtIR{kind: StmtInsert}
	if s.Table != nil {
		if tn, ok := s.Table.Expr.(sqlparser.TableName); ok {
			ir.tables = []tableRef{x.table(tn.Qualifier.String(), tn.Name.String(), s.Table.As.String())}
		}
	}
	if len(ir.tables) == 0 {
		return &stmtIR{kind: StmtInsert, noKey: "INSERT into something other than a table"}
	}
	key := ir.tables[0].key
	if key == "" {
		return ir
	}
	for _, u := range s.OnDup {
		if u.Name != nil && u.Name.Name.Lowered() == key {
			ir.setsKey = true
		}
	}
	rows, ok := s.Rows.(sqlparser.Values)
	switch {
	case !ok:
		ir.noKey = "INSERT ... SELECT"
		return ir
	case len(s.Columns) == 0:
		ir.noKey = "INSERT without a column list"
		return ir
	}
	idx := -1
	for i, c := range s.Columns {
		if c.Lowered() == key {
			idx = i
			break
		}
	}
	if idx < 0 {
		ir.noKey = "INSERT does not set the key column " + key
		return ir
	}
	ir.rowKeys = make([]KeyRef, 0, len(rows))
	for i, row := range rows {
		if idx >= len(row) {
			ir.noKey, ir.rowKeys = fmt.Sprintf("row %d has no value for the key column", i+1), nil
			return ir
		}
		v, ok := myValue(row[idx])
		if !ok {
			why := "the key is not a constant or a parameter"
			if _, null := row[idx].(*sqlparser.NullVal); null {
				why = "the key is NULL, which no shard holds"
			}
			ir.noKey, ir.rowKeys = fmt.Sprintf("row %d: %s", i+1, why), nil
			return ir
		}
		ir.rowKeys = append(ir.rowKeys, v)
	}
	return ir
}

func (x *KeyExtractor) myUpdate(s *sqlparser.Update) *stmtIR {
	ir := &stmtIR{kind: StmtUpdate}
	x.myFrom(ir, s.TableExprs)
	if len(ir.tables) == 0 {
		ir.noKey = "UPDATE of something other than a table"
		return ir
	}
	// Any sharded table's key set, the first table's or a joined one's
	// (UPDATE a JOIN b ... SET b.key = ...): an unqualified name counts
	// for every table whose key it names.
	for _, u := range s.Exprs {
		if u.Name == nil {
			continue
		}
		q := x.ident(u.Name.Qualifier.Name.String())
		for _, t := range ir.tables {
			if t.key == "" || u.Name.Name.Lowered() != t.key {
				continue
			}
			if q == "" || q == x.ident(t.refName()) || q == x.ident(t.name) {
				ir.setsKey = true
			}
		}
	}
	if s.Where != nil {
		ir.where = x.myCond(s.Where.Expr)
		ir.links = andLinks(ir.where, ir.links)
	}
	return ir
}

func (x *KeyExtractor) myDelete(s *sqlparser.Delete) *stmtIR {
	ir := &stmtIR{kind: StmtDelete}
	x.myFrom(ir, s.TableExprs)
	if len(ir.tables) == 0 {
		ir.noKey = "DELETE from something other than a table"
		return ir
	}
	if len(s.Targets) > 1 {
		ir.noKey = "DELETE from several tables"
		return ir
	}
	if len(s.Targets) == 1 {
		// DELETE t FROM t JOIN u ...: the target goes first.
		want := x.ident(s.Targets[0].Name.String())
		for i, t := range ir.tables {
			if x.ident(t.refName()) == want {
				ir.tables[0], ir.tables[i] = ir.tables[i], ir.tables[0]
				break
			}
		}
	}
	if s.Where != nil {
		ir.where = x.myCond(s.Where.Expr)
		ir.links = andLinks(ir.where, ir.links)
	}
	return ir
}

// mySelectIR reads what a merge needs from a plain SELECT.
func (x *KeyExtractor) mySelectIR(s *sqlparser.Select) *selectIR {
	sel := &selectIR{
		groupBy:  s.GroupBy != nil && len(s.GroupBy.Exprs) > 0,
		distinct: s.Distinct,
		having:   s.Having != nil,
	}
	switch {
	case s.With != nil:
		sel.unmergeable = "WITH (a common table expression)"
	case len(s.Windows) > 0:
		sel.unmergeable = "a window function"
	case s.SQLCalcFoundRows:
		sel.unmergeable = "SQL_CALC_FOUND_ROWS"
	case s.Into != nil:
		sel.unmergeable = "SELECT INTO"
	}
	if sel.unmergeable == "" {
		var where sqlparser.SQLNode = sqlparser.TableExprs(nil)
		if s.Where != nil {
			where = s.Where
		}
		_ = sqlparser.Walk(func(n sqlparser.SQLNode) (bool, error) {
			switch n.(type) {
			case *sqlparser.DerivedTable:
				sel.unmergeable = "a subquery in FROM"
			case *sqlparser.Subquery:
				sel.unmergeable = "a subquery"
			case *sqlparser.JSONTableExpr:
				sel.unmergeable = "JSON_TABLE in FROM"
			}
			return sel.unmergeable == "", nil
		}, sqlparser.TableExprs(s.From), where)
	}
	if s.SelectExprs != nil {
		for _, e := range s.SelectExprs.Exprs {
			sel.items = append(sel.items, x.myItem(e))
		}
	}
	for _, o := range s.OrderBy {
		sel.order = append(sel.order, x.myOrder(o))
	}
	if s.Limit != nil {
		sel.limit = myBound(s.Limit.Rowcount)
		sel.offset = myBound(s.Limit.Offset)
	}
	return sel
}

func (x *KeyExtractor) myItem(e sqlparser.SelectExpr) selItem {
	switch e := e.(type) {
	case *sqlparser.StarExpr:
		return selItem{kind: itemStar}
	case *sqlparser.AliasedExpr:
		it := selItem{name: e.As.Lowered()}
		if c, ok := x.myCol(e.Expr); ok {
			it.kind, it.col = itemCol, c
			if it.name == "" {
				it.name = c.name
			}
			return it
		}
		if w, ok := e.Expr.(sqlparser.WindowFunc); ok && w.GetOverClause() != nil {
			it.bad = "a window function"
			return it
		}
		if a, ok := e.Expr.(sqlparser.AggrFunc); ok {
			for _, arg := range a.GetArgs() {
				if myBadInside(arg) != "" {
					it.bad = "an aggregate inside an aggregate"
					return it
				}
			}
			distinct := false
			if d, ok := a.(sqlparser.DistinctableAggr); ok {
				distinct = d.IsDistinct()
			}
			switch a.(type) {
			case *sqlparser.CountStar, *sqlparser.Count:
				it.kind, it.agg = itemAgg, AggCount
			case *sqlparser.Sum:
				it.kind, it.agg = itemAgg, AggSum
			case *sqlparser.Min:
				it.kind, it.agg = itemAgg, AggMin
			case *sqlparser.Max:
				it.kind, it.agg = itemAgg, AggMax
			default:
				it.bad = "aggregate " + strings.ToUpper(a.AggrName()) + "()"
				return it
			}
			if distinct && (it.agg == AggCount || it.agg == AggSum) {
				return selItem{name: it.name, bad: strings.ToUpper(it.agg.String()) + "(DISTINCT)"}
			}
			return it
		}
		it.bad = myBadInside(e.Expr)
		return it
	}
	return selItem{bad: "a select item the proxy does not know"}
}

// myBadInside says why an expression prevents a merge.
func myBadInside(e sqlparser.SQLNode) string {
	reason := ""
	_ = sqlparser.Walk(func(n sqlparser.SQLNode) (bool, error) {
		if w, ok := n.(sqlparser.WindowFunc); ok && w.GetOverClause() != nil {
			reason = "a window function"
			return false, nil
		}
		switch n.(type) {
		case sqlparser.AggrFunc:
			reason = "an aggregate inside an expression"
		case *sqlparser.Subquery:
			reason = "a subquery"
		}
		return reason == "", nil
	}, e)
	return reason
}

func (x *KeyExtractor) myOrder(o *sqlparser.Order) orderItem {
	it := orderItem{desc: o.Direction == sqlparser.DescOrder}
	if l, ok := o.Expr.(*sqlparser.Literal); ok {
		if l.Type == sqlparser.IntVal {
			if n, err := strconv.Atoi(l.Val); err == nil && n > 0 {
				it.pos = n
			}
		}
		return it
	}
	if c, ok := x.myCol(o.Expr); ok {
		it.col = &c
	}
	return it
}

func myBound(e sqlparser.Expr) bound {
	if e == nil {
		return bound{}
	}
	v, ok := myValue(e)
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

// shardKeyMyComments returns the text of every comment in sql as Vitess's
// tokenizer sees them (not inside string literals; /*! ... */ is code).
func shardKeyMyComments(sql string) []string {
	var out []string
	t := shardKeyParser().NewStringTokenizer(sql)
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

// MySQLScatterLimit rewrites the outermost LIMIT of a MySQL SELECT whose
// offset is a literal, "LIMIT off, count" or "LIMIT count OFFSET off",
// into "LIMIT off+count": a SELECT run on several shards must ask each for
// the rows the offset skips, which are known only after the merge. The
// rest of the text (comments, hints, ? placeholders) is left as it is. ok
// is false when there is no such clause.
func MySQLScatterLimit(sql string) (string, bool) {
	tkn := shardKeyParser().NewStringTokenizer(sql)
	depth, start, end := 0, -1, -1
	var nums []int64
	var sawOffset bool
	state := 0 // 1: after LIMIT; 2: after its first number; 3: after ',' or OFFSET
	for {
		typ, val := tkn.Scan()
		if typ == 0 || typ == sqlparser.LEX_ERROR {
			break
		}
		switch typ {
		case sqlparser.COMMENT:
			continue
		case '(':
			depth++
		case ')':
			depth--
		}
		if depth != 0 {
			state = 0
			continue
		}
		switch {
		case typ == sqlparser.LIMIT:
			state, start, end, nums, sawOffset = 1, tkn.Pos-len(val), -1, nil, false
			continue
		case state == 1 || state == 3:
			if typ != sqlparser.INTEGRAL {
				state, start = 0, -1
				continue
			}
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				state, start = 0, -1
				continue
			}
			nums = append(nums, n)
			end = tkn.Pos
			if state == 1 {
				state = 2
			} else {
				state = 0
			}
			continue
		case state == 2 && typ == ',':
			state = 3
			continue
		case state == 2 && typ == sqlparser.OFFSET:
			state, sawOffset = 3, true
			continue
		}
		state = 0
	}
	if start < 0 || len(nums) != 2 || end < start {
		return sql, false
	}
	off, count := nums[0], nums[1]
	if sawOffset {
		off, count = nums[1], nums[0]
	}
	if off < 0 || count < 0 || off > (1<<62) || count > (1<<62) {
		return sql, false
	}
	return sql[:start] + "LIMIT " + strconv.FormatInt(off+count, 10) + sql[end:], true
}
