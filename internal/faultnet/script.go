package faultnet

import (
	"net"
	"sync"
)

// Serve accepts connections on ln and runs serve for each, on its own
// goroutine, with a connection number counting from 1 (a scripted server's
// connection id). The returned stop closes ln and every connection
// accepted, then waits for the serve calls to return: a test passes it to
// t.Cleanup so that its fake server stops by itself.
func Serve(ln net.Listener, serve func(c net.Conn, id uint32)) (stop func()) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for id := uint32(1); ; id++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c, id)
			}()
		}
	}()
	return func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}
