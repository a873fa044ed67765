// Package lagmon knows how far each replica is behind its primary, so that
// the router can send a read to a replica without the client seeing older
// data than it should.
//
// In the path of a query it sits beside the router, never in the relay: a
// Monitor polls every node of a cluster in the background (the primary's
// current write position, each replica's replayed position) and the
// per-read questions, "is replica R caught up to position P?" and "how far
// behind is R?", are answered from the last samples, with an atomic load
// and no lock. Two decisions depend on it:
//
//   - read-your-writes: after a client commits a write at time t, the wire
//     package asks PrimaryAfter(t) for a primary position sampled after the
//     commit, which therefore includes it; that client's reads go only to
//     replicas that are CaughtUp to that position, or to the primary. When
//     no sample shows one yet, Fresh probes nodes on demand (coalesced), or
//     the wire package checks the position on a replica in the same round
//     trip as the read and reports a passed check with Saw.
//   - max_replica_lag: replicas further behind than the limit get no reads
//     (package replica reads ReplicaStatus.Lag).
//
// Positions are compared, not timestamps: PostgreSQL WAL LSNs and
// MariaDB/MySQL GTID sets. Lag in seconds is derived from positions and the
// times the primary was sampled at them (how long ago the primary first
// showed a position this replica has not reached), so a primary that is
// simply idle never makes its replicas look stale, which replay timestamps
// (pg_last_xact_replay_timestamp, Seconds_Behind_Master) would.
//
// The package does not speak any protocol: the wire packages implement
// Prober with a real server connection, and keep the metrics (Collector is
// offered for convenience).
package lagmon
