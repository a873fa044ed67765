package frontend

import (
	"io"
	"net"
	"testing"
	"time"
)

// waitFor peeks until want (a write or close takes a moment to arrive).
func waitFor(t *testing.T, p *Prober, c net.Conn, want Socket) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for got := p.Peek(c); got != want; got = p.Peek(c) {
		if time.Now().After(deadline) {
			t.Fatalf("Peek = %d, want %d", got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestProber(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := <-accepted

	var p Prober
	if got := p.Peek(c); got != Quiet {
		t.Fatalf("idle connection: %d, want Quiet", got)
	}
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &p, c, Data)
	q := p // a copy sets up again, and sees the same
	if got := q.Peek(c); got != Data {
		t.Errorf("copied Prober: %d, want Data", got)
	}
	var b [1]byte
	if n, err := c.Read(b[:]); n != 1 || err != nil || b[0] != 'x' {
		t.Fatalf("Peek consumed the byte: read %d %q, %v", n, b[:n], err)
	}
	if got := p.Peek(c); got != Quiet {
		t.Errorf("after the read: %d, want Quiet", got)
	}
	peer.Close()
	waitFor(t, &p, c, Closed)
	if got := Peek(c); got != Closed {
		t.Errorf("one-shot Peek: %d, want Closed", got)
	}
	a, z := net.Pipe() // not a socket: nothing to see
	defer a.Close()
	defer z.Close()
	if got := p.Peek(a); got != Quiet {
		t.Errorf("pipe: %d, want Quiet", got)
	}
	if got := p.Peek(a); got != Quiet {
		t.Errorf("pipe, second look: %d, want Quiet", got)
	}
}

// BenchmarkProber is the look before a lease: one system call, no
// allocation.
func BenchmarkProber(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			_, _ = c.Read(make([]byte, 1))
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var p Prober
	b.ReportAllocs()
	for b.Loop() {
		if p.Peek(c) != Quiet {
			b.Fatal("not quiet")
		}
	}
}

// PeerReset tells a peer that closed before reading what was sent to it
// (a server process gone before the request arrived) from one that read
// it and then closed (a server killed while running it).
func TestPeerReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func() (client, server net.Conn) {
		t.Helper()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				accepted <- c
			}
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, <-accepted
	}
	// readFailure reads c to its end: the bytes before the failure, and it.
	readFailure := func(c net.Conn) ([]byte, error) {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got []byte
		var b [64]byte
		for {
			n, err := c.Read(b[:])
			got = append(got, b[:n]...)
			if err != nil {
				return got, err
			}
		}
	}
	req := []byte("SELECT 1")

	// Gone before the request: a goodbye, a FIN, then the request hits a
	// closed socket and is answered with a reset.
	c, s := pair()
	_, _ = s.Write([]byte("bye"))
	s.Close()
	waitFor(t, new(Prober), c, Data)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	got, err := readFailure(c)
	if string(got) != "bye" || !PeerReset(c, err, 5*time.Second) {
		t.Errorf("peer gone before the request: read %q, %v; PeerReset false", got, err)
	}

	// Closed with the request unread: a reset instead of a FIN.
	c, s = pair()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	waitFor(t, new(Prober), s, Data)
	s.Close()
	_, err = readFailure(c)
	if !PeerReset(c, err, 0) {
		t.Errorf("peer closed with the request unread: %v; PeerReset false", err)
	}

	// Read the request, then closed: nothing says it did not run.
	c, s = pair()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, len(req))); err != nil {
		t.Fatal(err)
	}
	_, _ = s.Write([]byte("bye"))
	s.Close()
	got, err = readFailure(c)
	start := time.Now()
	if string(got) != "bye" || PeerReset(c, err, 50*time.Millisecond) {
		t.Errorf("peer read the request and closed: read %q, %v; PeerReset true", got, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("PeerReset waited %v for a reset that never comes, want 50ms", d)
	}
	if PeerReset(c, nil, time.Second) {
		t.Error("PeerReset(nil) is true")
	}
}
