package frontend

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/rawconn"
)

// ErrClosed is returned by Serve after Shutdown or Close.
var ErrClosed = errors.New("server closed")

// Client is what a wire package's session must do for Shutdown.
type Client interface {
	comparable
	// CloseIfIdle closes the client now if it waits for its next request
	// outside a transaction, else at the end of the transaction.
	CloseIfIdle()
	// CloseConn closes the client's connection now.
	CloseConn()
}

// Server is the protocol-neutral half of a front end: listeners, the
// goroutines of the clients, the clients that logged in by id, Shutdown.
// The zero value is ready to use; its methods are safe for concurrent use.
type Server[C Client] struct {
	// Log gets a line when accept fails.
	Log *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	clients   map[uint32]C
	closing   atomic.Bool
	wg        sync.WaitGroup // a count per client goroutine
}

// Serve accepts clients on ln and runs handle for each on its own
// goroutine, until the listener is closed (it returns the accept error) or
// Shutdown or Close (ErrClosed). An accept that fails otherwise (out of
// file descriptors, say) is retried after a pause that doubles up to a
// second: a busy moment must not end the service.
func (f *Server[C]) Serve(ln net.Listener, handle func(net.Conn)) error {
	f.mu.Lock()
	if f.closing.Load() {
		f.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	if f.listeners == nil {
		f.listeners = make(map[net.Listener]struct{})
	}
	f.listeners[ln] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.listeners, ln)
		f.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if f.closing.Load() {
				return ErrClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			backoff = min(max(5*time.Millisecond, 2*backoff), time.Second)
			if f.Log != nil {
				f.Log.Warn("accept failed", "err", err, "retry_in", backoff)
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		// Shutdown sets closing under mu, then waits on wg: a client
		// accepted as it begins is either counted before the wait or
		// closed here, never added to a wait in progress.
		f.mu.Lock()
		if f.closing.Load() {
			f.mu.Unlock()
			nc.Close()
			return ErrClosed
		}
		f.wg.Add(1)
		f.mu.Unlock()
		go func() {
			defer f.wg.Done()
			handle(rawconn.Wrap(nc))
		}()
	}
}

// Closing reports whether Shutdown or Close has begun: new logins are
// refused and idle clients leave.
func (f *Server[C]) Closing() bool { return f.closing.Load() }

// stop stops accepting and returns the clients registered.
func (f *Server[C]) stop() []C {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing.Store(true)
	for ln := range f.listeners {
		ln.Close()
	}
	return f.clientsLocked()
}

// Shutdown stops accepting, tells every registered client to go at its
// next idle moment (at once if idle), and waits for every client
// goroutine to end. If ctx ends first, it closes every registered client's
// connection, waits for the goroutines and returns ctx's error. (A client
// still logging in ends within its login timeout.)
func (f *Server[C]) Shutdown(ctx context.Context) error {
	for _, c := range f.stop() {
		c.CloseIfIdle()
	}
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		f.Close()
		<-done
		return ctx.Err()
	}
}

// Close stops accepting, closes every registered client's connection now
// and waits for every client goroutine to end.
func (f *Server[C]) Close() {
	for _, c := range f.stop() {
		c.CloseConn()
	}
	f.wg.Wait()
}

// NewID returns an id that no registered client has, never 0: next gives
// the candidates, and in a fleet (instance > 0) the id carries the
// instance above them (fleet.ID), so that a cancel or KILL for it can be
// sent to its instance.
func (f *Server[C]) NewID(instance int, next func() uint32) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.newIDLocked(instance, next)
}

func (f *Server[C]) newIDLocked(instance int, next func() uint32) uint32 {
	for {
		id := next()
		if instance != 0 {
			id = fleet.ID(instance, id)
		}
		if _, taken := f.clients[id]; !taken && id != 0 {
			return id
		}
	}
}

// Register makes c the client of id for Client, Clients and Shutdown,
// until Unregister.
func (f *Server[C]) Register(id uint32, c C) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registerLocked(id, c)
}

func (f *Server[C]) registerLocked(id uint32, c C) {
	if f.clients == nil {
		f.clients = make(map[uint32]C)
	}
	f.clients[id] = c
}

// RegisterNew registers c under a new id (NewID) and returns it, at once,
// so that no other client can take the id in between.
func (f *Server[C]) RegisterNew(c C, instance int, next func() uint32) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.newIDLocked(instance, next)
	f.registerLocked(id, c)
	return id
}

// Unregister forgets id if c is still its client.
func (f *Server[C]) Unregister(id uint32, c C) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cur, ok := f.clients[id]; ok && cur == c {
		delete(f.clients, id)
	}
}

// Client returns the client registered under id.
func (f *Server[C]) Client(id uint32) (C, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clients[id]
	return c, ok
}

// Clients returns the registered clients, in no order.
func (f *Server[C]) Clients() []C {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clientsLocked()
}

func (f *Server[C]) clientsLocked() []C {
	out := make([]C, 0, len(f.clients))
	for _, c := range f.clients {
		out = append(out, c)
	}
	return out
}

// ClientTLS is the TLS config toward clients that p asks for: nil when it
// names no certificate, an error when the certificate cannot be loaded.
func ClientTLS(p config.Proxy) (*tls.Config, error) {
	if p.TLSCert == "" || p.TLSKey == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(p.TLSCert, p.TLSKey)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
