package pgwire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A malformed Bind sent inside a transaction on a sharded database (no NUL
// after the portal name) must not crash the session or strand its server
// connection: the client gets an error or is closed, and the shard's pool
// serves the next client.
func TestShardMalformedBindInTransaction(t *testing.T) {
	shardConns(t)
	p := startShardProxy(t)
	pc, err := pgconn.Connect(ctxT(t, 20*time.Second), p.rawDSN("app", "app", "orders"))
	if err != nil {
		t.Fatal(err)
	}
	hj, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	nc := hj.Conn
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(nc)
	readUntilZ := func() {
		for {
			typ, body := readMsg(br)
			if typ == 'Z' || typ == 0 || typ == 'E' && bytes.Contains(body, []byte("SFATAL\x00")) {
				return
			}
		}
	}
	if _, err := nc.Write(frames(msg('Q', cstr("BEGIN")), msg('Q', cstr("SELECT * FROM orders WHERE customer_id = 1")))); err != nil {
		t.Fatal(err)
	}
	readUntilZ()
	readUntilZ()
	// Bind with nothing after the type byte and length: no portal name.
	if _, err := nc.Write(frames(msg('B'), msg('S'))); err != nil {
		t.Fatal(err)
	}
	readUntilZ() // an error and ReadyForQuery, or the connection closed
	nc.Close()
	time.Sleep(100 * time.Millisecond)

	// Another client of the same shard is served within the wait timeout.
	ctx := ctxT(t, 20*time.Second)
	for i := 0; i < 3; i++ {
		conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+"&default_query_exec_mode=simple_protocol")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE customer_id = 1").Scan(&n)
		conn.Close(ctx)
		if err != nil {
			t.Fatalf("next client: %v", err)
		}
	}
}

// readMsg reads one backend message; typ 0 at EOF or on an error.
func readMsg(br *bufio.Reader) (byte, []byte) {
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return 0, nil
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 {
		return 0, nil
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(br, body); err != nil {
		return 0, nil
	}
	return hdr[0], body
}
