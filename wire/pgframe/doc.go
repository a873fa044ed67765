// Package pgframe reads and writes PostgreSQL protocol messages as raw
// frames (1-byte type, 4-byte length, body), without decoding them into
// structs. That is its one job: it holds no session, no server
// connection, no pool, no config and no routing.
//
// It is the complement of pgx's pgproto3, which package pgwire uses to
// decode and encode the messages it must understand (startup,
// authentication, errors, row descriptions). The relay does not decode
// what it passes on: a DataRow or CopyData costs a copy and no allocation
// through Reader, and one too large for the read buffer is streamed
// (RelayLarge). The few fields the proxy reads of a client's messages (a
// Bind's parameter, a Parse's declared types, a StartupMessage's
// parameters) and the few messages it writes itself (Query, Close,
// CommandComplete, a one-value result) are encoded and decoded here, by
// hand, on the raw bytes. It is called pgframe, not pgproto, so that its
// names are not mistaken for pgproto3's in the files that use both.
//
// RowCodec is the PostgreSQL row format of a scatter-gather (package
// scatter's Codec): it splits a shard's DataRows, compares a column's
// values by the type OID its RowDescription names (or refuses to, when
// the text form does not order as the server does), adds COUNT and SUM
// values and encodes the merged rows; it is pure codec, like
// mysqlproto.RowCodec. Its errors are a RowError (a malformed message, or
// values it cannot merge), which pgwire turns into the client's SQLSTATE.
//
// It lives apart from wire/pgwire so that it can be tested and fuzzed on
// its own, and so that pgwire is the protocol's session logic only; its
// MySQL counterpart is wire/mysqlproto.
//
// The decoders of client bytes, and the row codec's of a shard's rows,
// return an error (or not ok), never panic, on any input; they are fuzzed
// (fuzz_test.go, rowcodec_test.go; seeds in testdata/fuzz).
package pgframe
