// Package pool keeps the server connections of one database node for one
// user: it is the step between routing and relaying in the path of a query.
//
// A client session in wire/pgwire or wire/mysqlwire reads a statement, asks
// the router where it runs, and then asks that node's Pool for a server
// connection with Get. It holds the Server for one transaction (transaction
// pooling) or for its whole session (session pooling), relays the exchange,
// and when the server reports the transaction over (ReadyForQuery 'I', or no
// SERVER_STATUS_IN_TRANS) it resets what it dirtied and gives the Server back
// with Put(s, true). A connection that is broken, or that the wire layer
// cannot clean up for sure, goes back with Put(s, false) and is closed.
//
// The pool never reads or writes a connection, so it knows no protocol: the
// wire layer supplies Dial (connect and authenticate), Ping (an I/O health
// check for connections that sat idle for a while) and Alive (a cheap check
// that needs no round trip, one system call; skipped for a connection
// returned less than AliveDelay ago, as under load every lease would pay
// it). What the pool owns is everything about how many
// connections exist and who gets them:
//
//   - Size caps the connections open towards the node, counting those being
//     dialed and those being closed, so the server's own connection limit is
//     never exceeded by a burst of clients.
//   - Clients that find nothing free wait in a FIFO queue. A returned
//     connection goes straight to the oldest waiter, and a freed slot becomes
//     a dial for the oldest waiter, so waiters are served before newcomers
//     and nobody starves. WaitTimeout bounds the wait; the error names the
//     pool and how busy it was, because that is what an operator needs to act.
//   - Idle connections are a stack (most recently used first), so that in a
//     quiet period the surplus stays at the bottom, times out and is closed.
//   - A janitor goroutine, off the hot path, closes connections idle past
//     IdleTimeout or older than their lifetime and dials in the background to
//     keep MinSize open. Each connection's lifetime is drawn from
//     [0.8*Lifetime, Lifetime], so connections opened together (at start, or
//     after a failover) do not all reconnect in the same second.
//
// As in PgBouncer, every connection is in exactly one state (dialing, idle,
// active, closing, revoked) and the state is membership in one list of the
// pool; one function moves a connection between lists and refuses moves that
// cannot happen, which turns bugs such as a double Put into a loud panic
// instead of a connection shared by two clients. Counts for metrics and the
// admin views are list lengths.
//
// A front end keeps its pools in a Set, one per key (node, database,
// server credentials, connection settings): Set opens a pool on first use
// and, on a config reload, resizes in place the pools whose key still
// holds and drains the others, so transactions in flight finish on the
// pool they hold.
//
// One mutex per Pool guards its lists; it is never held while dialing,
// pinging or closing a connection, nor while calling any Options callback.
// Get and Put with an idle connection available do not allocate.
package pool
