// Package frontend is the part of a front end that knows no protocol: what
// wire/pgwire and wire/mysqlwire would otherwise each write for themselves
// around their sessions. Its one job is the life of connections and of
// the runtime as a whole, not what is said on a connection:
//
//   - Server accepts on listeners (backing off when accept fails for want
//     of file descriptors and the like, without ever stopping to serve),
//     runs each client on its own goroutine, keeps the clients that
//     logged in by id (cancel requests, KILL, the admin views) and ends it
//     all with Shutdown's drain: stop accepting, tell every client to go
//     at its next idle moment, wait for them until the context ends, then
//     close what is left.
//   - Pools holds a front end's server connection pools (a pool.Set) keyed
//     by PoolKey and knows from a config which keys still hold, so that a
//     reload resizes pools in place, drains those of removed nodes and
//     users, and registers them all for metrics and the admin views.
//     PoolOptions builds a pool's options from a cluster's settings
//     around the wire's dial (connect_timeout, the server error count).
//   - Runtime is the rest of what a front end routes with, built and
//     published as one on each (re)load: the config in force and its
//     client TLS, the replica runtimes of the node sets (replica.Registry),
//     the analyzers (router.Analyzers), the sharded clusters
//     (router.ShardSet) and the Pools. A wire package's Server embeds one
//     and gives it only its protocol's lag-monitor prober. DESIGN.md puts
//     the runtime snapshot in replica; it lives here because it holds the
//     router's and the pools' parts too, which replica may not import.
//   - ServerTLS is the TLS policy toward the servers (server_tls modes,
//     when a password may go in clear text), and AuthQueryTarget where
//     passthrough's auth_query runs; the wires dial and speak.
//   - ClientState is a client's state for the connection gauges (gone,
//     idle, waiting, active), changed only through ClientStates.
//   - ConsoleTable and ShardStatus are the admin views that know no
//     protocol (pools, replicas, shards, counters); pgwire's console and
//     both wires' /status sections render them.
//   - StmtCap is a client's account of its prepared statements against
//     max_client_prepared_statements and MaxClientStmtBytes; each wire
//     words the refusal in its protocol.
//   - Prober looks at an idle socket without reading it: before a lease
//     (is this server connection still good?) and, in mysqlwire, at the
//     client of a running command (did it leave?).
//
// The wire packages keep everything that is said on a connection: the
// login, the relay, the errors in their protocol's form. The wire
// package's client type is a Client: it tells this package how to close
// it now and how to close it once idle.
//
// DESIGN.md's package map has no such package: it gives each wire "client
// sessions, server connections, auth" whole. Written so, the two wires
// held two copies of everything here (reload, pools, TLS policy, the
// admin views), and the copies drifted (issue 13). This package sits
// under the wires and above router, replica and pool, and imports no
// protocol.
package frontend
