package mysqlwire

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// INSERT IGNORE of a duplicate leaves a 1062 warning; SHOW WARNINGS and
// @@warning_count that follow see it, with a replica in the cluster
// (they read the primary connection the insert ran on, not a replica).
func TestShowWarningsAfterInsertIgnore(t *testing.T) {
	p := startSplitProxy(t, `pool_size = 4`)
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.diag_w (id INT PRIMARY KEY, v VARCHAR(10))")
	rootExec(t, "REPLACE INTO app.diag_w VALUES (5, 'x')")
	caughtUp(t)
	c := conn(t, p.open(t, ""))
	ctx := context.Background()
	for i := range 3 {
		execSQL(t, c, "INSERT IGNORE INTO diag_w VALUES (5, 'dup')")
		rows, err := c.QueryContext(ctx, "SHOW WARNINGS")
		if err != nil {
			t.Fatal(err)
		}
		var codes []int
		for rows.Next() {
			var level, msg string
			var code int
			if err := rows.Scan(&level, &code, &msg); err != nil {
				t.Fatal(err)
			}
			codes = append(codes, code)
		}
		rows.Close()
		if len(codes) != 1 || codes[0] != 1062 {
			t.Fatalf("round %d: SHOW WARNINGS after INSERT IGNORE of a duplicate: codes %v, want [1062]", i, codes)
		}
		if got := queryString(t, c, "SELECT @@warning_count"); got != "1" {
			t.Fatalf("round %d: @@warning_count = %s, want 1", i, got)
		}
		if got := queryString(t, c, "SHOW COUNT(*) WARNINGS"); got != "1" {
			t.Fatalf("round %d: SHOW COUNT(*) WARNINGS = %s, want 1", i, got)
		}
		// A statement without warnings: the next SHOW WARNINGS is empty.
		execSQL(t, c, "UPDATE diag_w SET v = 'x' WHERE id = 5")
		if got := queryString(t, c, "SELECT @@warning_count"); got != "0" {
			t.Fatalf("round %d: @@warning_count after a clean UPDATE = %s, want 0", i, got)
		}
	}
}

// A client's SHOW WARNINGS never shows another client's warning, though
// both use the only server connection: X's warning outlives X's next
// statement there (MariaDB clears warnings only for statements that use
// tables).
func TestShowWarningsNotAnotherClients(t *testing.T) {
	p := startProxy(t, "pool_size = 1")
	db := p.open(t, "")
	x, y := conn(t, db), conn(t, db)
	ctx := context.Background()
	for i := range 3 {
		if got := queryString(t, x, "SELECT CAST('secret' AS SIGNED)"); got != "0" {
			t.Fatalf("CAST = %s", got)
		}
		execSQL(t, x, "DO 1") // ends X's hold on the connection
		rows, err := y.QueryContext(ctx, "SHOW WARNINGS")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var level, msg string
			var code int
			_ = rows.Scan(&level, &code, &msg)
			t.Errorf("round %d: client Y's SHOW WARNINGS shows %s %d %q", i, level, code, msg)
		}
		rows.Close()
		if got := queryString(t, y, "SELECT @@warning_count"); got != "0" {
			t.Errorf("round %d: client Y's @@warning_count = %s, want 0", i, got)
		}
		stmt, err := y.PrepareContext(ctx, "SHOW COUNT(*) WARNINGS")
		if err != nil {
			t.Fatal(err)
		}
		var n string
		if err := stmt.QueryRowContext(ctx).Scan(&n); err != nil || n != "0" {
			t.Errorf("round %d: client Y's prepared SHOW COUNT(*) WARNINGS = %s (%v), want 0", i, n, err)
		}
		stmt.Close()
	}
}

// ROW_COUNT() after an UPDATE is its affected row count, with a replica
// in the cluster and read-your-writes sampling positions.
func TestRowCountAfterUpdate(t *testing.T) {
	p := startSplitProxy(t, `pool_size = 4`)
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.diag_r (id INT PRIMARY KEY, v INT)")
	rootExec(t, "REPLACE INTO app.diag_r VALUES (1, 0), (2, 0), (3, 0)")
	c := conn(t, p.open(t, ""))
	for i := range 3 {
		execSQL(t, c, fmt.Sprintf("UPDATE diag_r SET v = %d WHERE id <= 2", i+1))
		if got := queryString(t, c, "SELECT ROW_COUNT()"); got != "2" {
			t.Fatalf("round %d: ROW_COUNT() after an UPDATE of 2 rows = %s", i, got)
		}
		if got := queryString(t, c, "SELECT ROW_COUNT()"); got != "-1" {
			t.Fatalf("round %d: ROW_COUNT() after a SELECT = %s, want -1", i, got)
		}
		_ = queryString(t, c, "SELECT id FROM diag_r WHERE id <= 3 ORDER BY id LIMIT 1")
		if got := queryString(t, c, "SELECT FOUND_ROWS() AS n"); got != "1" {
			t.Fatalf("round %d: FOUND_ROWS() after a SELECT of 1 row = %s", i, got)
		}
	}
}

