// Package fleet is what instances of Switchyard behind one address share:
// the layout of the ids they give clients (PostgreSQL cancel keys' process
// ids, MySQL connection ids), which carry the id of the instance that
// issued them, so that a cancel or KILL reaching another instance can be
// sent on to the right one, and the peer channel that carries a MySQL
// KILL there.
//
// An id is 31 bits, positive as an int32 (clients keep a PostgreSQL
// process id in an int4): the instance id (1..1023) in the top ten bits
// and 21 bits of the issuing instance's own below. In a PostgreSQL cancel
// key those 21 bits are random and the 32-bit secret beside them stays
// wholly random, so a key is no easier to guess than without a fleet.
package fleet

// LowBits is the number of bits below the instance id.
const LowBits = 21

// LowMask masks an id's own bits.
const LowMask = 1<<LowBits - 1

// ID combines an instance id with an instance's own bits.
func ID(instance int, low uint32) uint32 {
	return uint32(instance)<<LowBits | low&LowMask
}

// Owner returns the instance id an id carries (0 for ids above 31 bits,
// which no instance issues in a fleet).
func Owner(id uint64) int {
	if id > 0x7fffffff {
		return 0
	}
	return int(id >> LowBits)
}
