// Package router decides where a request runs. It has two steps, both
// written once for PostgreSQL and MySQL:
//
//   - Analysis (analyze*.go, shardkey*.go): what a statement does (read,
//     write, transaction control, session state, pins, KILL) and what it
//     says about its shard key (literals and bind parameters in WHERE and
//     INSERT, hints, subqueries, catalog tables, how its rows merge). Each
//     dialect's real parser reduces the statement to one form; the rules
//     run on that form. Verdicts are cached by statement text.
//
//   - The plan: (analysed request, session routing state) → one target of
//     a closed set. Decide gives Primary or Replica for a cluster with
//     replicas (hints, SET switchyard.target, must-go-to-primary rules),
//     and PlanRead turns it into a replica of the node set that has the
//     client's writes, or the primary (route.go); ShardRouting.PlanShard
//     gives, for a sharded cluster, AnyShard, OneShard, ScatterShards
//     (with the merge spec), WriteShards or Refused with the reason
//     (plan.go), with the session's key and, during a lease, the lease's
//     shard and what holds it (ShardSession, Hold: the one enum both
//     wires keep their session's lease state in). PlanRequest plans the
//     statements of one request together (every statement that names a
//     shard names the same one; several shards only for a lone
//     statement), and ShardCluster.ScatterRequest turns a target on
//     several shards into package scatter's request (plan_request.go).
//     A wire package supplies only what its
//     protocol holds (the values of bind parameters, through Params) and
//     turns the target into protocol actions: it never re-decides.
//
//   - What the plan runs on: ShardSet (shards.go) builds each sharded
//     cluster of a front end from the config at (re)load (its map, kept
//     with its version when keys stay where they are; its plan; its
//     shards' replica runtimes; its metrics) and publishes them as one
//     snapshot. Analyzers (analyzers.go) publishes, at the same moment,
//     the analyzer of each cluster (its write_functions and
//     read_only_functions), so that a reload reaches every session's
//     next transaction in both protocols; a prepared statement keeps its
//     verdict as a Verdict, judged again when its cluster's analyzer is
//     another one.
//
//   - The session's routing state: SessionRouting (session.go) holds what
//     the plan reads of one client session (SET switchyard.target, the
//     read_after position, the session's shard key, the client's writes
//     per primary for read-your-writes). ParseProxyCommand (proxycmd.go)
//     reads the proxy's own session commands (SET/RESET/SHOW
//     switchyard.*) and SessionRouting.Apply validates and applies them,
//     returning the value to show or a CommandError of a closed set of
//     kinds; each wire renders the answer in its protocol (SQLSTATE or
//     MySQL error number, its database's wording) and supplies its
//     position parser (LSN or GTID set).
//
// The plan's rules for shards, in order: a /* switchyard:shard=N */ hint,
// then a shard_key hint, name the shard; a statement that assigns the key
// column is refused; a statement whose subqueries (derived tables, scalar
// subqueries, EXISTS / IN, WITH) read a sharded table runs on one shard
// only, the one that every key of the statement and its subqueries maps
// to, and is refused when a subquery names no key (it would be answered
// from one shard's rows) or keys span shards; a statement without a key
// routes by the session's key (SET switchyard.shard_key); a query that
// reads only catalogs (pg_catalog, information_schema, MySQL's
// information_schema, performance_schema, mysql, sys) runs on any one
// shard, as the shards share one schema; a keyless SELECT scatters when
// its rows can be merged, else it is refused; keyless writes are refused
// unless allow_all_shard_writes; DDL and other statements that would
// silently change one shard only are refused. A statement inside a lease
// (a transaction, a pinned session) must stay on the lease's shard; one
// without a lease runs on several shards (each in its own transaction)
// only where the session can: a SELECT not with autocommit off nor sent
// with other statements, a write not inside a transaction either
// (ShardSession.InTxn, NoAutocommit, NotAlone).
//
// Integer keys written as text ('042', ' 42') map like the integer the
// server reads them as (shard.IntText): every path (literal, text or
// binary parameter, hint, session key) reaches the map through
// ShardRouting, so a row is always looked for where it was written.
//
// Why the plan lives here and not in the wire packages: the two protocols
// had their own copies, and each disagreement between them was a wrong
// answer in one protocol (see issue 13). The plan is pure logic and is
// tested with one table of cases that runs in both dialects
// (plan_test.go); the wire packages test the same cases end to end.
//
// What is still the wire packages' own: the bytes of the lazy BEGIN (a
// BEGIN answered by the proxy until a statement names the shard; whether
// to answer it is LocalTxn's), the shape of a multi-message request
// (PostgreSQL's extended protocol holds several statements until Sync;
// the wire lists them, PlanRequest plans them), the state that
// fills ShardSession (a lease, what holds it, autocommit, a kept BEGIN),
// the words and codes of each refusal, and the pools a target is leased
// from.
//
// # Imports
//
// DESIGN.md lets router import shard, replica and lagmon. It also
// imports scatter, config and internal/metrics: scatter because the plan
// ends in "these shards, merged so" and scatter.Spec is that spec's type
// (MergeSpec; scatter imports nothing of ours, so there is no cycle);
// config because ShardSet builds the sharded clusters from the config at
// each reload, once for both protocols (config is a leaf: it imports no
// package of ours); internal/metrics for the counters of routed and
// refused statements, resolved once per cluster at build time.
package router
