// Package scatter runs a request on several shards and puts their answers
// together as one database would have answered, for both protocols.
//
// # The path of a scatter
//
// A SELECT without one shard key (or an UPDATE/DELETE without one, where
// allow_all_shard_writes says so) reaches a wire package with a plan from
// the router: these shards (ScatterShards / WriteShards name them: a
// statement whose keys fall on some shards runs on those only), merged as
// this Spec says (router's ShardKeys.MergeSpec: ORDER BY columns, LIMIT,
// OFFSET, the aggregates COUNT/SUM/MIN/MAX). The wire package calls Run
// with a Request (the Job: shards, read or write, the cluster's
// max_scatter_bytes; the statement's text; the Spec and its paging
// parameters; the dialect's rewrite of a literal OFFSET) and its Shards.
// Run binds the paging (a LIMIT parameter read, an OFFSET parameter
// refused), folds a literal OFFSET into each shard's LIMIT, runs the
// shards under one Budget (Gather: a read's at once when Job.Parallel
// says the wire package's Run is safe for concurrent use, as pgwire's
// is; mysqlwire's session holds one lease at a time, and a write's
// shards always run one after the other, so that a failing shard stops
// it before the shards after it), counts the
// scatter in the metrics, stops at the first shard (in the plan's
// order) that fails, checks
// that a read's shards answered with the same columns, and sums a write's
// counts. For a read it then looks up how compared text orders
// (textorder.go) and merges (Merge): sorts the rows by the ORDER BY
// columns (stable: ties keep shard order), applies OFFSET and LIMIT, or
// folds the one-row aggregate answers into one row. Its Result says what
// to answer: the merged rows, a write's summed count, the answer of the
// shard whose own error stopped it (relayed as it is), and where an
// all-shard write committed before it failed (PartialWrite).
//
// # The contract with a protocol
//
// The wire package knows its bytes and its server connections; this
// package never reads a row itself. It supplies:
//
//   - Shards.Run: send the request, with the statement text Run gives
//     (the client's, or rewritten without its OFFSET), to shard i on a
//     lease of its own (replica or primary as the plan allows), read the
//     whole answer, charge every row to the Budget with Take and stop at
//     its *Error (the connection whose answer was cut off must not be
//     reused), and report rows, number of columns, a write's count, or
//     that the shard answered with its own error;
//   - Shards.Codec, for the first shard's result: split a row into
//     values, say which columns are text in a collation and where they
//     come from (Text), how other columns' values order (Key: numbers as
//     numbers), add two COUNT/SUM values, encode the merged row. A value
//     the codec cannot order or add as the server would is an error, and
//     the merge is refused;
//   - Shards.Lookup: run one catalog query on a shard, for the text
//     order;
//   - the answer and the errors in its protocol.
//
// Text is the hard case: the order of text is its collation's, and
// neither protocol's row description names the collation reliably (a
// MySQL column definition carries the connection's result charset). Run
// looks the collations up in the catalog of the plan's first shard, in
// one query per statement written per dialect (textorder.go), and maps
// each to a TextOrder this package reproduces exactly (byte order, PAD
// SPACE byte order, upper-cased ASCII); any other collation is
// TextUnknown and the merge is refused with the reason (issue 13: never
// answer in another order than one database). Asking each shard for a
// sort key instead (MySQL WEIGHT_STRING, as Vitess does) would need the
// statement rewritten with an extra column; PostgreSQL has no such
// function for ICU or libc locales.
//
// # Refusals
//
// A read that would hold more than the budget is refused rather than let
// one keyless SELECT exhaust the proxy's memory (ReasonTooLarge); a merge
// this package cannot do as one database would is refused with the reason
// (ReasonMerge). Both come back as *Error, which the wire package turns
// into its protocol's error (SQLSTATE 54000 / 0A000, MySQL 1104 / 1235);
// Run counts every refusal in switchyard_scatter_refused_total{protocol,reason}.
//
// # Imports
//
// router imports scatter: the plan step returns "shards + merge spec",
// and Spec is that spec's type. scatter imports only internal/metrics
// (the counters of scatters, all-shard writes, refusals and bytes, once
// for both protocols).
package scatter
