package pgwire

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestShardKeyText: an integer key written as text ('043', ' 43', '+43',
// as a literal or a text-format parameter the server reads as bigint)
// lands on the shard of 43, where a lookup by 43 finds it; it used to be
// hashed as its bytes and land on the other shard.
func TestShardKeyText(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// 43 is on shard 0; the bytes "043", " 43" and "+43" hash to shard 1.
	const key = 43
	forms := []string{"043", " 43", "+43", "43 "}
	for i, f := range forms {
		if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO orders (customer_id, amount) VALUES ('%s', %d)", f, i), pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("literal %q: %v", f, err)
		}
		// A text-format parameter of unspecified type: the server reads
		// it as the column's bigint.
		if res := conn.PgConn().ExecParams(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, $2)",
			[][]byte{[]byte(f), []byte(fmt.Sprint(100 + i))}, nil, nil, nil).Read(); res.Err != nil {
			t.Fatalf("parameter %q: %v", f, res.Err)
		}
	}
	want := 2 * len(forms)
	for _, q := range []string{
		fmt.Sprintf("SELECT count(*) FROM orders WHERE customer_id = %d", key),
		fmt.Sprintf("SELECT count(*) FROM orders WHERE customer_id = '0%d'", key),
	} {
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil || n != want {
			t.Errorf("%s: %d, %v; want %d", q, n, err, want)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE customer_id = $1", int64(key)).Scan(&n); err != nil || n != want {
		t.Errorf("lookup by parameter: %d, %v; want %d", n, err, want)
	}
	if err := shards[0].QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != want {
		t.Errorf("shard 0 holds %d rows (%v); want all %d", n, err, want)
	}
}
