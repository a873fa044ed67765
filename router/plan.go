package router

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/shard"
)

// The plan step of a sharded cluster: (a statement's shard keys, the
// session's routing state) → one ShardTarget. Both protocols ask it, so the
// rules (which statement may run on one shard, which must be merged from
// all, which is refused and why) are written once and tested once, with
// one table of cases for both dialects (plan_test.go). A wire package
// supplies only what its protocol holds: the values of bind parameters
// (Params), and turns the target into messages.

// ShardRouting is what a sharded cluster is planned with; built at
// (re)load, immutable once published.
type ShardRouting struct {
	Map  shard.Map
	Keys *KeyExtractor
	// Spec names the key columns (for messages).
	Spec KeySpec
	// AllowAllShardWrites: an UPDATE or DELETE without a key (or with
	// keys on several shards) runs on every shard, each in its own
	// transaction, instead of being refused.
	AllowAllShardWrites bool
	// Database is the sharded cluster's database as clients name it;
	// ShardDatabase the one database every shard's connection is in, ""
	// when they differ. A MySQL statement may name ShardDatabase and no
	// other database (see ShardKeys.Databases).
	Database, ShardDatabase string
}

// NewShardRouting is the plan of a sharded cluster of dialect d with map
// m and the key columns of spec. x is the key extractor to keep (its
// cache with it) when a reload kept the map; nil builds one.
func NewShardRouting(d Dialect, m shard.Map, spec KeySpec, allowAllShardWrites bool, x *KeyExtractor) *ShardRouting {
	if x == nil {
		x = NewKeyExtractor(d, spec)
	}
	return &ShardRouting{Map: m, Keys: x, Spec: spec, AllowAllShardWrites: allowAllShardWrites}
}

// KeyValue is a bind parameter's value read as a shard key: an integer,
// text (its bytes; text that reads as an integer counts as that integer,
// see shard.IntText), or NULL.
type KeyValue struct {
	Null bool
	Int  bool
	N    int64
	Text []byte
}

// Params reads the bind parameters of one execution of a statement:
// PostgreSQL's Bind message with the parameter types of its Parse, MySQL's
// COM_STMT_EXECUTE. n is 1-based. An error is returned to the client as
// it is (the wire package builds it in its protocol).
type Params interface {
	KeyParam(n int) (KeyValue, error)
}

// ShardSession is the session's part of a shard plan.
type ShardSession struct {
	// Key is SET switchyard.shard_key; nil when unset.
	Key *KeyRef
	// Lease is the shard of the server connection the session holds (a
	// transaction under way, or a pinned session), -1 without one; Hold
	// is what holds it, Pin why a pinned session is (for refusals).
	Lease int
	Hold  Hold
	Pin   string
	// Without a lease, what keeps a statement from running on several
	// shards, each in its own transaction (a scatter, an all-shard
	// write): InTxn, a BEGIN the proxy answered waits for its shard, or
	// the session keeps its server connection (a write on several shards
	// would not be part of it; a SELECT still runs, outside it);
	// NoAutocommit, MySQL's autocommit is off (any statement opens a
	// transaction); NotAlone, the statement is sent with others in one
	// request (PostgreSQL's extended protocol), of which only a lone one
	// is merged from several shards.
	InTxn, NoAutocommit, NotAlone bool
	// KeyTypes tells the types of key columns, for MySQL keys written as
	// text; nil: such keys are their bytes.
	KeyTypes KeyTypes
}

// KeyTypes reports whether column (the shard key column of table, as the
// statement names it) holds numbers. MySQL compares text with a numeric
// column as the number the text starts with ('5abc' is 5, 'abc' and the
// empty string 0, with a warning) and stores it so outside strict mode, so a key
// written as text that is no number whole must be routed as that number
// when the column is numeric, and as its bytes when the column is text.
// The wire layer answers from the server's information_schema, once per
// table and map.
type KeyTypes func(table, column string) (numeric bool, err error)

