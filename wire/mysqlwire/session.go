package mysqlwire

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/limits"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// session is one client connection. It runs on its own goroutine; the
// only fields other goroutines touch (KILL, Shutdown) are those under mu.
type session struct {
	srv   *Server
	id    uint32
	start time.Time
	log   *slog.Logger

	slot         *limits.Slot  // this client in the client counts
	loginTimeout time.Duration // from accept to the end of the handshake

	cfg     *config.Config // the snapshot this client connected under
	user    *config.User
	cluster *config.Cluster
	mode    config.PoolMode
	caps    uint32 // negotiated with the client
	key     frontend.PoolKey
	pool    *pool.Pool
	homeDB  string          // server database at connect
	limit   *packetLimit    // the server's max_allowed_packet, as learned
	spec    connSpec        // what the client's handshake asked of a server connection
	specCtx context.Context // carries &spec to the pool's dials

	bw *bufio.Writer // non-nil while a response is being written

	// A command is read with one read(2) when it fits in: what the read
	// brought beyond the command (a pipelining client's next one) waits
	// in rest, and every read of the client goes through clientIn.
	in   [cmdReadBuf]byte
	rest []byte

	// Session state replayed on whichever server connection serves us.
	db      string
	sets    []string
	setsSig string
	pinned  string // why the session keeps its server connection; "" if not
	hold    int    // >0: keep the lease through that many more commands
	// txNext: a SET TRANSACTION ran on the lease and no transaction was
	// seen open since; the server may keep it for the connection's next
	// transaction, which must not be another client's (release resets).
	txNext bool

	inTx   bool // the last status from the server had IN_TRANS
	fresh  bool // the lease has served no command yet
	lastID uint64

	// Diagnostics and LAST_INSERT_ID of the client's statements (diag.go).
	diag        diagRecord
	diagHold    bool   // keep the lease through the next command: its warnings or error are there
	diagHere    bool   // the lease's connection holds this session's warnings
	idHere      bool   // the lease's connection's LAST_INSERT_ID is this session's
	idDirty     bool   // a statement on the lease may have changed LAST_INSERT_ID
	curSetsID   bool   // the current statement runs LAST_INSERT_ID(expr)
	curDiagWarn bool   // the current statement reads the warnings
	prelude     []byte // a COM_QUERY sent in front of the current command; nil: none
	preludeDiag bool   // the prelude clears the warnings
	diagPrimary bool   // the current command needs the primary (it has a prelude)

	stmts    map[uint32]*clientStmt
	nextStmt uint32
	lastStmt uint32           // the id of the last statement prepared (0: none, or its prepare failed); lastStmtID names it
	stmtCap  frontend.StmtCap // stmts against the caps (stmtRoom)

	scratch []byte

	// Routing (route.go); none of it matters for clusters without
	// replicas.
	cur          *router.Analysis          // verdict on the command being served; nil: none
	curWrites    bool                      // running it counts as a write
	leasePool    *pool.Pool                // where the lease came from
	replicaPools map[replicaKey]*pool.Pool // by replica address and database; no global lock per read
	cfgSeen      *config.Config            // the config replicaPools belong to
	primaryPool  *pool.Pool                // the primary's pool of the current route (a read falls back to it)
	leaseNode    *replica.Node             // the replica leased, nil for the primary
	leaseRT      *replica.Runtime          // the runtime that picked leaseNode
	leaseWrites  bool                      // a write ran on the (primary) lease
	noAutocommit bool                      // the server said autocommit is off
	leaseRYW     *replica.Writes           // the client's writes on the primary of the lease
	reads        replica.Reads             // read-your-writes: the check of the lease's first command, a failed one (causal.go)
	preparing    bool                      // routing a COM_STMT_PREPARE: no read for the metrics (causal.go)

	// routing is the session's routing state: target, read_after, shard
	// key, and its writes for read-your-writes (router.SessionRouting).
	routing router.SessionRouting

	sh *shardSess // sharded clusters only (shard.go)

	state  frontend.ClientState // for the metrics
	mTxn   prometheus.Counter
	mQuery prometheus.Counter

	mu      sync.Mutex
	nc      net.Conn
	lease   *pool.Server
	be      *backend
	busy    bool // a command is outstanding on be
	reading bool // idle: waiting for the client's next command, no transaction open
	kills   sync.WaitGroup
	watch   *time.Timer // looks at the client while a command is out (watch.go)
	// busyGen counts commands sent out (setBusy); watchGen is the one the
	// armed watch looks at; watchArmed: the watch timer is pending.
	busyGen, watchGen uint64
	watchArmed        bool
	left              atomic.Bool // the watch found the client gone mid-command
}

// errQuit ends a session without an error to log.
var errQuit = errors.New("client quit")

// fatalError wraps errors after which the client connection cannot go on
// (the stream is out of sync or the client is gone).
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

func (srv *Server) serveConn(nc net.Conn) {
	if tc, ok := nc.(interface{ SetNoDelay(bool) error }); ok {
		_ = tc.SetNoDelay(true)
	}
	s := &session{srv: srv, nc: nc, id: srv.newID(), start: time.Now()}
	s.log = srv.log.With("conn", s.id, "client", nc.RemoteAddr().String())
	cfg := srv.Config()
	// Counted from accept, so that clients still logging in count too.
	slot, refused := srv.Limits.Clients.Connect(cfg.Proxy.MaxClientConns)
	defer slot.Release()
	s.slot = slot
	defer srv.fe.Unregister(s.id, s)
	clientStates.Enter(&s.state)
	defer clientStates.Leave(&s.state)
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in MySQL session", "panic", r, "stack", string(debug.Stack()))
			if s.lease != nil {
				s.be.broken = true
			}
		}
		s.finish()
	}()
	// As the servers do, a refusal before the handshake is an ERR packet
	// in place of the greeting.
	if refused != nil {
		loginRejected.Inc()
		metrics.LimitRefusals.WithLabelValues("mysql", limits.Total.String()).Inc()
		s.sendFatal(0, mysqlproto.NewSQLError(mysqlproto.ERConCount, "08004", "Too many connections: %v", refused))
		return
	}
	host := limits.Host(nc.RemoteAddr())
	if left, blocked := srv.Limits.Auth.Blocked(host, cfg.Proxy.AuthFailuresPerMinute); blocked {
		loginRejected.Inc()
		metrics.AuthRefusals.WithLabelValues("mysql").Inc()
		s.sendFatal(0, mysqlproto.NewSQLError(mysqlproto.ERHostBlocked, "HY000", "Host '%s' is blocked because of too many failed logins (auth_failures_per_minute = %d); try again in %s",
			host, cfg.Proxy.AuthFailuresPerMinute, left.Round(time.Second)))
		return
	}
	s.loginTimeout = cfg.Proxy.ClientLoginTimeout
	if s.loginTimeout <= 0 {
		s.loginTimeout = config.DefaultClientLoginTimeout
	}
	if err := s.handshake(host); err != nil {
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			metrics.LoginTimeouts.WithLabelValues("mysql").Inc()
			s.log.Info("client login timed out; closing", "client_login_timeout", s.loginTimeout, "age", time.Since(s.start).Round(time.Millisecond))
		case s.user != nil:
			loginRejected.Inc() // authenticated, but no usable database or over a cap
		}
		if !quiet(err) && !errors.Is(err, os.ErrDeadlineExceeded) {
			s.log.Info("MySQL login failed", "err", err)
		}
		return
	}
	loginOK.Inc()
	// Visible to KILL and Shutdown from here on: the fields the
	// handshake set are published by the Store.
	// (A Shutdown that began meanwhile is seen by idle() before the first
	// read.)
	srv.fe.Register(s.id, s)
	s.mTxn = metrics.Transactions.WithLabelValues("mysql", s.cluster.Name)
	s.mQuery = metrics.Queries.WithLabelValues("mysql", s.cluster.Name)
	s.log = s.log.With("user", s.user.Name, "db", s.cluster.Database)
	err := s.loop()
	if err != nil && !errors.Is(err, errQuit) && !quiet(err) {
		s.log.Info("MySQL client closed", "err", err, "age", time.Since(s.start).Round(time.Millisecond))
	}
}

