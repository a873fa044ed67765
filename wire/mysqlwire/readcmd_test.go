package mysqlwire

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// A command is read with one read(2) when it fits s.in; whatever that read
// brings beyond the command is the client's next command, and must be
// served, in order, whole, however the bytes arrive: several commands in
// one read, a header split across reads, a command larger than s.in.
func TestCommandReadsPipelinedAndSplit(t *testing.T) {
	// A proxy of its own, shut down at the end: a shared one would keep
	// server connections open under later tests that count them.
	p := startProxy(t, "pool_size = 2", `[[users]]
name = "app_trust"
auth = "trust"
server_user = "app"
server_password = "app"`)
	s := p.srv
	login := packets(1, (&mysqlproto.HandshakeResponse{
		Capabilities: proxyCaps &^ (mysqlproto.CapSSL | mysqlproto.CapCompress), MaxPacket: 1 << 24, Collation: 45,
		User: "app_trust", Database: "app", AuthPlugin: mysqlproto.PluginNative,
	}).Encode(nil))
	long := "SELECT 'delta' AS x /* " + string(bytes.Repeat([]byte{'y'}, 3*cmdReadBuf)) + " */"
	var stream []byte
	for _, q := range []string{"SELECT 'alpha'", "SELECT 'bravo'", long, "SELECT 'charlie'"} {
		stream = append(stream, packets(0, cmd(mysqlproto.ComQuery, []byte(q)...))...)
	}
	stream = append(stream, packets(0, cmd(mysqlproto.ComQuit))...)
	for _, chunk := range []int{1, 3, 5, 7, cmdReadBuf - 1, cmdReadBuf + 1, 1 << 16} {
		c := &chunkConn{login: bytes.NewReader(login), r: bytes.NewReader(stream), chunk: chunk}
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.serveConn(c)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("chunk %d: session did not end", chunk)
		}
		out := c.written()
		last := -1
		for _, want := range []string{"alpha", "bravo", "delta", "charlie"} {
			i := bytes.Index(out, []byte(want))
			if i < 0 || i < last {
				t.Fatalf("chunk %d: %q missing or out of order in the replies (%d bytes): %q", chunk, want, len(out), out)
			}
			last = i
		}
	}
}

// chunkConn is a client that logs in, waits for the proxy's answer, then
// sends fixed bytes at most chunk at a time, then EOF; it keeps what the
// proxy writes.
type chunkConn struct {
	bytesConn
	login, r *bytes.Reader
	chunk    int
	mu       sync.Mutex
	out      bytes.Buffer
	writes   int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if c.login.Len() > 0 {
		return c.login.Read(p)
	}
	// The login's OK (the proxy's second write) before any command, as a
	// client waits for it.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		c.mu.Lock()
		w := c.writes
		c.mu.Unlock()
		if w >= 2 {
			break
		}
	}
	if len(p) > c.chunk {
		p = p[:c.chunk]
	}
	return c.r.Read(p)
}

func (c *chunkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.out.Write(p)
}

func (c *chunkConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.out.Bytes()...)
}

var _ net.Conn = (*chunkConn)(nil)
