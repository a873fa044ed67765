package router

// Shard key extraction sits between the analyzer and the shard map. For a
// sharded cluster the router must know, before it leases any connection,
// which shard a statement belongs to; the only place that knowledge lives
// is the statement itself: a WHERE that pins the key column, the key
// column of each row an INSERT writes, or a hint the application wrote in
// a comment. Getting it wrong is silent (a row written to one shard and
// looked for on another answers "no rows"), so the rules here take a key
// only where it provably restricts every row the statement touches: an
// equality or IN list on the key column, inside ANDs, or in every branch of
// an OR. Anything looser is "no key", and the caller scatters a read or
// refuses a write.
//
// Extraction works on the parse tree of each dialect's real parser and
// records where the key comes from (a literal, or the number of a bind
// parameter), not its value, so that a prepared statement is extracted
// once and each execution only looks its parameters up. Results are cached
// by statement text.
//
// When a SELECT has no key (or a key list that spans shards), the wire
// layer runs it on several shards and merges the rows. Extraction also
// says how (ORDER BY columns, LIMIT/OFFSET, COUNT/SUM/MIN/MAX to combine)
// and, above all, whether a merge can be correct: GROUP BY, DISTINCT,
// HAVING, AVG, window functions, subqueries and joins not on the shard key
// give results that per-shard answers cannot be combined into, so they are
// marked unmergeable with a reason rather than answered wrongly.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/shard"
)

// KeySpec says which column carries the shard key: Default for every
// table, Tables for the tables whose key column is named differently
// (config sharding.key and sharding.tables). A table name in Tables may be
// bare ("customers") or schema-qualified ("public.customers", which wins
// over the bare name for that schema).
type KeySpec struct {
	Default string
	Tables  map[string]string
}

// KeyRef is where one key value of a statement comes from: a literal in
// the text, or a bind parameter.
type KeyRef struct {
	// Literal is an int64 (integer literals, and string literals cast to
	// an integer type) or a string; nil when Param is set.
	Literal any
	// Param is the 1-based number of the bind parameter: $n in
	// PostgreSQL, the n-th ? in MySQL (counted in text order). 0 for a
	// literal.
	Param int
	// Table is the table whose key column the value is compared with or
	// stored in, as the statement names it (without its database); ""
	// for a key of a hint or of SET switchyard.shard_key. MySQL reads
	// text compared with a numeric column as a number ('5abc' is 5), so
	// such a key's shard depends on that column's type (KeyTypes).
	Table string
}

func (k KeyRef) String() string {
	switch v := k.Literal.(type) {
	case nil:
		if k.Param > 0 {
			return "$" + strconv.Itoa(k.Param)
		}
		return "<none>"
	case int64:
		return strconv.FormatInt(v, 10)
	case string:
		return strconv.Quote(v)
	}
	return fmt.Sprint(k.Literal)
}

// SessionKey turns the value of SET switchyard.shard_key (an Analysis's
// SetOp.Value; the analyzer parses the SET) into the key a session routes
// by until it is reset: a canonical integer is an int64, anything else a
// string, as for a hint. Either form maps to the same shard, so the
// quoting the client used does not matter.
func SessionKey(value string) KeyRef {
	if n, ok := shard.CanonicalInt(value); ok {
		return KeyRef{Literal: n}
	}
	return KeyRef{Literal: value}
}

// StmtKind is the kind of a statement, as far as sharding cares.
type StmtKind uint8

// Statement kinds.
const (
	StmtSelect StmtKind = iota + 1
	StmtInsert
	StmtUpdate
	StmtDelete
	// StmtOther: anything else (DDL, SET, transaction control, COPY,
	// MERGE, several statements in one text, text that did not parse).
	StmtOther
)

func (k StmtKind) String() string {
	switch k {
	case StmtSelect:
		return "select"
	case StmtInsert:
		return "insert"
	case StmtUpdate:
		return "update"
	case StmtDelete:
		return "delete"
	case StmtOther:
		return "other"
	}
	return fmt.Sprintf("StmtKind(%d)", uint8(k))
}

// AggFunc is an aggregate the proxy can combine across shards.
type AggFunc uint8

// Mergeable aggregates: COUNT and SUM add up, MIN and MAX take the
// smallest and largest of the shards' answers.
const (
	AggCount AggFunc = iota + 1
	AggSum
	AggMin
	AggMax
)

func (f AggFunc) String() string {
	switch f {
	case AggCount:
		return "count"
	case AggSum:
		return "sum"
	case AggMin:
		return "min"
	case AggMax:
		return "max"
	}
	return fmt.Sprintf("AggFunc(%d)", uint8(f))
}