// quiet reports errors not worth a log line: the client went away.
func quiet(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection reset by peer") ||
		strings.Contains(err.Error(), "broken pipe")
}

// writer returns the client write buffer, taking one from the pool.
func (s *session) writer() *bufio.Writer {
	if s.bw == nil {
		s.bw = getWriter(s.nc)
	}
	return s.bw
}

// flush sends what is buffered and gives the buffer back.
func (s *session) flush() error {
	if s.bw == nil {
		return nil
	}
	err := s.bw.Flush()
	putWriter(s.bw)
	s.bw = nil
	return err
}

func (s *session) writePacket(seq uint8, p []byte) (uint8, error) {
	return mysqlproto.WritePacket(s.writer(), seq, p)
}

// sendErr writes an ERR packet for err with sequence id seq. The session
// goes on.
func (s *session) sendErr(seq uint8, err error) error {
	num, state, msg := mysqlproto.ErrorFields(err)
	var se *mysqlproto.SQLError
	if errors.As(err, &se) {
		metricProxyErrors.WithLabelValues(strconv.Itoa(int(num))).Inc()
	}
	_, werr := s.writePacket(seq, mysqlproto.AppendERR(s.scratch[:0], num, state, msg))
	return werr
}

// sendFatal writes an ERR packet and flushes; the caller then closes.
func (s *session) sendFatal(seq uint8, err error) {
	// The session ends here: its place in the client counts is free
	// before the client reads why, so a client that reconnects at once is
	// not refused for a place this one still held.
	s.slot.Release()
	_ = s.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = s.sendErr(seq, err)
	_ = s.flush()
}

func (s *session) status() uint16 {
	st := mysqlproto.StatusAutocommit
	if s.be != nil {
		st = s.be.status &^ (mysqlproto.StatusMoreResults | mysqlproto.StatusSessionStateChange)
	}
	if s.inTx || s.sh != nil && s.sh.begin != nil {
		st |= mysqlproto.StatusInTrans
	}
	return st
}

func (s *session) sendOK(seq uint8) error {
	_, err := s.writePacket(seq, mysqlproto.AppendOK(s.scratch[:0], s.caps, mysqlproto.HeaderOK, 0, 0, s.status(), 0))
	return err
}

// maxPreAuthPacket caps a packet read before the client is authenticated
// (the handshake response, the auth switch response): MySQL's own bound on
// the connection attributes a handshake response carries is 64 KB, and
// the rest of it is a few hundred bytes. A longer packet is refused from
// its header, before its body is read or any memory is taken for it.
const maxPreAuthPacket = 64 << 10

// readPreAuth reads a packet of the login into buf; one over
// maxPreAuthPacket gets ERR 1153 and ends the login.
func (s *session) readPreAuth(buf []byte) ([]byte, uint8, error) {
	p, seq, err := mysqlproto.ReadPacket(s.nc, buf, maxPreAuthPacket)
	if errors.Is(err, mysqlproto.ErrPacketTooLarge) {
		metrics.LimitRefusals.WithLabelValues("mysql", "auth_message").Inc()
		s.sendFatal(seq+1, mysqlproto.NewSQLError(mysqlproto.ERNetPacketTooLarge, "08S01", "Got a packet bigger than %d bytes before authentication", maxPreAuthPacket))
	}
	return p, seq, err
}

