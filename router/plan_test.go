package router

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/shard"
)

type testParams []*KeyValue

func (p testParams) KeyParam(n int) (KeyValue, error) {
	if n > len(p) {
		return KeyValue{}, fmt.Errorf("parameter %d missing", n)
	}
	if p[n-1] == nil {
		return KeyValue{Null: true}, nil
	}
	return *p[n-1], nil
}

// TestPlanShard is the one table of shard plans both protocols share: each
// case runs as PostgreSQL and as MySQL ($n becomes ?), and must plan the
// same target in both.
func TestPlanShard(t *testing.T) {
	m, _ := shard.NewHash(2, 1024, 1)
	keyOn := func(s int) int64 {
		for k := int64(1); ; k++ {
			if got, _ := m.ShardOfInt(k); got == s {
				return k
			}
		}
	}
	k0, k1 := keyOn(0), keyOn(1)
	text := func(s string) *KeyValue { return &KeyValue{Text: []byte(s)} }
	sessK1 := &KeyRef{Literal: k1}
	type want struct {
		target  ShardTarget
		refused string // a Refused whose Reason contains this
	}
	one := func(s int) want { return want{target: OneShard{s}} }
	refused := func(why string) want { return want{refused: why} }
	for _, c := range []struct {
		sql    string
		pg, my string // dialect-specific text, when the shared one does not parse in both
		params Params
		sess   ShardSession
		leased bool // sess.Lease 0 is shard 0 (else 0 means none)
		allow  bool
		want   want
	}{
		{sql: "SELECT * FROM orders WHERE customer_id = {k1}", want: one(1)},
		{sql: "SELECT * FROM orders WHERE customer_id = '0{k1}'", want: one(1)},
		{sql: "SELECT * FROM orders WHERE customer_id = ' +{k1}'", want: one(1)},
		{sql: "SELECT * FROM orders WHERE customer_id = '4.5'", want: refused("not a whole int64")},
		{sql: "SELECT * FROM orders", want: want{target: ScatterShards{}}},
		{sql: "SELECT * FROM orders WHERE customer_id IN ({k0}, {k1})", want: want{target: ScatterShards{Shards: []int{0, 1}}}},
		{sql: "SELECT customer_id, count(*) FROM orders GROUP BY customer_id", want: refused("GROUP BY")},
		{sql: "INSERT INTO orders (customer_id, amount) VALUES ({k0}, 1)", want: one(0)},
		{sql: "INSERT INTO orders (customer_id, amount) VALUES ('0{k0}', 1)", want: one(0)},
		{sql: "INSERT INTO orders (amount) VALUES (1)", want: refused("INSERT on sharded table orders without its shard key")},
		{sql: "INSERT INTO orders (customer_id, amount) VALUES ({k0}, 1), ({k1}, 2)", want: refused("writes rows of several shards (0, 1)")},
		{sql: "UPDATE orders SET amount = 1", want: refused("would run on every shard")},
		{sql: "UPDATE orders SET amount = 1", allow: true, want: want{target: WriteShards{}}},
		{sql: "DELETE FROM orders WHERE customer_id IN ({k0}, {k1})", want: refused("touches shards 0, 1")},
		{sql: "DELETE FROM orders WHERE customer_id IN ({k0}, {k1})", allow: true, want: want{target: WriteShards{Shards: []int{0, 1}}}},
		{sql: "UPDATE orders SET customer_id = 5 WHERE customer_id = {k0}", want: refused("changes the shard key column")},
		// Subqueries run where their statement runs.
		{sql: "SELECT count(*) FROM (SELECT * FROM orders) s", want: refused("a subquery reads sharded table orders without its shard key")},
		{sql: "SELECT (SELECT count(*) FROM orders)", want: refused("subquery")},
		{sql: "WITH o AS (SELECT * FROM orders) SELECT count(*) FROM o", want: refused("subquery")},
		{sql: "SELECT 1 FROM (SELECT 1) x WHERE EXISTS (SELECT 1 FROM orders)", want: refused("subquery")},
		{sql: "SELECT count(*) FROM (SELECT * FROM orders WHERE customer_id = {k1}) s", want: one(1)},
		{sql: "SELECT 1 FROM (SELECT 1) x WHERE EXISTS (SELECT 1 FROM orders WHERE customer_id = {k1})", want: one(1)},
		{sql: "SELECT * FROM orders WHERE customer_id = {k0} AND EXISTS (SELECT 1 FROM orders o2 WHERE o2.customer_id = {k1})", want: refused("shards 0, 1")},
		{sql: "SELECT * FROM orders WHERE customer_id = {k0} AND amount < (SELECT max(amount) FROM orders)", want: refused("subquery")},
		{sql: "SELECT * FROM orders WHERE customer_id = {k1} AND amount < (SELECT max(amount) FROM orders WHERE customer_id = {k1})", want: one(1)},
		{sql: "SELECT * FROM orders WHERE amount < (SELECT max(amount) FROM orders WHERE customer_id = {k1})", want: refused("with a subquery that reads a sharded table")},
		{sql: "UPDATE orders SET amount = 0 WHERE customer_id = {k0} AND amount < (SELECT max(amount) FROM orders)", want: refused("subquery")},
		// Catalogs: one shard.
		{sql: "SELECT * FROM information_schema.tables WHERE table_name = 'orders'", want: want{target: AnyShard{}}},
		{pg: "SELECT c.oid, n.nspname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'orders' ORDER BY 2",
			my:   "SELECT c.column_name FROM information_schema.columns c JOIN information_schema.tables t USING (table_name) WHERE t.table_name = 'orders'",
			want: want{target: AnyShard{}}},
		{pg: "SELECT a.attname, (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid) FROM pg_catalog.pg_attribute a WHERE a.attrelid = '16385'",
			my:   "SELECT column_name FROM information_schema.columns WHERE table_name IN (SELECT table_name FROM information_schema.tables)",
			want: want{target: AnyShard{}}},
		{sql: "SELECT count(*) FROM orders o, information_schema.tables t", want: refused("cannot be merged")},
		{sql: "SELECT 1", want: want{target: AnyShard{}}},
		{sql: "SET search_path = public", my: "SET sql_mode = ''", want: want{target: AnyShard{}}},
		{sql: "CREATE TABLE x (a int)", want: refused("CREATE on a sharded cluster would run on one shard only")},
		{sql: "SELECT 1; SELECT 2", want: refused("several statements")},
		// SQL-level PREPARE and EXECUTE: the statement that runs is not in
		// the EXECUTE's text, so it cannot be planned; it ran on one shard
		// (count(*) answered 1022 where the shards hold 2012 rows).
		{pg: "PREPARE p AS SELECT count(*) FROM orders", my: "PREPARE p FROM 'SELECT count(*) FROM orders'", want: refused("PREPARE on a sharded cluster")},
		{pg: "EXECUTE p", my: "EXECUTE p", want: refused("EXECUTE on a sharded cluster")},
		{pg: "EXECUTE p({k1})", my: "EXECUTE p USING @k", want: refused("EXECUTE on a sharded cluster")},
		{pg: "execute p", my: "EXECUTE IMMEDIATE 'SELECT count(*) FROM orders'", want: refused("EXECUTE on a sharded cluster")},
		{sql: "/* switchyard:shard=1 */ EXECUTE p", want: one(1)},
		// Hints and the session's key.
		{sql: "/* switchyard:shard=1 */ SELECT * FROM orders", want: one(1)},
		{sql: "/* switchyard:shard=7 */ SELECT 1", want: refused("the cluster has 2 shards")},
		{sql: "/* switchyard:shard_key={k1} */ SELECT count(*) FROM (SELECT * FROM orders) s", want: one(1)},
		{sql: "/* switchyard:shard_key */ SELECT 1", want: refused("needs =value")},
		{sql: "SELECT * FROM orders", sess: ShardSession{Key: sessK1, Lease: -1}, want: one(1)},
		{sql: "SELECT * FROM orders WHERE customer_id = {k0}", sess: ShardSession{Key: sessK1, Lease: -1}, want: one(0)},
		// Parameters.
		{sql: "SELECT * FROM orders WHERE customer_id = $1", params: testParams{text("0{k1}")}, want: one(1)},
		{sql: "SELECT * FROM orders WHERE customer_id = $1", params: testParams{{Int: true, N: k1}}, want: one(1)},
		{sql: "SELECT * FROM orders WHERE customer_id = $1", want: want{target: AnyShard{}}},
		{sql: "SELECT * FROM orders WHERE customer_id = $1", params: testParams{nil}, want: refused("NULL shard key")},
		{sql: "INSERT INTO orders (customer_id, amount) VALUES ($1, $2), ($3, 1)", params: testParams{text("{k1}"), text("1"), text(" {k1}")}, want: one(1)},
		// A lease keeps its shard.
		{sql: "SELECT * FROM orders WHERE customer_id = {k1}", sess: ShardSession{Lease: 0}, leased: true, want: refused("a transaction is on shard 0, and this statement is for shard 1")},
		{sql: "SELECT * FROM orders WHERE customer_id = {k0}", sess: ShardSession{Lease: 0}, leased: true, want: one(0)},
		{sql: "SELECT * FROM orders", sess: ShardSession{Lease: 1}, want: refused("SELECT without the shard key inside a transaction would need several shards")},
		{sql: "SELECT 1", sess: ShardSession{Lease: 1}, want: want{target: AnyShard{}}},
		{sql: "SELECT * FROM orders WHERE customer_id = {k0}", sess: ShardSession{Lease: 1, Hold: HoldPinned, Pin: "temporary table"},
			want: refused("a session pinned to its server connection (temporary table) is on shard 1")},
		{sql: "SELECT * FROM orders", sess: ShardSession{Lease: 0, Hold: HoldSession}, leased: true, want: refused("inside a session that keeps its server connection (session pooling) would need several shards")},
		// Several shards, each in its own transaction, only where the
		// session can run them.
		{sql: "SELECT * FROM orders", sess: ShardSession{Lease: -1, InTxn: true}, want: want{target: ScatterShards{}}},
		{sql: "SELECT * FROM orders", sess: ShardSession{Lease: -1, NoAutocommit: true}, want: refused("a SELECT without the shard key runs on every shard, which needs autocommit on")},
		{sql: "SELECT * FROM orders WHERE customer_id IN ({k0}, {k1})", sess: ShardSession{Lease: -1, NotAlone: true}, want: refused("with keys on several shards runs on shards 0, 1, which is supported for one statement at a time")},
		{sql: "UPDATE orders SET amount = 1", allow: true, want: want{target: WriteShards{}}},
		{sql: "UPDATE orders SET amount = 1", allow: true, sess: ShardSession{Lease: -1, InTxn: true}, want: refused("UPDATE on orders without the shard key runs on every shard, each in its own transaction: only in autocommit, outside a transaction")},
		{sql: "DELETE FROM orders", allow: true, sess: ShardSession{Lease: -1, NoAutocommit: true}, want: refused("only in autocommit")},
		{sql: "DELETE FROM orders", allow: true, sess: ShardSession{Lease: -1, NotAlone: true}, want: refused("only when sent alone")},
		{sql: "UPDATE orders SET amount = 1 WHERE customer_id = {k0}", allow: true, sess: ShardSession{Lease: -1, InTxn: true, NotAlone: true}, want: one(0)},
	} {
		for _, d := range []Dialect{Postgres, MySQL} {
			sql := c.sql
			switch {
			case d == Postgres && c.pg != "":
				sql = c.pg
			case d == MySQL && c.my != "":
				sql = c.my
			}
			if d == MySQL {
				for i := 9; i >= 1; i-- {
					sql = strings.ReplaceAll(sql, fmt.Sprintf("$%d", i), "?")
				}
			}
			sql = strings.NewReplacer("{k0}", fmt.Sprint(k0), "{k1}", fmt.Sprint(k1)).Replace(sql)
			params := c.params
			if tp, ok := params.(testParams); ok {
				out := make(testParams, len(tp))
				for i, v := range tp {
					if v != nil && v.Text != nil {
						v = text(strings.NewReplacer("{k0}", fmt.Sprint(k0), "{k1}", fmt.Sprint(k1)).Replace(string(v.Text)))
					}
					out[i] = v
				}
				params = out
			}
			sess := c.sess
			if sess.Lease == 0 && !c.leased {
				sess.Lease = -1
			}
			r := &ShardRouting{Map: m, Keys: NewKeyExtractor(d, KeySpec{Default: "customer_id"}),
				Spec: KeySpec{Default: "customer_id"}, AllowAllShardWrites: c.allow}
			got, sk, err := r.PlanShard(sql, params, sess)
			if err != nil {
				t.Errorf("%v %q: error %v", d, sql, err)
				continue
			}
			if sc, ok := got.(ScatterShards); ok {
				if sc.Keys != sk || !sk.Mergeable {
					t.Errorf("%v %q: a scatter without its mergeable keys", d, sql)
				}
				got = ScatterShards{Shards: sc.Shards}
			}
			switch {
			case c.want.refused != "":
				if rf, ok := got.(Refused); !ok || !strings.Contains(rf.Reason, c.want.refused) {
					t.Errorf("%v %q: %#v; want refused with %q", d, sql, got, c.want.refused)
				}
			case !reflect.DeepEqual(got, c.want.target):
				t.Errorf("%v %q: %#v; want %#v", d, sql, got, c.want.target)
			}
		}
	}
}

