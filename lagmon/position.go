package lagmon

import (
	"fmt"
	"strconv"
	"strings"
)

// Position is a replication position: a PostgreSQL WAL LSN or a
// MariaDB/MySQL GTID set. Positions are immutable values, safe to share
// between goroutines.
type Position interface {
	// AtLeast reports whether p includes everything of q (p >= q).
	// Positions of different kinds never compare true, and neither does a
	// nil q.
	AtLeast(q Position) bool
	// String returns the position in the form the server prints it, which
	// the matching Parse function accepts.
	String() string
}

// LSN is a PostgreSQL write-ahead log position (pg_lsn).
type LSN uint64

var _ Position = LSN(0)

// ParseLSN parses the text form of a pg_lsn, two hexadecimal numbers of at
// most 8 digits separated by a slash: "16/B374D848" (PostgreSQL 18 pads the
// second one with zeros, "16/0374D848"; both are accepted).
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("lagmon: invalid LSN %q: want two hex numbers like 16/B374D848", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("lagmon: invalid LSN %q: want two hex numbers like 16/B374D848", s)
	}
	return LSN(h<<32 | l), nil
}

// AtLeast reports whether q is an LSN not after l.
func (l LSN) AtLeast(q Position) bool {
	o, ok := q.(LSN)
	return ok && l >= o
}

// String returns the LSN as PostgreSQL up to version 17 prints it:
// "16/B374D848".
func (l LSN) String() string {
	var b [17]byte
	buf := strconv.AppendUint(b[:0], uint64(l)>>32, 16)
	buf = append(buf, '/')
	buf = strconv.AppendUint(buf, uint64(l)&0xFFFFFFFF, 16)
	return strings.ToUpper(string(buf))
}