// handshake authenticates the client and picks its cluster.
func (s *session) handshake(host string) error {
	_ = s.nc.SetDeadline(s.start.Add(s.loginTimeout))
	defer func() { _ = s.nc.SetDeadline(time.Time{}) }()
	tlsConf := s.srv.ClientTLS()
	scramble := mysqlproto.NewScramble()
	hs := mysqlproto.Handshake{
		ServerVersion: *s.srv.version.Load(),
		ConnectionID:  s.id,
		Scramble:      scramble,
		Capabilities:  proxyCaps,
		Collation:     defaultCollation,
		Status:        mysqlproto.StatusAutocommit,
		AuthPlugin:    mysqlproto.PluginNative,
	}
	if tlsConf != nil {
		hs.Capabilities |= mysqlproto.CapSSL
	}
	if _, err := s.writePacket(0, hs.Encode(nil)); err != nil {
		return err
	}
	if err := s.flush(); err != nil {
		return err
	}
	buf := getBuf()
	defer putBuf(buf)
	p, seq, err := s.readPreAuth(*buf)
	*buf = p
	if err != nil {
		return err
	}
	var resp mysqlproto.HandshakeResponse
	if err := resp.Decode(p); err != nil {
		s.sendFatal(seq+1, wrapOrSQL(err))
		return err
	}
	if resp.SSLRequest {
		if tlsConf == nil {
			return errors.New("client asked for TLS, which is not configured")
		}
		tc := tls.Server(s.nc, tlsConf)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		s.mu.Lock()
		s.nc = tc
		s.mu.Unlock()
		p, seq, err = s.readPreAuth(*buf)
		*buf = p
		if err != nil {
			return err
		}
		if err := resp.Decode(p); err != nil || resp.SSLRequest {
			if err == nil {
				err = mysqlproto.ErrMalformed
			}
			s.sendFatal(seq+1, wrapOrSQL(err))
			return err
		}
	} else if tlsConf != nil && resp.Capabilities&mysqlproto.CapSSL != 0 {
		return errors.New("client set CLIENT_SSL without an SSL request")
	}
	s.caps = resp.Capabilities & hs.Capabilities
	seq++
	cfg := s.srv.Config()
	s.cfg = cfg
	user := cfg.User(resp.User)
	usingPW := "YES"
	if len(resp.AuthResponse) == 0 {
		usingPW = "NO"
	}
	denied := func(why string) error {
		loginFailed.Inc()
		metrics.AuthFailures.WithLabelValues("mysql").Inc()
		s.srv.Limits.Auth.Failed(host)
		err := mysqlproto.NewSQLError(mysqlproto.ERAccessDenied, "28000", "Access denied for user '%s' (using password: %s)", resp.User, usingPW)
		s.sendFatal(seq, err)
		return fmt.Errorf("user %q: %s", resp.User, why)
	}
	// Passthrough (passthrough.go): a user not in the config is checked
	// against the hash auth_query finds on the cluster's primary.
	var h2 []byte
	if pcl := passCluster(cfg, resp.Database); user == nil && pcl != nil {
		hash, err := s.srv.lookupHash(cfg, pcl, resp.User)
		if err != nil {
			s.log.Warn("auth_query failed", "cluster", pcl.Name, "auth_user", pcl.Settings.AuthUser, "err", err)
			err := mysqlproto.NewSQLError(mysqlproto.ERAccessDenied, "28000", "Access denied for user '%s': switchyard could not look the user up (auth_query failed; see the proxy's log)", resp.User)
			s.sendFatal(seq, err)
			return err
		}
		if h2, _ = mysqlproto.NativeHash(hash); h2 != nil {
			user = &config.User{Name: resp.User, ServerUser: resp.User}
		}
	}
	if user == nil {
		return denied("no such user in the config")
	}
	if h2 == nil && user.Auth != "trust" && user.PasswordKind() != config.PasswordPlain {
		loginFailed.Inc()
		err := mysqlproto.NewSQLError(mysqlproto.ERAccessDenied, "28000",
			"Access denied for user '%s': switchyard has only a hashed (PostgreSQL verifier) password for this user, and MySQL authentication needs the plain-text password in the config", resp.User)
		s.sendFatal(seq, err)
		return err
	}
	plugin := resp.AuthPlugin
	if plugin == "" {
		plugin = mysqlproto.PluginNative
	}
	authData := resp.AuthResponse
	if resp.Capabilities&mysqlproto.CapPluginAuth != 0 && plugin != mysqlproto.PluginNative && (plugin != mysqlproto.PluginCachingSHA2 || h2 != nil) {
		// Ask the client to use ours instead.
		plugin = mysqlproto.PluginNative
		sw := append([]byte{mysqlproto.HeaderEOF}, mysqlproto.PluginNative...)
		sw = append(sw, 0)
		sw = append(sw, scramble...)
		sw = append(sw, 0)
		if _, err := s.writePacket(seq, sw); err != nil {
			return err
		}
		if err := s.flush(); err != nil {
			return err
		}
		p, seq, err = s.readPreAuth(*buf)
		*buf = p
		if err != nil {
			return err
		}
		seq++
		authData = p
	}
	if h2 != nil {
		h1, ok := mysqlproto.RecoverSHA1(scramble, authData, h2)
		if !ok {
			return denied("wrong password")
		}
		user.ServerPassword = passPrefix + string(h1)
	} else if user.Auth != "trust" && !verify(plugin, scramble, authData, user.Password) {
		return denied("wrong password")
	}
	if plugin == mysqlproto.PluginCachingSHA2 {
		// The fast path always succeeds here: the proxy holds the plain
		// text, so there is no cache to miss and no full authentication.
		if seq, err = s.writePacket(seq, []byte{mysqlproto.HeaderAuthMore, 3}); err != nil {
			return err
		}
	}
	s.user = user
	if err := s.pickCluster(cfg, resp.Database, &resp); err != nil {
		s.sendFatal(seq, err)
		return err
	}
	if err := s.slot.Login(user.Name, user.MaxClientConns, "mysql", s.cluster.Database, s.cluster.Settings.MaxDBClientConns); err != nil {
		var r *limits.Refusal
		if errors.As(err, &r) {
			metrics.LimitRefusals.WithLabelValues("mysql", r.Kind.String()).Inc()
		}
		err = mysqlproto.NewSQLError(mysqlproto.ERConCount, "08004", "Too many connections: %v", err)
		s.sendFatal(seq, err)
		return err
	}
	if _, err := s.writePacket(seq, mysqlproto.AppendOK(s.scratch[:0], s.caps, mysqlproto.HeaderOK, 0, 0, mysqlproto.StatusAutocommit, 0)); err != nil {
		return err
	}
	if err := s.flush(); err != nil {
		return err
	}
	if s.caps&mysqlproto.CapCompress != 0 {
		// From the OK on, both ways.
		s.mu.Lock()
		s.nc = mysqlproto.NewCompressedConn(s.nc)
		s.mu.Unlock()
		metricCompressed.Inc()
	}
	return nil
}

func wrapOrSQL(err error) error {
	var se *mysqlproto.SQLError
	if errors.As(err, &se) {
		return err
	}
	return mysqlproto.WrapSQLError(err, mysqlproto.ERHandshake, "08S01", "Bad handshake")
}

// pickCluster resolves the client's database to a cluster and its pool.
// A client without a database gets the only MySQL cluster, if there is
// exactly one.
func (s *session) pickCluster(cfg *config.Config, db string, resp *mysqlproto.HandshakeResponse) error {
	var c *config.Cluster
	if db == "" {
		for i := range cfg.Clusters {
			if cfg.Clusters[i].Protocol == config.MySQL {
				if c != nil {
					return mysqlproto.NewSQLError(1046, "3D000", "No database selected: switchyard picks the cluster by the database name given at connect")
				}
				c = &cfg.Clusters[i]
			}
		}
		if c == nil {
			return mysqlproto.NewSQLError(mysqlproto.ERBadDB, "42000", "No MySQL cluster is configured")
		}
	} else if c = cfg.Cluster(config.MySQL, db); c == nil {
		return mysqlproto.NewSQLError(mysqlproto.ERBadDB, "42000", "Unknown database '%s'", db)
	}
	if len(s.user.Databases) > 0 {
		allowed := false
		for _, d := range s.user.Databases {
			allowed = allowed || d == c.Database
		}
		if !allowed {
			return mysqlproto.NewSQLError(mysqlproto.ERDBAccessDenied, "42000", "Access denied for user '%s' to database '%s'", s.user.Name, c.Database)
		}
	}
	s.cluster = c
	s.mode = c.Settings.PoolMode
	if s.user.PoolMode != "" {
		s.mode = s.user.PoolMode
	}
	sdb := c.ServerDatabase
	if sdb == "" {
		sdb = c.Database
	}
	s.homeDB, s.db = sdb, sdb
	user, pw := s.user.ServerCreds()
	coll := resp.Collation
	if coll == 0 {
		coll = defaultCollation
	}
	s.key = frontend.NewPoolKey(c, c.Primary, sdb, user, pw)
	_, s.key.Pass = passHash(pw)
	s.spec = newConnSpec(s.caps, coll, resp.Attributes, s.mode)
	s.specCtx = context.WithValue(context.Background(), specKey{}, &s.spec)
	if c.Sharding != nil {
		if err := s.shardLogin(c); err != nil {
			return err
		}
	}
	p, err := s.srv.poolFor(s.key)
	if err != nil {
		return err
	}
	s.pool = p
	s.limit = s.srv.packetLimit(s.key.Addr)
	return nil
}

// loop reads and serves commands until the client leaves.
// cmdReadBuf is what the read that waits for a command takes at once: a
// typical COM_STMT_EXECUTE or short COM_QUERY fits, header and all, so it
// costs one read(2), not two (header, then body). Per session, idle too:
// kept small.
const cmdReadBuf = 128

// clientIn reads the client: the bytes the command read brought beyond
// its command first, then the connection.
type clientIn struct{ s *session }

func (c clientIn) Read(b []byte) (int, error) {
	s := c.s
	if len(s.rest) > 0 {
		n := copy(b, s.rest)
		s.rest = s.rest[n:]
		return n, nil
	}
	return s.nc.Read(b)
}

