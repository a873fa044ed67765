// Command fleetlb is the TCP round-robin balancer of `make demo-fleet`:
// each new connection goes to the next backend, as an L4 load balancer or
// a Kubernetes Service in front of several Switchyards would send it. It
// is a demo, for loopback only: it listens and dials on 127.0.0.0/8.
//
//	fleetlb -listen 127.0.0.1:6440 127.0.0.1:6442 127.0.0.1:6443 127.0.0.1:6444
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:6440", "address to accept clients on (loopback)")
	verbose := flag.Bool("v", false, "log each connection and the backend it went to")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: fleetlb [-listen 127.0.0.1:PORT] [-v] BACKEND...")
		flag.PrintDefaults()
	}
	flag.Parse()
	backends := flag.Args()
	if len(backends) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	for _, a := range append([]string{*listen}, backends...) {
		if err := loopback(a); err != nil {
			log.Fatalf("fleetlb: %v", err)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("fleetlb: %v", err)
	}
	log.Printf("fleetlb: %s -> %v (round robin)", ln.Addr(), backends)
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
		ln.Close()
	}()
	var next atomic.Uint64
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b := backends[(next.Add(1)-1)%uint64(len(backends))]
		if *verbose {
			log.Printf("fleetlb: %s -> %s", c.RemoteAddr(), b)
		}
		go relay(c, b)
	}
}

// loopback refuses an address outside 127.0.0.0/8.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return fmt.Errorf("%s: fleetlb is a demo for loopback only (127.0.0.0/8 addresses)", addr)
	}
	return nil
}

func relay(c net.Conn, backend string) {
	defer c.Close()
	b, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		log.Printf("fleetlb: %s: %v", backend, err)
		return
	}
	defer b.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Pass a half close on: a cancel request's sender waits for the
		// far end to close.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(b, c)
	go pipe(c, b)
	<-done
	<-done
}
