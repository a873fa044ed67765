package pool

import (
	"fmt"
	"time"
)

// Conn is a server connection. The pool never reads or writes it; it only
// closes it. Close may be called while another goroutine is using the
// connection (Drain does that to leases that outlive its context), so it must
// be safe to call concurrently with reads and writes, as net.Conn's is.
type Conn interface{ Close() error }

// Server is one server connection and the pool's bookkeeping about it. The
// wire layer uses Conn between Get and Put and must not touch the Server
// after Put: the same Server is handed to the next client.
type Server struct {
	// Conn is the connection Dial returned.
	Conn Conn

	pool       *Pool
	prev, next *Server // links in the list of the pool that is its state
	state      state
	gen        uint64 // Pool.gen when dialing started; stale after Invalidate
	reused     bool
	created    time.Time
	// On the pool's monotonic clock (Pool.clock):
	born      time.Duration
	idleSince time.Duration // when it was last returned; decides Ping and IdleTimeout
	expires   time.Duration // born + its own lifetime; 0: never
}

// Created is when the connection was established.
func (s *Server) Created() time.Time { return s.created }

// Reused reports whether this lease got a connection that was not dialed for
// it: one that served an earlier lease or waited in the pool after a
// background dial. Such a connection may have been closed by the server or a
// firewall while it sat idle, so a failure on its first use says nothing
// about the query and the wire layer may retry on another connection. A
// connection dialed for this very Get cannot be stale, and a failure on it is
// reported to the client.
func (s *Server) Reused() bool { return s.reused }

func (s *Server) expired(now time.Duration) bool {
	return s.expires != 0 && now >= s.expires
}

// state is where a connection is in its life. Each state but closed is a list
// in the Pool; see Pool.setState.
type state uint8

const (
	// stateNone is a Server the pool has not registered yet; nothing may be
	// done with it but start dialing.
	stateNone state = iota
	// stateDialing: Dial is running. It holds a slot of Size so that a burst
	// of Gets cannot dial more connections than the server allows.
	stateDialing
	// stateIdle: in the pool, ready to be leased.
	stateIdle
	// stateActive: leased to a client (or being checked before the lease).
	stateActive
	// stateClosing: Close is running outside the lock; it still holds its
	// slot, since the server counts it until the close completes.
	stateClosing
	// stateRevoked: Drain closed it while it was still leased; the lease ends
	// with Put, which must not close it a second time.
	stateRevoked
	// stateClosed: gone. Terminal.
	stateClosed
	numStates
)

var stateNames = [numStates]string{"unregistered", "dialing", "idle", "active", "closing", "revoked", "closed"}

func (st state) String() string {
	if st < numStates {
		return stateNames[st]
	}
	return fmt.Sprintf("state(%d)", uint8(st))
}

func bit(st state) uint8 { return 1 << st }

// transitions lists, for each state, the states a connection may move to.
// Anything else is a bug in the pool or in its caller.
var transitions = [numStates]uint8{
	stateNone: bit(stateDialing),
	// Dial succeeded for a Get (active), for the janitor (idle), after Close
	// (closing); or it failed, or the waiter it was for gave up (closed).
	stateDialing: bit(stateActive) | bit(stateIdle) | bit(stateClosing) | bit(stateClosed),
	stateIdle:    bit(stateActive) | bit(stateClosing),
	stateActive:  bit(stateIdle) | bit(stateClosing) | bit(stateRevoked),
	stateClosing: bit(stateClosed),
	stateRevoked: bit(stateClosed),
}

// serverList is an intrusive doubly linked list: moving a connection between
// states costs no allocation and no search.
type serverList struct {
	head, tail *Server
	n          int
}

func (l *serverList) pushFront(s *Server) {
	s.prev, s.next = nil, l.head
	if l.head != nil {
		l.head.prev = s
	} else {
		l.tail = s
	}
	l.head = s
	l.n++
}

func (l *serverList) remove(s *Server) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next = nil, nil
	l.n--
}

// list is the list that holds connections in state st; nil for the states
// that are not lists.
func (p *Pool) list(st state) *serverList {
	switch st {
	case stateDialing:
		return &p.dialing
	case stateIdle:
		return &p.idle
	case stateActive:
		return &p.active
	case stateClosing:
		return &p.closing
	case stateRevoked:
		return &p.revoked
	}
	return nil
}

// setState is the only place where a connection changes state. p.mu must be
// held. A refused transition panics: continuing would let two clients share
// one server connection, or leak one.
func (p *Pool) setState(s *Server, to state) {
	from := s.state
	if from >= numStates || transitions[from]&bit(to) == 0 {
		p.mu.Unlock()
		panic(fmt.Sprintf("pool %q: server connection cannot go from %s to %s", p.opts.Name, from, to))
	}
	if l := p.list(from); l != nil {
		l.remove(s)
	}
	s.state = to
	if l := p.list(to); l != nil {
		l.pushFront(s)
	}
	if p.closed {
		p.checkDrainedLocked()
	}
}