// Hold is why a session keeps its server connection (its lease) between
// statements or transactions, one of a closed set: both wires keep their
// session's state in it (the checks "may the lease end", "may the
// connection serve another client", "may a read go to a replica" read
// it), and the plan words its refusals by it.
type Hold uint8

const (
	HoldNone    Hold = iota // transaction pooling: the lease ends with the transaction (in one, the refusals say "a transaction")
	HoldTxn                 // a transaction is under way (MySQL: SERVER_STATUS_IN_TRANS)
	HoldSession             // session pooling: the client owns the connection
	HoldPinned              // state on it the proxy cannot carry over (ShardSession.Pin)
	HoldNextTxn             // MySQL: a SET TRANSACTION or USE for the next command is on it
)

// heldBy names what holds the session's lease, for refusals.
func (s ShardSession) heldBy() string {
	switch s.Hold {
	case HoldSession:
		return "a session that keeps its server connection (session pooling)"
	case HoldPinned:
		return "a session pinned to its server connection (" + s.Pin + ")"
	case HoldNextTxn:
		return "a session that keeps its server connection (SET TRANSACTION for the next transaction)"
	}
	return "a transaction"
}

// ShardTarget is where a statement of a sharded cluster goes: AnyShard,
// OneShard, ScatterShards, WriteShards or Refused.
type ShardTarget interface {
	Target
	isShardTarget()
}

// AnyShard: the statement reads no sharded table (SELECT 1, SET, SHOW,
// a query of the catalogs, which every shard holds alike): it runs on the
// shard of the session's lease, or on shard 0, so that consecutive
// catalog queries (psql's \d reads an oid, then asks about it) see one
// server.
type AnyShard struct{}

// OneShard: every row the statement touches lives on Shard.
type OneShard struct{ Shard int }

// ScatterShards: a SELECT to run on Shards (nil: every shard) and merge
// as Keys says (its Mergeable is true).
type ScatterShards struct {
	Shards []int
	Keys   *ShardKeys
}

// WriteShards: an UPDATE or DELETE to run on Shards (nil: every shard),
// each in its own transaction (allow_all_shard_writes).
type WriteShards struct{ Shards []int }

// Refused: the statement cannot be run correctly; Reason says why, in
// words for the client. Code picks the error class.
type Refused struct {
	Code   RefuseCode
	Reason string
}

// RefuseCode is the class of a refusal; each protocol maps it to its
// codes.
type RefuseCode uint8

const (
	// RefuseUnsupported: valid SQL the proxy cannot run on a sharded
	// cluster (SQLSTATE 0A000, MySQL 1235).
	RefuseUnsupported RefuseCode = iota
	// RefuseSyntax: a malformed switchyard: hint (42601, MySQL 1064).
	RefuseSyntax
)

func (AnyShard) isTarget()      {}
func (OneShard) isTarget()      {}
func (ScatterShards) isTarget() {}
func (WriteShards) isTarget()   {}
func (Refused) isTarget()       {}

func (AnyShard) isShardTarget()      {}
func (OneShard) isShardTarget()      {}
func (ScatterShards) isShardTarget() {}
func (WriteShards) isShardTarget()   {}
func (Refused) isShardTarget()       {}

var (
	_ ShardTarget = AnyShard{}
	_ ShardTarget = OneShard{}
	_ ShardTarget = ScatterShards{}
	_ ShardTarget = WriteShards{}
	_ ShardTarget = Refused{}
)

func refuse(format string, args ...any) Refused {
	return Refused{Code: RefuseUnsupported, Reason: fmt.Sprintf(format, args...)}
}

// errParam carries a Params error through the plan unchanged.
type errParam struct{ err error }

func (e errParam) Error() string { return e.err.Error() }
func (e errParam) Unwrap() error { return e.err }

