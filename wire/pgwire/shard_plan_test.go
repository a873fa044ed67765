package pgwire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// exactOrRefused checks the answer of q through the proxy: the count one
// database holding every shard's rows gives (want), or a refusal with
// SQLSTATE 0A000 that names the reason. Never another number.
func exactOrRefused(t *testing.T, conn *pgx.Conn, q string, want int) {
	t.Helper()
	var n int
	err := conn.QueryRow(context.Background(), q).Scan(&n)
	var pe *pgconn.PgError
	switch {
	case err == nil && n == want:
	case err == nil:
		t.Errorf("%s: answered %d, one database answers %d", q, n, want)
	case errors.As(err, &pe) && pe.Code == codeFeatureNotSupported && strings.Contains(pe.Message, "subquery"):
		t.Logf("%s: refused: %s", q, pe.Message)
	default:
		t.Errorf("%s: %v; want %d or a 0A000 refusal that names the subquery", q, err, want)
	}
}

// TestShardSubqueries: a SELECT whose sharded table appears only in a
// subquery (derived table, scalar subquery, EXISTS, IN) ran on shard 0
// alone and answered from its rows only; so did one whose subquery names
// another key than the outer query, or none. Each is answered as one
// database would, or refused with the reason; one that names the same
// key in the outer query and every subquery runs on that key's shard.
func TestShardSubqueries(t *testing.T) {
	p := startShardProxy(t)
	shardConns(t)
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	k0, k1 := keysOn(0, 1, 1)[0], keysOn(1, 1, 1)[0]
	total := 0
	for i := int64(0); i < 40; i++ {
		if _, err := conn.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, $2)", i*7919+3, i); err != nil {
			t.Fatal(err)
		}
		total++
	}
	for _, k := range []int64{k0, k1} {
		if _, err := conn.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, 1000), ($1, 1001)", k); err != nil {
			t.Fatal(err)
		}
		total += 2
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		conn.Config().DefaultQueryExecMode = mode
		t.Run(mode.String(), func(t *testing.T) {
			exactOrRefused(t, conn, "SELECT count(*) FROM (SELECT * FROM orders) s", total)
			exactOrRefused(t, conn, "SELECT (SELECT count(*) FROM orders)", total)
			exactOrRefused(t, conn, "WITH o AS (SELECT * FROM orders) SELECT count(*) FROM o", total)
			exactOrRefused(t, conn, fmt.Sprintf("SELECT count(*) FROM (SELECT 1) x WHERE EXISTS (SELECT 1 FROM orders WHERE customer_id = %d)", k1), 1)
			exactOrRefused(t, conn, fmt.Sprintf("SELECT count(*) FROM (SELECT 1) x WHERE 1001 IN (SELECT amount FROM orders WHERE customer_id = %d)", k1), 1)
			// The outer query names k0; the subquery another key, or none.
			exactOrRefused(t, conn, fmt.Sprintf(
				"SELECT count(*) FROM orders WHERE customer_id = %d AND EXISTS (SELECT 1 FROM orders o2 WHERE o2.customer_id = %d)", k0, k1), 2)
			exactOrRefused(t, conn, fmt.Sprintf(
				"SELECT count(*) FROM orders WHERE customer_id = %d AND amount < (SELECT max(amount) FROM orders)", k0), 1)
			// Same key everywhere: one shard, answered.
			var n int
			if err := conn.QueryRow(ctx, fmt.Sprintf(
				"SELECT count(*) FROM (SELECT * FROM orders WHERE customer_id = %d) s", k1)).Scan(&n); err != nil || n != 2 {
				t.Errorf("derived table with the key: %d, %v; want 2", n, err)
			}
			if err := conn.QueryRow(ctx, fmt.Sprintf(
				"SELECT count(*) FROM orders WHERE customer_id = %[1]d AND amount < (SELECT max(amount) FROM orders WHERE customer_id = %[1]d)", k1)).Scan(&n); err != nil || n != 1 {
				t.Errorf("subquery with the same key: %d, %v; want 1", n, err)
			}
		})
	}
}

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

// TestShardCatalog: psql's \d and \d orders on a sharded database: queries
// that read only catalogs run on one shard (the shards share one schema)
// instead of being refused as keyless SELECTs that cannot be merged.
func TestShardCatalog(t *testing.T) {
	p := startShardProxy(t)
	shardConns(t)
	psql := filepath.Join(testcluster.PG.BinDir, "psql")
	if _, err := os.Stat(psql); err != nil {
		t.Skipf("no psql: %v", err)
	}
	host, port, _ := net.SplitHostPort(p.addr)
	for _, args := range [][]string{{`\d`}, {`\d orders`}, {`\dt`}} {
		cmd := exec.Command(psql, "-X", "-h", host, "-p", port, "-U", "app", "-d", "orders", "-v", "ON_ERROR_STOP=1", "-c", args[0])
		cmd.Env = append(os.Environ(), "PGPASSWORD=app", "PGSSLMODE=disable")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("psql -c %s: %v\n%s", args[0], err, out)
			continue
		}
		if !strings.Contains(string(out), "orders") || !strings.Contains(string(out), "customer_id") && args[0] == `\d orders` {
			t.Errorf("psql -c %s: %s", args[0], out)
		}
	}
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders'").Scan(&n); err != nil || n != 3 {
		t.Errorf("information_schema.columns of orders: %d, %v; want 3 (one shard's)", n, err)
	}
	// A catalog joined with a sharded table is not a catalog query.
	_, err = conn.Exec(ctx, "SELECT count(*) FROM orders o, pg_class c WHERE c.relname = 'orders' GROUP BY c.oid")
	wantSQLState(t, err, codeFeatureNotSupported, "sharded table joined with a catalog")
}
