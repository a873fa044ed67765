package pgwire

import (
	"bufio"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// BenchmarkBindMapping measures what the prepared-statement mapping adds to
// one Bind on the hot path: the client-name lookup, the server-side LRU
// touch, the booking in the expectation queue and the rewritten write.
// BenchmarkBindPassthrough is the same Bind of the unnamed statement,
// which is relayed unchanged, as the baseline.
func BenchmarkBindMapping(b *testing.B) {
	benchBind(b, "stmtcache_0123456789abcdef")
}

func BenchmarkBindPassthrough(b *testing.B) {
	benchBind(b, "")
}

func benchBind(b *testing.B, name string) {
	s := &Server{}
	c := &clientConn{srv: s, stmts: map[string]*gstmt{}}
	sc := &serverConn{bw: bufio.NewWriterSize(io.Discard, serverWriteBuf), stmts: stmtCache{max: maxPreparedPerConn}}
	parse, _ := (&pgproto3.Parse{Name: name, Query: "SELECT * FROM t WHERE id = $1"}).Encode(nil)
	bind, _ := (&pgproto3.Bind{PreparedStatement: name, Parameters: [][]byte{[]byte("42")}}).Encode(nil)
	if err := c.sendMsg(sc, 'P', parse, false); err != nil {
		b.Fatal(err)
	}
	c.expects.reset()
	c.lastUnnamed = nil
	c.writers = 1 // the reservation forward() holds
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.sendMsg(sc, 'B', bind, false); err != nil {
			b.Fatal(err)
		}
		c.expects.pop()
	}
}
