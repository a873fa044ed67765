package frontend

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/fleet"
)

// fakeClient is a session that reads until its connection closes; busy
// ones ignore CloseIfIdle, as a client in a transaction does.
type fakeClient struct {
	nc   net.Conn
	busy bool

	mu               sync.Mutex
	toldIdle, closed bool
}

func (c *fakeClient) CloseIfIdle() {
	c.mu.Lock()
	c.toldIdle = true
	c.mu.Unlock()
	if !c.busy {
		c.nc.Close()
	}
}

func (c *fakeClient) CloseConn() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.nc.Close()
}

func TestRegistryIDs(t *testing.T) {
	var f Server[*fakeClient]
	seq := []uint32{0, 7, 7, 8}
	next := func() uint32 { v := seq[0]; seq = seq[1:]; return v }
	a, b := &fakeClient{}, &fakeClient{}
	if id := f.RegisterNew(a, 0, next); id != 7 {
		t.Fatalf("first id %d; want 7 (0 is never an id)", id)
	}
	if id := f.NewID(0, next); id != 8 {
		t.Fatalf("second id %d; want 8 (7 is taken)", id)
	}
	f.Register(8, b)
	if c, ok := f.Client(8); !ok || c != b {
		t.Fatal("registered client not found")
	}
	f.Unregister(8, a) // not its client: nothing happens
	if _, ok := f.Client(8); !ok {
		t.Fatal("Unregister with another client removed the id")
	}
	f.Unregister(8, b)
	if _, ok := f.Client(8); ok || len(f.Clients()) != 1 {
		t.Fatalf("after Unregister: %d clients; want 1", len(f.Clients()))
	}
	id := f.NewID(3, func() uint32 { return 5 })
	if fleet.Owner(uint64(id)) != 3 || id != fleet.ID(3, 5) {
		t.Errorf("fleet id %#x; want instance 3's id for 5", id)
	}
}

// serve runs f on a loopback listener whose clients register as fakes;
// busy says which of them (by accept order) are in a transaction.
func serve(t *testing.T, f *Server[*fakeClient], busy ...bool) (addr string, clients chan *fakeClient, served chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clients = make(chan *fakeClient, 16)
	served = make(chan error, 1)
	var mu sync.Mutex
	n := 0
	go func() {
		served <- f.Serve(ln, func(nc net.Conn) {
			mu.Lock()
			c := &fakeClient{nc: nc, busy: n < len(busy) && busy[n]}
			n++
			k := uint32(n)
			mu.Unlock()
			id := f.RegisterNew(c, 0, func() uint32 { return k })
			defer f.Unregister(id, c)
			clients <- c
			_, _ = io.Copy(io.Discard, nc)
		})
	}()
	return ln.Addr().String(), clients, served
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Shutdown closes idle clients at once and waits for the busy one, which
// ends by itself; Serve then returns ErrClosed and new clients are refused.
func TestShutdownWaitsForBusyClients(t *testing.T) {
	var f Server[*fakeClient]
	addr, clients, served := serve(t, &f, false, true)
	dial(t, addr)
	idle := <-clients
	dial(t, addr)
	busy := <-clients

	shut := make(chan error, 1)
	go func() { shut <- f.Shutdown(context.Background()) }()
	select {
	case err := <-served:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Serve returned %v; want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a client was busy", err)
	case <-time.After(50 * time.Millisecond):
	}
	if !f.Closing() {
		t.Error("Closing is false during Shutdown")
	}
	idle.mu.Lock()
	told := idle.toldIdle
	idle.mu.Unlock()
	if !told {
		t.Error("the idle client was not told to go")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("a new client was accepted during Shutdown")
	}
	busy.nc.Close() // its transaction ends
	select {
	case err := <-shut:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the last client left")
	}
	busy.mu.Lock()
	defer busy.mu.Unlock()
	if busy.closed {
		t.Error("the busy client was closed although it finished in time")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Serve(ln, func(net.Conn) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Shutdown: %v; want ErrClosed", err)
	}
}

// When ctx ends first, the clients left are closed and Shutdown says so.
func TestShutdownClosesWhenContextEnds(t *testing.T) {
	var f Server[*fakeClient]
	addr, clients, _ := serve(t, &f, true)
	dial(t, addr)
	busy := <-clients
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := f.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v; want the context's error", err)
	}
	busy.mu.Lock()
	defer busy.mu.Unlock()
	if !busy.closed {
		t.Error("the busy client was not closed when the context ended")
	}
}
