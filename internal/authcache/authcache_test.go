package authcache

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCacheTTLFailuresAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	c := &Cache{now: func() time.Time { return now }}
	var fetches atomic.Int64
	fetch := func(v string, err error) func() (string, error) {
		return func() (string, error) { fetches.Add(1); return v, err }
	}
	if v, r, err := c.Get("u", time.Minute, fetch("A", nil)); v != "A" || r != Fetched || err != nil {
		t.Fatalf("first: %q %v %v", v, r, err)
	}
	if v, r, _ := c.Get("u", time.Minute, fetch("B", nil)); v != "A" || r != Cached {
		t.Fatalf("within the TTL: %q %v", v, r)
	}
	now = now.Add(time.Minute)
	if v, r, _ := c.Get("u", time.Minute, fetch("B", nil)); v != "B" || r != Fetched {
		t.Fatalf("after the TTL: %q %v", v, r)
	}
	// Failures are not kept; TTL 0 keeps nothing.
	if _, _, err := c.Get("f", time.Minute, fetch("", errors.New("down"))); err == nil {
		t.Fatal("no error")
	}
	if v, r, _ := c.Get("f", time.Minute, fetch("ok", nil)); v != "ok" || r != Fetched {
		t.Fatalf("after a failure: %q %v", v, r)
	}
	c.Get("z", 0, fetch("x", nil))
	if _, r, _ := c.Get("z", 0, fetch("x", nil)); r != Fetched {
		t.Fatal("TTL 0 kept an answer")
	}
	// Bounded.
	for i := 0; i < MaxEntries+10; i++ {
		c.Get(fmt.Sprint("n", i), time.Hour, fetch("", nil))
	}
	if n := c.Len(); n > MaxEntries {
		t.Fatalf("%d entries", n)
	}
}

func TestCacheOneFetchInFlight(t *testing.T) {
	var c Cache
	var fetches atomic.Int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _, _ := c.Get("u", time.Minute, func() (string, error) {
				fetches.Add(1)
				<-release
				return "v", nil
			})
			if v != "v" {
				t.Errorf("got %q", v)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 8 concurrent logins", n)
	}
}
