package pool

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// setHarness is a Set of test pools, recording what it listed and unlisted.
type setHarness struct {
	s     Set[string, int]
	d     *fakeDialer
	mu    sync.Mutex
	opens int
	list  map[*Pool]Limits // listed and not unlisted
	unl   chan *Pool
}

func newSetHarness(t *testing.T) *setHarness {
	h := &setHarness{d: &fakeDialer{}, list: map[*Pool]Limits{}, unl: make(chan *Pool, 16)}
	h.s.Listed = func(_ string, p *Pool, l Limits) {
		h.mu.Lock()
		h.list[p] = l
		h.mu.Unlock()
	}
	h.s.Unlisted = func(p *Pool) {
		h.mu.Lock()
		delete(h.list, p)
		h.mu.Unlock()
		h.unl <- p
	}
	t.Cleanup(func() {
		h.s.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.list) != 0 {
			t.Errorf("%d pools still listed after Close", len(h.list))
		}
	})
	return h
}

// get opens key's pool with size (its value is the open's number).
func (h *setHarness) get(t *testing.T, key string, size int) (*Pool, int) {
	t.Helper()
	p, v, err := h.s.Get(key, func() (*Pool, int, error) {
		h.opens++
		return New(Options{Name: key, Size: size, Dial: h.d.Dial}), h.opens, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, v
}

func (h *setHarness) listed(p *Pool) (Limits, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.list[p]
	return l, ok
}

func TestSetGetOpensOnce(t *testing.T) {
	h := newSetHarness(t)
	a, va := h.get(t, "a", 2)
	a2, va2 := h.get(t, "a", 5) // the open is not called again: size stays 2
	b, _ := h.get(t, "b", 1)
	if a != a2 || va != va2 || a == b || h.opens != 2 {
		t.Fatalf("a=%p a2=%p b=%p opens=%d; want one pool per key", a, a2, b, h.opens)
	}
	if l, ok := h.listed(a); !ok || l.Size != 2 {
		t.Errorf("pool a listed %v with %+v; want size 2", ok, l)
	}
	boom := errors.New("no TLS config")
	if _, _, err := h.s.Get("c", func() (*Pool, int, error) { return nil, 0, boom }); err != boom {
		t.Fatalf("open error: got %v", err)
	}
	c, _ := h.get(t, "c", 1) // a failed open is not kept
	if c == nil || h.opens != 3 {
		t.Fatalf("after a failed open: %p, %d opens", c, h.opens)
	}
	if st := h.s.Stats(); len(st) != 3 {
		t.Errorf("Stats has %d pools, want 3", len(st))
	}
}

// A reload that changes only the limits resizes the pool in place (its
// connections stay); one that no longer describes a key drains that pool
// after its lease ends, and the key gets a fresh pool.
func TestSetReloadResizesOrDrains(t *testing.T) {
	h := newSetHarness(t)
	keep, _ := h.get(t, "keep", 1)
	same, _ := h.get(t, "same", 1)
	gone, _ := h.get(t, "gone", 1)
	kept := mustGet(t, keep)
	keep.Put(kept, true)
	lease := mustGet(t, gone)

	h.s.Reload(func(k string) (Limits, bool) {
		switch k {
		case "keep":
			return Limits{Size: 3, WaitTimeout: time.Second}, true
		case "same":
			return same.Limits(), true
		}
		return Limits{}, false
	}, 10*time.Second)

	if p, _ := h.get(t, "keep", 1); p != keep {
		t.Fatal("a pool_size reload replaced the pool; want it resized in place")
	}
	if l := keep.Limits(); l.Size != 3 || l.WaitTimeout != time.Second {
		t.Errorf("limits after reload %+v; want size 3, wait 1s", l)
	}
	if l, _ := h.listed(keep); l.Size != 3 {
		t.Errorf("listed with size %d after the resize; want 3", l.Size)
	}
	if again := mustGet(t, keep); again != kept {
		t.Error("the resized pool lost its idle connection")
	} else {
		keep.Put(again, true)
	}
	if p, _ := h.get(t, "same", 1); p != same {
		t.Error("an unchanged pool was replaced")
	}

	fresh, _ := h.get(t, "gone", 1)
	if fresh == gone {
		t.Fatal("a pool the reload no longer describes is still handed out")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, err := gone.Get(t.Context()) // the drain starts in the background
		if errors.Is(err, ErrClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get on the drained pool: %v; want ErrClosed", err)
		}
		// The pool is not closed yet: the Get waited for (or took) a
		// connection; a fake dial always succeeds.
	}
	if _, ok := h.listed(gone); !ok {
		t.Error("the draining pool was unlisted while a lease was still out")
	}
	if lease.Conn.(*fakeConn).closed.Load() {
		t.Fatal("the lease of a draining pool was closed before the drain timeout")
	}
	gone.Put(lease, true) // the transaction in flight ends
	select {
	case p := <-h.unl:
		if p != gone {
			t.Fatalf("unlisted %q, want the drained pool", p.Name())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the drained pool was not unlisted after its last lease came back")
	}
	if !lease.Conn.(*fakeConn).closed.Load() {
		t.Error("the drained pool's connection stayed open")
	}
}

func TestSetCloseRefusesLaterGets(t *testing.T) {
	h := newSetHarness(t)
	a, _ := h.get(t, "a", 1)
	h.s.Close()
	if _, err := a.Get(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v; want ErrClosed", err)
	}
	late, _ := h.get(t, "late", 1)
	if _, err := late.Get(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("a pool opened after Close: %v; want ErrClosed", err)
	}
	n := 0
	h.s.Each(func(string, *Pool, int) { n++ })
	if n != 0 {
		t.Errorf("%d pools kept after Close", n)
	}
}
