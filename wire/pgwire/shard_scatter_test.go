package pgwire

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/shard"
)

// scatterModes connects to the sharded proxy in the simple protocol and
// in the extended protocol with and without named statements.
func scatterModes(t *testing.T, p *testProxy) map[string]*pgx.Conn {
	t.Helper()
	out := map[string]*pgx.Conn{}
	for name, opt := range map[string]string{
		"simple": "&default_query_exec_mode=simple_protocol",
		"exec":   "&default_query_exec_mode=exec",
		"cache":  "",
	} {
		conn, err := pgx.Connect(ctxT(t, 30*time.Second), p.rawDSN("app", "app", "orders")+opt)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		out[name] = conn
	}
	return out
}

// textRows runs q and returns its rows as text, NULL as "<null>".
func textRows(ctx context.Context, conn *pgx.Conn, q string) ([]string, error) {
	rows, err := conn.Query(ctx, q, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		var cols []string
		for _, v := range rows.RawValues() {
			if v == nil {
				cols = append(cols, "<null>")
			} else {
				cols = append(cols, string(v))
			}
		}
		out = append(out, strings.Join(cols, "|"))
	}
	return out, rows.Err()
}

// TestScatterOffset: a SELECT with OFFSET and no shard key answers what
// one database holding every shard's rows answers (it was refused with
// 0A000): each shard is asked for LIMIT+OFFSET rows, the offset is
// applied after the merge. Simple and extended protocol; LIMIT ... OFFSET,
// OFFSET ... LIMIT, OFFSET alone, FETCH FIRST, an offset past the end,
// NULLs and ties.
func TestScatterOffset(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	ctx := ctxT(t, 120*time.Second)
	conns := scatterModes(t, p)
	simple := conns["simple"]
	// The reference: one table holding all rows, on shard 0's database.
	if _, err := shards[0].Exec(ctx, `DROP TABLE IF EXISTS orders_all;
		CREATE TABLE orders_all (customer_id bigint, id serial, amount int)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shards[0].Exec(context.Background(), "DROP TABLE IF EXISTS orders_all") })
	for i := int64(0); i < 120; i++ {
		amount := fmt.Sprint(i % 17) // ties
		if i%11 == 0 {
			amount = "NULL"
		}
		q := fmt.Sprintf("INSERT INTO orders (customer_id, amount) VALUES (%d, %s)", i*7919+3, amount)
		if _, err := simple.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
		if _, err := shards[0].Exec(ctx, strings.Replace(q, "orders", "orders_all", 1)); err != nil {
			t.Fatal(err)
		}
	}
	var n0 int
	shards[0].QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n0)
	if n0 == 0 || n0 == 120 {
		t.Fatalf("shard 0 holds %d of 120 rows: the test needs both shards", n0)
	}
	queries := []string{
		"SELECT customer_id, amount FROM orders ORDER BY amount, customer_id LIMIT 7 OFFSET 5",
		"SELECT customer_id, amount FROM orders ORDER BY amount DESC, customer_id OFFSET 5 LIMIT 7",
		"SELECT customer_id, amount FROM orders ORDER BY amount NULLS FIRST, customer_id DESC OFFSET 100",
		"SELECT * FROM orders ORDER BY customer_id OFFSET 3 ROWS FETCH FIRST 4 ROWS ONLY",
		"SELECT customer_id FROM orders ORDER BY customer_id LIMIT ALL OFFSET 117",
		"SELECT customer_id FROM orders ORDER BY customer_id LIMIT 5 OFFSET 500",
		"SELECT count(*) FROM orders WHERE amount > 3 OFFSET 0",
		"SELECT count(*) FROM orders LIMIT 0",
		"SELECT count(*), sum(amount) FROM orders WHERE customer_id IN (1, 4) LIMIT 0",
		"SELECT count(*) FROM orders OFFSET 1",
		"SELECT customer_id FROM orders ORDER BY customer_id LIMIT 0",
		// Floating-point sums, written as the server writes them (the
		// values are exact in binary, so the order of the additions does
		// not matter).
		"SELECT sum(amount::float8) FROM orders",
		"SELECT sum(amount::float8 * 1e12) FROM orders",
		"SELECT sum(amount::float8 * 0.000000000931322574615478515625) FROM orders",
		"SELECT sum(amount::float4), sum(amount::float4 * 100000) FROM orders",
		"SELECT sum(CASE WHEN amount = 5 THEN 'NaN'::numeric ELSE amount END) FROM orders",
		"SELECT sum(CASE WHEN amount = 5 THEN 'Infinity'::float8 ELSE amount END) FROM orders",
	}
	for _, q := range queries {
		ref := strings.Replace(q, "FROM orders", "FROM orders_all", 1)
		ref = strings.Replace(ref, "SELECT *", "SELECT customer_id, amount", 1)
		q = strings.Replace(q, "SELECT *", "SELECT customer_id, amount", 1)
		want, err := textRows(ctx, shards[0], ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		for name, conn := range conns {
			got, err := textRows(ctx, conn, q)
			if err != nil {
				t.Errorf("%s: %s: %v", name, q, err)
				continue
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s\n got %v\nwant %v (one database)", name, q, got, want)
			}
		}
	}
	// A SUM the proxy cannot add is refused with the reason.
	_, err := conns["simple"].Exec(ctx, "SELECT sum(amount * interval '1 second') FROM orders")
	wantSQLState(t, err, "0A000", "SUM of column")
	// An OFFSET given as a parameter stays refused, with the reason.
	_, err = conns["exec"].Exec(ctx, "SELECT customer_id FROM orders ORDER BY customer_id LIMIT 5 OFFSET $1", 3)
	wantSQLState(t, err, "0A000", "OFFSET $1")
	// The connections still work.
	for name, conn := range conns {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 120 {
			t.Fatalf("%s: count after: %d, %v", name, n, err)
		}
	}
}

// A floating-point SUM over several shards is added from the shards'
// sums as text, which is exact only when extra_float_digits is 1 or more
// (the default: the shortest digits that read back exactly). With fewer
// digits each shard's sum comes rounded: the proxy answered
// 1.428571428571433 where one database answers 1.42857142857143
// (extra_float_digits 0), and 1.1 for 1 (-15). Such a SUM is refused;
// with the default digits it matches one database.
func TestScatterFloatSumDigits(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	ctx := ctxT(t, 60*time.Second)
	if _, err := shards[0].Exec(ctx, `DROP TABLE IF EXISTS orders_all;
		CREATE TABLE orders_all (customer_id bigint, id serial, amount int)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shards[0].Exec(context.Background(), "DROP TABLE IF EXISTS orders_all") })
	conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for i := int64(1); i <= 4; i++ {
		q := fmt.Sprintf("INSERT INTO orders (customer_id, amount) VALUES (%d, %d)", i, i)
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
		if _, err := shards[0].Exec(ctx, strings.Replace(q, "orders", "orders_all", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if n := shardCount(t, shards[0], ""); n == 0 || n == 4 {
		t.Fatalf("shard 0 holds %d of 4 rows: the test needs both shards", n)
	}
	for _, digits := range []string{"0", "-15", "1", "3"} {
		// Sevenths have more digits than 15; eighths are exact, so the
		// order of the additions does not matter.
		for _, q := range []string{"SELECT sum(amount::float8 / 7) FROM orders", "SELECT sum(amount::float4 / 7) FROM orders",
			"SELECT sum(amount::float8 / 8), sum(amount::float4 / 8) FROM orders"} {
			if (digits == "1" || digits == "3") && strings.Contains(q, "/ 7") {
				continue // the shards' partial sums are rounded in another order than one database's
			}
			set := "SET extra_float_digits = " + digits
			if _, err := conn.Exec(ctx, set); err != nil {
				t.Fatal(err)
			}
			if _, err := shards[0].Exec(ctx, set); err != nil {
				t.Fatal(err)
			}
			want, err := textRows(ctx, shards[0], strings.Replace(q, "FROM orders", "FROM orders_all", 1))
			if err != nil {
				t.Fatal(err)
			}
			got, err := textRows(ctx, conn, q)
			if digits == "0" || digits == "-15" {
				wantSQLState(t, err, "0A000", fmt.Sprintf("%s with extra_float_digits %s (one database: %v; proxy: %v)", q, digits, want, got))
				continue
			}
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("%s, extra_float_digits %s: %v, %v; one database: %v", q, digits, got, err, want)
			}
		}
	}
}

// TestScatterOrderByNameCase: ORDER BY a column the select list hides
// behind * is found by its name in the shards' row description as
// PostgreSQL names it: unquoted names fold to lower case, quoted names
// keep theirs, so "Total" and total are two columns and neither is
// ambiguous.
func TestScatterOrderByNameCase(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	ctx := ctxT(t, 60*time.Second)
	for _, s := range shards {
		if _, err := s.Exec(ctx, `ALTER TABLE orders ADD COLUMN "Total" int, ADD COLUMN total int`); err != nil {
			t.Fatal(err)
		}
	}
	conns := scatterModes(t, p)
	for i := int64(0); i < 40; i++ {
		if _, err := conns["simple"].Exec(ctx, fmt.Sprintf(`INSERT INTO orders (customer_id, amount, "Total", total) VALUES (%d, 0, %d, %d)`, i*31+1, i, 100-i)); err != nil {
			t.Fatal(err)
		}
	}
	for name, conn := range conns {
		for _, tc := range []struct{ q, want string }{
			{`SELECT * FROM orders ORDER BY "Total" DESC LIMIT 3`, "39 38 37"},
			{`SELECT * FROM orders ORDER BY TOTAL DESC LIMIT 3`, "0 1 2"},
			{`SELECT * FROM orders ORDER BY Total LIMIT 3`, "39 38 37"},
		} {
			rows, err := conn.Query(ctx, tc.q)
			if err != nil {
				t.Fatalf("%s: %s: %v", name, tc.q, err)
			}
			var got []string
			for rows.Next() {
				m, err := pgx.RowToMap(rows)
				if err != nil {
					t.Fatalf("%s: %s: %v", name, tc.q, err)
				}
				got = append(got, fmt.Sprint(m["Total"]))
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("%s: %s: %v", name, tc.q, err)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("%s: %s: \"Total\" of the rows = %v; want %s", name, tc.q, got, tc.want)
			}
		}
	}
}

// TestScatterBudget: a SELECT run on every shard whose rows exceed
// max_scatter_bytes (64 KiB here) is refused with 54000 naming the key,
// instead of the proxy holding every row; the metric counts it, the
// session keeps working, and no server connection stays leased or busy.
// Before, PostgreSQL scatter held every row with no cap.
func TestScatterBudget(t *testing.T) {
	p := serveConfig(t, strings.Replace(shardConfig(""), "pool_size = 5", "pool_size = 5\nmax_scatter_bytes = \"64KiB\"", 1))
	shards := shardConns(t)
	ctx := ctxT(t, 120*time.Second)
	for i, s := range shards {
		// 2 x 300 rows of ~500 bytes: about 300 KB in all, 150 KB a shard.
		if _, err := s.Exec(ctx, fmt.Sprintf(`ALTER TABLE orders ADD COLUMN note text;
			INSERT INTO orders (customer_id, amount, note) SELECT g*2+%d, g, repeat('x', 500) FROM generate_series(1, 300) g`, i)); err != nil {
			t.Fatal(err)
		}
	}
	conns := scatterModes(t, p)
	before := counterSum(t, "switchyard_scatter_refused_total")
	for name, conn := range conns {
		_, err := textRows(ctx, conn, "SELECT * FROM orders")
		wantSQLState(t, err, "54000", name+": scatter over max_scatter_bytes")
		if !strings.Contains(pgMessage(err), "max_scatter_bytes") {
			t.Errorf("%s: the message does not name max_scatter_bytes: %v", name, err)
		}
		// The session goes on: a small scatter and a point read.
		rows, err := textRows(ctx, conn, "SELECT customer_id FROM orders ORDER BY customer_id LIMIT 10")
		if err != nil || len(rows) != 10 || rows[0] != "2" {
			t.Fatalf("%s: small scatter after the refusal: %v, %v", name, rows, err)
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 600 {
			t.Fatalf("%s: count after the refusal: %d, %v", name, n, err)
		}
	}
	if got := counterSum(t, "switchyard_scatter_refused_total") - before; got != 3 {
		t.Errorf("switchyard_scatter_refused_total grew by %v; want 3", got)
	}
	waitPoolFree(t, p, "after the refused scatters")
	// No backend of the shards is still sending a result nobody reads.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var busy int
		if err := shards[0].QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname IN ('orders_0', 'orders_1') AND state <> 'idle' AND pid <> pg_backend_pid()`).Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backends of the shards are still busy after the refused scatters", busy)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A reload raises the budget for the next SELECT.
	cfg, err := config.Parse([]byte(strings.Replace(shardConfig(""), "pool_size = 5", "pool_size = 5\nmax_scatter_bytes = \"1MiB\"", 1)), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if rows, err := textRows(ctx, conns["simple"], "SELECT * FROM orders"); err != nil || len(rows) != 600 {
		t.Fatalf("after a reload to 1MiB: %d rows, %v; want 600", len(rows), err)
	}
}

// TestScatterLimitParam: LIMIT $1 in a SELECT run on every shard (the
// extended protocol, text and binary parameters) answers what one
// database would; it was refused with 0A000 (MySQL answered LIMIT ?). A
// NULL limit is LIMIT ALL; with a literal OFFSET it stays refused, as in
// MySQL (the offset cannot be folded into a parameter).
func TestScatterLimitParam(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	ctx := ctxT(t, 60*time.Second)
	conns := scatterModes(t, p)
	for i := int64(0); i < 50; i++ {
		if _, err := conns["simple"].Exec(ctx, fmt.Sprintf("INSERT INTO orders (customer_id, amount) VALUES (%d, %d)", i*7919+3, i%13)); err != nil {
			t.Fatal(err)
		}
	}
	var n0 int
	shards[0].QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n0)
	if n0 == 0 || n0 == 50 {
		t.Fatalf("shard 0 holds %d of 50 rows: the test needs both shards", n0)
	}
	for _, name := range []string{"exec", "cache"} {
		conn := conns[name]
		for _, limit := range []any{int64(7), "3", nil} {
			rows, err := conn.Query(ctx, "SELECT customer_id, amount FROM orders ORDER BY amount DESC, customer_id LIMIT $1", limit)
			if err != nil {
				t.Fatalf("%s: LIMIT %v: %v", name, limit, err)
			}
			type row struct {
				Cust   int64
				Amount int32
			}
			rs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
			if err != nil {
				t.Fatalf("%s: LIMIT %v: %v", name, limit, err)
			}
			var got []int64
			for _, r := range rs {
				got = append(got, r.Cust)
			}
			var want []int64
			var all []int64
			for i := int64(0); i < 50; i++ {
				all = append(all, i)
			}
			slices.SortStableFunc(all, func(a, b int64) int {
				if a%13 != b%13 {
					return int(b%13 - a%13)
				}
				return int(a - b)
			})
			for _, i := range all {
				want = append(want, i*7919+3)
			}
			switch limit {
			case int64(7):
				want = want[:7]
			case "3":
				want = want[:3]
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: LIMIT %v = %v; want %v", name, limit, got, want)
			}
		}
		_, err := conn.Exec(ctx, "SELECT customer_id FROM orders ORDER BY customer_id LIMIT $1 OFFSET 2", 3)
		wantSQLState(t, err, "0A000", name+": LIMIT $1 OFFSET 2")
	}
}

// TestScatterTextCollation: text ORDER BY and MIN/MAX across shards
// answer what one database answers, or are refused (0A000) with the
// reason; they were compared as bytes whatever the collation, so a column
// in an ICU collation (where 'a' < 'B') came back in C order ('B' < 'a').
// The test databases are in C (testcluster's initdb --locale=C), so text
// in the database's default collation still merges; a column or a
// COLLATE in another collation is refused, and so is an expression
// (min(name)) once any column of the database is in one.
func TestScatterTextCollation(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	ctx := ctxT(t, 120*time.Second)
	conns := scatterModes(t, p)
	const cols = `ALTER TABLE %s ADD COLUMN cname text, ADD COLUMN vname varchar(10), ADD COLUMN uname text COLLATE "und-x-icu"`
	for _, s := range shards {
		if _, err := s.Exec(ctx, fmt.Sprintf(cols, "orders")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := shards[0].Exec(ctx, `DROP TABLE IF EXISTS orders_all;
		CREATE TABLE orders_all (customer_id bigint, id serial, amount int);`+fmt.Sprintf(cols, "orders_all")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shards[0].Exec(context.Background(), "DROP TABLE IF EXISTS orders_all") })
	names := []string{"a", "B", "c", "D", "e", "F", "_x", "Zz"}
	for i, n := range names {
		q := fmt.Sprintf("INSERT INTO orders (customer_id, amount, cname, vname, uname) VALUES (%d, %d, '%s', '%s', '%s')", i*7919+3, i, n, n, n)
		if _, err := conns["simple"].Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
		if _, err := shards[0].Exec(ctx, strings.Replace(q, "orders", "orders_all", 1)); err != nil {
			t.Fatal(err)
		}
	}
	var n0 int
	shards[0].QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n0)
	if n0 == 0 || n0 == len(names) {
		t.Fatalf("shard 0 holds %d of %d rows: the test needs both shards", n0, len(names))
	}
	check := func(q string, refused bool) {
		t.Helper()
		want, err := textRows(ctx, shards[0], strings.Replace(q, "FROM orders", "FROM orders_all", 1))
		if err != nil {
			t.Fatalf("%s on one database: %v", q, err)
		}
		for name, conn := range conns {
			got, err := textRows(ctx, conn, q)
			if refused {
				if err == nil {
					t.Errorf("%s: %s = %v; want a refusal (one database answers %v)", name, q, got, want)
					continue
				}
				wantSQLState(t, err, "0A000", name+": "+q)
				if !strings.Contains(pgMessage(err), "collation") {
					t.Errorf("%s: %s: the refusal does not say why: %v", name, q, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %s: %v", name, q, err)
			} else if !slices.Equal(got, want) {
				t.Errorf("%s: %s\n got %v\nwant %v (one database)", name, q, got, want)
			}
		}
	}
	// The database's own collation, C: merged exactly.
	check("SELECT cname FROM orders ORDER BY cname", false)
	check("SELECT vname, amount FROM orders ORDER BY vname DESC LIMIT 5", false)
	check("SELECT customer_id, amount, cname FROM orders ORDER BY cname LIMIT 4 OFFSET 1", false)
	// An ICU collation: never in byte order.
	check("SELECT uname FROM orders ORDER BY uname", true)
	check("SELECT * FROM orders ORDER BY uname LIMIT 3", true)
	check("SELECT min(uname), max(uname) FROM orders", true)
	// An expression, while a column of the database is in ICU: refused.
	check("SELECT min(cname) FROM orders", true)
	// Without it, expressions in C merge; COLLATE still refuses.
	for _, s := range shards {
		if _, err := s.Exec(ctx, "ALTER TABLE orders DROP COLUMN uname"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := shards[0].Exec(ctx, "ALTER TABLE orders_all DROP COLUMN uname"); err != nil {
		t.Fatal(err)
	}
	check("SELECT min(cname), max(vname), count(*) FROM orders", false)
	check(`SELECT max(cname COLLATE "und-x-icu") FROM orders`, true)
	check(`SELECT cname COLLATE "und-x-icu" AS n FROM orders ORDER BY n`, true)
	// Numbers and the connections are unaffected.
	check("SELECT amount FROM orders ORDER BY amount DESC LIMIT 3", false)
}

// TestScatterTypeOrder: values of other types are ordered across shards
// as the server orders them, or the merge is refused (0A000); they were
// all compared as their text's bytes. A timestamptz read in a zone with
// daylight saving time changes its offset (01:30-04 is before 01:10-05),
// an inet's text does not order as addresses (10.0.0.9 < 10.0.0.10).
func TestScatterTypeOrder(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	ctx := ctxT(t, 120*time.Second)
	conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+"&timezone=America/New_York&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	const cols = `ALTER TABLE %s ADD COLUMN ts timestamptz, ADD COLUMN d date, ADD COLUMN ok bool, ADD COLUMN u uuid, ADD COLUMN b bytea, ADD COLUMN ip inet,
		ADD COLUMN f float8, ADD COLUMN r real, ADD COLUMN t time, ADD COLUMN tsn timestamp, ADD COLUMN n numeric`
	for _, s := range shards {
		if _, err := s.Exec(ctx, fmt.Sprintf(cols, "orders")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := shards[0].Exec(ctx, `DROP TABLE IF EXISTS orders_all;
		CREATE TABLE orders_all (customer_id bigint, id serial, amount int);`+fmt.Sprintf(cols, "orders_all")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shards[0].Exec(context.Background(), "DROP TABLE IF EXISTS orders_all") })
	for i := range 12 {
		ts := fmt.Sprintf("2024-11-03 %02d:%02d:00+00", 4+i%4, i*5) // around the end of daylight saving time in New York
		tsn := fmt.Sprintf("19%02d-01-01 00:00:0%d", 99-i*7, i%10)
		if i == 4 {
			tsn = "infinity"
		}
		n := []string{"-12345678901234567890.5", "0.0001", "10000", "-0.25", "3.14159265358979323846", "0.00", "99.990"}[i%7]
		q := fmt.Sprintf(`INSERT INTO orders (customer_id, amount, ts, d, ok, u, b, ip, f, r, t, tsn, n) VALUES (%d, %d, '%s', '%d-0%d-1%d', %v, '%08d-0000-0000-0000-000000000000', '\x%02x', '10.0.0.%d', %v, %v, '%02d:00:01', '%s', %s)`,
			i*7919+3, i, ts, 1990+i*3, 1+i%9, i%10, i%2 == 0, 99999999-i*1000, 255-i*7, i*3, float64(i-5)*1.5, float64(5-i)/4, 23-i, tsn, n)
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
		if _, err := shards[0].Exec(ctx, strings.Replace(q, "orders", "orders_all", 1)); err != nil {
			t.Fatal(err)
		}
	}
	ref, err := pgx.Connect(ctx, testcluster.PG.DSN(testcluster.PG.Primary, "app", "app", "orders_0")+"&timezone=America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close(context.Background())
	for _, tc := range []struct {
		q       string
		refused bool
	}{
		{"SELECT ts FROM orders ORDER BY ts", false},
		{"SELECT min(ts), max(ts) FROM orders", false},
		{"SELECT d, ok FROM orders ORDER BY d DESC", false},
		{"SELECT ok, u FROM orders ORDER BY ok, u", false},
		{"SELECT b FROM orders ORDER BY b", false},
		{"SELECT ip FROM orders ORDER BY ip", true},
		{"SELECT max(ip) FROM orders", true},
	} {
		want, err := textRows(ctx, ref, strings.Replace(tc.q, "FROM orders", "FROM orders_all", 1))
		if err != nil {
			t.Fatalf("%s on one database: %v", tc.q, err)
		}
		got, err := textRows(ctx, conn, tc.q)
		switch {
		case tc.refused && err == nil:
			t.Errorf("%s = %v; want a refusal (one database answers %v)", tc.q, got, want)
		case tc.refused:
			wantSQLState(t, err, "0A000", tc.q)
		case err != nil:
			t.Errorf("%s: %v", tc.q, err)
		case !slices.Equal(got, want):
			t.Errorf("%s\n got %v\nwant %v (one database)", tc.q, got, want)
		}
	}
	// pgx's default mode asks for binary results of these types: the
	// proxy orders and adds them as the server does (they were refused,
	// "in binary format ..., which the proxy cannot merge").
	bin, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+"&timezone=America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close(context.Background())
	values := func(conn *pgx.Conn, q string) ([]string, error) {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			return nil, err
		}
		var out []string
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				return nil, err
			}
			out = append(out, fmt.Sprint(v))
		}
		return out, rows.Err()
	}
	for _, q := range []string{
		"SELECT ts, amount FROM orders ORDER BY ts DESC, amount",
		"SELECT d, ok, u FROM orders ORDER BY d, ok, u",
		"SELECT ok, u FROM orders ORDER BY ok DESC, u DESC",
		"SELECT b FROM orders ORDER BY b DESC",
		"SELECT f, r FROM orders ORDER BY f, r",
		"SELECT r, f FROM orders ORDER BY r DESC, f LIMIT 5",
		"SELECT tsn, t FROM orders ORDER BY tsn DESC, t",
		"SELECT t FROM orders ORDER BY t",
		"SELECT min(ts), max(ts), min(d), max(d), min(f), max(r), min(tsn), max(tsn), min(t), max(t) FROM orders WHERE amount < 0",
		"SELECT min(ts), max(ts), min(d), max(d), min(f), max(r), min(tsn), max(tsn), min(t), max(t) FROM orders",
		"SELECT sum(f), sum(r), sum(f * 0.25), count(*) FROM orders",
		"SELECT amount::oid AS o FROM orders ORDER BY o DESC",
		"SELECT n, amount FROM orders ORDER BY n DESC, amount",
		"SELECT min(n), max(n), sum(n), sum(amount::bigint), sum(customer_id), sum(n) FILTER (WHERE amount < 0) FROM orders",
	} {
		want, err := values(ref, strings.Replace(q, "FROM orders", "FROM orders_all", 1))
		if err != nil {
			t.Fatalf("%s on one database: %v", q, err)
		}
		got, err := values(bin, q)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("binary results: %s\n got %v, %v\nwant %v (one database)", q, got, err, want)
		}
	}
	// NaN, which PostgreSQL orders above every number, stays refused.
	_, err = values(bin, "SELECT 'NaN'::float8 AS n, amount FROM orders ORDER BY n, amount")
	wantSQLState(t, err, "0A000", "ORDER BY a binary NaN")
}

// TestScatterOnlyPlannedShards: a SELECT whose keys name some of the
// shards (customer_id IN (a, b), or an OR of two keys given as
// parameters) runs on those only, in every protocol mode: a third shard
// that is down does not fail it (it did: the proxy sent every scatter to
// every shard). A keyless SELECT, which needs the third shard, fails,
// which shows it is down.
func TestScatterOnlyPlannedShards(t *testing.T) {
	shards := shardConns(t)
	ctx := ctxT(t, 120*time.Second)
	m, _ := shard.NewHash(3, 1024, 1)
	var keys [2]int64 // a key of shard 0 and one of shard 1 in the three-shard map
	for k := int64(1); keys[0] == 0 || keys[1] == 0; k++ {
		if s, _ := m.ShardOfInt(k); s < 2 && keys[s] == 0 {
			keys[s] = k
			if _, err := shards[s].Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, $2)", k, 10*(s+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	p := serveConfig(t, shardConfig("")+"[[clusters.shards]]\nprimary = \"127.0.0.1:1\"\ndatabase = \"orders_2\"\n")
	want := []string{fmt.Sprintf("%d|10", keys[0]), fmt.Sprintf("%d|20", keys[1])}
	for name, conn := range scatterModes(t, p) {
		q := fmt.Sprintf("SELECT customer_id, amount FROM orders WHERE customer_id IN (%d, %d) ORDER BY amount", keys[0], keys[1])
		if rows, err := textRows(ctx, conn, q); err != nil || !slices.Equal(rows, want) {
			t.Errorf("%s: %s: %v, %v; want %v", name, q, rows, err, want)
		}
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE customer_id = $1 OR customer_id = $2", keys[0], keys[1]).Scan(&n)
		if err != nil || n != 2 {
			t.Errorf("%s: count of two keys with parameters: %d, %v; want 2", name, n, err)
		}
		if _, err := textRows(ctx, conn, "SELECT customer_id FROM orders"); err == nil {
			t.Errorf("%s: a SELECT on every shard answered with shard 2 down", name)
		}
	}
}

// TestScatterShardsAtOnce: the shards of a scatter SELECT run at once, so
// it takes as long as its slowest shard, not the sum (each shard sleeps
// 1.5 s: 3 s or more one after the other, which it took before).
func TestScatterShardsAtOnce(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	ctx := ctxT(t, 60*time.Second)
	for i, s := range shards {
		if _, err := s.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, 1)", i); err != nil {
			t.Fatal(err)
		}
	}
	for name, conn := range scatterModes(t, p) {
		start := time.Now()
		rows, err := textRows(ctx, conn, "SELECT customer_id, pg_sleep(1.5)::text FROM orders")
		if took := time.Since(start); err != nil || len(rows) != 2 || took >= 2900*time.Millisecond {
			t.Errorf("%s: %v, %v in %v; want 2 rows in less than 2.9 s", name, rows, err, took)
		}
	}
}

// Read-your-writes tokens on a sharded database are refused (0A000): one
// position cannot say which shard's writes it covers. SHOW answered an
// empty token, which SET read_after took and which covered nothing (a
// tester's reader missed the writer's row 23 times in 500).
func TestShardedTokensRefused(t *testing.T) {
	p := startShardProxy(t)
	conns := scatterModes(t, p)
	c := conns["simple"]
	ctx := ctxT(t, 30*time.Second)
	_, err := c.Exec(ctx, "SHOW switchyard.write_position")
	wantSQLState(t, err, "0A000", "read-your-writes tokens are not supported")
	_, err = c.Exec(ctx, "SET switchyard.read_after = 'orders@0/16B3748'")
	wantSQLState(t, err, "0A000", "read-your-writes tokens are not supported")
	if _, err := c.Exec(ctx, "SET switchyard.read_after = ''"); err != nil {
		t.Fatalf("clearing read_after: %v", err)
	}
}