// readHeader waits for the next command's header. It returns the header
// and, when the whole command came with it, its payload (borrowed from
// s.in until the next readHeader).
func (s *session) readHeader() (hdr [4]byte, whole []byte, err error) {
	if len(s.rest) == 0 {
		n, err := s.nc.Read(s.in[:])
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return hdr, nil, err
		}
		s.rest = s.in[:n]
	}
	for len(s.rest) < 4 {
		// A header in pieces: gather it at the front of s.in.
		m := copy(s.in[:], s.rest)
		n, err := s.nc.Read(s.in[m:])
		s.rest = s.in[:m+n]
		if err != nil && len(s.rest) < 4 {
			if err == io.EOF && len(s.rest) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return hdr, nil, err
		}
	}
	copy(hdr[:], s.rest)
	s.rest = s.rest[4:]
	if n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16; n < mysqlproto.MaxChunk && n <= len(s.rest) {
		whole = s.rest[:n]
		s.rest = s.rest[n:]
	}
	return hdr, whole, nil
}

func (s *session) loop() error {
	for {
		if !s.idle() {
			return nil
		}
		if err := s.awaitDiagHold(); err != nil {
			return err
		}
		hdr, whole, err := s.readHeader()
		s.mu.Lock()
		s.reading = false
		s.mu.Unlock()
		if err != nil {
			return err
		}
		buf := getBuf()
		var p []byte
		var seq uint8
		if whole != nil && len(whole) <= s.maxPacket() {
			p, seq = append((*buf)[:0], whole...), hdr[3]
		} else {
			if whole != nil { // over the limit: mysqlproto.ReadPacketAfter refuses it, reading it off
				s.rest = append(whole, s.rest...)
			}
			p, seq, err = mysqlproto.ReadPacketAfter(clientIn{s}, hdr, *buf, s.maxPacket())
		}
		*buf = p
		if err != nil {
			putBuf(buf)
			var tl *mysqlproto.TooLargeError
			if errors.As(err, &tl) {
				s.refuseLarge(tl)
			}
			return err
		}
		if hdr[3] != 0 {
			// As MariaDB: ER_NET_PACKETS_OUT_OF_ORDER, and the connection
			// ends (the stream cannot be trusted).
			putBuf(buf)
			s.sendFatal(hdr[3]+1, mysqlproto.NewSQLError(1156, "08S01", "Got packets out of order"))
			return fmt.Errorf("%w: command with sequence id %d", mysqlproto.ErrSequence, hdr[3])
		}
		if len(p) == 0 {
			// An empty command: as MariaDB, ER_UNKNOWN_COM_ERROR, and the
			// session goes on.
			putBuf(buf)
			s.log.Info("empty command packet from the client")
			if err := s.sendErr(1, mysqlproto.NewSQLError(mysqlproto.ERUnknownCom, "08S01", "Unknown command")); err != nil {
				return err
			}
			if err := s.flush(); err != nil {
				return fatalError{err}
			}
			continue
		}
		commandCounters[p[0]].Inc()
		served := s.lease != nil
		s.cur, s.curWrites = nil, false // COM_QUERY, COM_STMT_PREPARE/EXECUTE set them
		s.prelude, s.diagPrimary, s.curSetsID, s.curDiagWarn = nil, false, false, false
		s.diag.warnings, s.diag.err, s.diag.seen = 0, false, false
		err = s.dispatch(p, seq)
		served = served || s.lease != nil
		if p[0] == mysqlproto.ComQuery || p[0] == mysqlproto.ComStmtExecute {
			s.mQuery.Inc()
		}
		putBuf(buf)
		if ferr := s.flush(); ferr != nil && err == nil {
			err = fatalError{ferr}
		}
		if err != nil {
			return err
		}
		s.noteDiag()     // diag.go
		s.notePosition() // causal.go
		s.afterCommand(served)
	}
}

// maxPacket is the largest command this client may send: the server's
// max_allowed_packet, within the proxy's own cap.
func (s *session) maxPacket() int {
	if s.limit == nil {
		return DefaultMaxPacket
	}
	return int(s.limit.n.Load())
}

// refuseLarge answers a command over the limit with ER_NET_PACKET_TOO_LARGE
// and the session ends, as a server's does. The rest of the command is
// read off first (bounded in size and time): a client still writing when
// the socket closes would see "connection reset" instead of the error.
func (s *session) refuseLarge(tl *mysqlproto.TooLargeError) {
	msg := "Got a packet bigger than 'max_allowed_packet' bytes"
	if s.limit != nil && s.limit.server.Load() > int64(tl.Limit) {
		msg = fmt.Sprintf("Got a packet bigger than 'max_allowed_packet' bytes: switchyard accepts commands of at most %d bytes (the server's max_allowed_packet is %d)", tl.Limit, s.limit.server.Load())
	}
	_ = s.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	seq, err := mysqlproto.DiscardRest(clientIn{s}, tl)
	if err != nil {
		s.log.Warn("client command over the packet limit, and its rest could not be read off; closing", "limit", tl.Limit, "size_at_least", tl.Size, "err", err)
		return
	}
	s.log.Info("client command over the packet limit refused; closing", "limit", tl.Limit, "size_at_least", tl.Size)
	s.sendFatal(seq+1, mysqlproto.NewSQLError(mysqlproto.ERNetPacketTooLarge, "08S01", "%s", msg))
}

// idle marks the session as waiting for a command; false means shut down.
// A session that holds its server connection between transactions (pinned,
// or session pooling) counts as idle: a drain does not wait for its client,
// which may never send another command; finish resets or closes the
// connection.
func (s *session) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	idle := s.lease == nil || !s.inTx && s.hold == 0
	if idle && s.srv.fe.Closing() {
		return false
	}
	s.reading = idle
	return true
}

// CloseIfIdle closes a client that waits for its next command outside a
// transaction (Shutdown); one inside a transaction finishes it first.
func (s *session) CloseIfIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reading {
		_ = s.nc.Close()
	}
}

// CloseConn closes the client's connection now (Shutdown's end).
func (s *session) CloseConn() { _ = s.nc.Close() }

// afterCommand returns the server connection when the transaction is over.
func (s *session) afterCommand(served bool) {
	if served && !s.inTx {
		s.mTxn.Inc()
	}
	if s.hold > 0 {
		s.hold--
	}
	if s.inTx {
		s.txNext = false // the transaction it was for began
	}
	if s.lease == nil || s.keeps() != router.HoldNone || s.diagHold {
		return
	}
	if s.idDirty {
		s.takeID() // diag.go
	}
	s.release(true)
}