// Agg is one aggregate output column of a scatter SELECT.
type Agg struct {
	Func  AggFunc
	Index int // 0-based output column
}

// OrderCol is one ORDER BY item of a scatter SELECT, for a merge sort of
// the shards' (already sorted) results.
type OrderCol struct {
	// Index is the 0-based output column, or -1 when the select list
	// has a * before it, so that only the server's row description can
	// tell the position: then look Name up there (and refuse to merge
	// if it is missing or ambiguous).
	Index int
	// Name is the output column's name (alias or column name), "" for a
	// positional ORDER BY.
	Name string
	Desc bool
	// NullsFirst is where NULLs sort, resolved for the dialect:
	// PostgreSQL puts them last ascending and first descending unless
	// told otherwise; MySQL treats NULL as the smallest value.
	NullsFirst bool
}

// ShardKeys is what a statement says about its shard key. It is shared
// through the cache: do not modify it or anything it points to.
type ShardKeys struct {
	Kind StmtKind
	// Table is the statement's table: the INSERT/UPDATE/DELETE target,
	// or the first table of a SELECT's FROM; "" when there is none
	// (SELECT 1, SELECT now(): any one shard can answer).
	Table string
	// Keys has one entry per key value: WHERE key = x gives one,
	// key IN (a, b, c) three, a multi-row INSERT one per row, in row
	// order. Empty when None.
	Keys []KeyRef
	// RowsPerKey: an INSERT whose Keys[i] is the key of row i, so that
	// the wire layer can split the rows by shard or refuse.
	RowsPerKey bool
	// None: no key was found; NoKeyReason says why. A read without a key
	// scatters to every shard; a write is refused.
	None        bool
	NoKeyReason string
	// MultiStatement: the text holds several statements (None is set);
	// no single key, not even a session's, may route it.
	MultiStatement bool
	// SetsKey: an UPDATE (or INSERT ... ON CONFLICT / ON DUPLICATE KEY
	// UPDATE) assigns the key column, which may move the row to another
	// shard; the proxy cannot do that in one statement.
	SetsKey bool
	// Locks: a SELECT that locks the rows it reads (FOR UPDATE, FOR
	// SHARE, LOCK IN SHARE MODE).
	Locks bool
	// Hint is the key of a /* switchyard:shard_key=42 */ comment (an
	// int64 when the value is a canonical integer, else a string). It
	// takes precedence over Keys.
	Hint *KeyRef
	// ShardHint is the 0-based shard of a /* switchyard:shard=1 */
	// comment (the index of [[clusters.shards]], as in config errors
	// and admin views), -1 without one. It takes precedence over Hint
	// and Keys.
	ShardHint int

	// Merge information, filled for a SELECT that may run on several
	// shards (None, or more than one key).
	//
	// Mergeable: running the SELECT on each shard and merging as
	// described below gives the same answer as one database would. When
	// false, MergeReason says why and the statement must be refused if
	// it has to run on more than one shard. A single-key SELECT is
	// Mergeable (it runs on one shard).
	Mergeable   bool
	MergeReason string
	// OrderBy is the sort order to merge by (empty: concatenate).
	OrderBy []OrderCol
	// Limit and Offset are literal LIMIT / OFFSET values; LimitParam
	// and OffsetParam the 1-based bind parameters when they are
	// parameters. The shards must each be asked for Limit+Offset rows
	// without the offset, which is applied after the merge.
	Limit, Offset           *int64
	LimitParam, OffsetParam int
	// Aggregates are the output columns to combine into one row (a
	// SELECT of aggregates only, without GROUP BY).
	Aggregates []Agg
	// GroupBy and Distinct say the SELECT has them (never Mergeable).
	GroupBy, Distinct bool

	// Catalog: every table the statement reads is a catalog table
	// (PostgreSQL's pg_catalog and information_schema; MySQL's
	// information_schema, performance_schema, mysql and sys). The shards
	// share one schema, so one shard answers.
	Catalog bool
	// TopTables: the statement itself (not only its subqueries) reads a
	// sharded table.
	TopTables bool
	// SubKeys are the key values the subqueries pin (derived tables,
	// scalar subqueries, EXISTS / IN, WITH). A subquery runs where its
	// statement runs, so a statement with subqueries of sharded tables
	// runs on one shard: the one its Keys and all SubKeys map to.
	// SubNoKey, when set, says which subquery reads a sharded table
	// without pinning its key (SubTable): it cannot be answered from one
	// shard, nor merged from several.
	SubKeys  []KeyRef
	SubNoKey string
	SubTable string
	// JoinKeys are the key values that other tables of the statement
	// pin, tables not joined on the shard key to the one whose key is
	// Keys (FROM orders a, orders b WHERE a.customer_id = 1 AND
	// b.customer_id = 2): the statement runs on Keys' shard, so their
	// rows must be there too, as a subquery's.
	JoinKeys []KeyRef

	// Databases are the databases a MySQL statement names explicitly
	// (orders_0.orders, SHOW TABLES FROM orders_0), other than the
	// server's own (information_schema, mysql, ...), as written. Each
	// shard's connection is in that shard's own database, so any name
	// there reads or writes past the shard map.
	Databases []string

	// ParseError is the parser's complaint when it rejected the text;
	// then Kind is StmtOther and None is set, but hints are still read
	// from the comments (the parser of one dialect may reject what the
	// server accepts).
	ParseError string
}