// PlanShard decides where sql goes. params is nil when the statement has
// no bind values (a simple query, or a statement only being prepared: a
// key that is a parameter then names no shard yet). The error is one of
// params' own, to be returned to the client as it is; the ShardKeys are
// nil only when the hint of sql is malformed (then the target is Refused).
func (r *ShardRouting) PlanShard(sql string, params Params, sess ShardSession) (ShardTarget, *ShardKeys, error) {
	sk, err := r.Keys.Extract(sql)
	if err != nil {
		return Refused{Code: RefuseSyntax, Reason: err.Error()}, nil, nil
	}
	for _, db := range sk.Databases {
		if db != r.ShardDatabase {
			return r.namedDatabase(db), sk, nil
		}
	}
	t, err := r.plan(sql, sk, params, sess.Key, sess.KeyTypes)
	if err != nil {
		var pe errParam
		if errors.As(err, &pe) {
			return nil, sk, pe.err
		}
		return refuse("cannot route by shard key: %v", err), sk, nil
	}
	if sess.Lease >= 0 {
		t = r.inLease(t, sk, sess)
	} else {
		t = r.severalHere(t, sk, sess)
	}
	return t, sk, nil
}

// namedDatabase refuses a statement that names database db, which is not
// the database of every shard's connection: the name would either fail
// there (the sharded database, when the shards' databases are named
// otherwise) or read and write another database past the shard map (a
// shard's own, orders_0.orders, counted on whichever shard the statement
// goes to).
func (r *ShardRouting) namedDatabase(db string) Refused {
	if db == r.Database {
		return refuse("database %s is sharded: name its tables without the database (%s.t is t); each shard's connection is in that shard's own database, which has another name", db, db)
	}
	return refuse("database %s is sharded: its statements may name only its own tables, not another database's (%s); the shards' own databases are reached through it by the shard key, or with /* switchyard:shard=N */ and unqualified names", r.Database, db)
}

// severalHere refuses a statement on several shards, each in its own
// transaction, where the session cannot run one (ShardSession.InTxn,
// NoAutocommit, NotAlone).
func (r *ShardRouting) severalHere(t ShardTarget, sk *ShardKeys, sess ShardSession) ShardTarget {
	var shards []int
	switch t := t.(type) {
	case ScatterShards:
		if sess.InTxn && sk.Locks {
			// Each shard would run it in autocommit, outside the
			// client's transaction: its locks would end with it.
			return refuse("a SELECT ... FOR UPDATE/SHARE without the shard key inside a transaction would run on every shard outside the transaction and hold no locks; name the key")
		}
		if !sess.NoAutocommit && !sess.NotAlone {
			return t
		}
		shards = t.Shards
	case WriteShards:
		if !sess.InTxn && !sess.NoAutocommit && !sess.NotAlone {
			return t
		}
		shards = t.Shards
	default:
		return t
	}
	what, where := "without the shard key", "every shard"
	if shards != nil {
		what, where = "with keys on several shards", "shards "+joinInts(shards)
	}
	stmt := strings.ToUpper(sk.Kind.String())
	switch {
	case sk.Kind == StmtSelect && sess.NoAutocommit:
		return refuse("a SELECT %s runs on %s, which needs autocommit on", what, where)
	case sk.Kind == StmtSelect:
		return refuse("a SELECT %s runs on %s, which is supported for one statement at a time, outside a transaction", what, where)
	case sess.NotAlone && !sess.InTxn && !sess.NoAutocommit:
		return refuse("%s on %s %s runs on %s, each in its own transaction: only when sent alone (one statement, one Sync), outside a transaction", stmt, sk.Table, what, where)
	}
	return refuse("%s on %s %s runs on %s, each in its own transaction: only in autocommit, outside a transaction; name the key, or send it outside the transaction", stmt, sk.Table, what, where)
}

