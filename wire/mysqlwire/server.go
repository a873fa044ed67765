package mysqlwire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/authcache"
	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/limits"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/shard"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("mysqlwire: server closed")

// defaultVersion is announced to clients until the proxy has seen a
// server's own version string.
const defaultVersion = "8.0.36-switchyard"

// Server accepts MySQL clients and serves them from pools of server
// connections. Its methods are safe for concurrent use.
type Server struct {
	log *slog.Logger
	cfg atomic.Pointer[config.Config]
	tls atomic.Pointer[tls.Config]

	// version is the server version string clients see (the last one a
	// server announced), so drivers pick the right dialect.
	version atomic.Pointer[string]

	// rts are the routing runtimes (lag monitor, replica set) of the
	// clusters and shards with replicas, by name; replaced whole on reload.
	rts replica.Registry
	// ans are the read/write analyzers of the unsharded clusters with
	// replicas, by cluster name (route.go); replaced whole on reload.
	ans atomic.Pointer[map[string]*router.Analyzer]

	// shards are the sharded clusters in force (shard.go).
	shards   router.ShardSet
	reloadMu sync.Mutex // serializes Reload

	// limits are the servers' max_allowed_packet, by address.
	limits sync.Map // string -> *packetLimit
	// setNames are the SET NAMES statements of collation ids, per server.
	setNames sync.Map // setNamesKey -> string

	// passCache keeps auth_query's answers (passthrough.go).
	passCache authcache.Cache

	mu        sync.Mutex
	pools     pool.Set[poolKey, struct{}]
	listeners map[net.Listener]struct{}

	// Limits counts clients against the configured caps and remembers
	// failed logins; NewServer gives the server its own, and a process
	// with both front ends may give them one to share before Serve.
	Limits *limits.Set

	closing  atomic.Bool
	sessions sync.Map // uint32 connection id -> *session
	nextID   atomic.Uint32
	clients  atomic.Int64
	wg       sync.WaitGroup
}

// poolKey identifies a pool: one node, one server database and user, so
// that pool_size caps the server connections per node and user. Clients'
// capabilities, collations and connection attributes are not part of it: a
// lease brings its connection in line with the client (session.sync).
// Settings are part of the key so that a reload with new pool settings
// gets new pools.
type poolKey struct {
	addr, db, user, password string
	settings                 config.Settings
	cluster                  string
}

// NewServer returns a server for cfg. Nothing listens until Serve.
func NewServer(cfg *config.Config, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		log:       log.With("proto", "mysql"),
		listeners: make(map[net.Listener]struct{}),
		Limits:    limits.New(),
	}
	v := defaultVersion
	s.version.Store(&v)
	s.pools.Log = s.log
	s.pools.Listed = func(k poolKey, p *pool.Pool, l pool.Limits) { metrics.AddPool(poolInfo(k, l, p)) }
	s.pools.Unlisted = metrics.RemovePool
	s.shards.Protocol = config.MySQL
	shards, err := s.shards.Build(cfg)
	if err != nil {
		s.log.Error("sharded MySQL clusters are unusable: their shard maps cannot be built", "err", err)
		shards = nil
	}
	s.setConfig(cfg)
	s.setRuntimes(cfg)
	s.shards.Publish(shards, &s.rts)
	return s
}

// setRuntimes builds the routing runtimes of cfg's clusters with replicas,
// keeping the unchanged ones and stopping the replaced ones.
func (s *Server) setRuntimes(cfg *config.Config) {
	s.setAnalyzers(cfg)
	if s.closing.Load() {
		return
	}
	s.rts.Reload(replica.Specs(cfg, config.MySQL, serverCreds, newProbe))
	for name, rt := range s.rts.All() {
		if err := rt.Mon.PrimaryErr(); err != nil {
			s.log.Warn("lag monitor cannot read the primary's GTID position; reads go to the primary", "cluster", name, "err", err)
		}
	}
}

