package scatter

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The text-order policy: text that a merge compares (ORDER BY, MIN, MAX)
// is merged only when the proxy orders it exactly as the server does; the
// collation of each such column is looked up on the first shard (the
// shards share one schema) in one catalog query, because neither
// protocol's row description says it reliably (a MySQL column definition
// carries the connection's result charset). Anything the proxy cannot
// reproduce stays TextUnknown, and the merge is refused with the reason
// rather than answered in another order than one database (issue 13).

// TextColumn says where a text column of a result comes from, for the
// lookup of its collation: a table's column, or an expression (the zero
// Rel and Table), whose collation is that of what it is made of.
type TextColumn struct {
	// PostgreSQL: the column's table (pg_attribute.attrelid) and number.
	Rel uint32
	Att int16
	// MySQL: the column's schema, table and name.
	Schema, Table, Column string
	// TrimSpace: trailing spaces do not count (PostgreSQL char(n), whose
	// text form is padded with them).
	TrimSpace bool
}

func (t TextColumn) expr() bool { return t.Rel == 0 && t.Table == "" }

// OrderText is c with every text column ordered as o, as if the lookup
// had found that collation: for tests of a codec.
func OrderText(c Codec, o TextOrder) Codec {
	t := newTextCodec(c, func(name string, _ TextOrder, _ string) error {
		return mergeError("column %s: text not ordered", name)
	})
	for k := range t.order {
		t.order[k] = o
	}
	return t
}

// textCodec is a codec whose text columns order as their collations,
// looked up by textOrders; the codec itself is asked about other columns
// only.
type textCodec struct {
	Codec
	order  []TextOrder
	coll   []string // the collation's name, for the refusal
	refuse func(name string, o TextOrder, coll string) error
}

func newTextCodec(c Codec, refuse func(string, TextOrder, string) error) *textCodec {
	return &textCodec{Codec: c, order: make([]TextOrder, c.Columns()), coll: make([]string, c.Columns()), refuse: refuse}
}

func (c *textCodec) Key(k int, v []byte) (Key, error) {
	t, ok := c.Text(k)
	if !ok {
		return c.Codec.Key(k, v)
	}
	if t.TrimSpace {
		v = bytes.TrimRight(v, " ")
	}
	if key, ok := TextKey(c.order[k], v); ok {
		return key, nil
	}
	return Key{}, c.refuse(c.Name(k), c.order[k], c.coll[k])
}

// dialect is a server's side of the text-order policy.
type dialect struct {
	// query asks, in one round trip, for 3 values of the database or the
	// connection and one per column of cols.
	query func(cols []TextColumn, sql string) string
	// orders reads its answer.
	orders func(vals [][]byte, cols []TextColumn, sql string) ([]TextOrder, []string)
	refuse func(name string, o TextOrder, coll string) error
}

var dialects = map[string]dialect{
	"postgres": {pgTextQuery, pgTextOrders, pgRefuse},
	"mysql":    {myTextQuery, myTextOrders, myRefuse},
}

// textOrders wraps c so that the text columns r's merge compares order as
// their collations, looked up on r's first shard.
func textOrders(r Request, sh Shards, c Codec) (Codec, error) {
	d, ok := dialects[r.Protocol]
	if !ok {
		d.refuse = func(name string, _ TextOrder, _ string) error {
			return mergeError("column %s is text, whose collation the proxy cannot tell", name)
		}
	}
	tc := newTextCodec(c, d.refuse)
	var need []int
	var cols []TextColumn
	for _, k := range r.Spec.Compared(c) {
		if t, ok := c.Text(k); ok {
			need, cols = append(need, k), append(cols, t)
		}
	}
	if len(need) == 0 || !ok {
		return tc, nil
	}
	vals, err := sh.Lookup(r.Shards[0], d.query(cols, r.SQL))
	if err != nil {
		return nil, err
	}
	if len(vals) != 3+len(need) {
		return nil, mergeError("a SELECT run on several shards compares text, and the proxy could not look up its collation on shard %d", r.Shards[0])
	}
	orders, colls := d.orders(vals, cols, r.SQL)
	for j, k := range need {
		tc.order[k], tc.coll[k] = orders[j], colls[j]
	}
	return tc, nil
}

