package frontend

import (
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
