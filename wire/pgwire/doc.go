// Package pgwire is the PostgreSQL side of Switchyard: it accepts clients,
// authenticates them, and relays their messages to pooled server
// connections.
//
// The phases of a client connection:
//
//  1. Startup (session.go): the client counted against max_client_conns
//     from accept (internal/limits), SSLRequest/GSSENCRequest answered, TLS
//     when configured, the StartupMessage read, an address that failed too
//     many logins refused, the user authenticated with SCRAM-SHA-256, md5
//     or trust (auth.go; the arithmetic is wire/pgauth's), the database mapped to a cluster and counted
//     against the user's and the database's caps, and the greeting a real
//     server sends (ParameterStatus, BackendKeyData with a proxy-issued
//     key, ReadyForQuery). All of it within client_login_timeout. A
//     CancelRequest is served here too: forwarded to the client's server
//     while it is busy there, or, in a fleet, to the peer whose instance
//     id the key carries (fleet.go, internal/fleet).
//  2. Commands (relay.go): the main loop reads client messages as raw
//     frames (package wire/pgframe) and leases a server connection at the first message
//     that needs an answer. Extended-protocol messages are held until Sync
//     or Flush, so a server is never leased for half a request. The replies
//     to a lone request (nothing more of the client's buffered) are relayed
//     by the main loop itself while they come within syncRelayWait (50 ms)
//     and fit the read buffer: no goroutine and no hand-off per
//     transaction. Otherwise a pump goroutine relays them, so that
//     pipelines, COPY and long statements flow both ways at once and a
//     client that leaves mid-statement is noticed; it blocks on a client
//     that does not read, so a slow reader costs its buffers, not its
//     result. Between the statements of a transaction nothing reads the
//     server (nothing is owed); the next request brings a reader, and a
//     client that leaves then gets a pump for its ROLLBACK. Between
//     requests a client holds no buffers (idle.go).
//  3. Release: the end of a transaction is read from the protocol itself:
//     ReadyForQuery 'I' with every requested ReadyForQuery received and no
//     extended message awaiting Sync. Never from SQL text.
//  4. Departure: a client that leaves idle in a transaction gets its
//     transaction rolled back and the connection reused; one that leaves
//     with a query running gets the connection closed. A server connection
//     is never handed to another client dirty.
//
// Server connections (backend.go) are dialed and authenticated by pgconn
// and then taken over (Hijack) so replies are relayed without decoding.
//
// The codec is not written here: pgx's pgproto3 decodes and encodes the
// messages the proxy must understand, and wire/pgframe reads raw frames
// for the relay and holds the few hand-written encoders and decoders of
// raw messages (Bind parameters, Query, Close, CommandComplete, startup
// parameters), fuzzed there, and the row codec for merges
// (pgframe.RowCodec); shard_codec.go turns its refusals (a
// pgframe.RowError) and package scatter's into this package's pgError.
//
// Where a request goes is the router's: router.PlanRead (route.go) for a
// cluster with replicas, router.ShardRouting.PlanShard for a sharded one
// (shard.go lists a request's statements and their bind values for
// router.ShardRouting.PlanRequest, and turns the target
// into a lease, a refusal or a scatter; shard_replica.go picks a shard's
// replica through PlanRead), router.ShardSet for the sharded clusters in
// force, router.ParseProxyCommand and router.SessionRouting.Apply for
// SET/SHOW switchyard.* (the session's routing state: target, read_after,
// shard key, writes for read-your-writes), router.LocalTxn for which
// BEGIN/COMMIT/ROLLBACK the proxy answers itself on a sharded cluster.
// This package answers in PostgreSQL's messages and codes (commandError,
// refusal) and never re-decides.
//
// Imports: besides pgframe, router, scatter, pool and replica (DESIGN.md), config
// (the settings of clusters and users), lagmon (the prober interface this
// package implements, and LSNs), shard (decoding a binary integer key
// parameter), wire/pgauth (SCRAM and md5 arithmetic) and
// internal/frontend (listeners, the registry of clients by process id
// that cancel requests and SHOW CLIENTS read, Shutdown, the runtime and
// pools a reload swaps, the admin console's tables, the client state
// gauges: the server scaffolding that knows no protocol, written once for
// both front ends). A scatter's shard whose pool a reload closed before it
// leased runs on the pool in force for the same shard server (primary and
// database), whatever the new map's version: nothing was sent yet, and a
// reload moves no row.
package pgwire