// keyCacheEntries and keyCacheBytes bound the extraction cache;
// keyCacheMaxText is the longest text worth caching (longer ones are bulk
// INSERTs with inline values, which never repeat).
const (
	keyCacheEntries = 10000
	keyCacheBytes   = 16 << 20
	keyCacheMaxText = 64 << 10
)

// KeyExtractor extracts the shard keys of one dialect's statements for one
// KeySpec, caching results by statement text. It is safe for concurrent
// use. A config reload that changes the key columns builds a new one, which
// also drops the cache of the old.
type KeyExtractor struct {
	dialect Dialect
	spec    KeySpec
	fold    bool // MySQL: identifiers compare case-insensitively
	cache   *keyCache
}

// NewKeyExtractor returns a KeyExtractor; it panics on an unknown dialect.
func NewKeyExtractor(d Dialect, spec KeySpec) *KeyExtractor {
	return newKeyExtractor(d, spec, keyCacheEntries, keyCacheBytes)
}

func newKeyExtractor(d Dialect, spec KeySpec, entries, bytes int) *KeyExtractor {
	if d != Postgres && d != MySQL {
		panic(fmt.Sprintf("router: NewKeyExtractor: unknown dialect %d", d))
	}
	x := &KeyExtractor{dialect: d, fold: d == MySQL, cache: newKeyCache(entries, bytes)}
	x.spec.Default = spec.Default
	if x.fold {
		x.spec.Default = strings.ToLower(spec.Default)
	}
	if len(spec.Tables) > 0 {
		x.spec.Tables = make(map[string]string, len(spec.Tables))
		for t, c := range spec.Tables {
			if x.fold {
				t, c = strings.ToLower(t), strings.ToLower(c)
			}
			x.spec.Tables[t] = c
		}
	}
	return x
}

// Dialect reports the grammar x parses.
func (x *KeyExtractor) Dialect() Dialect { return x.dialect }

// Extract returns the shard keys of sql, from the cache when the same text
// was extracted before. The error is for a malformed switchyard: hint,
// which the client should hear about; the result is nil then.
func (x *KeyExtractor) Extract(sql string) (*ShardKeys, error) {
	if r, ok := x.cache.get(sql); ok {
		return r.sk, r.err
	}
	// sql may alias a reused network buffer; the cache key and every
	// string the result holds must not.
	sql = strings.Clone(sql)
	sk, err := x.extract(sql)
	x.cache.put(sql, keyResult{sk, err})
	return sk, err
}

// ExtractShardKeys extracts the shard keys of sql without a cache (a
// KeyExtractor caches).
func ExtractShardKeys(d Dialect, sql string, spec KeySpec) (*ShardKeys, error) {
	if d != Postgres && d != MySQL {
		return nil, fmt.Errorf("router: unknown dialect %d", d)
	}
	return newKeyExtractor(d, spec, 1, 1).extract(strings.Clone(sql))
}

// errBadHint wraps hint errors.
var errBadHint = errors.New("bad switchyard hint")

// extract does the work of Extract. A panic anywhere below (the parsers,
// the comment scanners, the tree walks) becomes a parse error: a client's
// text must never take the proxy down.
func (x *KeyExtractor) extract(sql string) (sk *ShardKeys, err error) {
	defer func() {
		if r := recover(); r != nil {
			sk = &ShardKeys{Kind: StmtOther, None: true, NoKeyReason: "parse error",
				ParseError: fmt.Sprintf("parser panic: %v", r), ShardHint: -1}
			err = nil
		}
	}()
	hint, shardHint, err := scanShardHints(x.dialect, sql)
	if err != nil {
		return nil, err
	}
	var ir *stmtIR
	if x.dialect == Postgres {
		ir, err = x.pgParse(sql)
	} else {
		ir, err = x.myParse(sql)
	}
	if err != nil {
		sk = &ShardKeys{Kind: StmtOther, None: true, NoKeyReason: "parse error", ParseError: err.Error()}
	} else {
		sk = x.analyze(ir)
	}
	sk.Hint = hint
	sk.ShardHint = shardHint
	return sk, nil
}

