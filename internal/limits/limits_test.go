package limits

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestCapsAndRelease(t *testing.T) {
	c := NewClients()
	a, err := c.Connect(2)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Connect(2)
	_, err = c.Connect(2)
	var r *Refusal
	if !errors.As(err, &r) || r.Kind != Total || err.Error() != "no more connections allowed (max_client_conns = 2)" {
		t.Fatalf("third client: %v", err)
	}
	if err := a.Login("app", 1, "postgres", "app", 0); err != nil {
		t.Fatal(err)
	}
	err = b.Login("app", 1, "postgres", "app", 0)
	if !errors.As(err, &r) || r.Kind != User || err.Error() != `too many connections for user "app" (max_client_conns = 1)` {
		t.Fatalf("second login of app: %v", err)
	}
	// A refused login counts nothing against the database either.
	if got := c.Counts(); got.Total != 2 || got.ByUser["app"] != 1 || got.ByDB["postgres/app"] != 1 {
		t.Fatalf("counts %+v", got)
	}
	err = b.Login("other", 0, "postgres", "app", 1)
	if !errors.As(err, &r) || r.Kind != Database || r.Name != "app" {
		t.Fatalf("database cap: %v", err)
	}
	b.Release()
	a.Release()
	a.Release() // twice is harmless
	var nilSlot *Slot
	nilSlot.Release()
	if got := c.Counts(); got.Total != 0 || len(got.ByUser) != 0 || len(got.ByDB) != 0 {
		t.Fatalf("after release: %+v", got)
	}
}

// Under concurrency the counts never pass a cap and come back to zero.
func TestConcurrentCountsExact(t *testing.T) {
	c := NewClients()
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted, maxSeen := 0, 0
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				s, err := c.Connect(20)
				if err != nil {
					continue
				}
				if s.Login("u", 5, "mysql", "db", 8) == nil {
					n := c.Counts().ByUser["u"]
					mu.Lock()
					admitted++
					maxSeen = max(maxSeen, n)
					mu.Unlock()
				}
				s.Release()
			}
		}()
	}
	wg.Wait()
	if got := c.Counts(); got.Total != 0 || len(got.ByUser) != 0 || len(got.ByDB) != 0 {
		t.Fatalf("leaked: %+v", got)
	}
	if admitted == 0 || maxSeen > 5 {
		t.Fatalf("admitted %d, most at once %d (cap 5)", admitted, maxSeen)
	}
}

func TestAuthFailuresWindow(t *testing.T) {
	a := NewAuthFailures()
	now := time.Unix(1000, 0)
	a.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if _, blocked := a.Blocked("10.0.0.1", 3); blocked {
			t.Fatalf("blocked after %d failures", i)
		}
		a.Failed("10.0.0.1")
	}
	left, blocked := a.Blocked("10.0.0.1", 3)
	if !blocked || left != Window {
		t.Fatalf("after 3 failures: blocked=%v left=%v", blocked, left)
	}
	if _, blocked := a.Blocked("10.0.0.2", 3); blocked {
		t.Fatal("another address is blocked")
	}
	if _, blocked := a.Blocked("10.0.0.1", 0); blocked {
		t.Fatal("limit 0 blocks")
	}
	now = now.Add(Window)
	if _, blocked := a.Blocked("10.0.0.1", 3); blocked {
		t.Fatal("still blocked after the window")
	}
	a.Failed("10.0.0.3") // sweeps the expired window of 10.0.0.1
	if len(a.m) != 1 {
		t.Fatalf("expired windows kept: %d", len(a.m))
	}
}
