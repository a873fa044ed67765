package frontend

import "testing"

// StmtCap: the count cap refuses a new statement but not a rebind; the
// byte estimate recounts when it passes the cap, and refuses only when
// the recount does too, keeping what the client holds.
func TestStmtCap(t *testing.T) {
	var c StmtCap
	none := func() int { t.Fatal("recount under the cap"); return 0 }
	if why, max := c.Room(2, 2, false, 10, none); why != StmtTooMany || max != 2 {
		t.Errorf("third statement of 2: %v %d, want StmtTooMany 2", why, max)
	}
	if why, _ := c.Room(2, 2, true, 10, none); why != StmtFits {
		t.Errorf("rebind at the cap: %v, want StmtFits", why)
	}
	held := 0
	recount := func() int { return held }
	if why, _ := c.Room(0, 1, false, MaxClientStmtBytes, recount); why != StmtFits {
		t.Fatalf("a statement of the cap's size: %v", why)
	}
	held = MaxClientStmtBytes - 10 // the client closed statements meanwhile
	if why, _ := c.Room(0, 1, false, 5, recount); why != StmtFits {
		t.Errorf("5 bytes over an estimate past the cap, held %d: %v, want StmtFits after the recount", held, why)
	}
	if why, n := c.Room(0, 1, false, 20, recount); why != StmtTooLarge || n != held+20 {
		t.Errorf("20 bytes over %d held: %v %d, want StmtTooLarge %d", held, why, n, held+20)
	}
	held = 0
	if why, _ := c.Room(0, 1, false, 20, recount); why != StmtFits {
		t.Errorf("after the client closed all: %v, want StmtFits", why)
	}
	if !c.Refused("postgres") || c.Refused("postgres") {
		t.Error("Refused: first is true once")
	}
}
