// Package mysqlwire is Switchyard's MySQL front end: it speaks the MySQL
// client/server protocol to clients (mysql/mariadb CLI, go-sql-driver,
// JDBC, sysbench) and to MySQL 8 / MariaDB servers, and pools the server
// connections.
//
// The path of one command:
//
//	client ─▶ session.loop       read one command packet (the idle client holds no buffer)
//	          query              what the statement does to the session (SET, USE, pin,
//	                             KILL): router.Analysis.MySQLEffects, or router.ScanMySQL
//	                             when the cluster does not analyse (no replicas)
//	          session.route      primary or replica: the router's analyzer judges the
//	                             statement (prepared ones once, at PREPARE), the
//	                             replica set and the lag monitor pick a replica
//	                             that has the client's own writes (route.go)
//	          session.acquire    lease a server connection from the pool of
//	                             (node, server database, server user), bring its
//	                             capabilities and collation in line with the client's,
//	                             reset it if another client's state is on it, replay ours
//	          relay              send the command; pass the response back as raw packets,
//	                             reading only the first byte of each packet and the status
//	                             flags of the final OK/EOF
//	          afterCommand       return the connection when SERVER_STATUS_IN_TRANS is clear
//	                             (transaction pooling), unless the session is pinned
//
// Layers, bottom up:
//
//   - package wire/mysqlproto, below this one: the codec (packet framing,
//     length-encoded values, handshake, OK/ERR/EOF, the compressed
//     protocol, SQLError and the error numbers, column definitions and
//     rows), as pgwire has pgproto3. Its decoders are fuzzed there.
//   - buffers.go, caps.go: the proxy's limits on a client's command
//     (DefaultMaxPacket, MaxPacket), the pooled buffers a session holds
//     only while it has a command in hand, and the capabilities it offers
//     and mirrors; auth.go: which scramble a login answers with (the
//     arithmetic is mysqlproto's), and the passthrough password
//     convention. The reading of COM_STMT_EXECUTE parameters as shard
//     keys is fuzzed here (fuzz_test.go, seeds in testdata/fuzz).
//   - backend.go: one authenticated server connection (we are the client),
//     with the state the proxy put on it (database, replayed SETs, prepared
//     statements).
//   - session.go, relay.go, stmt.go: one client connection (we are the
//     server): authentication, command dispatch, the relay, prepared
//     statements mapped between client and server ids, KILL (in a fleet,
//     a KILL for another instance's client goes to it over the peer
//     channel: internal/fleet).
//   - route.go: read/write splitting as the router plans it
//     (router.PlanRead over replica.Runtime), turned into pools; the lag
//     monitor's prober (GTID positions read over connections of its own);
//     the answers to the proxy's own session commands, parsed by
//     router.ParseProxyCommand and applied to the session's routing state
//     by router.SessionRouting.Apply; this file words them in MySQL's
//     errors (commandError).
//   - shard.go, shard_scatter.go, shard_params.go: sharded clusters: the
//     router's plan (router.ShardRouting.PlanShard) of each statement, with
//     the COM_STMT_EXECUTE parameter values it asks for, turned into
//     leases (refusals in MySQL's codes: refusal); lazy BEGIN (which
//     statements the proxy answers itself: router.LocalTxn), scatter-gather SELECT merged in the text and binary
//     protocols (package scatter, through mysqlproto.RowCodec), all-shard
//     writes, shard replicas through route.go.
//   - server.go: the MySQL parts of the pools (how a pool dials,
//     max_allowed_packet, the server version); the accept loop, the
//     sessions by connection id, Shutdown's drain, the runtime a reload
//     swaps (frontend.Runtime), the TLS policy toward servers
//     (frontend.ServerTLS) and the pool set are internal/frontend's,
//     shared with pgwire.
//
// A server connection serves a client only with the same framing-relevant
// capabilities (CLIENT_DEPRECATE_EOF, SESSION_TRACK, MULTI_STATEMENTS,
// MULTI_RESULTS, FOUND_ROWS, ...) and collation, so relayed bytes never
// need translating. They are not part of the pool key (one pool per node
// and user): a lease switches multi-statements (COM_SET_OPTION) and the
// collation (SET NAMES), and re-opens in its slot a connection whose
// handshake-only capabilities differ (connspec.go).
//
// The proxy answers COM_PING, COM_STMT_CLOSE, COM_STMT_RESET and
// COM_RESET_CONNECTION itself. It offers CLIENT_COMPRESS to clients
// (mysqlproto.CompressedConn); server connections stay uncompressed. It
// refuses COM_CHANGE_USER and server-side
// cursors (COM_STMT_FETCH; the cursor flag of an EXECUTE is cleared, so
// rows come at once). LOAD DATA LOCAL INFILE is relayed: the client decides
// whether to send the file.
//
// Session state is judged by the router's careful scanner
// (router/effects_mysql.go), once per text (with the analysis when there
// is one), not by a SQL parser; its limits are documented there. A SET sent as a prepared
// statement with parameters pins the session (stmt.go). A session that
// ends (COM_QUIT, a closed socket, inside a transaction, mid-statement)
// frees its server connection at once: a statement still running is
// killed first (watch.go); the connection is then closed, or reset with
// COM_RESET_CONNECTION whose status flags must show no transaction and
// autocommit as at login. A connection whose status shows autocommit
// changed in a way the replayed SETs do not explain is reset before anyone
// else gets it.
//
// Imports: besides mysqlproto, router, scatter, pool and replica (DESIGN.md), config
// (the settings of clusters and users), lagmon (the prober interface this
// package implements, and GTID positions) and internal/frontend
// (listeners, the registry of sessions, Shutdown, the runtime and pools
// a reload swaps, the client state gauges: the server scaffolding that
// knows no protocol, written once for both front ends).
package mysqlwire
