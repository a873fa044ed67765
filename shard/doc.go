// Package shard owns the one decision in the path of a query that must
// never change by accident: which shard holds a key. The router finds the
// key of a statement (a literal, a bind parameter, a hint) and asks a Map;
// the wire layer then leases a connection on that shard. If two paths that
// carry the same key (an INSERT with a literal, a SELECT with a text bind
// parameter, a binary bind parameter) disagreed, a row would be written to
// one shard and looked for on another, and the proxy would answer "no rows"
// instead of an error. So every map works on one canonical form of a key
// (see Canonical), and every routing decision is a Route that carries the
// version of the map that made it, so that a transaction started before a
// reload is recognisably routed by the old map.
//
// Maps follow the Vitess split between a key's place and a shard's
// ownership: a hash map sends a key to a fixed virtual bucket (the bucket
// of a key never changes) and buckets to shards in contiguous runs, so
// adding a shard moves whole buckets; a range map gives each shard a
// [low, high) range. Maps are immutable: a reload builds a new one with a
// higher version and swaps it in, and routing needs no lock.
//
// DESIGN.md gives this package no imports; it imports config (a leaf)
// for MapFor / FromConfig / SamePlacement / Database: the rules that read
// a cluster's [clusters.sharding] and [[clusters.shards]] into a map, and
// decide whether a reload keeps the map and its version, are written here
// once rather than in each caller (router.ShardSet builds on them).
package shard
