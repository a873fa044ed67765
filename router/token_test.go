package router

import (
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	known := func(n string) bool { return n == "pg" || n == "orders" }
	if tok := Token("pg", "0/3000060"); tok != "pg@0/3000060" {
		t.Fatal(tok)
	}
	if Token("pg", "") != "" {
		t.Fatal("a token without a position")
	}
	for _, tt := range []struct{ tok, pos, err string }{
		{"pg@0/3000060", "0/3000060", ""},
		{"0/3000060", "0/3000060", ""}, // a bare position: the form before
		{"a@b@0-1-5", "", `cluster "a@b", which this proxy does not serve`},
		{"orders@0/1", "", `cluster "orders", and this connection's database is served by cluster "pg"`},
		{"@0/1", "", `cluster ""`},
	} {
		pos, err := ParseToken(tt.tok, "pg", known)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: %v, want %q", tt.tok, err, tt.err)
			}
			continue
		}
		if err != nil || pos != tt.pos {
			t.Errorf("%q: %q %v", tt.tok, pos, err)
		}
	}
}