func TestFirstWord(t *testing.T) {
	for in, want := range map[string]string{
		"  /* x */ -- y\n ( SELECT 1": "select",
		"# c\nCREATE TABLE t":         "create",
		"/*!40101 SET x = 1 */":       "",
		"":                            "",
	} {
		if got := FirstWord(in); got != want {
			t.Errorf("FirstWord(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestPlanRequest: the statements of one request together, as
// PostgreSQL's extended protocol sends them (a batch up to Sync).
func TestPlanRequest(t *testing.T) {
	m, _ := shard.NewHash(2, 1024, 1)
	keyOn := func(s int) int64 {
		for k := int64(1); ; k++ {
			if got, _ := m.ShardOfInt(k); got == s {
				return k
			}
		}
	}
	on := func(s int) string { return fmt.Sprintf("SELECT * FROM orders WHERE customer_id = %d", keyOn(s)) }
	r := &ShardRouting{Map: m, Keys: NewKeyExtractor(Postgres, KeySpec{Default: "customer_id"}), Spec: KeySpec{Default: "customer_id"}}
	run := func(sql string) RequestStmt { return RequestStmt{SQL: sql, Runs: true} }
	for _, c := range []struct {
		name    string
		stmts   []RequestStmt
		want    ShardTarget
		at      int
		refused string
	}{
		{name: "one shard, twice", stmts: []RequestStmt{run("SELECT 1"), run(on(1)), run(on(1))}, want: OneShard{1}, at: 2},
		{name: "no shard named", stmts: []RequestStmt{run("SELECT 1"), {SQL: on(0)}}, want: AnyShard{}, at: -1},
		{name: "an unknown statement is the server's", stmts: []RequestStmt{{Runs: true}, run(on(0))}, want: OneShard{0}, at: 1},
		{name: "two shards", stmts: []RequestStmt{run(on(0)), run(on(1))}, refused: "transaction touches two shards (0 and 1)"},
		{name: "a lone scatter", stmts: []RequestStmt{{SQL: "SELECT * FROM orders"}, run("SELECT * FROM orders")}, want: ScatterShards{}, at: 1},
		{name: "a scatter not alone", stmts: []RequestStmt{run(on(0)), run("SELECT * FROM orders")}, refused: "one statement at a time"},
	} {
		got, sk, at, err := r.PlanRequest(c.stmts, ShardSession{Lease: -1})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if sc, ok := got.(ScatterShards); ok {
			if sc.Keys != sk {
				t.Errorf("%s: the scatter's keys are not the ones returned", c.name)
			}
			got = ScatterShards{Shards: sc.Shards}
		}
		if c.refused != "" {
			if rf, ok := got.(Refused); !ok || !strings.Contains(rf.Reason, c.refused) {
				t.Errorf("%s: %#v; want refused with %q", c.name, got, c.refused)
			}
			continue
		}
		if !reflect.DeepEqual(got, c.want) || at != c.at {
			t.Errorf("%s: %#v at %d; want %#v at %d", c.name, got, at, c.want, c.at)
		}
	}
}

// A MySQL statement on a sharded database that names a database (a shard's
// own, another, or the sharded one itself) is refused: each shard's
// connection is in that shard's database, so orders_0.orders read one
// shard's physical table wherever the key sent the statement (a count of
// 14 of 20 rows, an UPDATE on the wrong shard). The server's own
// databases are the same on every shard and stay allowed; PostgreSQL's
// qualifiers are schemas, which every shard has alike.
func TestPlanShardNamedDatabase(t *testing.T) {
	m, _ := shard.NewHash(2, 1024, 1)
	spec := KeySpec{Default: "customer_id"}
	for _, c := range []struct {
		sql     string
		refused string // "": not refused for naming a database
	}{
		{"SELECT count(*) FROM orders_0.orders", "not another database's (orders_0)"},
		{"SELECT count(*) FROM `orders_1`.`orders` WHERE customer_id = 5", "(orders_1)"},
		{"UPDATE orders_0.orders SET amount = 2 WHERE customer_id = 5", "(orders_0)"},
		{"DELETE o FROM orders o JOIN other.customers c ON c.id = o.customer_id WHERE o.customer_id = 5", "(other)"},
		{"SELECT * FROM orders WHERE customer_id = 5 AND EXISTS (SELECT 1 FROM orders_1.orders)", "(orders_1)"},
		{"SELECT orders_0.orders.id FROM orders WHERE customer_id = 5", "(orders_0)"},
		{"INSERT INTO orders_0.orders (customer_id) VALUES (5)", "(orders_0)"},
		{"SHOW TABLES FROM orders_1", "(orders_1)"},
		{"SHOW COLUMNS FROM orders_1.orders", "(orders_1)"},
		{"/* switchyard:shard=1 */ SELECT count(*) FROM orders_0.orders", "(orders_0)"},
		{"SELECT count(*) FROM shop.orders WHERE customer_id = 5", "name its tables without the database (shop.t is t)"},
		{"SELECT * FROM orders WHERE customer_id = 5", ""},
		{"SELECT orders.id FROM orders WHERE customer_id = 5", ""},
		{"SELECT * FROM information_schema.tables WHERE table_schema = DATABASE()", ""},
		{"SELECT * FROM mysql.user", ""},
		{"SHOW TABLES", ""},
	} {
		r := NewShardRouting(MySQL, m, spec, false, nil)
		r.Database = "shop"
		got, _, err := r.PlanShard(c.sql, nil, ShardSession{Lease: -1})
		if err != nil {
			t.Fatalf("%q: %v", c.sql, err)
		}
		rf, refused := got.(Refused)
		switch {
		case c.refused == "" && refused && strings.Contains(rf.Reason, "database"):
			t.Errorf("%q: refused (%s); want it planned", c.sql, rf.Reason)
		case c.refused != "" && (!refused || !strings.Contains(rf.Reason, c.refused)):
			t.Errorf("%q: %#v; want refused with %q", c.sql, got, c.refused)
		}
	}
	// Shards whose databases all have one name: that name reaches the
	// shard's own table on every shard, and stays allowed.
	for db, refused := range map[string]bool{"orders": false, "shop": true, "orders_0": true} {
		r := NewShardRouting(MySQL, m, spec, false, nil)
		r.Database, r.ShardDatabase = "shop", "orders"
		got, _, _ := r.PlanShard("SELECT count(*) FROM "+db+".orders WHERE customer_id = 5", nil, ShardSession{Lease: -1})
		if _, ok := got.(Refused); ok != refused {
			t.Errorf("every shard in database orders, the statement names %s: %#v; want refused %v", db, got, refused)
		}
	}
	// PostgreSQL: a qualifier is a schema.
	r := NewShardRouting(Postgres, m, spec, false, nil)
	r.Database = "shop"
	if got, _, _ := r.PlanShard("SELECT count(*) FROM orders_0.orders WHERE customer_id = 5", nil, ShardSession{Lease: -1}); reflect.TypeOf(got) != reflect.TypeOf(OneShard{}) {
		t.Errorf("PostgreSQL schema-qualified table: %#v; want one shard", got)
	}
}

// TestPlanShardTextKeyTypes: with KeyTypes, a MySQL key written as text
// that is no number whole goes by the number MariaDB reads from it when
// the key column is numeric, by its bytes when it is text; a number that
// is not a whole int64 is refused; without KeyTypes the bytes decide.
func TestPlanShardTextKeyTypes(t *testing.T) {
	m, _ := shard.NewHash(2, 1024, 1)
	r := NewShardRouting(MySQL, m, KeySpec{Default: "customer_id", Tables: map[string]string{"customers": "id"}}, false, nil)
	var asked []string
	numeric := func(table, column string) (bool, error) {
		asked = append(asked, table+"."+column)
		return table != "tags", nil
	}
	n := int64(1)
	for ; ; n++ {
		a, _ := m.ShardOfInt(n)
		b, _ := m.ShardOf(fmt.Sprintf("%dabc", n))
		if a != b {
			break
		}
	}
	byNumber, _ := m.ShardOfInt(n)
	byBytes, _ := m.ShardOf(fmt.Sprintf("%dabc", n))
	for _, c := range []struct {
		sql     string
		kt      KeyTypes
		want    int
		refused string
	}{
		{sql: "SELECT * FROM orders WHERE customer_id = '%dabc'", kt: numeric, want: byNumber},
		{sql: "SELECT * FROM customers WHERE id = '%dabc'", kt: numeric, want: byNumber},
		{sql: "UPDATE orders SET note = 'x' WHERE customer_id = ' %dabc'", kt: numeric, want: byNumber},
		{sql: "SELECT * FROM tags WHERE customer_id = '%dabc'", kt: numeric, want: byBytes},
		{sql: "SELECT * FROM orders WHERE customer_id = '%dabc'", want: byBytes},
		{sql: "SELECT * FROM orders WHERE customer_id = '%d.5abc'", kt: numeric, refused: "not a whole int64"},
		{sql: "SELECT * FROM orders WHERE customer_id = '%de30x'", kt: numeric, refused: "not a whole int64"},
	} {
		sql := fmt.Sprintf(c.sql, n)
		tg, _, err := r.PlanShard(sql, nil, ShardSession{Lease: -1, KeyTypes: c.kt})
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if c.refused != "" {
			if rf, ok := tg.(Refused); !ok || !strings.Contains(rf.Reason, c.refused) {
				t.Errorf("%s: %#v, want refused with %q", sql, tg, c.refused)
			}
			continue
		}
		if tg != (OneShard{c.want}) {
			t.Errorf("%s: %#v, want shard %d", sql, tg, c.want)
		}
	}
	if want := []string{"orders.customer_id", "customers.id", "orders.customer_id", "tags.customer_id", "orders.customer_id", "orders.customer_id"}; !reflect.DeepEqual(asked, want) {
		t.Errorf("KeyTypes asked for %v, want %v", asked, want)
	}
}

// Tables of one statement that pin keys of their own (a self-join, a
// cross join, DELETE ... USING, UPDATE ... FROM) must name the shard the
// statement runs on: it ran on the first table's key's shard and read
// only that shard's rows of the others (a cross join of customers 1 and 2
// answered no rows where one database answers their product; a DELETE
// USING another shard's row deleted nothing).
func TestPlanShardJoinedTablesKeys(t *testing.T) {
	m, _ := shard.NewHash(2, 1024, 1)
	var k0, k1 []int64
	for k := int64(1); len(k0) < 2 || len(k1) < 2; k++ {
		if s, _ := m.ShardOfInt(k); s == 0 {
			k0 = append(k0, k)
		} else {
			k1 = append(k1, k)
		}
	}
	for _, d := range []Dialect{Postgres, MySQL} {
		r := NewShardRouting(d, m, KeySpec{Default: "customer_id"}, false, nil)
		for _, c := range []struct {
			sql   string
			shard int // -1: refused
		}{
			{fmt.Sprintf("SELECT a.id, b.id FROM orders a, orders b WHERE a.customer_id = %d AND b.customer_id = %d", k0[0], k1[0]), -1},
			{fmt.Sprintf("SELECT a.id, b.id FROM orders a JOIN orders b ON b.customer_id = %d WHERE a.customer_id = %d", k1[0], k0[0]), -1},
			{fmt.Sprintf("SELECT a.id, b.id FROM orders a, orders b WHERE a.customer_id = %d AND b.customer_id IN (%d, %d)", k0[0], k0[1], k1[1]), -1},
			{fmt.Sprintf("SELECT a.id, b.id FROM orders a, orders b WHERE a.customer_id = %d AND b.customer_id = %d", k0[0], k0[1]), 0},
			{fmt.Sprintf("SELECT a.id, b.id FROM orders a JOIN orders b ON a.customer_id = b.customer_id WHERE a.customer_id = %d", k1[0]), 1},
			{fmt.Sprintf("SELECT * FROM orders o JOIN items i ON i.order_id = o.id WHERE o.customer_id = %d", k1[0]), 1},
			{fmt.Sprintf("SELECT * FROM orders o WHERE o.customer_id = %d AND EXISTS (SELECT 1 FROM orders a, orders b WHERE a.customer_id = %d AND b.customer_id = %d)", k0[0], k0[1], k1[1]), -1},
		} {
			got, _, err := r.PlanShard(c.sql, nil, ShardSession{Lease: -1})
			if err != nil {
				t.Fatalf("%v %q: %v", d, c.sql, err)
			}
			if c.shard < 0 {
				if rf, ok := got.(Refused); !ok || !strings.Contains(rf.Reason, "every key must be on one shard") {
					t.Errorf("%v %q: %#v; want refused: its tables name keys on two shards", d, c.sql, got)
				}
				continue
			}
			if !reflect.DeepEqual(got, OneShard{c.shard}) {
				t.Errorf("%v %q: %#v; want shard %d", d, c.sql, got, c.shard)
			}
		}
		writes := []string{
			fmt.Sprintf("UPDATE orders SET amount = 1 FROM orders b WHERE orders.customer_id = %d AND b.customer_id = %d", k0[0], k1[0]),
			fmt.Sprintf("DELETE FROM orders USING orders b WHERE orders.customer_id = %d AND b.customer_id = %d", k0[0], k1[0]),
		}
		if d == MySQL {
			writes = []string{
				fmt.Sprintf("UPDATE orders a JOIN orders b ON a.id = b.id SET a.amount = 1 WHERE a.customer_id = %d AND b.customer_id = %d", k0[0], k1[0]),
				fmt.Sprintf("DELETE a FROM orders a JOIN orders b ON a.id = b.id WHERE a.customer_id = %d AND b.customer_id = %d", k0[0], k1[0]),
			}
		}
		for _, q := range writes {
			got, _, err := r.PlanShard(q, nil, ShardSession{Lease: -1})
			if err != nil {
				t.Fatalf("%v %q: %v", d, q, err)
			}
			if rf, ok := got.(Refused); !ok || !strings.Contains(rf.Reason, "every key must be on one shard") {
				t.Errorf("%v %q: %#v; want refused", d, q, got)
			}
		}
	}
}
