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