// LAST_INSERT_ID() follows the function's semantics: an explicit id
// leaves it, LAST_INSERT_ID(expr) sets it, and no spelling reads another
// client's value.
func TestLastInsertIDSemantics(t *testing.T) {
	p := startProxy(t, "pool_size = 1")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.diag_k (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	rootExec(t, "DELETE FROM app.diag_k WHERE id >= 2000000")
	db := p.open(t, "")
	a, b := conn(t, db), conn(t, db)
	ctx := context.Background()
	res, err := a.ExecContext(ctx, "INSERT INTO diag_k (v) VALUES (1)")
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := res.LastInsertId()
	execSQL(t, b, "SELECT LAST_INSERT_ID(999)") // b's value, on the same server connection
	want := fmt.Sprint(gen)
	for _, q := range []string{"SELECT LAST_INSERT_ID()", "SELECT last_insert_id()+0", "SELECT @@last_insert_id", "SELECT @@identity"} {
		if got := queryString(t, a, q); got != want {
			t.Errorf("after an insert, %s = %s, want %s (not b's 999)", q, got, want)
		}
	}
	// (An explicit AUTO_INCREMENT value counts as the last id through the
	// proxy: its OK carries it; README says so.)
	execSQL(t, a, "SELECT LAST_INSERT_ID(12345)")
	execSQL(t, b, "SELECT LAST_INSERT_ID(999)")
	for _, q := range []string{"SELECT LAST_INSERT_ID()", "SELECT last_insert_id()+0", "SELECT @@identity"} {
		if got := queryString(t, a, q); got != "12345" {
			t.Errorf("after LAST_INSERT_ID(12345), %s = %s, want 12345", q, got)
		}
	}
	stmt, err := a.PrepareContext(ctx, "SELECT LAST_INSERT_ID()")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	execSQL(t, b, "SELECT LAST_INSERT_ID(999)")
	var got string
	if err := stmt.QueryRowContext(ctx).Scan(&got); err != nil || got != "12345" {
		t.Errorf("prepared SELECT LAST_INSERT_ID() = %s (%v), want 12345", got, err)
	}
}

// A lease kept for a statement's warnings goes back to the pool when the
// client stays idle (diagHoldIdle): a pool of one serves another client
// then, and the first client's later SHOW WARNINGS reads an empty list,
// not the other client's.
func TestWarningsHoldBounded(t *testing.T) {
	p := startProxy(t, "pool_size = 1")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.diag_h (id INT PRIMARY KEY)")
	rootExec(t, "REPLACE INTO app.diag_h VALUES (1)")
	db := p.open(t, "")
	x, y := conn(t, db), conn(t, db)
	execSQL(t, x, "INSERT IGNORE INTO diag_h VALUES (1)") // a warning: x keeps the connection
	if active, _, _ := poolCounts(p); active != 1 {
		t.Fatalf("after the warning: %d connections leased, want 1 (kept for SHOW WARNINGS)", active)
	}
	start := time.Now()
	waitActiveZero(t, p, 3*time.Second)
	if d := time.Since(start); d > diagHoldIdle+time.Second {
		t.Fatalf("the kept lease went back after %v", d)
	}
	execSQL(t, y, "SELECT CAST('y-secret' AS SIGNED)") // y's warning on the only connection
	if got := queryString(t, x, "SELECT @@warning_count"); got != "0" {
		t.Fatalf("x's @@warning_count after its lease went back = %s, want 0", got)
	}
	if got := queryString(t, x, "SHOW COUNT(*) WARNINGS"); got != "0" {
		t.Fatalf("x's SHOW COUNT(*) WARNINGS = %s, want 0", got)
	}
}

// SET insert_id is used by the next INSERT only, and SET last_insert_id
// sets what LAST_INSERT_ID() returns, as on the server. insert_id was
// replayed like any SET each time another client had used the connection
// in between, so the session's next INSERT took the same id again (1062);
// SET last_insert_id = n was followed by SELECT LAST_INSERT_ID() = 0.
func TestSetInsertIDAndLastInsertID(t *testing.T) {
	p := startProxy(t, "pool_size = 1")
	rootExec(t, "CREATE TABLE IF NOT EXISTS app.diag_i (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	rootExec(t, "DELETE FROM app.diag_i WHERE id >= 3000000")
	db := p.open(t, "")
	a := conn(t, db)
	ctx := context.Background()
	execSQL(t, a, "SET last_insert_id = 4242")
	if got := queryString(t, a, "SELECT LAST_INSERT_ID()"); got != "4242" {
		t.Errorf("after SET last_insert_id = 4242, SELECT LAST_INSERT_ID() = %s", got)
	}
	execSQL(t, a, "SET insert_id = 3000000")
	var ids []int64
	for i := range 2 {
		// Another client wants the connection in between: it gets it
		// (and a's SETs are replayed after), or waits for a pinned a.
		b := conn(t, db)
		bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _ = b.ExecContext(bctx, "DO 1")
		cancel()
		b.Close()
		res, err := a.ExecContext(ctx, "INSERT INTO diag_i (v) VALUES (?)", i)
		if err != nil {
			t.Fatalf("INSERT %d after SET insert_id: %v", i, err)
		}
		id, _ := res.LastInsertId()
		ids = append(ids, id)
	}
	if ids[0] != 3000000 || ids[1] <= ids[0] {
		t.Fatalf("ids after SET insert_id = 3000000: %v, want 3000000 then a generated one", ids)
	}
}