// inLease keeps a statement on the shard of the session's lease: its
// server transaction (or pinned connection) cannot follow it elsewhere.
func (r *ShardRouting) inLease(t ShardTarget, sk *ShardKeys, sess ShardSession) ShardTarget {
	switch t := t.(type) {
	case OneShard:
		if t.Shard != sess.Lease {
			return refuse("%s is on shard %d, and this statement is for shard %d: it must stay on one shard (commit first, or route the statement with its own connection)",
				sess.heldBy(), sess.Lease, t.Shard)
		}
	case ScatterShards, WriteShards:
		what := "without the shard key"
		if !sk.None {
			what = "with keys on several shards"
		}
		return refuse("%s %s inside %s would need several shards; it is on shard %d", strings.ToUpper(sk.Kind.String()), what, sess.heldBy(), sess.Lease)
	}
	return t
}

func (r *ShardRouting) plan(sql string, sk *ShardKeys, params Params, sessKey *KeyRef, kt KeyTypes) (ShardTarget, error) {
	m := r.Map
	if sk.ShardHint >= 0 {
		if sk.ShardHint >= m.Shards() {
			return refuse("switchyard:shard=%d: the cluster has %d shards (0 to %d)", sk.ShardHint, m.Shards(), m.Shards()-1), nil
		}
		return OneShard{sk.ShardHint}, nil
	}
	if sk.Hint != nil {
		s, err := r.keyShard(*sk.Hint, params, nil)
		if err != nil {
			return nil, err
		}
		return OneShard{s}, nil
	}
	if sk.SetsKey {
		return refuse("the statement changes the shard key column of %s, which could move rows to another shard; delete and insert the row instead", sk.Table), nil
	}
	subs := sk.SubNoKey != "" || len(sk.SubKeys) > 0 || len(sk.JoinKeys) > 0
	keys := sk.Keys
	if sk.None {
		switch {
		case sessKey != nil && !sk.MultiStatement:
			keys = []KeyRef{*sessKey}
		case sk.SubNoKey != "":
			return refuse("%s", sk.SubNoKey+": it would be answered from one shard's rows; name the key inside the subquery (WHERE "+r.keyColumn(sk.SubTable)+" = ...), or the shard with /* switchyard:shard=N */"), nil
		case subs && sk.TopTables:
			return refuse("%s on sharded table %s without its shard key, with a subquery that reads a sharded table: it would run on several shards, whose answers cannot be combined; name the key in the statement and the subquery",
				strings.ToUpper(sk.Kind.String()), sk.Table), nil
		case subs:
			keys = nil // a derived table or subquery alone: its keys decide
		default:
			return r.noKey(sql, sk), nil
		}
	} else if sk.SubNoKey != "" {
		return refuse("%s", sk.SubNoKey+": the statement names a key, but the subquery would be answered from that shard's rows only; name the same key inside the subquery"), nil
	}
	keys = append(keys[:len(keys):len(keys)], sk.SubKeys...)
	keys = append(keys, sk.JoinKeys...)
	var shards []int
	multi := false
	for _, k := range keys {
		if k.Param > 0 && params == nil {
			return AnyShard{}, nil // prepared, not executed: its values come later
		}
		s, err := r.keyShard(k, params, kt)
		if err != nil {
			return nil, err
		}
		if len(shards) > 0 && s != shards[0] {
			multi = true
		}
		shards = append(shards, s)
	}
	switch {
	case len(shards) == 0:
		return AnyShard{}, nil
	case !multi:
		return OneShard{shards[0]}, nil
	}
	route, _ := shard.Collect(m, shards)
	list := route.(shard.Multi).Shards
	switch {
	case subs:
		return refuse("the statement and its subqueries or joined tables name keys on shards %s; a subquery or join is answered from the statement's shard only, so every key must be on one shard", joinInts(list)), nil
	case sk.Kind == StmtInsert:
		return refuse("INSERT into %s writes rows of several shards (%s); insert the rows of each shard separately", sk.Table, joinInts(list)), nil
	case sk.Kind == StmtSelect:
		if !sk.Mergeable {
			return r.unmergeable(sk), nil
		}
		return ScatterShards{Shards: list, Keys: sk}, nil
	case !r.AllowAllShardWrites:
		return refuse("%s on %s touches shards %s; split it per shard (or set allow_all_shard_writes)", strings.ToUpper(sk.Kind.String()), sk.Table, joinInts(list)), nil
	}
	return WriteShards{Shards: list}, nil
}

