package mysqlwire

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/scatter/scattertest"
)

// TestRowCodecMergeMySQL runs the merge cases both protocols share through
// the MySQL row codec (text protocol; text in utf8mb4_bin).
func TestRowCodecMergeMySQL(t *testing.T) {
	types := map[scattertest.Type]byte{scattertest.Int: tLongLong, scattertest.Decimal: tNewDecimal, scattertest.Text: 0xfd}
	colDefs := func(cols []scattertest.Col) []colDef {
		var out []colDef
		for _, c := range cols {
			out = append(out, colDef{name: c.Name, typ: types[c.Type], charset: 46})
		}
		return out
	}
	scattertest.Run(t, func(cols []scattertest.Col) scatter.Codec {
		return &rowCodec{cols: colDefs(cols)}
	}, func(cols []scattertest.Col, vals []string) []byte {
		var vs [][]byte
		for _, v := range vals {
			if v == scattertest.Null {
				vs = append(vs, nil)
			} else {
				vs = append(vs, []byte(v))
			}
		}
		return encodeRow(vs, colDefs(cols), false)
	})
}

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
		wantMyErr(t, err, erTooBigSelect, "max_scatter_bytes (64KiB)")
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
