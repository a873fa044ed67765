package router

import "testing"

func TestAddDecimalText(t *testing.T) {
	for _, tc := range []struct {
		x, y, want string
		ok         bool
	}{
		{"40", "2", "42", true},
		{"1.50", "2.25", "3.75", true},
		{"1.5", "-2", "-0.5", true},
		{"0.10", "0.2", "0.30", true},
		{"99999999999999999999", "1", "100000000000000000000", true},
		{"1e3", "1", "", false},
		{"abc", "1", "", false},
	} {
		got, ok := AddDecimalText([]byte(tc.x), []byte(tc.y))
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("AddDecimalText(%s, %s) = %q, %v", tc.x, tc.y, got, ok)
		}
	}
}