// noKey plans a statement that names no key and reads no sharded table
// in a subquery.
func (r *ShardRouting) noKey(sql string, sk *ShardKeys) ShardTarget {
	// SQL-level prepared statements: the statement an EXECUTE runs is not
	// in its text, so it cannot be planned, and would run on one shard
	// whatever it reads (a count(*) of one shard's rows).
	switch w := FirstWord(sql); w {
	case "prepare", "execute":
		return refuse("%s on a sharded cluster: the statement it runs is not in the text the proxy plans, so it would run on one shard only; use the protocol's prepared statements (the extended query protocol, COM_STMT_PREPARE), or name the shard with /* switchyard:shard=N */", strings.ToUpper(w))
	}
	switch sk.Kind {
	case StmtInsert:
		return refuse("INSERT on sharded table %s without its shard key (%s: %s): name the key column and give it a value per row",
			sk.Table, r.keyColumn(sk.Table), sk.NoKeyReason)
	case StmtUpdate, StmtDelete:
		if r.AllowAllShardWrites {
			return WriteShards{}
		}
		return refuse("%s on sharded table %s without its shard key (%s: %s) would run on every shard: add WHERE %s = ..., or set allow_all_shard_writes = true in [clusters.sharding]",
			strings.ToUpper(sk.Kind.String()), sk.Table, r.keyColumn(sk.Table), sk.NoKeyReason, r.keyColumn(sk.Table))
	case StmtSelect:
		switch {
		case sk.Catalog || sk.Table == "":
			return AnyShard{}
		case !sk.Mergeable:
			return r.unmergeable(sk)
		}
		return ScatterShards{Keys: sk}
	}
	if sk.MultiStatement {
		return refuse("several statements in one query on a sharded cluster: send them one by one, or name the shard with /* switchyard:shard=N */")
	}
	if sk.ParseError != "" {
		// A query or a DML statement the parser cannot read: which shards
		// it touches is not known, and one shard's answer (or change)
		// would pass for the whole table's.
		switch FirstWord(sql) {
		case "select", "insert", "update", "delete", "replace", "with", "values", "table", "(":
			return refuse("the proxy's SQL parser cannot read this statement (%s), so it cannot tell which shards it reads or writes: write it so the parser reads it, or name the shard with /* switchyard:shard=N */", sk.ParseError)
		}
	}
	// Statements that change every shard's schema or data but name no
	// key would run on one shard only, silently.
	switch w := FirstWord(sql); w {
	case "copy", "merge", "truncate", "do", "call", "create", "alter", "drop", "rename", "load", "grant", "revoke",
		"optimize", "repair", "analyze", "vacuum", "reindex", "cluster", "comment", "security", "import", "refresh":
		if sk.Catalog {
			break
		}
		return refuse("%s on a sharded cluster would run on one shard only: name it with /* switchyard:shard=N */ (once per shard)", strings.ToUpper(w))
	}
	return AnyShard{}
}

func (r *ShardRouting) unmergeable(sk *ShardKeys) Refused {
	return refuse("SELECT on sharded table %s without one shard key (%s) would run on several shards, and its results cannot be merged: %s; add WHERE %s = ... or name the shard with /* switchyard:shard=N */",
		sk.Table, r.keyColumn(sk.Table), sk.MergeReason, r.keyColumn(sk.Table))
}

// KeyShard maps a key to its shard; a parameter's value comes from
// params. The error is params' own (errParam) or the map's.
func (r *ShardRouting) KeyShard(k KeyRef, params Params) (int, error) {
	s, err := r.keyShard(k, params, nil)
	var pe errParam
	if errors.As(err, &pe) {
		return 0, pe.err
	}
	return s, err
}