// The dialect converters reduce a parse tree to this small intermediate
// form, so that the rules (what counts as a key, what merges) are written
// once for both dialects.

// stmtIR is one statement.
type stmtIR struct {
	kind   StmtKind
	tables []tableRef // tables[0]: the write target, or the first FROM table
	// where is WHERE ANDed with the ON conditions of inner joins: every
	// result row satisfies it.
	where *cond
	// links are column = column equalities that hold for every result
	// row pair of a join (top-level ANDs of WHERE and every ON, USING).
	links [][2]colRef
	// noKey, when set, says why the statement cannot have a key at all
	// (INSERT ... SELECT, WHERE CURRENT OF, several statements).
	noKey string
	// rowKeys are an INSERT's key values, one per row; set by the
	// converter, which knows the key column (keyColumn).
	rowKeys []KeyRef
	setsKey bool
	locks   bool // a SELECT with FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE
	// databases are the databases (MySQL) the statement names, see
	// ShardKeys.Databases.
	databases []string
	// sel reads what a merge needs from a SELECT; called only when the
	// statement may run on several shards, since it walks the tree.
	sel func() *selectIR
	// subs are the statement's subqueries, each converted on its own
	// (tables of its FROM, its WHERE), and nested writes (noKey set).
	subs []*stmtIR
}

type tableRef struct {
	schema, name, alias string
	key                 string // its key column ("" when the spec has none, or a catalog)
	catalog             bool
}

// refName is how columns of t are qualified in the statement.
func (t tableRef) refName() string {
	if t.alias != "" {
		return t.alias
	}
	return t.name
}

type colRef struct{ qual, name string }

type condKind uint8

const (
	condOther condKind = iota // anything that does not pin a column
	condAnd
	condOr
	condEq   // col = value
	condIn   // col IN (values)
	condCols // col = col2
)

type cond struct {
	kind      condKind
	col, col2 colRef
	vals      []KeyRef
	kids      []*cond
}

type selectIR struct {
	items []selItem
	order []orderItem
	// limit and offset: set says the clause is there; bad that it is an
	// expression the proxy cannot evaluate.
	limit, offset     bound
	groupBy, distinct bool
	having            bool
	// unmergeable is a dialect-level reason the rows cannot be merged
	// (set operation, subquery, window, WITH TIES, ...).
	unmergeable string
}

type itemKind uint8

const (
	itemOther itemKind = iota // an expression without aggregates
	itemCol
	itemStar
	itemAgg
)

type selItem struct {
	kind itemKind
	col  colRef  // itemCol
	name string  // output name: alias, column name, or function name
	agg  AggFunc // itemAgg
	bad  string  // why this item cannot be merged (AVG, aggregate inside an expression, window)
}

type orderItem struct {
	pos   int     // 1-based output position; 0 when not positional
	col   *colRef // a bare column reference
	desc  bool
	nulls int8 // 0 dialect default, 1 first, -1 last
}

type bound struct {
	set   bool
	n     int64
	param int
	bad   bool
}

// keyColumn is the key column of a table, "" when none.
func (x *KeyExtractor) keyColumn(schema, name string) string {
	if x.fold {
		schema, name = strings.ToLower(schema), strings.ToLower(name)
	}
	if len(x.spec.Tables) > 0 {
		if schema != "" {
			if c, ok := x.spec.Tables[schema+"."+name]; ok {
				return c
			}
		}
		if c, ok := x.spec.Tables[name]; ok {
			return c
		}
	}
	return x.spec.Default
}

func (x *KeyExtractor) table(schema, name, alias string) tableRef {
	if x.catalog(schema, name) {
		return tableRef{schema: schema, name: name, alias: alias, catalog: true}
	}
	return tableRef{schema: schema, name: name, alias: alias, key: x.keyColumn(schema, name)}
}

// catalog reports whether a table is one of the server's catalogs, which
// every shard holds alike (for the shards' one schema).
func (x *KeyExtractor) catalog(schema, name string) bool {
	if x.dialect == Postgres {
		switch schema {
		case "pg_catalog", "information_schema":
			return true
		case "":
			// pg_catalog comes first in every search_path, so an
			// unqualified pg_class is the catalog's.
			return strings.HasPrefix(name, "pg_")
		}
		return false
	}
	return myCatalogSchema(schema)
}

