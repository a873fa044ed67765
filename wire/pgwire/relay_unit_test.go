package pgwire

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/wire/pgframe"
)

// A server that sends a malformed ReadyForQuery (no status byte) costs its
// client the session, with a clear FATAL error, and the connection goes
// back to the pool closed; nothing panics.
func TestMalformedServerReplyFailsOnlyThatClient(t *testing.T) {
	clientSide, proxySide := net.Pipe()
	serverSide, proxyServer := net.Pipe()
	defer clientSide.Close()
	defer serverSide.Close()
	sc := &serverConn{conn: proxyServer, addr: "fake"}
	sc.br = bufio.NewReader(proxyServer)
	sc.rd = pgframe.NewReader(sc.br, 1<<20)
	sc.bw = bufio.NewWriter(proxyServer)
	p := pool.New(pool.Options{Name: "fake", Size: 1, Dial: func(context.Context) (pool.Conn, error) { return sc, nil }})
	defer p.Close()
	ps, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := &clientConn{conn: proxySide, bw: bufio.NewWriter(proxySide), state: frontend.StateActive, mode: "transaction",
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c.server, c.lease, c.leasePool, c.outstanding = sc, ps, p, 1
	c.expects.push(expect{kind: 'Q'})

	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(clientSide)
		got <- b
	}()
	c.wmu.Lock()
	go c.pump(sc, ps, p, false)
	if _, err := serverSide.Write([]byte{'Z', 0, 0, 0, 4}); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if len(b) == 0 || b[0] != 'E' || !bytes.Contains(b, []byte("08006")) {
			t.Fatalf("client got %q, want a FATAL 08006", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client was not told")
	}
	if st := p.Stats(); st.Active != 0 {
		t.Fatalf("pool still has %d active connections", st.Active)
	}
}
