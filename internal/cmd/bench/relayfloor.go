package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// The relay floor: the same load through the least a proxy can do. A
// proxy between client and server adds, per query, one read and one write
// in each direction and two wake-ups; on a machine whose clients, servers
// and proxy share the CPUs, that costs throughput before the proxy does
// any work of its own. To know how much of a proxy's cost is its own and
// how much is the hop, the bench runs the same loads through a 1:1 relay:
// one thread, one epoll loop, each client connection paired with its own
// server connection, bytes copied as they arrive, nothing parsed, no pool,
// no TLS of its own. It runs as a child process (bench -relay-floor), so
// its CPU is measured as the proxies' is: what relaying alone costs per
// transaction. Its TPS is what a bare relay reaches; that bounds a proxy
// only where the one relay thread keeps up (one client, sysbench's 16
// threads in the runs so far: at 16 pgbench clients it fell below both
// proxies, for reasons not established). Rows run only where the proxies
// open as many server connections as the relay (clients ≤ pool size), so
// the servers do the same work.
const targetFloor = "1:1 relay (floor)"

// floorCase says whether a pgbench load gets a floor row: select-only,
// simple protocol (the shape of the bar), at most pool-size
// clients.
func (o *options) floorCase(script, mode string, clients int) bool {
	return o.floor && script == "select-only" && mode == "simple" && clients <= o.poolSize
}

// startFloor starts the relay child with one listener toward PostgreSQL
// and, with sysbench, one toward MariaDB.
func (e *env) startFloor(ctx context.Context, withMySQL bool) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var pairs []string
	p, err := freePort()
	if err != nil {
		return err
	}
	e.floorPGAddr = addr(p)
	pairs = append(pairs, e.floorPGAddr+"="+e.pg.Primary.Addr())
	if withMySQL {
		if p, err = freePort(); err != nil {
			return err
		}
		e.floorMyAddr = addr(p)
		pairs = append(pairs, e.floorMyAddr+"="+e.maria.Primary.Addr())
	}
	pr, err := e.procs.start("relay floor", filepath.Join(e.work, "relayfloor.log"), nil, toolEnv(), self, "-relay-floor", strings.Join(pairs, ","))
	if err != nil {
		return err
	}
	e.floorProc = pr
	return waitListening(ctx, pr, e.floorPGAddr, e.floorMyAddr)
}

// relayFloor serves the 1:1 relay for pairs ("listen=target,..."), both
// loopback IPv4 addresses, until the process is killed. Its loop makes
// the system calls a C relay would (raw: the Go scheduler takes no part,
// as one locked thread is all there is).
func relayFloor(pairs string) error {
	runtime.GOMAXPROCS(1)
	runtime.LockOSThread()
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	targets := map[int]*syscall.SockaddrInet4{} // listening socket → its target
	for _, pair := range strings.Split(pairs, ",") {
		l, t, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("relay pair %q: want listen=target", pair)
		}
		la, err := sockaddr(l)
		if err != nil {
			return err
		}
		ta, err := sockaddr(t)
		if err != nil {
			return err
		}
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		if err := syscall.Bind(fd, la); err != nil {
			return fmt.Errorf("bind %s: %w", l, err)
		}
		if err := syscall.Listen(fd, 1024); err != nil {
			return fmt.Errorf("listen %s: %w", l, err)
		}
		if err := epollAdd(ep, fd); err != nil {
			return err
		}
		targets[fd] = ta
	}
	peer := map[int]int{}
	closePair := func(fd int) {
		p := peer[fd]
		delete(peer, fd)
		delete(peer, p)
		_ = syscall.Close(fd)
		_ = syscall.Close(p)
	}
	buf := make([]byte, 64<<10)
	events := make([]syscall.EpollEvent, 256)
	for {
		r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), ^uintptr(0), 0, 0)
		if e != 0 {
			if e == syscall.EINTR { // the runtime's preemption signal
				continue
			}
			return fmt.Errorf("epoll_wait: %w", e)
		}
		n := int(r)
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if ta, ok := targets[fd]; ok {
				acceptPairs(ep, fd, ta, peer)
				continue
			}
			p, ok := peer[fd]
			if !ok {
				continue // closed with its peer earlier in this batch
			}
			for {
				r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
				if e == 0 && r > 0 {
					if werr := writeAll(p, buf[:r]); werr != nil {
						closePair(fd)
						break
					}
					if int(r) < len(buf) {
						break
					}
					continue
				}
				if e == syscall.EINTR {
					continue
				}
				if e != syscall.EAGAIN {
					closePair(fd) // EOF or an error: both ends go
				}
				break
			}
		}
	}
}

// acceptPairs accepts what waits on the listening socket lfd, connecting
// each client to a new connection to ta.
func acceptPairs(ep, lfd int, ta *syscall.SockaddrInet4, peer map[int]int) {
	for {
		c, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN: all taken
		}
		s, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err == nil {
			// A blocking connect: loopback answers at once.
			err = syscall.Connect(s, ta)
			if err != nil {
				_ = syscall.Close(s)
			}
		}
		if err != nil {
			_ = syscall.Close(c)
			continue
		}
		_ = syscall.SetNonblock(s, true)
		for _, fd := range []int{c, s} {
			_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
			_ = epollAdd(ep, fd)
		}
		peer[c], peer[s] = s, c
	}
}

// writeAll writes b to the non-blocking socket fd; when its buffer is
// full (never with this benchmark's small replies) it retries after a
// short sleep.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			b = b[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			time.Sleep(50 * time.Microsecond)
		default:
			return e
		}
	}
	return nil
}

func epollAdd(ep, fd int) error {
	return syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
}

func sockaddr(hostport string) (*syscall.SockaddrInet4, error) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(h).To4()
	port, perr := strconv.Atoi(p)
	if ip == nil || perr != nil {
		return nil, fmt.Errorf("relay address %q: want IPv4 host:port", hostport)
	}
	sa := &syscall.SockaddrInet4{Port: port}
	copy(sa.Addr[:], ip)
	return sa, nil
}
