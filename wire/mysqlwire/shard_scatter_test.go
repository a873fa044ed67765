package mysqlwire

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// TestScatterOrderByNameCaseMySQL: ORDER BY a column hidden behind * finds
// it by name whatever its case, as MySQL names columns (the parser hands
// "total" for TOTAL; the server's column is "total"; and Note for note).
func TestScatterOrderByNameCaseMySQL(t *testing.T) {
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	db := p.openOrders(t, "")
	for i := 1; i <= 30; i++ {
		if _, err := db.Exec("INSERT INTO orders (id, customer_id, total, note) VALUES (?, ?, ?, ?)", i, i*7, float64(i%9)+0.5, fmt.Sprintf("n%02d", 30-i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		"SELECT * FROM orders ORDER BY TOTAL DESC, ID LIMIT 5",
		"SELECT * FROM orders ORDER BY Note LIMIT 4",
		"SELECT * FROM orders ORDER BY `NOTE` DESC LIMIT 3 OFFSET 2",
	} {
		want := union(t, strings.Replace(q, "FROM orders", "FROM {t}", 1))
		for _, mode := range []string{"text", "binary"} {
			var got []string
			if mode == "text" {
				got = rowsOf(t, db, q)
			} else {
				got = rowsOf(t, db, strings.Replace(q, "FROM orders", "FROM orders WHERE id > ?", 1), 0)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s\n got %v\nwant %v", mode, q, got, want)
			}
		}
	}
}

// TestScatterBudgetMySQL: a SELECT run on every shard whose rows exceed
// max_scatter_bytes (64 KiB here) gets ER_TOO_BIG_SELECT naming the key,
// in the text and the binary protocol; the metric counts it, the session
// keeps working, and every server connection is back and quiet. Before,
// the cap was a fixed 256 MiB (with error 1235).
func TestScatterBudgetMySQL(t *testing.T) {
	resetShardTables(t)
	cfg := shardConfig(t, hashSharding, hashShards(false))
	cfg.Clusters[0].Settings.MaxScatterBytes = 64 << 10
	p := startShardProxy(t, cfg)
	for s := range 2 {
		var vals []string
		for i := 1; i <= 1000; i++ {
			vals = append(vals, fmt.Sprintf("(%d, %d, %d, '%s')", s*10000+i, i, i, strings.Repeat("x", 40)))
		}
		rootExec(t, fmt.Sprintf("INSERT INTO orders_%d.orders (id, customer_id, total, note) VALUES %s", s, strings.Join(vals, ",")))
	}
	db := p.openOrders(t, "")
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	before := metricValue(t, "switchyard_scatter_refused_total")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, args := range [][]any{nil, {0}} {
		q := "SELECT * FROM orders"
		if args != nil {
			q += " WHERE id > ?" // a prepared statement: binary rows
		}
		rows, err := conn.QueryContext(ctx, q, args...)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
		wantMyErr(t, err, mysqlproto.ERTooBigSelect, "max_scatter_bytes (64KiB)")
		// The session goes on: a small scatter, a count.
		if got := rowsOf(t, conn, "SELECT id FROM orders ORDER BY id LIMIT 3"); !slices.Equal(got, []string{"1", "2", "3"}) {
			t.Fatalf("small scatter after the refusal: %v", got)
		}
		if got := rowsOf(t, conn, "SELECT COUNT(*) FROM orders"); !slices.Equal(got, []string{"2000"}) {
			t.Fatalf("count after the refusal: %v", got)
		}
	}
	if got := metricValue(t, "switchyard_scatter_refused_total") - before; got != 2 {
		t.Errorf("switchyard_scatter_refused_total grew by %v; want 2", got)
	}
	conn.Close()
	waitActiveZero(t, p, 5*time.Second)
	waitServerQuiet(t, p, rootDB(t))
	// A reload raises the budget for the next SELECT.
	cfg = shardConfig(t, hashSharding, hashShards(false))
	cfg.Clusters[0].Settings.MaxScatterBytes = 1 << 20
	if err := p.srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, db, "SELECT * FROM orders"); len(got) != 2000 {
		t.Fatalf("after a reload to 1MiB: %d rows; want 2000", len(got))
	}
}

// TestScatterTextCollationMySQL: text ORDER BY and MIN/MAX across shards
// answer what one database answers, or are refused (1235) with the
// reason. They were compared as upper-cased bytes whatever the
// collation: a utf8mb4_unicode_ci column (where '_x' < 'a') came back in
// another order than one database ('a' < '_x'), because a column
// definition carries the connection's result charset, not the column's
// collation. Text and binary protocol.
func TestScatterTextCollationMySQL(t *testing.T) {
	resetShardTables(t)
	t.Cleanup(func() { resetShardTables(t) })
	for _, db := range []string{"orders_0", "orders_1"} {
		rootExec(t, fmt.Sprintf("ALTER TABLE %s.orders ADD COLUMN uname VARCHAR(20) COLLATE utf8mb4_unicode_ci, ADD COLUMN bname VARCHAR(20) COLLATE utf8mb4_bin", db))
	}
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	db := p.openOrders(t, "")
	names := []string{"a", "B", "c", "D", "_x", "Zz", "a-b", "ab", "e f", "["}
	for i, n := range names {
		if _, err := db.Exec("INSERT INTO orders (id, customer_id, total, note, uname, bname) VALUES (?, ?, ?, ?, ?, ?)", i+1, i*7+1, i, n, n, n); err != nil {
			t.Fatal(err)
		}
	}
	if n0 := onShard(t, 0, "SELECT COUNT(*) FROM {db}.orders"); n0 == "0" || n0 == fmt.Sprint(len(names)) {
		t.Fatalf("shard 0 holds %s of %d rows: the test needs both shards", n0, len(names))
	}
	check := func(q string, refused bool) {
		t.Helper()
		want := union(t, strings.Replace(q, "FROM orders", "FROM {t}", 1))
		for _, mode := range []string{"text", "binary"} {
			mq, args := q, []any(nil)
			if mode == "binary" {
				mq, args = strings.Replace(q, "FROM orders", "FROM orders WHERE id > ?", 1), []any{0}
			}
			rows, err := db.Query(mq, args...)
			var got []string
			if err == nil {
				for rows.Next() {
					var vals []sql.NullString
					cols, _ := rows.Columns()
					vals = make([]sql.NullString, len(cols))
					ptrs := make([]any, len(cols))
					for i := range vals {
						ptrs[i] = &vals[i]
					}
					if err := rows.Scan(ptrs...); err != nil {
						t.Fatal(err)
					}
					var parts []string
					for _, v := range vals {
						parts = append(parts, v.String)
					}
					got = append(got, strings.Join(parts, "|"))
				}
				err = rows.Err()
				rows.Close()
			}
			if refused {
				if err == nil {
					t.Errorf("%s: %s = %v; want a refusal (one database answers %v)", mode, q, got, want)
					continue
				}
				if mysqlErrNum(err) != mysqlproto.ERNotSupportedYet || !strings.Contains(err.Error(), "collation") {
					t.Errorf("%s: %s: %v; want error 1235 naming the collation", mode, q, err)
				}
				t.Logf("%s: %s: %v", mode, q, err)
				continue
			}
			if err != nil {
				t.Errorf("%s: %s: %v", mode, q, err)
			} else if !slices.Equal(got, want) {
				t.Errorf("%s: %s\n got %v\nwant %v (one database)", mode, q, got, want)
			}
		}
	}
	// The tables' default collation, utf8mb4_general_ci, and _bin: merged
	// exactly.
	check("SELECT note FROM orders ORDER BY note", false)
	check("SELECT id, note FROM orders ORDER BY note DESC LIMIT 4 OFFSET 1", false)
	check("SELECT bname FROM orders ORDER BY bname", false)
	// A UCA collation: refused.
	check("SELECT uname FROM orders ORDER BY uname", true)
	check("SELECT * FROM orders ORDER BY uname LIMIT 3", true)
	check("SELECT MIN(uname), MAX(uname) FROM orders", true)
	// An expression, while the tables use several collations: refused.
	check("SELECT MIN(note) FROM orders", true)
	// With one collation everywhere, expressions merge; COLLATE refuses.
	for _, db := range []string{"orders_0", "orders_1"} {
		rootExec(t, fmt.Sprintf("ALTER TABLE %s.orders DROP COLUMN uname, DROP COLUMN bname", db))
	}
	check("SELECT MIN(note), MAX(note), COUNT(*) FROM orders", false)
	check("SELECT MAX(note COLLATE utf8mb4_unicode_ci) FROM orders", true)
	check("SELECT total FROM orders ORDER BY total DESC LIMIT 3", false)
}

// TestTextOrderMySQL checks the collations scatter.MySQLTextOrder orders as
// upper-cased ASCII (PAD SPACE) against the server: every printable
// ASCII character, a tab and trailing spaces, sorted by MariaDB and by
// scatter.TextKey, give one order.
func TestTextOrderMySQL(t *testing.T) {
	var vals []string
	for c := byte(' ' + 1); c < 0x7f; c++ {
		vals = append(vals, "k"+string(c))
	}
	vals = append(vals, "k", "k ", "k\t", "k\tz", "k z", "K_", "kA", "ka")
	ma := testcluster.Maria
	root, err := sql.Open("mysql", ma.RootDSN(ma.Primary, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, coll := range []string{"utf8mb4_general_ci", "utf8mb3_general_ci", "latin1_swedish_ci", "ascii_general_ci", "utf8mb4_bin", "utf8mb4_nopad_bin"} {
		order := scatter.MySQLTextOrder(coll, true)
		if order == scatter.TextUnknown {
			t.Fatalf("%s: unknown", coll)
		}
		cs := strings.SplitN(coll, "_", 2)[0]
		rootExec(t, fmt.Sprintf("DROP TABLE IF EXISTS orders_0.t_coll; CREATE TABLE orders_0.t_coll (id INT PRIMARY KEY, v VARCHAR(10) CHARACTER SET %s COLLATE %s)", cs, coll))
		for i, v := range vals {
			if _, err := root.Exec("INSERT INTO orders_0.t_coll VALUES (?, ?)", i, v); err != nil {
				t.Fatal(err)
			}
		}
		// Ties (equal in the collation) come back by id on both sides.
		server := rowsOf(t, root, "SELECT id FROM orders_0.t_coll ORDER BY v, id")
		idx := make([]int, len(vals))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			ka, _ := scatter.TextKey(order, []byte(vals[a]))
			kb, _ := scatter.TextKey(order, []byte(vals[b]))
			return ka.Compare(kb)
		})
		var mine []string
		for _, i := range idx {
			mine = append(mine, fmt.Sprint(i))
		}
		if !slices.Equal(server, mine) {
			for i := range server {
				if server[i] != mine[i] {
					t.Errorf("%s: first difference at %d: server %q, proxy %q", coll, i, vals[atoi(server[i])], vals[atoi(mine[i])])
					break
				}
			}
		}
	}
	rootExec(t, "DROP TABLE IF EXISTS orders_0.t_coll")
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

// TestScatterOnlyPlannedShardsMySQL: a SELECT whose keys name some of the
// shards (customer_id IN (a, b), in the text and the binary protocol)
// runs on those only: a third shard that is down does not fail it, nor
// the lookup of its text's collation. A keyless SELECT, which needs the
// third shard, fails, which shows it is down.
func TestScatterOnlyPlannedShardsMySQL(t *testing.T) {
	resetShardTables(t)
	rootExec(t, "INSERT INTO orders_0.orders (id, customer_id, total, note) VALUES (1, 5, 1.50, 'b')")
	rootExec(t, "INSERT INTO orders_1.orders (id, customer_id, total, note) VALUES (2, 150, 2.50, 'a')")
	p := startShardProxy(t, shardConfig(t, `kind = "range"
key = "customer_id"`, rangeShards(100)+`
[[clusters.shards]]
primary = "127.0.0.1:1"
database = "orders_2"
range = [1000000000, 2000000000]
`))
	db := p.openOrders(t, "")
	for _, args := range [][]any{nil, {5, 150}} {
		q := "SELECT id, note FROM orders WHERE customer_id IN (5, 150) ORDER BY note"
		if args != nil {
			q = "SELECT id, note FROM orders WHERE customer_id IN (?, ?) ORDER BY note" // binary rows
		}
		if got := rowsOf(t, db, q, args...); !slices.Equal(got, []string{"2|a", "1|b"}) {
			t.Errorf("%s: %v; want [2|a 1|b]", q, got)
		}
	}
	if _, err := db.Exec("SELECT id FROM orders"); err == nil {
		t.Error("a SELECT on every shard answered with shard 2 down")
	}
}

// SUM of DOUBLE values over shards is written as MariaDB writes a
// DOUBLE: 1e15, 100000000000000, 1.5e15, 0.00000015, with a column's
// fixed decimals when it has them (Go's %g wrote 1e+14 and 1.5e+06).
// The values are exact in binary, so the order of the additions does not
// matter; each query is compared with the same query on one table
// holding both shards' rows.
func TestScatterDoubleSumMySQL(t *testing.T) {
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	db := p.openOrders(t, "")
	bin, err := execLookPath("mariadb", "mysql")
	if err != nil {
		t.Skip("no mariadb client")
	}
	host, port, _ := net.SplitHostPort(p.addr)
	ma := testcluster.Maria
	for i := 1; i <= 30; i++ {
		if _, err := db.Exec("INSERT INTO orders (id, customer_id, total, note) VALUES (?, ?, ?, ?)", i, i*7, float64(i%9)+0.5, "n"); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		"SELECT SUM(total * 1e0) FROM orders",
		"SELECT SUM(total * 1e12) FROM orders",
		"SELECT SUM(total * 1e14) FROM orders",
		"SELECT SUM(total * 0.00000000000000088817841970012523233890533447265625e0) FROM orders",
		"SELECT SUM(total * 0.000000059604644775390625e0) FROM orders",
		"SELECT SUM(CAST(total AS DOUBLE)) FROM orders",
	} {
		// The text as the server sends it: the mariadb client prints it
		// unchanged (go-sql-driver parses and reformats floats).
		ref := strings.Replace(q, "FROM orders", "FROM (SELECT * FROM orders_0.orders UNION ALL SELECT * FROM orders_1.orders) u", 1)
		want, err := runCmd(bin, "--protocol=TCP", "-h", ma.Primary.Host, "-P", strconv.Itoa(ma.Primary.Port), "-uroot", "--batch", "-N", "-e", ref)
		if err != nil {
			t.Fatalf("%v: %s", err, want)
		}
		got, err := runCmd(bin, "--protocol=TCP", "-h", host, "-P", port, "-uapp", "-papp", "orders", "--batch", "-N", "-e", q)
		if err != nil {
			t.Fatalf("%v: %s", err, got)
		}
		if got != want {
			t.Errorf("%s\n got %q\nwant %q", q, got, want)
		}
	}
}

// MariaDB's executable comments (/*M! ... */, /*!NNNNNN ... */) hide code
// from the proxy's parser: on a sharded database such a statement is
// refused, not routed by the key the parser saw. A tester's
// "WHERE customer_id = 3 /*M! or 1=1 */" counted one shard's rows, and an
// UPDATE of that form changed one shard's.
func TestMariaDBExecutableCommentsRefusedMySQL(t *testing.T) {
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	db := p.openOrders(t, "")
	for i := 1; i <= 10; i++ {
		if _, err := db.Exec("INSERT INTO orders (id, customer_id, total, note) VALUES (?, ?, 1, 'n')", i, i*7); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		"SELECT COUNT(*) FROM orders WHERE customer_id = 7 /*M! OR 1=1 */",
		"SELECT COUNT(*) FROM orders WHERE customer_id = 7 /*!100000 OR 1=1 */",
		"UPDATE orders SET note = 'x' WHERE customer_id = 7 /*M! OR 1=1 */",
	} {
		_, err := db.Exec(q)
		if err == nil || !strings.Contains(err.Error(), "executable comments") {
			t.Errorf("%s: %v, want a refusal naming executable comments", q, err)
		}
	}
	if got := rowsOf(t, db, "SELECT COUNT(*) FROM orders WHERE note = 'x'"); len(got) != 1 || got[0] != "0" {
		t.Errorf("rows changed by the refused UPDATE: %v", got)
	}
}

// A SELECT ... FOR UPDATE without the shard key in a transaction that has
// not reached a shard yet would run on every shard in autocommit, outside
// the transaction, and hold no locks: refused. Outside a transaction (no
// locks to keep) it runs.
func TestScatterForUpdateInTransactionMySQL(t *testing.T) {
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	db := p.openOrders(t, "")
	c := conn(t, db)
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		if _, err := c.ExecContext(ctx, "INSERT INTO orders (id, customer_id, total, note) VALUES (?, ?, 1, 'n')", i, i*7); err != nil {
			t.Fatal(err)
		}
	}
	if got := rowsOf(t, c, "SELECT COUNT(*) FROM orders WHERE id IN (1, 2) FOR UPDATE"); len(got) != 1 || got[0] != "2" {
		t.Fatalf("outside a transaction: %v", got)
	}
	if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	_, err := c.ExecContext(ctx, "SELECT id FROM orders WHERE id IN (1, 2) FOR UPDATE")
	if err == nil || !strings.Contains(err.Error(), "hold no locks") {
		t.Errorf("FOR UPDATE without the key in a transaction: %v, want a refusal", err)
	}
	if _, err := c.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
}
