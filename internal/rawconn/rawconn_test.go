package rawconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pair returns a wrapped server end and the plain client end of a
// loopback TCP connection.
func pair(t *testing.T) (*Conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	w, ok := wrap(srv).(*Conn)
	if !ok {
		t.Fatalf("Wrap(%T) did not wrap", srv)
	}
	t.Cleanup(func() { w.Close(); cli.Close() })
	return w, cli.(*net.TCPConn)
}

func TestWrapLeavesOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a || wrap(a) != a {
		t.Fatal("a pipe was wrapped")
	}
}

// Bytes go both ways unchanged, also many times the socket buffers (the
// writer waits on the poller for room, the reader for data).
func TestRoundTripLarge(t *testing.T) {
	w, cli := pair(t)
	_ = w.SetWriteBuffer(4096)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(cli, int64(len(data))))
		got <- b
	}()
	n, err := w.Write(data)
	if err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(data))
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("client read %d bytes, not what was written", len(b))
	}
	go func() { _, _ = cli.Write(data); _ = cli.CloseWrite() }()
	back, err := io.ReadAll(w)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("ReadAll = %d bytes, %v; want the %d written, then EOF", len(back), err, len(data))
	}
	if n, err := w.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
	}
}

// Concurrent Writes do not interleave: each arrives whole.
func TestConcurrentWritesWhole(t *testing.T) {
	w, cli := pair(t)
	const writers, size = 8, 200_000
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := w.Write(bytes.Repeat([]byte{byte('a' + i)}, size)); err != nil {
				t.Error(err)
			}
		}()
	}
	buf := make([]byte, writers*size)
	if _, err := io.ReadFull(cli, buf); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for off := 0; off < len(buf); off += size {
		if c := bytes.Count(buf[off:off+size], buf[off:off+1]); c != size {
			t.Fatalf("write at %d is mixed with another (%d of %d bytes its own)", off, c, size)
		}
	}
}

func TestReadDeadline(t *testing.T) {
	w, _ := pair(t)
	_ = w.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	start := time.Now()
	_, err := w.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline = %v; want a timeout (os.ErrDeadlineExceeded)", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the deadline took %v", d)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("error %#v: want a *net.OpError for read", err)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	w, _ := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := w.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	w.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed conn = %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the Read")
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write on a closed conn = %v; want net.ErrClosed", err)
	}
}

// A peer that closes with unread data sends a reset: the error is
// ECONNRESET, as with net.Conn.
func TestResetIsSyscallError(t *testing.T) {
	w, cli := pair(t)
	if _, err := w.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	_ = cli.SetLinger(0)
	cli.Close()
	var err error
	for range 100 {
		if _, err = w.Read(make([]byte, 10)); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after the peer's reset = %v; want ECONNRESET", err)
	}
}
