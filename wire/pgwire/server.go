package pgwire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/limits"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
)

// Server accepts PostgreSQL clients and serves them from pools of server
// connections. One goroutine runs per client; see doc.go for the layers.
type Server struct {
	log   *slog.Logger
	cfg   atomic.Pointer[config.Config]
	tls   atomic.Pointer[tls.Config]
	creds credCache
	pass  passthrough // users logged in with auth_query (passthrough.go)
	stmts stmtRegistry
	an    *router.Analyzer

	// StartupTimeout, when set, bounds the time from TCP accept to the end
	// of login instead of proxy.client_login_timeout.
	StartupTimeout time.Duration
	// Limits counts clients against the configured caps and remembers
	// failed logins; NewServer gives the server its own, and a process
	// with both front ends may give them one to share before Serve.
	Limits *limits.Set
	// OnReload, when set, is what the admin console's RELOAD does.
	OnReload func() error

	mu        sync.Mutex
	pools     pool.Set[poolKey, *poolEntry]
	rts       replica.Registry       // runtimes of the node sets with replicas, by name
	shards    router.ShardSet        // the sharded clusters in force (shard.go)
	clients   map[uint32]*clientConn // by proxy-issued process id
	listeners []net.Listener
	shutting  atomic.Bool
	wg        sync.WaitGroup
}

// poolEntry is a pool and what the proxy learned from its server: the
// ParameterStatus values a fresh connection reports, sent to clients at
// login as a real server would.
type poolEntry struct {
	p      *pool.Pool
	mu     sync.Mutex
	params map[string]string
}

