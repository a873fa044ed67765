package router

import "testing"

func TestMySQLScatterLimit(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		ok      bool
	}{
		{"SELECT id FROM t ORDER BY id LIMIT 2, 3", "SELECT id FROM t ORDER BY id LIMIT 5", true},
		{"select id from t order by id limit 3 offset 2 for update", "select id from t order by id LIMIT 5 for update", true},
		{"SELECT id FROM t WHERE x = ? LIMIT 10 OFFSET 5", "SELECT id FROM t WHERE x = ? LIMIT 15", true},
		{"SELECT id FROM t LIMIT 3", "SELECT id FROM t LIMIT 3", false},
		{"SELECT id FROM (SELECT id FROM t LIMIT 1, 2) x LIMIT 4", "SELECT id FROM (SELECT id FROM t LIMIT 1, 2) x LIMIT 4", false},
		{"SELECT id FROM t /* limit 1, 2 */ LIMIT ?, 3", "SELECT id FROM t /* limit 1, 2 */ LIMIT ?, 3", false},
		{"SELECT 'limit 1, 2' FROM t LIMIT 1,2", "SELECT 'limit 1, 2' FROM t LIMIT 3", true},
	} {
		got, ok := MySQLScatterLimit(tc.in)
		if got != tc.out || ok != tc.ok {
			t.Errorf("MySQLScatterLimit(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.out, tc.ok)
		}
	}
}

func TestPostgresScatterLimit(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		ok      bool
	}{
		{"SELECT id FROM t ORDER BY id LIMIT 3 OFFSET 2", "SELECT id FROM t ORDER BY id LIMIT 5 ", true},
		{"SELECT id FROM t ORDER BY id OFFSET 2 LIMIT 3", "SELECT id FROM t ORDER BY id  LIMIT 5", true},
		{"SELECT id FROM t ORDER BY id OFFSET 2", "SELECT id FROM t ORDER BY id ", true},
		{"SELECT id FROM t ORDER BY id LIMIT ALL OFFSET 2", "SELECT id FROM t ORDER BY id LIMIT ALL ", true},
		{"SELECT id FROM t ORDER BY id OFFSET 2 ROWS FETCH FIRST 3 ROWS ONLY", "SELECT id FROM t ORDER BY id  FETCH FIRST 5 ROWS ONLY", true},
		{"select id from t order by id offset 10 rows fetch next 1 row only", "select id from t order by id  fetch next 11 row only", true},
		{"SELECT id FROM t LIMIT 3", "SELECT id FROM t LIMIT 3", false},
		{"SELECT id FROM t LIMIT 3 OFFSET $1", "SELECT id FROM t LIMIT 3 OFFSET $1", false},
		{"SELECT id FROM (SELECT id FROM t OFFSET 1) x LIMIT 4", "SELECT id FROM (SELECT id FROM t OFFSET 1) x LIMIT 4", false},
		{"SELECT 'offset 1' /* offset 2 */ FROM t LIMIT 1 OFFSET 2", "SELECT 'offset 1' /* offset 2 */ FROM t LIMIT 3 ", true},
		{"SELECT id FROM t FETCH FIRST 3 ROWS WITH TIES OFFSET 1", "SELECT id FROM t FETCH FIRST 3 ROWS WITH TIES OFFSET 1", false},
	} {
		got, ok := PostgresScatterLimit(tc.in)
		if got != tc.out || ok != tc.ok {
			t.Errorf("PostgresScatterLimit(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.out, tc.ok)
		}
	}
}
