package router

import "testing"

func TestParseKill(t *testing.T) {
	for _, c := range []struct {
		sql    string
		isKill bool
		want   Kill
	}{
		{"KILL QUERY 42", true, Kill{Query: true, ID: 42}},
		{"kill 7", true, Kill{ID: 7}},
		{"KILL CONNECTION 7;", true, Kill{ID: 7}},
		{"KILL HARD QUERY 9", true, Kill{Query: true, ID: 9}},
		{"kill soft connection 9 ; ", true, Kill{ID: 9}},
		{"/* c */ KILL /* d */ QUERY -- e\n 3", true, Kill{Query: true, ID: 3}},
		{"# c\nKILL 3", true, Kill{ID: 3}},
		{"/*!KILL 5*/", true, Kill{ID: 5}},
		{"/*M!100000 KILL QUERY 5 */", true, Kill{Query: true, ID: 5}},
		{"KILL QUERY ID 9", true, Kill{}},
		{"KILL USER app", true, Kill{}},
		{"KILL", true, Kill{}},
		{"KILL 0", true, Kill{}},
		{"KILL -5", true, Kill{}},
		{"KILL 5 6", true, Kill{}},
		{"KILL 99999999999999999999999", true, Kill{}},
		{"KILL 'x'", true, Kill{}},
		{"KILL QUERY ?", true, Kill{Query: true, Param: true}},
		{"kill hard ? ;", true, Kill{Param: true}},
		{"KILL ? 5", true, Kill{}},
		{"KILL 5 ?", true, Kill{}},
		{"KILL USER ?", true, Kill{}},
		{"KILLS 5", false, Kill{}},
		{"SELECT 1", false, Kill{}},
		{"", false, Kill{}},
		{"'KILL 5'", false, Kill{}},
	} {
		got, isKill := ParseKill(c.sql)
		if isKill != c.isKill || got != c.want {
			t.Errorf("ParseKill(%q) = %+v, %v; want %+v, %v", c.sql, got, isKill, c.want, c.isKill)
		}
	}
}

func FuzzParseKill(f *testing.F) {
	for _, s := range []string{"KILL QUERY 1", "/*! KILL 2 */", "kill hard 3;", "# x\nKILL"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if k, isKill := ParseKill(s); !isKill && k != (Kill{}) {
			t.Fatalf("ParseKill(%q) = %+v without isKill", s, k)
		}
	})
}