// acquire leases a server connection and brings it to this session's
// state. Errors are *mysqlproto.SQLError or *mysqlproto.ServerError and leave the session usable.
// The pool is the one route picks for the current command: a replica's
// for a read, else the primary's. A replica that cannot be reached (or
// whose connection cannot be prepared) is banned and the command goes to
// the primary instead: losing a replica costs capacity, not errors.
func (s *session) acquire() error {
	if s.lease != nil {
		return nil
	}
	clientStates.Set(&s.state, frontend.StateWaiting)
	p, node, rt := s.route()
	if p == nil { // sharded: the map is gone, or the proxy is closing
		clientStates.Set(&s.state, frontend.StateIdle)
		if s.srv.fe.Closing() {
			return mysqlproto.NewSQLError(mysqlproto.ERServerShutdown, "08S01", "switchyard is shutting down")
		}
		return mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "database '%s' is no longer sharded; reconnect", s.cluster.Database)
	}
	toPrimary := func(why string, err error, ban bool) {
		if ban {
			s.log.Warn("replica unusable; serving from the primary", "replica", node.Name, "why", why, "err", err)
			rt.Set.Ban(node.Name, why+": "+err.Error())
		}
		rt.Set.Done(node)
		rt.Fallback("replica_failed")
		node, p = nil, s.primaryPool
	}
	rekeyed := false
	for attempt := 0; ; attempt++ {
		ls, err := p.Get(s.specCtx)
		if err != nil {
			if node != nil && !errors.Is(err, pool.ErrWaitTimeout) && !errors.Is(err, pool.ErrQueueFull) {
				// Nothing was sent yet: the read goes to the primary.
				if errors.Is(err, pool.ErrClosed) {
					s.replicaPools = nil // drained by a reload
				}
				toPrimary("connect", err, !errors.Is(err, pool.ErrClosed))
				continue
			}
			if node != nil {
				rt.Set.Done(node)
			}
			clientStates.Set(&s.state, frontend.StateIdle)
			if errors.Is(err, pool.ErrClosed) && !rekeyed && node == nil && !s.srv.fe.Closing() {
				// A reload replaced the pool: take the current one.
				rekeyed = true
				if s.rekey() {
					p = s.primaryPool
					continue
				}
			}
			return poolError(err)
		}
		be := ls.Conn.(*backend)
		err = nil
		if !s.inSync(be) { // else nothing to bring over: no deadline to set and clear (timer operations)
			err = be.withDeadline(10*time.Second, func() error { return s.sync(be) })
		}
		if err != nil {
			var se *mysqlproto.ServerError
			reuse := !be.broken && errors.As(err, &se)
			if !reuse {
				be.broken = true
			}
			be.dirty = true
			p.Put(ls, reuse)
			if !reuse && ls.Reused() && attempt < 2 {
				continue // it went stale while idle
			}
			if node != nil {
				toPrimary("preparing a connection", err, !reuse)
				continue
			}
			clientStates.Set(&s.state, frontend.StateIdle)
			if !reuse {
				return mysqlproto.WrapSQLError(err, mysqlproto.ERUnknown, "HY000", "switchyard: preparing a server connection failed")
			}
			return err
		}
		s.mu.Lock()
		s.lease, s.be = ls, be
		s.mu.Unlock()
		s.leasePool, s.leaseNode, s.leaseRT, s.leaseWrites = p, node, rt, false
		s.leaseDiagReset()
		clientStates.Set(&s.state, frontend.StateActive)
		s.fresh = true
		return nil
	}
}

// rekey moves the session to the pool the current config gives its
// cluster and user (after a reload changed them).
func (s *session) rekey() bool {
	if s.sh != nil {
		return s.shardRekey()
	}
	cfg := s.srv.Config()
	c := cfg.ClusterByName(s.key.Cluster)
	u := cfg.User(s.user.Name)
	if c == nil || (u == nil && !(s.key.Pass && c.Settings.AuthUser != "")) || c.Protocol != config.MySQL || c.Primary == "" {
		return false
	}
	k := s.key
	k.Addr, k.Settings = c.Primary, c.Settings.PoolIdentity()
	if u != nil {
		k.User, k.Password = u.ServerCreds()
		_, k.Pass = passHash(k.Password)
	} // else a passthrough user keeps the SHA1(password) it proved
	p, err := s.srv.poolFor(k)
	if err != nil || p == s.pool {
		return false
	}
	s.mu.Lock() // KILL reads key
	s.key, s.pool = k, p
	s.mu.Unlock()
	s.replicaPools = nil
	s.primaryPool = p
	return true
}

func poolError(err error) error {
	switch {
	case errors.Is(err, pool.ErrPaused):
		return mysqlproto.WrapSQLError(err, mysqlproto.ERConCount, "08004", "switchyard: the pool is paused; no server connection within query_wait_timeout")
	case errors.Is(err, pool.ErrWaitTimeout):
		return mysqlproto.WrapSQLError(err, mysqlproto.ERConCount, "08004", "switchyard: too many connections waiting for a server")
	case errors.Is(err, pool.ErrQueueFull):
		metrics.LimitRefusals.WithLabelValues("mysql", "wait_queue").Inc()
		return mysqlproto.WrapSQLError(err, mysqlproto.ERConCount, "08004", "switchyard: too many clients waiting for a server connection (max_wait_clients)")
	case errors.Is(err, pool.ErrClosed):
		return mysqlproto.WrapSQLError(err, mysqlproto.ERServerShutdown, "08S01", "switchyard: server connection pool closed")
	}
	var se *mysqlproto.ServerError
	if errors.As(err, &se) {
		return se
	}
	var sq *mysqlproto.SQLError
	if errors.As(err, &sq) {
		return sq // the proxy's own reason, e.g. a refused password downgrade
	}
	// What the MySQL client library says for the same failures when it
	// connects by itself: a server that accepts and stays silent, or one
	// that cannot be reached.
	if errors.Is(err, context.DeadlineExceeded) {
		return mysqlproto.WrapSQLError(err, mysqlproto.CRServerLost, "HY000", "Lost connection to MySQL server at 'reading initial communication packet' (switchyard)")
	}
	return mysqlproto.WrapSQLError(err, mysqlproto.CRConnHostError, "HY000", "Can't connect to MySQL server (switchyard)")
}

// sync makes be's session match ours: open it again if its handshake
// does not fit us (connspec.go), switch multi-statements and the
// collation, reset it if it carries state of another client, replay our
// SETs, switch the database.
func (s *session) sync(be *backend) error {
	if !s.spec.fits(be) {
		if err := s.reopen(be); err != nil {
			return err
		}
	}
	if multi := s.wantMulti(); be.multi != multi {
		opt := byte(mysqlproto.SetOptionMultiStatementsOff)
		if multi {
			opt = mysqlproto.SetOptionMultiStatementsOn
		}
		if err := be.roundTrip([]byte{mysqlproto.ComSetOption, opt, 0}); err != nil {
			return err
		}
		be.multi = multi
	}
	// SET NAMES goes under the client's own SETs (which may change the
	// character set again): with SETs on be, that takes a reset.
	collation := be.collation != s.spec.collation
	if !s.setsInPlace(be) || collation && be.setsSig != "" {
		if be.dirty || be.setsSig != "" {
			metricResets.Inc()
			if err := be.reset(); err != nil {
				return err
			}
		} else {
			// Our SETs go on top of the login's settings: statements
			// prepared under those would read our text otherwise
			// (sql_mode's ANSI_QUOTES, PIPES_AS_CONCAT; the character set).
			be.dropStmts()
		}
		if be.collation != s.spec.collation {
			if err := s.syncCollation(be); err != nil {
				return err
			}
		}
		for _, q := range s.sets {
			p := append(s.scratch[:0], mysqlproto.ComQuery)
			p = append(p, q...)
			s.scratch = p
			if err := be.roundTrip(p); err != nil {
				be.dirty = true
				return err
			}
		}
		be.setsSig = s.setsSig
	} else if collation {
		be.dropStmts()
		if err := s.syncCollation(be); err != nil {
			return err
		}
	}
	if db := s.db; !s.dbInPlace(be) {
		if db == "" { // a shard's connection, or a USE underway: the database it was opened in
			db = be.dp.db
		}
		p := append(s.scratch[:0], mysqlproto.ComInitDB)
		p = append(p, db...)
		s.scratch = p
		if err := be.roundTrip(p); err != nil {
			return err
		}
		be.db, be.dbLost = db, false
	}
	return nil
}

