package pool

import (
	"sync"
	"time"
)

// waiter is a Get in the queue. It is granted something exactly once per
// stay in the queue, under p.mu, at the moment it is taken off the queue;
// so a waiter that gives up can tell by queued whether a grant is (or will
// never be) in ch.
type waiter struct {
	prev, next *waiter
	queued     bool
	ch         chan grant // cap 1, so granting never blocks under p.mu
	timer      *time.Timer
}

// Waiters are recycled: under contention every Get waits, and a channel and
// a timer per wait would be most of its cost.
var waiterPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &waiter{ch: make(chan grant, 1), timer: t}
}}

func getWaiter() *waiter { return waiterPool.Get().(*waiter) }

// putWaiter recycles w; it must be off the queue with ch empty, and its
// timer stopped (since Go 1.23 a stopped timer delivers nothing stale).
func putWaiter(w *waiter) { waiterPool.Put(w) }

// waiterList is the FIFO queue of waiters, intrusive so that a waiter that
// gives up leaves from the middle in O(1).
type waiterList struct {
	head, tail *waiter
	n          int
}

func (l *waiterList) pushBack(w *waiter) {
	w.prev, w.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
	l.n++
	w.queued = true
}

func (l *waiterList) pushFront(w *waiter) {
	w.prev, w.next = nil, l.head
	if l.head != nil {
		l.head.prev = w
	} else {
		l.tail = w
	}
	l.head = w
	l.n++
	w.queued = true
}

func (l *waiterList) popFront() *waiter {
	w := l.head
	if w != nil {
		l.remove(w)
	}
	return w
}

func (l *waiterList) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next = nil, nil
	l.n--
	w.queued = false
}
