// Package replica chooses which replica serves a read.
//
// In the path of a query it comes right after the router has decided that
// a transaction may read from a replica: Set.Pick is asked once per such
// transaction, before the pool leases a server connection for the node it
// names, and Done is called when the transaction ends. Pick answers from
// state that is kept current elsewhere, with atomic loads and no lock: the
// lag monitor's last samples (health, lag in seconds, replayed position),
// bans the wire packages set when a connection to a replica fails, and the
// count of requests each replica is serving now.
//
// A replica gets a read only if it is not banned, the monitor has read its
// position recently, its lag is known (the primary's position was read
// too; while the primary cannot be reached at all, reads stay on the
// replicas) and at most max_replica_lag ("0s": only replicas that have
// replayed everything), and, for a client
// that has written, it has replayed that client's last write (the position
// the router passes as need). Among those, the one with the fewest
// outstanding requests per unit of weight wins, ties rotating, so load
// follows actual latency rather than a fixed share. When none qualifies
// Pick returns nil and the read goes to the primary: losing every replica
// must cost capacity, never availability. AllOut says so for a metric.
//
// Runtime (runtime.go) is the running machinery of one node set, for both
// protocols: the lag monitor with the wire package's prober, the Set, the
// routing metrics, and read-your-writes (Writes: a client's last write on
// one primary, turned into a position the replica must have replayed).
// Runtime.PickRead is the read-your-writes choice both wires make for a
// read (readpick.go): after a failed position check, where
// AfterFailedCheck says; a request that cannot carry a check (the wire
// says which cannot), Pick; one that can, PickChecked, with the check the
// read must carry (causal.go). Reads (reads.go) is one session's side of
// it from one read to the next (the check the wire must send with the
// read, a failed check whose read is routed again, whether the client
// reads right after its writes), so the wires only send and read checks.
// A Registry holds a front end's runtimes as one snapshot that a reload
// replaces whole, keeping the runtimes whose nodes and settings did not
// change. The wire packages implement only the probe and the text form of
// positions.
//
// Specs builds the runtimes' descriptions from the config (the node sets
// with replicas, the lag monitor's credentials) once for both protocols,
// so this package imports config (a leaf) besides lagmon, which
// DESIGN.md names, and internal/metrics for the routing and causal-read
// metrics of each runtime.
//
// A banned replica rejoins by itself: after the ban period, and only once
// the monitor has read its position after the ban, so a replica whose
// connections keep failing is not retried by client traffic first.
package replica