// inSync says whether sync would do nothing on be: each of sync's steps
// finds its part in place (the same predicates sync tests).
func (s *session) inSync(be *backend) bool {
	return s.spec.fits(be) && be.multi == s.wantMulti() && s.setsInPlace(be) &&
		be.collation == s.spec.collation && s.dbInPlace(be)
}

// wantMulti is the multi-statements switch the client's handshake asked for.
func (s *session) wantMulti() bool { return s.spec.caps&mysqlproto.CapMultiStatements != 0 }

// setsInPlace says whether be carries exactly the client's SETs and
// nothing of another client's.
func (s *session) setsInPlace(be *backend) bool { return !be.dirty && be.setsSig == s.setsSig }

// dbInPlace says whether be is in the client's database (or, when the
// client has none of its own, in a database the proxy knows).
func (s *session) dbInPlace(be *backend) bool { return !be.dbLost && (s.db == "" || be.db == s.db) }

// release ends the lease. A KILL in flight against this session's server
// thread is waited for, so it cannot hit the connection's next user.
func (s *session) release(reuse bool) {
	s.mu.Lock()
	ls, be := s.lease, s.be
	s.lease, s.be, s.busy = nil, nil, false
	s.mu.Unlock()
	if ls == nil {
		return
	}
	clientStates.Set(&s.state, frontend.StateIdle)
	s.kills.Wait()
	if be.broken || s.left.Load() {
		reuse = false // a client that left mid-command: its thread was killed
	}
	if reuse && be.status&mysqlproto.StatusInTrans != 0 {
		be.dirty = true // never hand on an open transaction: reset first
	}
	if s.txNext {
		// Nor a SET TRANSACTION that may still wait for its transaction
		// (the commands after it started none that the status showed).
		be.dirty = true
		s.txNext = false
	}
	if reuse && !be.clean() && !s.setsExplainAutocommit(be) {
		// Autocommit is off (or on) where the SETs the proxy replays do not
		// say so (a SET through a prepared statement, a procedure): the next
		// client would run its writes in a transaction it does not know of,
		// which its session's end would roll back. Reset first.
		be.dirty = true
	}
	s.leaseEnded(be)
	s.leaseDiagReset() // what be holds is no longer this session's to read
	p := s.leasePool
	s.leasePool = nil
	p.Put(ls, reuse)
}

// setsExplainAutocommit says whether the SET statements replayed on be
// (this session's) set autocommit: then a session with the same SETs, the
// only one that gets be without a reset, expects autocommit as it is.
func (s *session) setsExplainAutocommit(be *backend) bool {
	return be.setsSig == s.setsSig && strings.Contains(strings.ToUpper(s.setsSig), "AUTOCOMMIT")
}

// finish cleans up after the client is gone: a server connection left in
// a transaction, pinned or mid-response is reset or closed, never handed
// on dirty.
func (s *session) finish() {
	_ = s.flush()
	if s.pinned != "" {
		metrics.PinnedSessions.WithLabelValues("mysql").Dec()
	}
	if s.lease != nil {
		be := s.be
		reuse := !be.broken && !s.left.Load()
		if reuse && (s.keeps() != router.HoldNone || be.dirty || !be.clean()) {
			err := be.withDeadline(2*time.Second, be.reset)
			metricResets.Inc()
			reuse = err == nil
		}
		s.release(reuse)
	}
	s.mu.Lock()
	_ = s.nc.Close()
	s.mu.Unlock()
}

// dispatch serves one command. seq is the sequence id of its last chunk;
// replies start at seq+1. A returned error closes the client.
func (s *session) dispatch(p []byte, seq uint8) error {
	rs := seq + 1
	if s.sh != nil {
		s.sh.next, s.sh.nextRT, s.sh.holdBegin = 0, nil, false // shard 0 unless the command says otherwise
	}
	switch p[0] {
	case mysqlproto.ComQuit:
		return errQuit
	case mysqlproto.ComPing:
		return s.sendOK(rs)
	case mysqlproto.ComQuery:
		return s.query(p, seq)
	case mysqlproto.ComInitDB:
		return s.initDB(p, seq)
	case mysqlproto.ComFieldList:
		return s.forward(p, seq, respFieldList)
	case mysqlproto.ComStatistics:
		return s.forward(p, seq, respSingle)
	case mysqlproto.ComStmtPrepare:
		return s.prepare(p, seq)
	case mysqlproto.ComStmtExecute:
		return s.execute(p, seq)
	case mysqlproto.ComStmtSendLongData:
		return s.longData(p)
	case mysqlproto.ComStmtClose:
		return s.closeStmt(p)
	case mysqlproto.ComStmtReset:
		return s.resetStmt(p, rs)
	case mysqlproto.ComResetConnection:
		return s.resetConnection(rs)
	case mysqlproto.ComSetOption:
		return s.setOption(p, seq)
	case mysqlproto.ComProcessKill:
		if len(p) < 5 {
			return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERUnknownCom, "08S01", "malformed COM_PROCESS_KILL"))
		}
		return s.kill(&killReq{id: uint64(binary.LittleEndian.Uint32(p[1:]))}, rs)
	case mysqlproto.ComChangeUser:
		return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERUnknownCom, "08S01", "COM_CHANGE_USER is not supported by switchyard: open a new connection"))
	case mysqlproto.ComStmtFetch:
		return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "server-side cursors (COM_STMT_FETCH) are not supported by switchyard"))
	}
	return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERUnknownCom, "08S01", "Unknown command %#x", p[0]))
}

// setOption serves COM_SET_OPTION: multi-statements on or off is part of
// what the session asks of any server connection (connspec.go), so it is
// kept, not pinned.
func (s *session) setOption(p []byte, seq uint8) error {
	if len(p) != 3 || p[1] > mysqlproto.SetOptionMultiStatementsOff || p[2] != 0 {
		s.pin("COM_SET_OPTION")
		return s.forward(p, seq, respOKERR)
	}
	res, err := s.forwardResult(p, seq, respOKERR)
	if err != nil || res.noServer || res.sawErr {
		return err
	}
	if p[1] == mysqlproto.SetOptionMultiStatementsOn {
		s.spec.caps |= mysqlproto.CapMultiStatements
	} else {
		s.spec.caps &^= mysqlproto.CapMultiStatements
	}
	if s.be != nil {
		s.be.multi = p[1] == mysqlproto.SetOptionMultiStatementsOn
	}
	return nil
}

