//go:build !race

package pgwire

const raceOn = false