// PostgreSQL: a column of a table has its collation (the database's
// default one, or its own), and an expression (min(name), a CASE) has the
// collation of what it is made of. An expression counts as byte order
// only when the database's default collation is C or POSIX, no column or
// domain in the database has a collation other than those, and the
// statement says no COLLATE: then nothing it is made of can order
// otherwise.

// pgByteOrder is SQL true for a pg_collation row co that orders text as
// its bytes: libc's C and POSIX (ucs_basic is one), the builtin
// provider's C and C.UTF-8 (code points: the bytes of UTF-8).
const pgByteOrder = `coalesce(co.collprovider = 'b' OR co.collprovider = 'c' AND co.collcollate IN ('C', 'POSIX'), false)`

func pgTextQuery(cols []TextColumn, _ string) string {
	// The database's default collation; whether every column and domain
	// is in a byte-order one (only for an expression: it scans the
	// catalog, about 2 ms); each table column's.
	q := `SELECT (SELECT coalesce(to_jsonb(d)->>'datlocprovider', 'c') = 'b' OR coalesce(to_jsonb(d)->>'datlocprovider', 'c') = 'c' AND d.datcollate IN ('C', 'POSIX') FROM pg_database d WHERE d.datname = current_database()),
 (SELECT d.datcollate FROM pg_database d WHERE d.datname = current_database()), `
	if slices.ContainsFunc(cols, TextColumn.expr) {
		q += `NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attcollation NOT IN (0, 100, 950, 951) AND NOT a.attisdropped AND a.attcollation NOT IN (SELECT co.oid FROM pg_collation co WHERE ` + pgByteOrder + `))
 AND NOT EXISTS (SELECT 1 FROM pg_type t WHERE t.typcollation NOT IN (0, 100, 950, 951) AND t.typcollation NOT IN (SELECT co.oid FROM pg_collation co WHERE ` + pgByteOrder + `))`
	} else {
		q += "NULL"
	}
	for _, c := range cols {
		if c.Rel == 0 {
			q += ", NULL"
			continue
		}
		q += fmt.Sprintf(",\n (SELECT CASE WHEN a.attcollation = 100 THEN 'default' WHEN %s THEN 'bytes' ELSE co.collname END FROM pg_attribute a JOIN pg_collation co ON co.oid = a.attcollation WHERE a.attrelid = %d AND a.attnum = %d)",
			pgByteOrder, c.Rel, c.Att)
	}
	return q
}

func pgTextOrders(vals [][]byte, cols []TextColumn, sql string) ([]TextOrder, []string) {
	orders, colls := make([]TextOrder, len(cols)), make([]string, len(cols))
	dbBytes, dbColl, allBytes := string(vals[0]) == "t", string(vals[1]), string(vals[2]) == "t"
	hasCollate := strings.Contains(strings.ToLower(sql), "collate")
	for j, c := range cols {
		switch v := vals[3+j]; {
		case c.Rel == 0:
			if dbBytes && allBytes && !hasCollate {
				orders[j] = TextBytes
			}
		case v == nil:
			// A column the catalog does not know (dropped meanwhile).
		case string(v) == "bytes":
			orders[j] = TextBytes
		case string(v) == "default":
			if dbBytes {
				orders[j] = TextBytes
			} else {
				colls[j] = dbColl
			}
		default:
			colls[j] = string(v)
		}
	}
	return orders, colls
}

func pgRefuse(name string, _ TextOrder, coll string) error {
	what := "whose collation the proxy cannot tell (an expression; the database or a column has a collation other than C, or the statement says COLLATE)"
	if coll != "" {
		what = "in collation " + strconv.Quote(coll)
	}
	return mergeError("column %q is text %s: across shards the proxy merges ORDER BY, MIN and MAX of text only in a byte-order collation (C or POSIX), as one database would order it; add the shard key, or define the column with COLLATE \"C\"", name, what)
}

// MySQL: a table's column has its collation in
// information_schema.COLUMNS; an expression (MIN(note), a CASE) has the
// collation of what it is made of, known only when every string column
// of the schemas the statement names and the connection's collation are
// one collation and the statement converts nothing (COLLATE, CONVERT,
// CAST, an introducer).