// myCatalogSchema reports whether a MySQL database is one of the server's
// own, which every shard has alike.
func myCatalogSchema(db string) bool {
	switch strings.ToLower(db) {
	case "information_schema", "performance_schema", "mysql", "sys":
		return true
	}
	return false
}

// dropCTEs removes from ir and its subqueries the table references that
// name a common table expression of the statement: their rows are the
// CTE's subquery's, which is one of ir.subs.
func dropCTEs(ir *stmtIR, ctes map[string]bool, fold bool) {
	if len(ctes) == 0 {
		return
	}
	filter := func(ts []tableRef) []tableRef {
		out := ts[:0]
		for _, t := range ts {
			n := t.name
			if fold {
				n = strings.ToLower(n)
			}
			if t.schema == "" && ctes[n] {
				continue
			}
			out = append(out, t)
		}
		return out
	}
	ir.tables = filter(ir.tables)
	for _, s := range ir.subs {
		s.tables = filter(s.tables)
	}
}

// ident normalizes an identifier for comparison: MySQL's column names and
// aliases are case-insensitive (table names follow the server's
// lower_case_table_names, and a query that gets them wrong fails there);
// PostgreSQL's parser already folded unquoted names.
func (x *KeyExtractor) ident(s string) string {
	if x.fold {
		return strings.ToLower(s)
	}
	return s
}

// analyze applies the key and merge rules to a converted statement.
func (x *KeyExtractor) analyze(ir *stmtIR) *ShardKeys {
	sk := &ShardKeys{Kind: ir.kind, ShardHint: -1}
	if len(ir.tables) > 0 {
		sk.Table = ir.tables[0].name
	}
	switch {
	case ir.noKey != "":
		sk.None, sk.NoKeyReason = true, ir.noKey
		sk.MultiStatement = ir.noKey == noKeyMultiStatement
	case ir.kind == StmtOther:
		sk.None, sk.NoKeyReason = true, "not a SELECT, INSERT, UPDATE or DELETE"
	case len(ir.tables) == 0:
		sk.None, sk.NoKeyReason = true, "no table"
	case ir.kind == StmtInsert:
		if ir.tables[0].key == "" {
			sk.None, sk.NoKeyReason = true, "table "+ir.tables[0].name+" has no shard key column"
		} else {
			sk.Keys, sk.RowsPerKey = withTable(ir.rowKeys, ir.tables[0].name), true
		}
	default:
		var i int
		sk.Keys, i, sk.NoKeyReason = x.whereKeysAt(ir)
		sk.None = sk.Keys == nil
		if !sk.None {
			sk.JoinKeys = x.joinKeys(ir, i)
		}
	}
	sk.SetsKey = ir.setsKey
	sk.Locks = ir.locks
	sk.Databases = ir.databases
	if sk.None && sk.NoKeyReason == "" {
		sk.NoKeyReason = "no shard key"
	}
	if !sk.None {
		sk.NoKeyReason = ""
	}
	if ir.kind == StmtSelect {
		if !sk.None && len(sk.Keys) == 1 {
			sk.Mergeable = true
		} else {
			x.merge(ir, sk)
		}
	}
	x.subqueries(ir, sk)
	return sk
}

// subqueries fills Catalog, TopTables, Table and the Sub* fields.
func (x *KeyExtractor) subqueries(ir *stmtIR, sk *ShardKeys) {
	tables, real := len(ir.tables), 0
	for _, t := range ir.tables {
		if !t.catalog {
			if real == 0 {
				sk.Table = t.name
			}
			real++
		}
	}
	sk.TopTables = real > 0
	for _, sub := range ir.subs {
		tables += len(sub.tables)
		first := ""
		for _, t := range sub.tables {
			if !t.catalog && first == "" {
				first = t.name
			}
		}
		if first == "" {
			continue
		}
		real++
		if sk.Table == "" {
			sk.Table = first
		}
		if sk.SubNoKey != "" {
			continue
		}
		var keys []KeyRef
		why := sub.noKey
		if why == "" {
			keys, why = x.whereKeys(sub)
		}
		if keys != nil {
			// The keys its other tables pin name its shard too.
			_, i, _ := x.whereKeysAt(sub)
			keys = append(keys, x.joinKeys(sub, i)...)
		}
		if keys == nil {
			sk.SubNoKey = fmt.Sprintf("a subquery reads sharded table %s without its shard key (%s)", first, why)
			sk.SubTable = first
			continue
		}
		sk.SubKeys = append(sk.SubKeys, keys...)
	}
	sk.Catalog = tables > 0 && real == 0
}