// NewServer prepares a server for cfg; Serve starts accepting.
func NewServer(cfg *config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{
		log:     log,
		clients: make(map[uint32]*clientConn),
		Limits:  limits.New(),
		an:      router.AnalyzerFor(router.Postgres, "", ""),
	}
	s.shards.Protocol = config.Postgres
	s.pools.Log = log
	s.pools.Listed = func(k poolKey, p *pool.Pool, l pool.Limits) {
		metrics.AddPool(metrics.PoolInfo{Protocol: "postgres", Cluster: k.cluster, Node: k.addr + "/" + k.db, User: k.user, Size: l.Size, Pool: p})
	}
	s.pools.Unlisted = metrics.RemovePool
	if err := s.Reload(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload makes cfg the configuration for everything that starts from now
// on: new logins and new leases. Pools no longer described by cfg drain in
// the background; transactions in flight finish on the pool they hold.
func (s *Server) Reload(cfg *config.Config) error {
	var tc *tls.Config
	if cfg.Proxy.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Proxy.TLSCert, cfg.Proxy.TLSKey)
		if err != nil {
			return fmt.Errorf("loading TLS certificate: %w", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	shards, err := s.shards.Build(cfg)
	if err != nil {
		return err
	}
	// Lag monitors: kept for node sets whose nodes and settings did not
	// change, built for new ones, stopped for the rest.
	s.rts.Reload(replica.Specs(cfg, config.Postgres, serverCreds, newProbe))
	s.tls.Store(tc)
	s.cfg.Store(cfg)
	s.shards.Publish(shards, &s.rts)

	// Pools whose connections the new config describes alike stay, with
	// the new limits (pool_size and the like); the others drain.
	valid := make(map[poolKey]pool.Limits)
	for i := range cfg.Clusters {
		cl := &cfg.Clusters[i]
		if cl.Protocol != config.Postgres {
			continue
		}
		for j := range cfg.Users {
			for _, n := range clusterNodes(cl) {
				valid[newPoolKey(cl, &cfg.Users[j], n.addr, n.db)] = poolLimits(cl.Settings)
			}
		}
	}
	s.pools.Reload(func(k poolKey) (pool.Limits, bool) { l, ok := valid[k]; return l, ok }, cfg.Proxy.ShutdownTimeout)
	return nil
}

// Config returns the configuration in force.
func (s *Server) Config() *config.Config { return s.cfg.Load() }

type node struct{ addr, db string }

func clusterNodes(cl *config.Cluster) []node {
	db := cl.ServerDatabase
	if db == "" {
		db = cl.Database
	}
	var out []node
	if cl.Primary != "" {
		out = append(out, node{cl.Primary, db})
		for _, r := range cl.Replicas {
			out = append(out, node{r, db})
		}
	}
	for _, sh := range cl.Shards {
		sdb := sh.Database
		if sdb == "" {
			sdb = db
		}
		out = append(out, node{sh.Primary, sdb})
		for _, r := range sh.Replicas {
			out = append(out, node{r, sdb})
		}
	}
	return out
}

// poolKey identifies a pool by everything that makes its connections
// interchangeable; a reload that changes any part gets a fresh pool. The
// pool's limits and the settings of routing are not part of it: a reload
// that changes only those keeps the pool (poolLimits).
type poolKey struct {
	cluster, addr, db, user, password string
	settings                          config.Settings // PoolIdentity
	pass                              bool            // a passthrough user's (auth_query)
}

func newPoolKey(cl *config.Cluster, u *config.User, addr, db string) poolKey {
	return poolKey{cluster: cl.Name, addr: addr, db: db, user: serverUser(u), password: u.ServerPassword, settings: cl.Settings.PoolIdentity()}
}

// poolLimits are the settings of a pool that a reload changes in place.
func poolLimits(st config.Settings) pool.Limits {
	return pool.Limits{Size: st.PoolSize, MinSize: st.MinPoolSize, MaxWaiting: st.MaxWaitClients, WaitTimeout: st.QueryWaitTimeout}
}

func serverUser(u *config.User) string {
	if u.ServerUser != "" {
		return u.ServerUser
	}
	return u.Name
}

// poolFor returns the pool of (cluster, user, node), creating it on first use.
func (s *Server) poolFor(cl *config.Cluster, u *config.User, addr, db string) *poolEntry {
	key := newPoolKey(cl, u, addr, db)
	pu := s.pass.of(u)
	key.pass = pu != nil
	// The open never fails; after Shutdown its pool is closed (ErrClosed).
	_, e, _ := s.pools.Get(key, func() (*pool.Pool, *poolEntry, error) {
		p := s.openPool(cl, u, pu, addr, db)
		return p, &poolEntry{p: p}, nil
	})
	return e
}

// openPool makes the pool of (cluster, user, node); pu is the passthrough
// login of u, nil for a configured user.
func (s *Server) openPool(cl *config.Cluster, u *config.User, pu *passUser, addr, db string) *pool.Pool {
	st := cl.Settings
	user, password := serverUser(u), u.ServerPassword
	wait := metrics.WaitSeconds.WithLabelValues("postgres", cl.Name)
	connectTimeout := st.ConnectTimeout
	if connectTimeout <= 0 {
		connectTimeout = 5 * time.Second
	}
	p := pool.New(pool.Options{
		Name:        fmt.Sprintf("%s/%s@%s user=%s", cl.Name, db, addr, user),
		Size:        st.PoolSize,
		MinSize:     st.MinPoolSize,
		MaxWaiting:  st.MaxWaitClients,
		WaitTimeout: st.QueryWaitTimeout,
		IdleTimeout: st.IdleTimeout,
		Lifetime:    st.ServerLifetime,
		CheckDelay:  st.ServerCheckDelay,
		Dial: func(ctx context.Context) (pool.Conn, error) {
			dctx, cancel := context.WithTimeout(ctx, connectTimeout)
			defer cancel()
			var sc *serverConn
			var err error
			if pu != nil {
				sc, err = dialServerPass(dctx, addr, st, user, pu.current(), db)
			} else {
				sc, err = dialServer(dctx, addr, st, user, password, db)
			}
			if err != nil {
				metrics.ServerErrors.WithLabelValues("postgres", cl.Name).Inc()
				if ctx.Err() == nil && dctx.Err() != nil {
					// A server that accepts and says nothing: name the
					// setting that gave up, not pgconn's read error.
					err = fmt.Errorf("server %s did not finish connecting within connect_timeout (%v): %w", addr, connectTimeout, context.DeadlineExceeded)
				}
				return nil, err
			}
			return sc, nil
		},
		Ping:       func(ctx context.Context, c pool.Conn) error { return c.(*serverConn).ping(ctx) },
		Alive:      func(c pool.Conn) bool { return c.(*serverConn).alive() },
		AliveDelay: pool.DefaultAliveDelay,
		OnWait:     func(d time.Duration) { wait.Observe(d.Seconds()) },
	})
	return p
}

// Serve accepts clients on ln until the listener is closed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.shutting.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: back off, keep serving.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		// Shutdown sets shutting before it takes mu, and waits on wg
		// after: a client accepted as it begins is either counted before
		// the wait or closed here, never added to a wait in progress.
		s.mu.Lock()
		if s.shutting.Load() {
			s.mu.Unlock()
			conn.Close()
			return nil
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(conn)
		}()
	}
}

// Shutdown stops accepting, closes idle clients at once and every other
// client at the end of its transaction, then waits for them until ctx ends
// and closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.mu.Lock()
	for _, ln := range s.listeners {
		ln.Close()
	}
	clients := make([]*clientConn, 0, len(s.clients))
	for _, c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	for _, c := range clients {
		c.closeIfIdle()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.Close()
		<-done
	}
	s.closePools()
	return err
}

// Close closes every listener and client connection now.
func (s *Server) Close() {
	s.shutting.Store(true)
	s.mu.Lock()
	for _, ln := range s.listeners {
		ln.Close()
	}
	for _, c := range s.clients {
		c.conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.closePools()
}

func (s *Server) closePools() {
	s.rts.Close()
	s.pools.Close()
}

// register gives c a proxy-issued process id unique among live clients: a
// positive int32, as PostgreSQL's process ids are, since clients keep it
// in an int4 (pg_cancel_backend($1), pg_stat_activity.pid).
// In a fleet the id carries the instance id (package fleet), and 21 bits
// random below it.
func (s *Server) register(c *clientConn) {
	inst := s.cfg.Load().Proxy.InstanceID
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		id := randUint32() & 0x7fffffff
		if inst != 0 {
			id = fleet.ID(inst, id)
		}
		if _, taken := s.clients[id]; !taken && id != 0 {
			c.pid = id
			s.clients[id] = c
			return
		}
	}
}

func (s *Server) unregister(c *clientConn) {
	if c.pid == 0 {
		return
	}
	s.mu.Lock()
	if s.clients[c.pid] == c {
		delete(s.clients, c.pid)
	}
	s.mu.Unlock()
}

func (s *Server) lookupClient(pid uint32) *clientConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clients[pid]
}