func (s *Server) setConfig(cfg *config.Config) {
	s.cfg.Store(cfg)
	var tc *tls.Config
	if cfg.Proxy.TLSCert != "" && cfg.Proxy.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Proxy.TLSCert, cfg.Proxy.TLSKey)
		if err != nil {
			s.log.Error("client TLS disabled: cannot load certificate", "cert", cfg.Proxy.TLSCert, "err", err)
		} else {
			tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
	}
	s.tls.Store(tc)
}

// CheckReload says whether Reload would accept cfg, changing nothing, so
// that a caller reloading several front ends can refuse a file before any
// of them has taken it.
func (s *Server) CheckReload(cfg *config.Config) error {
	if _, err := s.shards.Build(cfg); err != nil {
		return fmt.Errorf("mysql: reload refused, the running config stays: %w", err)
	}
	return nil
}

// Reload makes new clients use cfg. Pools whose node, credentials and
// settings are unchanged are kept; the others are drained in the
// background once no cluster of cfg uses them (their current leases finish
// first, bounded by the shutdown timeout). Shard maps are rebuilt (a
// changed one with a higher version); transactions under way finish on
// the map they started with. If a map cannot be built, nothing changes
// and the error says why.
func (s *Server) Reload(cfg *config.Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	shards, err := s.shards.Build(cfg)
	if err != nil {
		return fmt.Errorf("mysql: reload refused, the running config stays: %w", err)
	}
	s.setConfig(cfg)
	s.setRuntimes(cfg)
	s.shards.Publish(shards, &s.rts)
	// Pools whose connections the new config describes alike stay, with
	// its limits (pool_size and the like) taken in place; the others drain.
	s.pools.Reload(func(k poolKey) (pool.Limits, bool) {
		return poolLimits(cfg, k.cluster), s.keyValid(cfg, k)
	}, cfg.Proxy.ShutdownTimeout)
	return nil
}

// keyValid reports whether some MySQL cluster of cfg still resolves to k.
func (s *Server) keyValid(cfg *config.Config, k poolKey) bool {
	for i := range cfg.Clusters {
		c := &cfg.Clusters[i]
		if c.Protocol != config.MySQL || c.Name != k.cluster || c.Settings.PoolIdentity() != k.settings {
			continue
		}
		found := c.Primary == k.addr || slices.Contains(c.Replicas, k.addr)
		for j, sh := range c.Shards {
			if shard.Database(c, j) == k.db && (sh.Primary == k.addr || slices.Contains(sh.Replicas, k.addr)) {
				found = true
			}
		}
		if !found {
			continue
		}
		if _, pass := passHash(k.password); pass && c.Settings.AuthUser != "" {
			return true // a passthrough user's pool, while the cluster has auth_user
		}
		for j := range cfg.Users {
			u, pw := serverCreds(&cfg.Users[j])
			if u == k.user && pw == k.password {
				return true
			}
		}
	}
	return false
}

// serverCreds are the credentials toward the servers for u.
func serverCreds(u *config.User) (string, string) {
	user, pw := u.ServerUser, u.ServerPassword
	if user == "" {
		user = u.Name
	}
	if pw == "" && !isVerifier(u.Password) {
		pw = u.Password
	}
	return user, pw
}

// poolFor returns the pool for k, creating it on first use.
func (s *Server) poolFor(k poolKey) (*pool.Pool, error) {
	if s.closing.Load() {
		return nil, mysqlproto.NewSQLError(mysqlproto.ERServerShutdown, "08S01", "switchyard is shutting down")
	}
	p, _, err := s.pools.Get(k, func() (*pool.Pool, struct{}, error) {
		p, err := s.openPool(k)
		return p, struct{}{}, err
	})
	return p, err
}