// whereKeys finds the key values that every row of a SELECT, UPDATE or
// DELETE must have. For a write only the target table's key counts; a
// SELECT that pins the key of any of its tables runs on that key's shard,
// which is right for joins on the shard key and for tables present on
// every shard.
func (x *KeyExtractor) whereKeys(ir *stmtIR) ([]KeyRef, string) {
	keys, _, why := x.whereKeysAt(ir)
	return keys, why
}

// whereKeysAt is whereKeys, with the table whose key it found.
func (x *KeyExtractor) whereKeysAt(ir *stmtIR) ([]KeyRef, int, string) {
	if ir.where == nil {
		return nil, -1, "no WHERE clause"
	}
	classes := x.classes(ir)
	n := len(ir.tables)
	if ir.kind != StmtSelect {
		n = 1
	}
	for i := range n {
		if ir.tables[i].key == "" {
			continue
		}
		match := func(c colRef) bool {
			for _, j := range x.resolve(ir, c) {
				if classes[j] == classes[i] {
					return true
				}
			}
			return false
		}
		if keys, ok := keysOf(ir.where, match); ok {
			return withTable(keys, ir.tables[i].name), i, ""
		}
	}
	if ir.tables[0].key == "" {
		return nil, -1, "table " + ir.tables[0].name + " has no shard key column"
	}
	return nil, -1, "WHERE does not pin " + ir.tables[0].key + " to values"
}

// joinKeys returns the keys that the other tables of a statement pin,
// the statement running on the shard of table i's key: a table joined to
// i on the shard key has its matching rows there, but one that pins a key
// of its own needs that key on the same shard (the plan checks them as a
// subquery's). A table that neither joins on the key nor pins one is
// taken to have its matching rows on i's shard (rows of a customer's
// order items, joined on the order's id), as before.
func (x *KeyExtractor) joinKeys(ir *stmtIR, i int) (keys []KeyRef) {
	if i < 0 || len(ir.tables) < 2 {
		return nil
	}
	classes := x.classes(ir)
	for j, t := range ir.tables {
		if j == i || t.key == "" || classes[j] == classes[i] {
			continue
		}
		// Only columns that are surely j's: orders.customer_id in
		// "UPDATE orders ... FROM orders b" may be either table's.
		match := func(c colRef) bool {
			rs := x.resolve(ir, c)
			for _, r := range rs {
				if classes[r] != classes[j] {
					return false
				}
			}
			return len(rs) > 0
		}
		if k, ok := keysOf(ir.where, match); ok {
			keys = append(keys, withTable(k, t.name)...)
		}
	}
	return keys
}

// withTable returns a copy of keys that names table as theirs (the
// condition's own values stay as parsed).
func withTable(keys []KeyRef, table string) []KeyRef {
	out := make([]KeyRef, len(keys))
	for i, k := range keys {
		k.Table = table
		out[i] = k
	}
	return out
}

// resolve lists the tables whose key column c may be: the one its
// qualifier names, or, unqualified, every table whose key column has
// that name.
func (x *KeyExtractor) resolve(ir *stmtIR, c colRef) []int {
	var out []int
	for i, t := range ir.tables {
		if t.key == "" || x.ident(t.key) != c.name {
			continue
		}
		if c.qual == "" || c.qual == x.ident(t.refName()) || t.alias != "" && c.qual == x.ident(t.name) {
			out = append(out, i)
		}
	}
	return out
}

// classes groups tables whose key columns are equal in every result row
// (joined on the shard key): class[i] is a representative of table i.
func (x *KeyExtractor) classes(ir *stmtIR) []int {
	class := make([]int, len(ir.tables))
	for i := range class {
		class[i] = i
	}
	find := func(i int) int {
		for class[i] != i {
			i = class[i]
		}
		return i
	}
	for _, l := range ir.links {
		a, b := x.resolve(ir, l[0]), x.resolve(ir, l[1])
		if len(a) != 1 || len(b) != 1 {
			continue
		}
		ra, rb := find(a[0]), find(b[0])
		if ra != rb {
			class[max(ra, rb)] = min(ra, rb)
		}
	}
	for i := range class {
		class[i] = find(i)
	}
	return class
}

