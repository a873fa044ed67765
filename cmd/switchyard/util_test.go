package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

var (
	givenMu sync.Mutex
	given   = map[int]bool{}
)

// freePort returns a loopback port that was free a moment ago, chosen at
// random below the kernel's ephemeral range (32768 and up on Linux): the
// instance a test starts binds it later, and a port from the ephemeral
// range can be taken in between as the source port of any outgoing
// connection (CI saw "bind: address already in use" that way); below it
// only a listener can take it. No port is returned twice in one run.
func freePort(t *testing.T) int {
	t.Helper()
	givenMu.Lock()
	defer givenMu.Unlock()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		if given[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
			given[port] = true
			return port
		}
	}
	t.Fatal("no free port in 20000-31999 after 200 tries")
	return 0
}

func waitListening(t *testing.T, port int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var d net.Dialer
	for ctx.Err() == nil {
		if c, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the proxy is not listening on %d after 15s", port)
}