// openPool makes the pool of k.
func (s *Server) openPool(k poolKey) (*pool.Pool, error) {
	st := k.settings
	lim := poolLimits(s.cfg.Load(), k.cluster)
	stls, err := newServerTLS(st, k.addr)
	if err != nil {
		return nil, mysqlproto.NewSQLError(mysqlproto.ERUnknown, "HY000", "switchyard: %v", err)
	}
	dp := dialParams{addr: k.addr, user: k.user, password: k.password, db: k.db, collation: defaultCollation, tls: stls}
	// A dial for a client's lease is made as that client needs it; one of
	// the pool's own (min_pool_size) as the last client's, with the
	// proxy's attributes.
	var last atomic.Pointer[connSpec]
	serverErrs := metrics.ServerErrors.WithLabelValues("mysql", k.cluster)
	wait := metrics.WaitSeconds.WithLabelValues("mysql", k.cluster)
	p := pool.New(pool.Options{
		Name:        fmt.Sprintf("mysql/%s@%s user=%s db=%s", k.cluster, k.addr, k.user, k.db),
		Size:        lim.Size,
		MinSize:     lim.MinSize,
		MaxWaiting:  lim.MaxWaiting,
		WaitTimeout: lim.WaitTimeout,
		IdleTimeout: st.IdleTimeout,
		Lifetime:    st.ServerLifetime,
		CheckDelay:  st.ServerCheckDelay,
		Dial: func(ctx context.Context) (pool.Conn, error) {
			dctx := ctx
			if st.ConnectTimeout > 0 {
				var cancel context.CancelFunc
				dctx, cancel = context.WithTimeout(ctx, st.ConnectTimeout)
				defer cancel()
			}
			dp := dp
			if sp, ok := ctx.Value(specKey{}).(*connSpec); ok {
				sp.apply(&dp)
				c := *sp
				last.Store(&c)
			} else if sp := last.Load(); sp != nil {
				own := *sp
				own.attrs, own.attrsSig = nil, ""
				own.apply(&dp)
			}
			if dp.attrs == nil {
				dp.attrs = proxyAttrs
			}
			b, err := dialBackend(dctx, dp)
			if err != nil {
				serverErrs.Inc()
				// dialBackend's socket deadline may fire a hair before
				// the context reports it.
				if ctx.Err() == nil && (dctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)) {
					err = fmt.Errorf("server %s did not finish the handshake within connect_timeout (%v): %w", k.addr, st.ConnectTimeout, context.DeadlineExceeded)
				}
				return nil, err
			}
			return b, nil
		},
		Prefer: func(ctx context.Context, c pool.Conn) bool {
			sp, ok := ctx.Value(specKey{}).(*connSpec)
			return !ok || sp.fits(c.(*backend))
		},
		Ping:       func(ctx context.Context, c pool.Conn) error { return c.(*backend).ping(ctx) },
		Alive:      func(c pool.Conn) bool { return c.(*backend).alive() },
		AliveDelay: pool.DefaultAliveDelay,
		OnWait: func(d time.Duration) {
			wait.Observe(d.Seconds())
		},
	})
	if lim := s.packetLimit(k.addr); lim.learning.CompareAndSwap(false, true) {
		go lim.learn(dp)
	}
	return p, nil
}

// poolLimits are the limits of cluster's pools in cfg, which a reload
// changes in place.
func poolLimits(cfg *config.Config, cluster string) pool.Limits {
	var st config.Settings
	if cl := cfg.ClusterByName(cluster); cl != nil {
		st = cl.Settings
	}
	return pool.Limits{Size: max(1, st.PoolSize), MinSize: st.MinPoolSize, MaxWaiting: st.MaxWaitClients, WaitTimeout: st.QueryWaitTimeout}
}

func poolInfo(k poolKey, l pool.Limits, p *pool.Pool) metrics.PoolInfo {
	return metrics.PoolInfo{Protocol: "mysql", Cluster: k.cluster, Node: k.addr + "/" + k.db, User: k.user, Size: l.Size, Pool: p}
}

// PoolStats returns a snapshot of every pool, by name.
func (s *Server) PoolStats() map[string]pool.Stats { return s.pools.Stats() }

// Serve accepts clients on ln until Shutdown; it then returns
// ErrServerClosed. Each client is served on its own goroutine.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	go s.learnVersion()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTemporary) {
				backoff = min(max(5*time.Millisecond, 2*backoff), time.Second)
				time.Sleep(backoff)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE and friends: wait and go on rather than stop serving.
			s.log.Warn("accept", "err", err)
			backoff = min(max(5*time.Millisecond, 2*backoff), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.mu.Lock() // Shutdown sets closing under mu, then waits on wg
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(nc)
	}
}