// keysOf returns the values a condition pins the key column to: every
// row it accepts has one of them. match tells key column references.
func keysOf(c *cond, match func(colRef) bool) ([]KeyRef, bool) {
	switch c.kind {
	case condEq, condIn:
		if match(c.col) {
			return c.vals, true
		}
	case condAnd:
		// Every conjunct holds, so any one that pins the key will do;
		// the shortest list touches the fewest shards.
		var best []KeyRef
		found := false
		for _, k := range c.kids {
			if keys, ok := keysOf(k, match); ok && (!found || len(keys) < len(best)) {
				best, found = keys, true
			}
		}
		return best, found
	case condOr:
		// A row may satisfy any branch: each must pin the key.
		var all []KeyRef
		for _, k := range c.kids {
			keys, ok := keysOf(k, match)
			if !ok {
				return nil, false
			}
			all = append(all, keys...)
		}
		return all, len(c.kids) > 0
	}
	return nil, false
}

// andLinks collects the column = column equalities of c's top-level ANDs.
func andLinks(c *cond, links [][2]colRef) [][2]colRef {
	if c == nil {
		return links
	}
	switch c.kind {
	case condCols:
		links = append(links, [2]colRef{c.col, c.col2})
	case condAnd:
		for _, k := range c.kids {
			links = andLinks(k, links)
		}
	}
	return links
}

// and joins two conditions that must both hold.
func and(a, b *cond) *cond {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return &cond{kind: condAnd, kids: []*cond{a, b}}
}

// merge fills the merge information of a SELECT that may run on several
// shards.
func (x *KeyExtractor) merge(ir *stmtIR, sk *ShardKeys) {
	var s *selectIR
	if ir.sel != nil {
		s = ir.sel()
	}
	if s == nil {
		sk.MergeReason = "not a plain SELECT"
		return
	}
	sk.GroupBy, sk.Distinct = s.groupBy, s.distinct
	reason := s.unmergeable
	switch {
	case reason != "":
	case s.groupBy:
		reason = "GROUP BY"
	case s.distinct:
		reason = "DISTINCT"
	case s.having:
		reason = "HAVING"
	case s.limit.bad || s.offset.bad:
		reason = "LIMIT or OFFSET is an expression"
	case len(ir.tables) > 1 && !x.colocated(ir):
		reason = "a join that is not on the shard keys of the joined tables"
	}
	if reason == "" {
		reason = x.mergeItems(s, sk)
	}
	if reason == "" {
		reason = x.mergeOrder(s, sk)
	}
	if s.limit.set {
		if s.limit.param > 0 {
			sk.LimitParam = s.limit.param
		} else {
			n := s.limit.n
			sk.Limit = &n
		}
	}
	if s.offset.set {
		if s.offset.param > 0 {
			sk.OffsetParam = s.offset.param
		} else {
			n := s.offset.n
			sk.Offset = &n
		}
	}
	if reason != "" {
		sk.Mergeable, sk.MergeReason = false, reason
		return
	}
	sk.Mergeable = true
}

// colocated reports whether every table of a join is joined to the first
// on the shard key, so that matching rows live on one shard.
func (x *KeyExtractor) colocated(ir *stmtIR) bool {
	classes := x.classes(ir)
	for i, t := range ir.tables {
		if t.key == "" || classes[i] != classes[0] {
			return false
		}
	}
	return true
}

func (x *KeyExtractor) mergeItems(s *selectIR, sk *ShardKeys) string {
	star, plain := false, false
	for i, it := range s.items {
		if it.bad != "" {
			return it.bad
		}
		switch it.kind {
		case itemStar:
			star = true
		case itemAgg:
			idx := i
			if star {
				idx = -1
			}
			sk.Aggregates = append(sk.Aggregates, Agg{Func: it.agg, Index: idx})
		default:
			plain = true
		}
	}
	if len(sk.Aggregates) > 0 && (plain || star) {
		sk.Aggregates = nil
		return "aggregates next to plain columns without GROUP BY"
	}
	return ""
}

func (x *KeyExtractor) mergeOrder(s *selectIR, sk *ShardKeys) string {
	star := false
	for _, it := range s.items {
		if it.kind == itemStar {
			star = true
		}
	}
	for _, o := range s.order {
		oc := OrderCol{Index: -1, Desc: o.desc}
		switch o.nulls {
		case 1:
			oc.NullsFirst = true
		case 0:
			// PostgreSQL: NULL is larger than every value; MySQL:
			// smaller.
			oc.NullsFirst = o.desc == (x.dialect == Postgres)
		}
		switch {
		case o.pos > 0:
			oc.Index = o.pos - 1
			if o.pos <= len(s.items) && !starBefore(s, o.pos-1) {
				oc.Name = s.items[o.pos-1].name
			}
		case o.col != nil:
			i := x.findItem(s, *o.col)
			switch {
			case i >= 0:
				oc.Name = s.items[i].name
				if !starBefore(s, i) {
					oc.Index = i
				}
			case star:
				oc.Name = o.col.name
			default:
				sk.OrderBy = nil
				return "ORDER BY a column that is not in the select list"
			}
		default:
			sk.OrderBy = nil
			return "ORDER BY an expression"
		}
		sk.OrderBy = append(sk.OrderBy, oc)
	}
	return ""
}