func (r *ShardRouting) keyShard(k KeyRef, params Params, kt KeyTypes) (int, error) {
	if k.Param == 0 {
		if text, ok := k.Literal.(string); ok {
			if n, numeric, err := r.numericText(text, k.Table, kt); err != nil || numeric {
				return n, err
			}
		}
		return r.Map.ShardOf(k.Literal)
	}
	if params == nil {
		return 0, fmt.Errorf("the shard key is parameter %d, and the statement has no parameter values", k.Param)
	}
	v, err := params.KeyParam(k.Param)
	switch {
	case err != nil:
		return 0, errParam{err}
	case v.Null:
		return 0, shard.ErrNullKey
	case v.Int:
		return r.Map.ShardOfInt(v.N)
	}
	if n, numeric, err := r.numericText(string(v.Text), k.Table, kt); err != nil || numeric {
		return n, err
	}
	return r.Map.ShardOfBytes(v.Text)
}

// numericText routes a key written as text that is no number whole
// ('5abc', 'abc', empty) when kt says its table's key column is numeric: as
// the number MySQL reads from it (shard.NumberPrefix). numeric is false
// when the text is to be routed as the map reads it (a number whole, or a
// text column, or no kt).
func (r *ShardRouting) numericText(text, table string, kt KeyTypes) (shardIndex int, numeric bool, err error) {
	if kt == nil || table == "" {
		return 0, false, nil
	}
	if _, kind := shard.IntText(text); kind != shard.NotNumber {
		return 0, false, nil
	}
	isNum, err := kt(table, r.keyColumn(table))
	if err != nil || !isNum {
		return 0, false, err
	}
	num := shard.NumberPrefix(text)
	n, kind := shard.IntText(num)
	if kind != shard.Integer {
		return 0, true, &shard.KeyError{Key: strconv.Quote(text), Err: fmt.Errorf("%w: the server reads it as the number %s, which is not a whole int64", shard.ErrKeyType, num)}
	}
	s, err := r.Map.ShardOfInt(n)
	return s, true, err
}

// keyColumn names the key column of table, for messages.
func (r *ShardRouting) keyColumn(table string) string {
	if k, ok := r.Spec.Tables[table]; ok {
		return k
	}
	for t, k := range r.Spec.Tables {
		if strings.EqualFold(t, table) || strings.HasSuffix(strings.ToLower(t), "."+strings.ToLower(table)) {
			return k
		}
	}
	return r.Spec.Default
}

func joinInts(xs []int) string {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(x))
	}
	return b.String()
}

// FirstWord is the first keyword of sql, lower case, after blanks,
// comments (not MySQL's executable /*! */ ones) and opening parentheses.
func FirstWord(sql string) string {
	sql = strings.TrimLeft(StripLeadingComments(sql), "(")
	end := 0
	for end < len(sql) && (sql[end] >= 'a' && sql[end] <= 'z' || sql[end] >= 'A' && sql[end] <= 'Z' || sql[end] == '_') {
		end++
	}
	return strings.ToLower(sql[:end])
}

// StripLeadingComments drops blanks and comments (--, #, /* */, but not
// MySQL's executable /*! */ and /*M! */) before the first word.
func StripLeadingComments(sql string) string {
	for {
		sql = strings.TrimLeft(sql, " \t\r\n(")
		switch {
		case strings.HasPrefix(sql, "--") || strings.HasPrefix(sql, "#"):
			i := strings.IndexByte(sql, '\n')
			if i < 0 {
				return ""
			}
			sql = sql[i+1:]
		case strings.HasPrefix(sql, "/*") && !strings.HasPrefix(sql, "/*!") && !strings.HasPrefix(sql, "/*M!"):
			i := strings.Index(sql, "*/")
			if i < 0 {
				return ""
			}
			sql = sql[i+2:]
		default:
			return sql
		}
	}
}
