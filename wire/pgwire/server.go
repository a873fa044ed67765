package pgwire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/limits"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/pgauth"
)

// Server accepts PostgreSQL clients and serves them from pools of server
// connections. One goroutine runs per client; see doc.go for the layers.
type Server struct {
	// Runtime is the config in force and what routes with it (shared
	// with mysqlwire): Reload, CheckReload, MapVersions, Config.
	frontend.Runtime[*poolEntry]

	log   *slog.Logger
	creds pgauth.CredCache
	pass  passthrough // users logged in with auth_query (passthrough.go)
	stmts stmtRegistry
	an    *router.Analyzer // for clients before they name a database

	// StartupTimeout, when set, bounds the time from TCP accept to the end
	// of login instead of proxy.client_login_timeout.
	StartupTimeout time.Duration
	// Limits counts clients against the configured caps and remembers
	// failed logins; NewServer gives the server its own, and a process
	// with both front ends may give them one to share before Serve.
	Limits *limits.Set
	// OnReload, when set, is what the admin console's RELOAD does.
	OnReload func() error

	fe frontend.Server[*clientConn] // listeners, clients by proxy-issued process id, drain
}

// poolEntry is a pool and what the proxy learned from its server: the
// ParameterStatus values a fresh connection reports, sent to clients at
// login as a real server would.
type poolEntry struct {
	p      *pool.Pool
	mu     sync.Mutex
	params map[string]string
	// accepted holds startup parameters (name=value) the server took at
	// a login before (checkStartupParams): a login with only those costs
	// no lease. The value is what the server reports for the parameter
	// then ("" for one it does not report). Bounded by maxAcceptedParams.
	accepted map[string]string
}

// maxAcceptedParams bounds poolEntry.accepted: a client cannot grow it
// without limit by logging in with ever new values.
const maxAcceptedParams = 256

// NewServer prepares a server for cfg; Serve starts accepting.
func NewServer(cfg *config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{
		log:    log,
		Limits: limits.New(),
		an:     router.AnalyzerFor(router.Postgres, "", "", ""),
	}
	s.fe.Log = log
	s.Init(frontend.RuntimeOptions{Protocol: config.Postgres, Log: log, NewProbe: newProbe})
	if err := s.Reload(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// poolFor returns the pool of (cluster, user, node), creating it on first use.
func (s *Server) poolFor(cl *config.Cluster, u *config.User, addr, db string) *poolEntry {
	user, password := u.ServerCreds()
	key := frontend.NewPoolKey(cl, addr, db, user, password)
	pu := s.pass.of(u)
	key.Pass = pu != nil
	// The open never fails; after Shutdown its pool is closed (ErrClosed).
	_, e, _ := s.Pools.Get(key, func() (*pool.Pool, *poolEntry, error) {
		p := s.openPool(key, frontend.PoolLimits(cl.Settings), pu)
		return p, &poolEntry{p: p}, nil
	})
	return e
}

// openPool makes the pool of k; pu is the passthrough login of its user,
// nil for a configured user.
func (s *Server) openPool(k frontend.PoolKey, l pool.Limits, pu *passUser) *pool.Pool {
	st, addr, db, user, password := k.Settings, k.Addr, k.DB, k.User, k.Password
	o := frontend.PoolOptions(config.Postgres, k, l, fmt.Sprintf("%s/%s@%s user=%s", k.Cluster, db, addr, user),
		func(ctx context.Context) (pool.Conn, error) {
			var sc *serverConn
			var err error
			if pu != nil {
				sc, err = dialServerPass(ctx, addr, st, user, pu.current(), db)
			} else {
				sc, err = dialServer(ctx, addr, st, user, password, db)
			}
			if err != nil {
				return nil, err
			}
			return sc, nil
		})
	o.Ping = func(ctx context.Context, c pool.Conn) error { return c.(*serverConn).ping(ctx) }
	o.Alive = func(c pool.Conn) bool { return c.(*serverConn).alive() }
	if d := testAliveDelay.Load(); d != 0 {
		o.AliveDelay = time.Duration(d)
	}
	return pool.New(o)
}

// testAliveDelay, when a test sets it, is the AliveDelay of the pools made
// from then on.
var testAliveDelay atomic.Int64

// Serve accepts clients on ln until the listener is closed or Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.fe.Serve(ln, s.handle)
	if errors.Is(err, frontend.ErrClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, closes idle clients at once and every other
// client at the end of its transaction, then waits for them until ctx ends
// and closes what is left. When ctx ends, the pools close at once too:
// a client waiting for a server connection (a login, or a query, on a
// paused or exhausted pool) is not a client the drain can close by its
// socket, and would keep the drain past its deadline for up to
// query_wait_timeout; the pool's close fails its wait now.
func (s *Server) Shutdown(ctx context.Context) error {
	stop := context.AfterFunc(ctx, s.Runtime.Pools.Close)
	err := s.fe.Shutdown(ctx)
	stop()
	s.closePools()
	return err
}

// Close closes every listener and client connection now.
func (s *Server) Close() {
	s.fe.Close()
	s.closePools()
}

func (s *Server) closePools() { s.Runtime.Close() }

// register gives c a proxy-issued process id unique among live clients: a
// positive int32, as PostgreSQL's process ids are, since clients keep it
// in an int4 (pg_cancel_backend($1), pg_stat_activity.pid).
// In a fleet the id carries the instance id (package fleet), and 21 bits
// random below it.
func (s *Server) register(c *clientConn) {
	c.pid = s.fe.RegisterNew(c, s.Config().Proxy.InstanceID, func() uint32 { return randUint32() & 0x7fffffff })
}

func (s *Server) unregister(c *clientConn) {
	if c.pid != 0 {
		s.fe.Unregister(c.pid, c)
	}
}

func (s *Server) lookupClient(pid uint32) *clientConn {
	c, _ := s.fe.Client(pid)
	return c
}
