// Package mysqlproto encodes and decodes the packets and messages of the
// MySQL client/server protocol (MySQL 5.7/8, MariaDB). That is its one
// job: it holds no session, no server connection, no pool, no config and
// no routing, and it imports nothing of the proxy but package scatter's
// row-codec vocabulary (see RowCodec).
//
// It is the MySQL counterpart of pgx's pgproto3, which package pgwire
// uses for PostgreSQL's messages. No maintained Go library for the MySQL
// wire protocol is served by the module proxy here, so this layer is our
// own; it lives apart from wire/mysqlwire so that the codec can be tested
// and fuzzed on its own, and so that mysqlwire is the protocol's session
// logic only (login, command dispatch, relay, prepared statements).
//
// What it holds:
//
//   - packet.go: framing (3-byte length, sequence id, 16 MiB continuation
//     chunks: ReadPacket, ReadPacketAfter, WritePacket), the size limit a
//     caller passes in (TooLargeError, DiscardRest to read the rest of a
//     refused packet off), length-encoded integers and strings, and a
//     bounds-checked Reader whose first failed read makes the packet
//     malformed (ErrMalformed).
//   - messages.go: capability, status, command and header numbers; the
//     server handshake (protocol 10), the handshake response (protocol
//     41, or the SSL request), OK/ERR/EOF packets and the terminator of a
//     row stream; WriteResultSet writes a result set.
//   - result.go: ReadResult reads one command's whole answer (OK, ERR,
//     or one result set, its rows charged to a budget as they come).
//   - execparams.go: DecodeExecParams locates a COM_STMT_EXECUTE's
//     parameter values without converting them.
//   - auth.go: the authentication plugins' arithmetic
//     (mysql_native_password, caching_sha2_password's scramble and RSA
//     step) and what passthrough reads from a stored native hash.
//   - compress.go: the compressed protocol (CLIENT_COMPRESS) as a
//     net.Conn wrapper, CompressedConn.
//   - errors.go: SQLError (an error with a MySQL error number and
//     SQLSTATE), the error numbers, ServerError (an ERR packet a server
//     sent), and ErrorFields, which turns any error into ERR fields.
//   - rowcodec.go: column definitions (ColumnDef) and the rows of the text
//     (COM_QUERY) and binary (COM_STMT_EXECUTE) protocols: SplitRow and
//     EncodeRow, and RowCodec, the scatter.Codec that orders and adds
//     typed column values when a result of several shards is merged.
//
// Callers decode only what they need to read: the relay passes result
// sets on as raw packets (IsTerminator and StatusOf read the end of one).
//
// Every decoder that reads bytes from a client or a server returns an
// error, never panics, on any input; they are fuzzed (fuzz_test.go, seeds
// in testdata/fuzz).
package mysqlproto
