package frontend

import (
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
)

// MaxClientStmtBytes bounds the text of one client's prepared statements
// together; with max_client_prepared_statements it caps what a client's
// statements hold in the proxy's memory.
const MaxClientStmtBytes = 64 << 20

// StmtCap is a client session's account of its prepared statements
// against the caps, the same in both protocols: a count
// (max_client_prepared_statements) and the bytes of their text
// (MaxClientStmtBytes). A refusal refuses the one statement; the session
// goes on. Session goroutine only.
type StmtCap struct {
	// bytes only grows between recounts (closing a statement does not
	// subtract): when it passes the cap, Room counts again.
	bytes    int
	refusals int
}

// StmtRefusal is why Room refused a statement.
type StmtRefusal uint8

const (
	StmtFits     StmtRefusal = iota
	StmtTooMany              // the client holds max statements already
	StmtTooLarge             // their text would pass MaxClientStmtBytes
)

// Room says whether a client that holds n statements may prepare one
// more of size bytes (its name and text). max is
// max_client_prepared_statements (≤ 0: the default); rebind says the
// statement replaces one the client holds under the same name, which the
// count allows. recount gives the bytes of the statements held (without
// the one rebound); it is asked only when the estimate passes the cap.
// With a refusal comes its figure: max for StmtTooMany, the bytes the
// statements would hold for StmtTooLarge.
func (c *StmtCap) Room(max, n int, rebind bool, size int, recount func() int) (StmtRefusal, int) {
	if max <= 0 {
		max = config.DefaultMaxClientPreparedStatements
	}
	if !rebind && n >= max {
		return StmtTooMany, max
	}
	if c.bytes += size; c.bytes > MaxClientStmtBytes {
		held := recount()
		if c.bytes = held + size; c.bytes > MaxClientStmtBytes {
			c.bytes = held
			return StmtTooLarge, held + size
		}
	}
	return StmtFits, 0
}

// Refused counts a refusal in the metrics of protocol proto; first says
// it is the session's first, which the wire logs (a client in a loop
// would flood the log; the others are counted only).
func (c *StmtCap) Refused(proto config.Protocol) (first bool) {
	metrics.LimitRefusals.WithLabelValues(string(proto), "prepared_statements").Inc()
	c.refusals++
	return c.refusals == 1
}