func myTextQuery(cols []TextColumn, sql string) string {
	hexStr := func(v string) string { return fmt.Sprintf("CONVERT(X'%x' USING utf8mb4)", v) }
	// The connection's charsets; the collations of the schemas' columns
	// (only for an expression: it reads every table's definition); each
	// table column's.
	q := "SELECT @@character_set_results, @@collation_connection, NULL"
	if slices.ContainsFunc(cols, TextColumn.expr) && !convertsText(sql) {
		text := "LOWER(" + hexStr(sql) + ")"
		q = "SELECT @@character_set_results, @@collation_connection, (SELECT GROUP_CONCAT(DISTINCT COLLATION_NAME) FROM information_schema.COLUMNS WHERE COLLATION_NAME IS NOT NULL AND (TABLE_SCHEMA = DATABASE() OR INSTR(" +
			text + ", CONCAT(LOWER(TABLE_SCHEMA), '.')) > 0 OR INSTR(" + text + ", CONCAT(LOWER(TABLE_SCHEMA), '`.')) > 0))"
	}
	for _, c := range cols {
		if c.Table == "" {
			q += ", NULL"
			continue
		}
		q += fmt.Sprintf(", (SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND COLUMN_NAME = %s)",
			hexStr(c.Schema), hexStr(c.Table), hexStr(c.Column))
	}
	return q
}

func myTextOrders(vals [][]byte, cols []TextColumn, sql string) ([]TextOrder, []string) {
	orders, colls := make([]TextOrder, len(cols)), make([]string, len(cols))
	utf8Results := vals[0] == nil || strings.HasPrefix(strings.ToLower(string(vals[0])), "utf8")
	// One collation for every expression: the columns' and the
	// connection's, when the statement converts nothing.
	var exprColl string
	if set := strings.Split(string(vals[2]), ","); slices.ContainsFunc(cols, TextColumn.expr) && !convertsText(sql) &&
		(vals[2] == nil || len(set) == 1 && strings.EqualFold(set[0], string(vals[1]))) {
		exprColl = string(vals[1])
	}
	for j, c := range cols {
		coll := string(vals[3+j])
		if vals[3+j] == nil || c.Table == "" {
			coll = exprColl
		}
		orders[j], colls[j] = MySQLTextOrder(coll, utf8Results), coll
	}
	return orders, colls
}

// MySQLTextOrder says how a MySQL collation orders text received in the
// result charset utf8 (whether the connection's results are UTF-8).
// Collations not named here (UCA: _unicode_ci, _uca1400_, _0900_;
// case-sensitive _cs; the national ones) have weights the proxy does not
// reproduce.
func MySQLTextOrder(coll string, utf8Results bool) TextOrder {
	coll = strings.ToLower(coll)
	switch {
	case coll == "binary":
		return TextBytes
	case coll == "utf8mb4_general_ci", coll == "utf8mb3_general_ci", coll == "utf8_general_ci",
		coll == "latin1_swedish_ci", coll == "ascii_general_ci":
		// Their weights for ASCII are its upper case (checked against
		// the server by mysqlwire's TestTextOrderMySQL); other text is
		// refused.
		return TextFoldASCII
	case !utf8Results:
	case coll == "utf8mb4_nopad_bin", coll == "utf8mb3_nopad_bin", coll == "utf8mb4_0900_bin":
		// Code points, whose order is the order of their UTF-8 bytes.
		return TextBytes
	case coll == "utf8mb4_bin", coll == "utf8mb3_bin", coll == "utf8_bin", coll == "ascii_bin":
		return TextPadSpace
	}
	return TextUnknown
}

// convertsText reports a MySQL statement that may give text another
// collation or charset than its columns' (COLLATE, CONVERT ... USING,
// CAST, BINARY, an introducer such as _latin1'x').
func convertsText(sql string) bool {
	l := strings.ToLower(sql)
	for _, w := range []string{"collate", "convert", "cast", "binary", "using", "charset", "_utf8", "_latin", "_ascii", "_binary", "_ucs", "_utf"} {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

func myRefuse(name string, o TextOrder, coll string) error {
	if o == TextFoldASCII {
		return mergeError("column %s has non-ASCII text, which the proxy cannot order across shards as collation %s does; add the shard key", name, coll)
	}
	what := "whose collation the proxy cannot tell (an expression, and the tables or the connection use several collations, or the statement names one)"
	if coll != "" {
		what = "in collation " + coll
	}
	return mergeError("column %s is text %s: across shards the proxy merges ORDER BY, MIN and MAX of text only in a _bin or binary collation, or in a _general_ci one for ASCII text, as one database would order it; add the shard key", name, what)
}
