// Package limits is the proxy's door policy, shared by both wire front
// ends: how many clients may be connected (in all, per user, per
// database), and which client addresses are refused for a while because
// they failed to log in too often.
//
// A front end calls Connect when it accepts a connection, Login once the
// client has authenticated and its database is known, and Release when
// the connection ends, whatever happened in between. Every count is taken
// and given back under one mutex, so counts are exact under concurrency
// and a login that fails half-way leaks nothing. The caps are arguments,
// read by the caller from the config in force, so a reload applies to the
// next login and never evicts anyone.
//
// Nothing here is on the path of a query: a client touches the mutex at
// connect, at login and at close.
package limits

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Kind names the cap that refused a client.
type Kind int

const (
	Total    Kind = iota // proxy.max_client_conns
	User                 // the user's max_client_conns
	Database             // the cluster's max_db_client_conns
)

// String is the label used in metrics.
func (k Kind) String() string {
	switch k {
	case Total:
		return "max_client_conns"
	case User:
		return "user"
	case Database:
		return "database"
	}
	return "unknown"
}

// Refusal is the error of a client over a cap.
type Refusal struct {
	Kind  Kind
	Limit int
	Name  string // the user or database; "" for Total
}

func (r *Refusal) Error() string {
	switch r.Kind {
	case User:
		return fmt.Sprintf("too many connections for user %q (max_client_conns = %d)", r.Name, r.Limit)
	case Database:
		return fmt.Sprintf("too many connections for database %q (max_db_client_conns = %d)", r.Name, r.Limit)
	}
	return fmt.Sprintf("no more connections allowed (max_client_conns = %d)", r.Limit)
}

// Set is what the front ends share: the client counts and the record of
// failed logins. The zero value is not usable; use New.
type Set struct {
	Clients *Clients
	Auth    *AuthFailures
}

// New returns an empty Set.
func New() *Set {
	return &Set{Clients: NewClients(), Auth: NewAuthFailures()}
}

// Clients counts connected clients.
type Clients struct {
	mu     sync.Mutex
	total  int
	byUser map[string]int
	byDB   map[string]int
}

// NewClients returns empty counts.
func NewClients() *Clients {
	return &Clients{byUser: make(map[string]int), byDB: make(map[string]int)}
}

// Slot is one counted client. Its methods are for the client's own
// goroutine.
type Slot struct {
	c        *Clients
	user, db string
	loggedIn bool
	released bool
}

// Connect counts a new connection against max (0: no cap). Over the cap it
// returns a *Refusal and counts nothing; the caller tells the client and
// closes.
func (c *Clients) Connect(max int) (*Slot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if max > 0 && c.total >= max {
		return nil, &Refusal{Kind: Total, Limit: max}
	}
	c.total++
	return &Slot{c: c}, nil
}

// Login counts the slot against its user's and database's caps (0: no
// cap), both or neither. The database is counted per protocol: a MySQL
// and a PostgreSQL database of one name are two databases. A slot logs in
// once.
func (s *Slot) Login(user string, userMax int, proto, dbName string, dbMax int) error {
	db := proto + "/" + dbName
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.loggedIn || s.released {
		panic("limits: Login on a slot that logged in or was released")
	}
	if userMax > 0 && c.byUser[user] >= userMax {
		return &Refusal{Kind: User, Limit: userMax, Name: user}
	}
	if dbMax > 0 && c.byDB[db] >= dbMax {
		return &Refusal{Kind: Database, Limit: dbMax, Name: dbName}
	}
	c.byUser[user]++
	c.byDB[db]++
	s.user, s.db, s.loggedIn = user, db, true
	return nil
}

// Release gives back everything the slot counted. It may be called more
// than once, and on a nil slot.
func (s *Slot) Release() {
	if s == nil {
		return
	}
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	c.total--
	if s.loggedIn {
		dec(c.byUser, s.user)
		dec(c.byDB, s.db)
	}
}

func dec(m map[string]int, k string) {
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

// Counts is a snapshot for tests and admin views.
type Counts struct {
	Total  int
	ByUser map[string]int
	ByDB   map[string]int
}

// Counts returns a copy of the counts.
func (c *Clients) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Counts{Total: c.total, ByUser: make(map[string]int, len(c.byUser)), ByDB: make(map[string]int, len(c.byDB))}
	for k, v := range c.byUser {
		out.ByUser[k] = v
	}
	for k, v := range c.byDB {
		out.ByDB[k] = v
	}
	return out
}

// Window is the period failed logins are counted over.
const Window = time.Minute

// AuthFailures counts failed logins per client address in fixed windows
// of one minute that start at an address's first failure: after limit
// failures, the address is refused until its window ends. Addresses
// without a failure in the last minute are forgotten, so the memory is
// bounded by the addresses that failed within a minute.
type AuthFailures struct {
	mu        sync.Mutex
	m         map[string]*window
	lastSweep time.Time
	now       func() time.Time
}

type window struct {
	start time.Time
	n     int
}

// NewAuthFailures returns an empty record.
func NewAuthFailures() *AuthFailures {
	return &AuthFailures{m: make(map[string]*window), now: time.Now}
}

// Host is the part of a remote address failures are counted by: the IP,
// without the port that changes with every connection.
func Host(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	s := addr.String()
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// Blocked says whether host has failed limit times in its current window
// (limit 0: never), and how long until it may try again.
func (a *AuthFailures) Blocked(host string, limit int) (time.Duration, bool) {
	if limit <= 0 {
		return 0, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.m[host]
	if w == nil {
		return 0, false
	}
	left := Window - a.now().Sub(w.start)
	if left <= 0 || w.n < limit {
		return 0, false
	}
	return left, true
}

// Failed records a failed login from host.
func (a *AuthFailures) Failed(host string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if now.Sub(a.lastSweep) >= Window {
		for h, w := range a.m {
			if now.Sub(w.start) >= Window {
				delete(a.m, h)
			}
		}
		a.lastSweep = now
	}
	w := a.m[host]
	if w == nil || now.Sub(w.start) >= Window {
		w = &window{start: now}
		a.m[host] = w
	}
	w.n++
}
