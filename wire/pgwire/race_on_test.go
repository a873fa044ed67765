//go:build race

package pgwire

// raceOn: the race detector makes each login ten times slower; tests
// that make thousands of them make fewer.
const raceOn = true
