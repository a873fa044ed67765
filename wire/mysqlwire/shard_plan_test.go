package mysqlwire

import (
	"database/sql"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/shard"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// keyOn is the first key from 1 up that the hash map puts on shard s.
func keyOn(m shard.Map, s int) int64 {
	for k := int64(1); ; k++ {
		if mustShard(m, k) == s {
			return k
		}
	}
}

// exactOrRefused checks the answer of q (a count) through the proxy: what
// one database holding every shard's rows answers (want), or the proxy's
// refusal 1235 naming the subquery. Never another number.
func exactOrRefused(t *testing.T, db *sql.DB, q string, want int) {
	t.Helper()
	var n int
	err := db.QueryRow(q).Scan(&n)
	switch {
	case err == nil && n == want:
	case err == nil:
		t.Errorf("%s: answered %d, one database answers %d", q, n, want)
	case mysqlErrNum(err) == mysqlproto.ERNotSupportedYet && strings.Contains(err.Error(), "subquery"):
		t.Logf("%s: refused: %v", q, err)
	default:
		t.Errorf("%s: %v; want %d or a 1235 refusal that names the subquery", q, err, want)
	}
}

// TestShardSubqueries: a SELECT whose sharded table appears only in a
// subquery (derived table, scalar subquery, EXISTS, IN) ran on shard 0
// alone; so did one whose subquery names another key than the outer
// query, or none. Each is answered as one database would, or refused with
// the reason; the same key everywhere runs on that key's shard.
func TestShardSubqueries(t *testing.T) {
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	m := p.srv.Shards.Get("orders").Map
	k0, k1 := keyOn(m, 0), keyOn(m, 1)
	db := p.openOrders(t, "")
	total := 0
	for i := int64(1); i <= 40; i++ {
		if _, err := db.Exec("INSERT INTO orders (id, customer_id, total) VALUES (?, ?, ?)", i, i*7919+3, i); err != nil {
			t.Fatal(err)
		}
		total++
	}
	for j, k := range []int64{k0, k1} {
		if _, err := db.Exec(fmt.Sprintf("INSERT INTO orders (id, customer_id, total) VALUES (%d, %d, 1000), (%d, %d, 1001)",
			100+2*j, k, 101+2*j, k)); err != nil {
			t.Fatal(err)
		}
		total += 2
	}
	for _, q := range []struct {
		sql  string
		want int
	}{
		{"SELECT COUNT(*) FROM (SELECT * FROM orders) s", total},
		{"SELECT (SELECT COUNT(*) FROM orders)", total},
		{"WITH o AS (SELECT * FROM orders) SELECT COUNT(*) FROM o", total},
		{fmt.Sprintf("SELECT COUNT(*) FROM (SELECT 1) x WHERE EXISTS (SELECT 1 FROM orders WHERE customer_id = %d)", k1), 1},
		{fmt.Sprintf("SELECT COUNT(*) FROM (SELECT 1) x WHERE 1001 IN (SELECT total FROM orders WHERE customer_id = %d)", k1), 1},
		{fmt.Sprintf("SELECT COUNT(*) FROM orders WHERE customer_id = %d AND EXISTS (SELECT 1 FROM orders o2 WHERE o2.customer_id = %d)", k0, k1), 2},
		{fmt.Sprintf("SELECT COUNT(*) FROM orders WHERE customer_id = %d AND total < (SELECT MAX(total) FROM orders)", k0), 1},
	} {
		exactOrRefused(t, db, q.sql, q.want)
	}
	var n int
	if err := db.QueryRow(fmt.Sprintf("SELECT COUNT(*) FROM (SELECT * FROM orders WHERE customer_id = %d) s", k1)).Scan(&n); err != nil || n != 2 {
		t.Errorf("derived table with the key: %d, %v; want 2", n, err)
	}
	if err := db.QueryRow("SELECT COUNT(*) FROM orders WHERE customer_id = ? AND total < (SELECT MAX(total) FROM orders WHERE customer_id = ?)", k1, k1).Scan(&n); err != nil || n != 1 {
		t.Errorf("subquery with the same key (parameters): %d, %v; want 1", n, err)
	}
}

// TestShardKeyText: an integer key written as a string ('043', ' 43',
// '+43', as a literal or a string parameter the server converts to the
// BIGINT column) lands on the shard of 43, where a lookup by 43 finds it;
// it used to be hashed as its bytes and land on the other shard.
func TestShardKeyText(t *testing.T) {
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	db := p.openOrders(t, "")
	// 43 is on shard 0; the bytes "043", " 43" and "+43" hash to shard 1.
	const key = 43
	forms := []string{"043", " 43", "+43"}
	id := 0
	for _, f := range forms {
		id++
		if _, err := db.Exec(fmt.Sprintf("INSERT INTO orders (id, customer_id) VALUES (%d, '%s')", id, f)); err != nil {
			t.Fatalf("literal %q: %v", f, err)
		}
		id++
		if _, err := db.Exec("INSERT INTO orders (id, customer_id) VALUES (?, ?)", id, f); err != nil {
			t.Fatalf("parameter %q: %v", f, err)
		}
	}
	for _, q := range []string{
		fmt.Sprintf("SELECT COUNT(*) FROM orders WHERE customer_id = %d", key),
		fmt.Sprintf("SELECT COUNT(*) FROM orders WHERE customer_id = '0%d'", key),
	} {
		var n int
		if err := db.QueryRow(q).Scan(&n); err != nil || n != id {
			t.Errorf("%s: %d, %v; want %d", q, n, err, id)
		}
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM orders WHERE customer_id = ?", key).Scan(&n); err != nil || n != id {
		t.Errorf("lookup by parameter: %d, %v; want %d", n, err, id)
	}
	if got := onShard(t, 0, "SELECT COUNT(*) FROM {db}.orders"); got != fmt.Sprint(id) {
		t.Errorf("shard 0 holds %s rows; want all %d", got, id)
	}
}

// TestShardCatalog: queries that read only catalogs (information_schema,
// SHOW, DESCRIBE) run on one shard: the shards share one schema, and a
// scatter answered every catalog row once per shard.
func TestShardCatalog(t *testing.T) {
	resetShardTables(t)
	p := startShardProxy(t, shardConfig(t, hashSharding, hashShards(false)))
	db := p.openOrders(t, "")
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'orders'").Scan(&n); err != nil || n != 4 {
		t.Errorf("information_schema.columns of orders: %d, %v; want 4 (one shard's)", n, err)
	}
	if got := rowsOf(t, db, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY table_name"); strings.Join(got, ",") != "customers,orders" {
		t.Errorf("information_schema.tables: %v; want customers, orders", got)
	}
	bin, err := execLookPath("mariadb", "mysql")
	if err != nil {
		t.Skip("no mariadb client")
	}
	host, port, _ := net.SplitHostPort(p.addr)
	out, err := runCmd(bin, "--protocol=TCP", "-h", host, "-P", port, "-uapp", "-papp", "orders", "--batch",
		"-e", "SHOW TABLES; DESCRIBE orders; SHOW COLUMNS FROM customers; SHOW CREATE TABLE orders")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"customers\norders\n", "customer_id\tbigint(20)", "name\tvarchar(40)", "CREATE TABLE `orders`"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
