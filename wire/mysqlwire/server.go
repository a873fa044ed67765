package mysqlwire

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/authcache"
	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/limits"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = frontend.ErrClosed

// defaultVersion is announced to clients until the proxy has seen a
// server's own version string.
const defaultVersion = "8.0.36-switchyard"

// Server accepts MySQL clients and serves them from pools of server
// connections. Its methods are safe for concurrent use.
type Server struct {
	// Runtime is the config in force and what routes with it (shared
	// with pgwire): Reload, CheckReload, MapVersions, Config.
	frontend.Runtime[struct{}]

	log *slog.Logger

	// version is the server version string clients see (the last one a
	// server announced), so drivers pick the right dialect.
	version atomic.Pointer[string]

	// limits are the servers' max_allowed_packet, by address.
	limits sync.Map // string -> *packetLimit
	// setNames are the SET NAMES statements of collation ids, per server.
	setNames sync.Map // setNamesKey -> string

	// passCache keeps auth_query's answers (passthrough.go).
	passCache authcache.Cache

	// Limits counts clients against the configured caps and remembers
	// failed logins; NewServer gives the server its own, and a process
	// with both front ends may give them one to share before Serve.
	Limits *limits.Set

	fe     frontend.Server[*session] // listeners, sessions by connection id, drain
	nextID atomic.Uint32
}

// NewServer returns a server for cfg. Nothing listens until Serve.
func NewServer(cfg *config.Config, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		log:    log.With("proto", "mysql"),
		Limits: limits.New(),
	}
	s.fe.Log = s.log
	v := defaultVersion
	s.version.Store(&v)
	s.Init(frontend.RuntimeOptions{Protocol: config.MySQL, Log: s.log, NewProbe: newProbe, SplitOnly: true, LenientTLS: true,
		RefusedPrefix: "mysql: reload refused, the running config stays: ", Closing: s.fe.Closing})
	s.Load(cfg)
	return s
}

// poolFor returns the pool for k, creating it on first use.
func (s *Server) poolFor(k frontend.PoolKey) (*pool.Pool, error) {
	if s.fe.Closing() {
		return nil, mysqlproto.NewSQLError(mysqlproto.ERServerShutdown, "08S01", "switchyard is shutting down")
	}
	p, _, err := s.Pools.Get(k, func() (*pool.Pool, struct{}, error) {
		p, err := s.openPool(k)
		return p, struct{}{}, err
	})
	return p, err
}

// openPool makes the pool of k, with the limits of its cluster in force.
func (s *Server) openPool(k frontend.PoolKey) (*pool.Pool, error) {
	lim := frontend.PoolLimits(config.Settings{}) // a cluster gone meanwhile: 1
	if cl := s.Config().ClusterByName(k.Cluster); cl != nil {
		lim = frontend.PoolLimits(cl.Settings)
	}
	stls, err := frontend.NewServerTLS(k.Settings, k.Addr)
	if err != nil {
		return nil, mysqlproto.NewSQLError(mysqlproto.ERUnknown, "HY000", "switchyard: %v", err)
	}
	dp := dialParams{addr: k.Addr, user: k.User, password: k.Password, db: k.DB, collation: defaultCollation, tls: stls}
	// A dial for a client's lease is made as that client needs it; one of
	// the pool's own (min_pool_size) as the last client's, with the
	// proxy's attributes.
	var last atomic.Pointer[connSpec]
	o := frontend.PoolOptions(config.MySQL, k, lim, fmt.Sprintf("mysql/%s@%s user=%s db=%s", k.Cluster, k.Addr, k.User, k.DB),
		func(ctx context.Context) (pool.Conn, error) {
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
			b, err := dialBackend(ctx, dp)
			if err != nil {
				return nil, err
			}
			return b, nil
		})
	o.Prefer = func(ctx context.Context, c pool.Conn) bool {
		sp, ok := ctx.Value(specKey{}).(*connSpec)
		return !ok || sp.fits(c.(*backend))
	}
	o.Ping = func(ctx context.Context, c pool.Conn) error { return c.(*backend).ping(ctx) }
	o.Alive = func(c pool.Conn) bool { return c.(*backend).alive() }
	p := pool.New(o)
	if lim := s.packetLimit(k.Addr); lim.learning.CompareAndSwap(false, true) {
		go lim.learn(dp)
	}
	return p, nil
}

// PoolStats returns a snapshot of every pool, by name.
func (s *Server) PoolStats() map[string]pool.Stats { return s.Pools.Stats() }

// Serve accepts clients on ln until Shutdown; it then returns
// ErrServerClosed. Each client is served on its own goroutine.
func (s *Server) Serve(ln net.Listener) error {
	go s.learnVersion()
	return s.fe.Serve(ln, s.serveConn)
}

// learnVersion reads the handshake of one primary (no login needed) so
// that clients see the server's version string rather than a made-up one.
func (s *Server) learnVersion() {
	cfg := s.Config()
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
// closed and ctx's error returned; the pools then close at once, failing
// the waits of clients queued for a server connection (pgwire's Shutdown
// says why).
func (s *Server) Shutdown(ctx context.Context) error {
	stop := context.AfterFunc(ctx, s.Runtime.Pools.Close)
	err := s.fe.Shutdown(ctx)
	stop()
	s.Runtime.Close()
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
	return srv.fe.NewID(srv.Config().Proxy.InstanceID, func() uint32 { return srv.nextID.Add(1) })
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