// pin keeps the session on its server connection from now on.
func (s *session) pin(reason string) {
	if s.pinned != "" || s.mode == config.PoolSession {
		return
	}
	s.pinned = reason
	metricPinned.WithLabelValues(pinLabel(reason)).Inc()
	metrics.PinnedSessions.WithLabelValues("mysql").Inc()
	metrics.Pins.WithLabelValues("mysql", pinLabel(reason)).Inc()
	s.log.Info("session pinned to its server connection (transaction pooling off for this client)", "reason", reason)
}

// pinLabel keeps the metric's label set small: variable names vary.
func pinLabel(reason string) string {
	if strings.HasPrefix(reason, "user variable") {
		return "user variable"
	}
	return reason
}

func (s *session) query(p []byte, seq uint8) error {
	if handled, err := s.proxyCommand(p[1:], seq+1); handled {
		return err
	}
	if s.sh != nil {
		if handled, err := s.shardLocalTxn(p[1:], seq+1); handled {
			return err
		}
	}
	s.setCommand(nil, false)
	var an *router.Analysis
	if a := s.analyzer(); a != nil && s.needsAnalysis() {
		an = a.Analyze(unsafeString(p[1:]))
		s.setCommand(an, true)
	}
	e, ok := an.MySQLEffects()
	if !ok {
		e = router.ScanMySQL(unsafeString(p[1:])).Clone() // what it keeps is copied out of the buffer
	}
	if e.Kill != nil {
		if e.Count != 1 {
			return s.sendErr(seq+1, mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "switchyard: KILL must be sent alone, not in a multi-statement query"))
		}
		return s.kill(&killReq{query: e.Kill.Query, id: e.Kill.ID}, seq+1)
	}
	if e.Pin != "" {
		s.pin(e.Pin)
	}
	if e.TxNext && s.hold < 2 {
		s.hold = 2 // this command and the next
	}
	s.txNext = s.txNext || e.TxNext
	held := s.lease != nil
	if e.HasUse && e.Count == 1 {
		return s.useDB(e.Use, seq)
	}
	// The previous statement may have run on another server connection,
	// and this one may carry another client's diagnostics and
	// LAST_INSERT_ID: a prelude, or an answer from the proxy's record.
	if q := s.planDiag(&e, held, true); q != nil {
		p = q
	}
	if e.ConnectionID && e.Count == 1 {
		// The client's id, as its handshake gave it and as KILL takes
		// it: the server thread that would answer is any pooled one,
		// and KILL of its number would name another client.
		p = constQuery(strconv.FormatUint(uint64(s.id), 10), "UNSIGNED", e.Alias)
	}
	build := func(*backend) ([]byte, error) { return p, nil }
	if s.sh != nil {
		sk, rt, r, err := s.shardStatement(unsafeString(p[1:]), nil)
		if err != nil {
			return s.sendErr(seq+1, err)
		}
		if r != nil {
			sql := string(p[1:])
			return s.shardMulti(sql, sk, rt, r, seq+1, false, nil, func(_ *backend, q string) ([]byte, error) {
				if q == sql {
					return p, nil
				}
				return append([]byte{mysqlproto.ComQuery}, q...), nil
			})
		}
		build = s.withBegin(build)
	}
	res, err := s.forwardWith(seq, respQuery, nil, build)
	if err != nil || res.noServer {
		return err
	}
	s.stateChanged(res.stateChanged, trackedEffects(e.Count, len(e.Sets), e.HasUse, e.TxNext))
	if res.sawErr {
		if e.Count > 1 && (len(e.Sets) > 0 || e.HasUse) {
			s.pin("multi-statement query with SET/USE failed part way")
		}
		if e.HasUse && s.be != nil {
			s.be.dbLost = true // the USE may have run
		}
		return nil
	}
	if len(e.Sets) > 0 {
		s.addSets(e.Sets)
	}
	if e.HasUse {
		s.db = e.Use
		if s.be != nil {
			s.be.db, s.be.dbLost = e.Use, false
		}
	}
	return nil
}

// maxSets bounds the SET statements replayed per lease, and maxSetsBytes
// their text; beyond either the session is pinned instead, and nothing
// more is recorded: a pinned session (or one in session pooling) keeps its
// state on its own server connection.
const (
	maxSets      = 32
	maxSetsBytes = 64 << 10
)

func (s *session) addSets(sets []string) {
	if s.pinned != "" || s.mode == config.PoolSession {
		return
	}
	for _, q := range sets {
		// A SET run again moves to the end: the replay runs them in the
		// order they last ran, so SET a=1; SET a=2; SET a=1 leaves a=1.
		s.sets = slices.DeleteFunc(s.sets, func(old string) bool { return old == q })
		s.sets = append(s.sets, q)
	}
	size := 0
	for _, q := range s.sets {
		size += len(q)
	}
	if len(s.sets) > maxSets {
		s.pin("more than 32 distinct SET statements")
	} else if size > maxSetsBytes {
		s.pin("SET statements over 64 KB")
	}
	s.setsSig = strings.Join(s.sets, "\x00")
	if s.be != nil {
		// The server just ran them, in this order, on top of the old ones.
		// Its statements were prepared under the old settings.
		if s.be.setsSig != s.setsSig {
			s.be.dropStmts()
		}
		s.be.setsSig = s.setsSig
	}
}

// useDB serves USE db (alone) and COM_INIT_DB: the client's database name
// is mapped to the server's, then COM_INIT_DB runs on a server connection.
func (s *session) useDB(db string, seq uint8) error {
	if s.sh != nil {
		if db != s.cluster.Database {
			return s.sendErr(seq+1, mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "database '%s' is sharded: USE of another database is not supported; open a connection to it", s.cluster.Database))
		}
		return s.sendOK(seq + 1)
	}
	if db == s.cluster.Database {
		db = s.homeDB
	}
	p := append([]byte{mysqlproto.ComInitDB}, db...)
	// The command sets the database itself: a server connection leased
	// for it is not first switched to the old one, which may be gone
	// (dropped: that switch failed every command, this USE included, and
	// the client could never leave). Any database is in place meanwhile.
	old := s.db
	s.db = ""
	res, err := s.forwardResult(p, seq, respOKERR)
	s.db = old
	if err == nil && !res.noServer && !res.sawErr {
		s.db = db
		if s.be != nil {
			s.be.db, s.be.dbLost = db, false
		}
	}
	return err
}

func (s *session) initDB(p []byte, seq uint8) error {
	return s.useDB(string(p[1:]), seq)
}

// resetConnection serves COM_RESET_CONNECTION: the client's session
// becomes fresh, and so does the server connection it holds, if any. As
// on a server, the current database stays and LAST_INSERT_ID() is 0.
func (s *session) resetConnection(rs uint8) error {
	s.sets, s.setsSig = nil, ""
	s.stmts, s.lastStmt = nil, 0
	s.lastID = 0
	s.hold, s.txNext = 0, false // a lease held is reset below
	// The proxy's own session variables go back to their defaults too;
	// read-your-writes stays (it protects the client, not the session).
	s.routing.Reset()
	s.noAutocommit = false
	if s.sh != nil {
		s.sh.begin, s.sh.beginAn, s.sh.setTxn = nil, nil, nil
	}
	if s.pinned != "" {
		s.log.Info("session unpinned by COM_RESET_CONNECTION", "reason", s.pinned)
		s.pinned = ""
		metrics.PinnedSessions.WithLabelValues("mysql").Dec()
	}
	if s.lease != nil {
		be := s.be
		err := be.withDeadline(10*time.Second, func() error {
			if err := be.reset(); err != nil {
				return err
			}
			return s.sync(be)
		})
		if err != nil {
			be.broken = true
			s.release(false)
		}
		s.inTx = false
	}
	return s.sendOK(rs)
}