func starBefore(s *selectIR, i int) bool {
	for _, it := range s.items[:i] {
		if it.kind == itemStar {
			return true
		}
	}
	return false
}

// findItem finds the select-list item an ORDER BY column names: an
// output name first (as both servers do for a bare name), then the same
// column.
func (x *KeyExtractor) findItem(s *selectIR, c colRef) int {
	if c.qual == "" {
		for i, it := range s.items {
			if it.name != "" && it.name == c.name {
				return i
			}
		}
	}
	for i, it := range s.items {
		if it.kind == itemCol && it.col.name == c.name && (c.qual == "" || it.col.qual == "" || it.col.qual == c.qual) {
			return i
		}
	}
	return -1
}

// Hints.

// scanShardHints reads /* switchyard:shard_key=V */ and
// /* switchyard:shard=N */ from the comments of sql (never from string
// literals). The first of each kind counts.
func scanShardHints(d Dialect, sql string) (*KeyRef, int, error) {
	shardHint := -1
	if !containsFold(sql, "switchyard:") {
		return nil, shardHint, nil
	}
	var comments []string
	if d == Postgres {
		comments = shardKeyPGComments(sql)
	} else {
		comments = shardKeyMyComments(sql)
	}
	var hint *KeyRef
	for _, c := range comments {
		for rest := c; ; {
			i := indexFold(rest, "switchyard:")
			if i < 0 {
				break
			}
			rest = rest[i+len("switchyard:"):]
			var name string
			switch {
			case hintWord(rest, "shard_key"):
				name = "shard_key"
			case hintWord(rest, "shard"):
				name = "shard"
			default:
				continue // switchyard:primary and others are the analyzer's
			}
			rest = rest[len(name):]
			val, quoted, tail, ok := hintValue(rest)
			rest = tail
			if !ok {
				return nil, -1, fmt.Errorf("%w: switchyard:%s needs =value", errBadHint, name)
			}
			switch name {
			case "shard_key":
				if hint != nil {
					continue
				}
				ref := &KeyRef{Literal: val}
				if n, ok := shard.CanonicalInt(val); ok && !quoted {
					ref.Literal = n
				}
				hint = ref
			case "shard":
				if shardHint >= 0 {
					continue
				}
				n, err := strconv.Atoi(val)
				if err != nil || n < 0 || n >= 1<<20 || quoted {
					return nil, -1, fmt.Errorf("%w: switchyard:shard=%s is not a shard number (0 is the first shard)", errBadHint, val)
				}
				shardHint = n
			}
		}
	}
	return hint, shardHint, nil
}

// hintWord reports whether s starts with the word w (then a character
// that cannot continue a name).
func hintWord(s, w string) bool {
	if !hasPrefixFold(s, w) {
		return false
	}
	if len(s) == len(w) {
		return true
	}
	c := s[len(w)]
	return !(c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'z')
}

// hintValue reads "= value" after a hint name: optional spaces, '=',
// optional spaces, then a value quoted with ' or " (no escapes) or a bare
// run of characters up to a space, '*', ',' or ';'.
func hintValue(s string) (val string, quoted bool, rest string, ok bool) {
	s = strings.TrimLeft(s, " \t")
	if !strings.HasPrefix(s, "=") {
		return "", false, s, false
	}
	s = strings.TrimLeft(s[1:], " \t")
	if s != "" && (s[0] == '\'' || s[0] == '"') {
		end := strings.IndexByte(s[1:], s[0])
		if end < 0 {
			return "", false, s, false
		}
		return s[1 : 1+end], true, s[2+end:], true
	}
	end := strings.IndexAny(s, " \t\r\n*,;")
	if end < 0 {
		end = len(s)
	}
	if end == 0 {
		return "", false, s, false
	}
	return s[:end], false, s[end:], true
}

func containsFold(s, lower string) bool { return indexFold(s, lower) >= 0 }

// noKeyMultiStatement is the NoKeyReason of a text of several statements.
const noKeyMultiStatement = "several statements in one query"

// keyCache maps statement text to its extraction (textCache: lock-free
// hits, second-chance sweep when it outgrows its limits).
type keyCache = textCache[keyResult]

type keyResult struct {
	sk  *ShardKeys
	err error
}

func newKeyCache(entries, bytes int) *keyCache {
	return newTextCache[keyResult](entries, bytes, keyCacheMaxText)
}
