// Package scatter runs a request on several shards and puts their answers
// together as one database would have answered, for both protocols.
//
// # The path of a scatter
//
// A SELECT without one shard key (or an UPDATE/DELETE without one, where
// allow_all_shard_writes says so) reaches a wire package with a plan from
// the router: these shards, merged as this Spec says (router's
// ShardKeys.MergeSpec: ORDER BY columns, LIMIT, OFFSET, the aggregates
// COUNT/SUM/MIN/MAX). The wire package calls Gather with a Job (the
// shards, read or write, the cluster's max_scatter_bytes) and a RunFunc.
// Gather runs the shards one after the other under one Budget, counts the
// scatter in the metrics, stops at the first shard that fails, checks that
// a read's shards answered with the same columns, and sums a write's
// counts. For a read, Gathered.Merge then sorts the rows by the ORDER BY
// columns (stable: ties keep shard order), applies OFFSET and LIMIT, or
// folds the one-row aggregate answers into one row.
//
// # The contract with a protocol
//
// The wire package knows its bytes; this package never reads a row
// itself. It supplies:
//
//   - a RunFunc: send the request to shard i (on a lease of its own,
//     replica or primary as the plan allows), read the whole answer,
//     charge every row to the Budget with Take and stop at its *Error
//     (the connection whose answer was cut off must not be reused), and
//     report rows, number of columns, a write's count, or that the shard
//     answered with its own error (which the wire package relays as it
//     is; PartialWrite says where a write committed before it);
//   - a Codec for the first shard's result: split a row into values,
//     say how a column's values order (Key: numbers as numbers, text
//     through TextKey with the column's TextOrder), add two COUNT/SUM
//     values, encode the merged row. A value the codec cannot order or
//     add as the server would is an error, and the merge is refused.
//
// Text is the hard case: the order of text is its collation's, and
// neither protocol's row description names the collation reliably (a
// MySQL column definition carries the connection's result charset). The
// wire package looks the collation up in the catalog of the first shard
// and maps it to a TextOrder this package reproduces exactly (byte order,
// PAD SPACE byte order, upper-cased ASCII); any other collation is
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
// Gather and Merge count every refusal in
// switchyard_scatter_refused_total{protocol,reason}.
//
// # Imports
//
// router imports scatter: the plan step returns "shards + merge spec",
// and Spec is that spec's type. scatter imports only internal/metrics
// (the counters of scatters, all-shard writes, refusals and bytes, once
// for both protocols).
package scatter