// killReq is a KILL the proxy serves: KILL [QUERY|CONNECTION] n (as
// router.ParseKill reads it) or COM_PROCESS_KILL.
type killReq struct {
	query bool // KILL QUERY; else KILL [CONNECTION]
	id    uint64
}

// kill serves KILL [QUERY|CONNECTION] n and COM_PROCESS_KILL. n is the
// connection id the proxy gave a client; only that client's user may kill
// it. KILL QUERY is translated to the server thread running the client's
// current command, over a fresh server connection; KILL CONNECTION also
// closes the client. In a fleet, an id another instance gave out goes to
// that instance over the peer channel (package fleet).
func (s *session) kill(k *killReq, rs uint8) error {
	if k.id > 0 && k.id != uint64(s.id) {
		if inst := s.srv.Config().Proxy.InstanceID; inst != 0 && fleet.Owner(k.id) != inst {
			return s.forwardKill(k, rs)
		}
	}
	if k.id == uint64(s.id) && k.id != 0 {
		if k.query {
			return s.sendOK(rs) // nothing of ours runs while we read this
		}
		metricKills.WithLabelValues("self").Inc()
		s.sendFatal(rs, mysqlproto.NewSQLError(1927, "70100", "Connection was killed"))
		return errQuit
	}
	res, thread, err := s.srv.killLocal(k.id, k.query, s.user.Name)
	switch res {
	case fleet.KillUnknown:
		return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERNoSuchThread, "HY000", "Unknown thread id: %d", k.id))
	case fleet.KillDenied:
		return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERKillDenied, "HY000", "You are not owner of thread %d", k.id))
	case fleet.KillError:
		return s.sendErr(rs, mysqlproto.WrapSQLError(err, mysqlproto.ERUnknown, "HY000", "switchyard: KILL on the server failed"))
	}
	s.log.Info("KILL", "target", k.id, "query", k.query, "server_thread", thread)
	return s.sendOK(rs)
}

// KillFromPeer serves a KILL another instance of the fleet took from a
// client of user for one of this instance's clients (the admin
// listener's peer channel). An id that is not this instance's is
// unknown: a KILL is forwarded once, never on.
func (srv *Server) KillFromPeer(id uint64, query bool, user string) fleet.KillReply {
	fleetKills["received"].Inc()
	if inst := srv.Config().Proxy.InstanceID; inst == 0 || fleet.Owner(id) != inst {
		return fleet.KillReply{Result: fleet.KillUnknown, Message: fmt.Sprintf("Unknown thread id: %d", id)}
	}
	res, thread, err := srv.killLocal(id, query, user)
	r := fleet.KillReply{Result: res}
	switch res {
	case fleet.KillUnknown:
		r.Message = fmt.Sprintf("Unknown thread id: %d", id)
	case fleet.KillDenied:
		r.Message = fmt.Sprintf("You are not owner of thread %d", id)
	case fleet.KillError:
		r.Message = err.Error()
	default:
		srv.log.Info("KILL from a peer", "target", id, "query", query, "server_thread", thread)
	}
	return r
}

// killLocal kills what this instance's client id runs (query) or the
// client itself, when user owns it.
func (srv *Server) killLocal(id uint64, query bool, user string) (result string, thread uint32, err error) {
	var target *session
	if id > 0 && id <= 0xffffffff {
		target, _ = srv.fe.Client(uint32(id))
	}
	if target == nil || target.user == nil {
		metricKills.WithLabelValues("unknown").Inc()
		return fleet.KillUnknown, 0, nil
	}
	if target.user.Name != user {
		metricKills.WithLabelValues("denied").Inc()
		return fleet.KillDenied, 0, nil
	}
	target.mu.Lock()
	var dp dialParams
	if target.busy && target.be != nil {
		thread = target.be.threadID
		dp = dialParams{addr: target.be.addr, user: target.key.User, password: target.key.Password, collation: defaultCollation, tls: target.be.tlsConf}
		target.kills.Add(1)
	}
	target.mu.Unlock()
	if thread != 0 {
		err = killThread(dp, thread, query)
		target.kills.Done()
	}
	if !query {
		target.mu.Lock()
		_ = target.nc.Close()
		target.mu.Unlock()
	}
	if err != nil {
		metricKills.WithLabelValues("error").Inc()
		return fleet.KillError, thread, err
	}
	metricKills.WithLabelValues("ok").Inc()
	return fleet.KillOK, thread, nil
}

var fleetKills = map[string]prometheus.Counter{
	"forwarded": metrics.FleetCancels.WithLabelValues("mysql", "forwarded"),
	"received":  metrics.FleetCancels.WithLabelValues("mysql", "received"),
	"unknown":   metrics.FleetCancels.WithLabelValues("mysql", "unknown"),
	"failed":    metrics.FleetCancels.WithLabelValues("mysql", "failed"),
}

// forwardKill sends a KILL for another instance's client to that
// instance, when it is a configured peer, and relays its answer.
func (s *session) forwardKill(k *killReq, rs uint8) error {
	cfg := s.srv.Config()
	owner := fleet.Owner(k.id)
	peer, ok := cfg.Peer(owner)
	if !ok || peer.AdminListen == "" {
		fleetKills["unknown"].Inc()
		return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERNoSuchThread, "HY000", "Unknown thread id: %d", k.id))
	}
	fleetKills["forwarded"].Inc()
	r, err := s.srv.peerKill(cfg, peer, fleet.KillRequest{ID: k.id, Query: k.query, User: s.user.Name})
	if err != nil {
		fleetKills["failed"].Inc()
		s.log.Warn("forwarding a KILL to a peer failed", "instance", owner, "addr", peer.AdminListen, "err", err)
		return s.sendErr(rs, mysqlproto.WrapSQLError(err, mysqlproto.ERUnknown, "HY000", "switchyard: KILL for a client of instance %d failed", owner))
	}
	switch r.Result {
	case fleet.KillOK:
		s.log.Info("KILL forwarded", "target", k.id, "query", k.query, "instance", owner)
		return s.sendOK(rs)
	case fleet.KillUnknown:
		return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERNoSuchThread, "HY000", "Unknown thread id: %d", k.id))
	case fleet.KillDenied:
		return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERKillDenied, "HY000", "You are not owner of thread %d", k.id))
	}
	return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERUnknown, "HY000", "switchyard: KILL on the server failed (instance %d): %s", owner, r.Message))
}

// killThread runs KILL [QUERY] on a connection of its own: the pool's are
// busy, and the kill must not wait behind other clients.
func killThread(dp dialParams, thread uint32, query bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	be, err := dialBackend(ctx, dp)
	if err != nil {
		return err
	}
	defer be.Close()
	q := "KILL CONNECTION "
	if query {
		q = "KILL QUERY "
	}
	return be.withDeadline(5*time.Second, func() error {
		return be.roundTrip(append([]byte{mysqlproto.ComQuery}, q+strconv.FormatUint(uint64(thread), 10)...))
	})
}
