// Package faultnet injects network faults between the proxy and a database
// server in tests and drills: a listener that accepts and never answers,
// and a TCP forwarder whose connections can be cut mid-stream. Everything
// listens on 127.0.0.1 only and stops when Close is called.
package faultnet

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Silent accepts TCP connections and never sends a byte: a server whose
// process hangs, or a host whose kernel still completes handshakes.
type Silent struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
	// Accepted counts the connections accepted so far.
	accepted int
}

// NewSilent listens on a free loopback port.
func NewSilent() (*Silent, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Silent{ln: ln, done: make(chan struct{})}
	go s.accept()
	return s, nil
}

func (s *Silent) accept() {
	defer close(s.done)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.accepted++
		s.mu.Unlock()
		// Drain what the peer sends so its writes never block; say nothing.
		go func() { _, _ = io.Copy(io.Discard, c) }()
	}
}

// Addr is the listener's host:port.
func (s *Silent) Addr() string { return s.ln.Addr().String() }

// Accepted is the number of connections accepted so far.
func (s *Silent) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Close stops listening and closes every accepted connection.
func (s *Silent) Close() {
	s.ln.Close()
	<-s.done
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
}

// Forwarder relays TCP connections from a loopback port to a target
// address. Cut closes the connections open at that moment (both sides),
// as a network failure between the two would; new connections are
// relayed as before.
type Forwarder struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	pairs   map[*pair]struct{}
	wg      sync.WaitGroup
	closed  bool
	stalled atomic.Bool
}

type pair struct{ a, b net.Conn }

func (p *pair) close() {
	p.a.Close()
	p.b.Close()
}

// NewForwarder listens on a free loopback port and relays to target.
func NewForwarder(target string) (*Forwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &Forwarder{ln: ln, target: target, pairs: make(map[*pair]struct{})}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

// Addr is the forwarder's host:port.
func (f *Forwarder) Addr() string { return f.ln.Addr().String() }

func (f *Forwarder) accept() {
	defer f.wg.Done()
	for {
		a, err := f.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", f.target)
		if err != nil {
			a.Close()
			continue
		}
		p := &pair{a, b}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			p.close()
			return
		}
		f.pairs[p] = struct{}{}
		f.mu.Unlock()
		f.wg.Add(2)
		go f.pipe(p, a, b)
		go f.pipe(p, b, a)
	}
}

func (f *Forwarder) pipe(p *pair, dst, src net.Conn) {
	defer f.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !f.stalled.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	p.close()
	f.mu.Lock()
	delete(f.pairs, p)
	f.mu.Unlock()
}

// Stall makes the open connections (and new ones) a black hole: bytes
// are read and dropped in both directions, and nothing is closed, as
// when a link fails without either end being told. Resume undoes it.
func (f *Forwarder) Stall() { f.stalled.Store(true) }

// Resume relays again after Stall (what was dropped stays lost).
func (f *Forwarder) Resume() { f.stalled.Store(false) }

// Open is the number of relayed connections open now.
func (f *Forwarder) Open() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pairs)
}

// Cut closes every relayed connection open now and returns how many.
func (f *Forwarder) Cut() int {
	f.mu.Lock()
	ps := make([]*pair, 0, len(f.pairs))
	for p := range f.pairs {
		ps = append(ps, p)
	}
	f.mu.Unlock()
	for _, p := range ps {
		// RST rather than FIN where possible: a failed link, not a
		// polite goodbye.
		for _, c := range []net.Conn{p.a, p.b} {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
		}
		p.close()
	}
	return len(ps)
}

// Close stops listening, closes every relayed connection and waits for
// the relay goroutines.
func (f *Forwarder) Close() {
	f.ln.Close()
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.Cut()
	f.wg.Wait()
}