var errTemporary = errors.New("temporary")

// learnVersion reads the handshake of one primary (no login needed) so
// that clients see the server's version string rather than a made-up one.
func (s *Server) learnVersion() {
	cfg := s.cfg.Load()
	for i := range cfg.Clusters {
		c := &cfg.Clusters[i]
		if c.Protocol != config.MySQL || c.Primary == "" {
			continue
		}
		if v, err := probeVersion(c.Primary, 2*time.Second); err == nil {
			s.version.Store(&v)
			return
		}
	}
}

func probeVersion(addr string, timeout time.Duration) (string, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(timeout))
	p, _, err := mysqlproto.ReadPacket(nc, nil, 64<<10)
	if err != nil {
		return "", err
	}
	var hs mysqlproto.Handshake
	if err := hs.Decode(p); err != nil {
		return "", err
	}
	return hs.ServerVersion, nil
}

// Shutdown stops accepting, closes idle clients at once, lets clients in a
// transaction finish it (each is closed when its server connection goes
// back), and closes the pools. If ctx ends first, every remaining client is
// closed and ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	s.sessions.Range(func(_, v any) bool {
		v.(*session).closeIfIdle()
		return true
	})
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.sessions.Range(func(_, v any) bool {
			v.(*session).nc.Close()
			return true
		})
		<-done
	}
	s.pools.Close()
	s.rts.Close()
	return err
}

// packetLimit is what the proxy knows of one server's max_allowed_packet:
// a client's command may be as large as the server takes, within the
// proxy's own cap (MaxPacket).
type packetLimit struct {
	n        atomic.Int64 // the limit for clients: min(server, MaxPacket)
	server   atomic.Int64 // the server's max_allowed_packet; 0: not known
	learning atomic.Bool  // a learn ran or runs
}

// packetLimit returns addr's limit, DefaultMaxPacket until learned.
func (s *Server) packetLimit(addr string) *packetLimit {
	if v, ok := s.limits.Load(addr); ok {
		return v.(*packetLimit)
	}
	lim := &packetLimit{}
	lim.n.Store(DefaultMaxPacket)
	v, _ := s.limits.LoadOrStore(addr, lim)
	return v.(*packetLimit)
}

// learn reads the server's max_allowed_packet over a connection of its own
// (a pooled one must not wait on it), once, when the first pool for that
// server is made. A change of the server's global value later is seen by
// a new proxy process. If the server cannot be asked, the default stays.
func (l *packetLimit) learn(dp dialParams) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	be, err := dialBackend(ctx, dp)
	if err != nil {
		l.learning.Store(false) // the next pool made tries again
		return
	}
	defer be.Close()
	v, ok, err := be.queryValue(ctx, "SELECT @@max_allowed_packet")
	if err != nil || !ok {
		return
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return
	}
	l.server.Store(n)
	l.n.Store(min(n, MaxPacket))
	_, _ = be.writePacket(0, []byte{mysqlproto.ComQuit})
}

// newID gives a new client its connection id: in a fleet, the instance id
// above 21 bits of a counter (package fleet), skipping ids still in use
// after the counter wraps.
func (srv *Server) newID() uint32 {
	inst := srv.cfg.Load().Proxy.InstanceID
	for {
		n := srv.nextID.Add(1)
		id := n
		if inst != 0 {
			id = fleet.ID(inst, n)
		}
		if id == 0 {
			continue
		}
		if _, taken := srv.sessions.Load(id); !taken {
			return id
		}
	}
}

// peerKill sends a KILL to a peer's admin listener.
func (srv *Server) peerKill(cfg *config.Config, peer config.Peer, k fleet.KillRequest) (fleet.KillReply, error) {
	c, err := fleet.NewClient(cfg, 5*time.Second)
	if err != nil {
		return fleet.KillReply{}, err
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Kill(ctx, peer, k)
}
