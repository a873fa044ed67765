package mysqlwire

import (
	"fmt"
	"testing"
)

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
