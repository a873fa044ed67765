package router

import (
	"bytes"
	"math/big"
)

// AddDecimalText adds two decimal numbers written as text (the answers of
// COUNT or SUM from two shards: "42", "-1.50"), keeping as many decimals
// as the more precise of them, as a single server's SUM would. ok is false
// when either is not a decimal number.
func AddDecimalText(x, y []byte) (sum []byte, ok bool) {
	rx, ok1 := new(big.Rat).SetString(string(x))
	ry, ok2 := new(big.Rat).SetString(string(y))
	if !ok1 || !ok2 || isExp(x) || isExp(y) {
		return nil, false
	}
	r := rx.Add(rx, ry)
	scale := max(decimals(x), decimals(y))
	if scale == 0 && r.IsInt() {
		return []byte(r.Num().String()), true
	}
	return []byte(r.FloatString(scale)), true
}

func decimals(v []byte) int {
	if i := bytes.IndexByte(v, '.'); i >= 0 {
		return len(v) - i - 1
	}
	return 0
}

// isExp: big.Rat reads "1e3" and "3/2" too, which a decimal is not.
func isExp(v []byte) bool { return bytes.ContainsAny(v, "eE/") }
