package pgwire

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/limits"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/lagmon"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/pgframe"
)

const (
	clientReadBuf   = 8 << 10
	clientWriteBuf  = 16 << 10
	maxClientMsg    = 256 << 20
	maxStartupLen   = 10000 // PostgreSQL's MAX_STARTUP_PACKET_LENGTH
	cleanupTimeout  = 5 * time.Second
	cancelTimeout   = 3 * time.Second
	protocolVersion = 196608 // 3.0
	sslRequestCode  = 80877103
	gssEncReqCode   = 80877104
	cancelReqCode   = 80877102
	// peerCancelCode marks a CancelRequest one instance of a fleet
	// forwards to the instance whose key it carries (1234/5700, a code no
	// PostgreSQL client sends). The receiver only ever acts on it
	// locally, so a forwarded cancel cannot go round between peers whose
	// configs disagree.
	peerCancelCode = 1234<<16 | 5700
)

// clientConn is one client session. Its main loop (run) reads the client
// and writes the server. The replies of a lone request (nothing more of
// the client's buffered) that come quickly are relayed by the main loop
// itself (relaySync); otherwise a pump goroutine reads the server and
// writes the client while the lease needs it, so that pipelines, COPY and
// long queries flow in both directions at once without either side
// blocking the other, and a client that leaves mid-query is noticed.
//
// The fields under mu decide when the lease ends: the server connection
// returns to the pool only when every ReadyForQuery the client asked for
// has arrived, no extended-protocol message awaits its Sync, the server
// says 'I' (idle, no transaction), and the main loop is not mid-write.
type clientConn struct {
	id      uint64 // unique in the process
	srv     *Server
	conn    net.Conn
	br      *bufio.Reader // nil while idle (idle.go)
	rd      *pgframe.Reader
	bw      *bufio.Writer // nil while idle (idle.go)
	src     prefixReader  // what br reads: the wake-up bytes, then conn
	idleBuf [idleBufSize]byte
	pid     uint32
	key     [4]byte
	start   time.Time
	log     *slog.Logger

	slot         *limits.Slot         // this client in the client counts
	loginTimeout time.Duration        // how long the login may take from accept
	noReply      bool                 // the login ended mid-TLS handshake: say nothing
	tlsCert      *tls.ConnectionState // the client's TLS session with the certificate served in it (SCRAM channel binding); nil without TLS

	user    *config.User
	cluster *config.Cluster
	console bool // an admin console session (console.go)
	// clientKey is the SCRAM ClientKey the client proved at login, kept
	// only until a passthrough login has recorded it (passthrough.go).
	clientKey []byte
	// wantClientKey asks the SCRAM exchange to recover clientKey: only a
	// passthrough login needs it.
	wantClientKey bool
	primary       *poolEntry
	mode          config.PoolMode
	desired       map[string]string // runtime parameters the client asked for, lower-case keys

	hdr        [5]byte // scratch for a rewritten message's header (main loop)
	rfq        [6]byte // scratch for ReadyForQuery (pump)
	sink       errSink // the pump's writer for large rows: a field, so relaying one allocates nothing
	pending    []byte  // extended-protocol messages buffered until a Sync or Flush
	skipToSync bool    // after an error the proxy raised, ignore messages until Sync
	// A request that opened its lease on a reused idle connection is sent
	// again on another if that one proves dead before anything of the
	// request could run (deadOnArrival). Main loop only.
	redoable   bool // the reply awaited is the first of such a request
	redo       bool // its lease ended that way: send the request again
	leaseAlive bool // the next lease is that retry's: pool.GetAlive

	// wmu is held by whoever writes to the client: the pump for its whole
	// life, the main loop for the messages the proxy itself sends.
	wmu sync.Mutex

	mu          sync.Mutex
	server      *serverConn
	lease       *pool.Server
	leasePool   *pool.Pool
	outstanding int  // ReadyForQuery messages still due from the server
	unsynced    bool // extended-protocol messages sent since the last Sync
	writers     int  // goroutines writing to the server outside mu (main loop, a cancel)
	cancelling  int  // cancel requests on their way to the server (counted in writers too)
	reader      readerKind
	releaseDue  bool // the pump found the lease over while the main loop was writing
	gone        bool // the client left; the server connection is being cleaned up
	rollingBack bool // the proxy sent ROLLBACK/DISCARD ALL for a departed client
	closing     bool // shutdown: close the client at its next idle moment
	broken      bool // the server connection failed under this client
	txStatus    byte
	expects     expectQueue // what the server owes, in order (expect.go)
	srvSkipping bool        // the server reported an error and ignores messages until Sync
	copyIn      bool        // the server is in COPY FROM STDIN and ignores Syncs until CopyDone or CopyFail
	swapOut     []byte      // pump: the message matchLocked puts in place of the server's
	// Client statement names the server dropped (DEALLOCATE name, or all
	// of them: DEALLOCATE ALL, DISCARD ALL), learnt from the command tag
	// by the pump, and names whose Parse the server refused or skipped;
	// the main loop applies them to stmts before its next use
	// (applyStmtDropsLocked).
	stmtDrops   []string
	stmtDropAll bool

	// Statement names: the client's, mapped to proxy-wide statements.
	// Main loop only.
	stmts        map[string]*gstmt
	stmtCap      frontend.StmtCap // stmts against the caps (stmtRoom)
	lastUnnamed  []byte           // the client's last unnamed Parse, to repeat on another server
	unnamedLease bool             // the unnamed statement was parsed during this lease
	unnamedAn    *router.Analysis
	unnamedDesc  *unnamedDesc // lastUnnamed's parameter types as a server described them; under mu
	qRaw         []byte       // the Query message qAn judges (main loop; identity, not contents)
	qAn          *router.Analysis

	// unnamedDealloc: the unnamed statement is DEALLOCATE of the client's
	// statement name (sent to the server under its global name: sendMsg);
	// portalDeallocs: the portals bound from such a statement, whose
	// Execute drops that name (from the books of the client and of the
	// server connection). Main loop only.
	unnamedDealloc stmtName
	portalDeallocs map[string]stmtName

	// Session state (state.go). desired is what the client asked for
	// (startup parameters, then its SETs), lower-case keys; startup keeps
	// the startup parameters for RESET ALL. Under mu.
	startupParams map[string]string
	pinReason     string   // why the session keeps its server connection; "" when it does not
	pinNext       string   // main loop: pin once the statement is sent
	capture       []string // main loop: settings to read back after the request
	captureAll    bool
	captureAuth   bool                // with captureAll: DISCARD ALL, which resets the role too
	restore       map[string]bool     // main loop: of capture, startup parameters reset: set to their startup values
	chainNext     bool                // main loop: the next Query or Execute is COMMIT/ROLLBACK AND CHAIN
	captureTxn    bool                // main loop: re-read the transaction's settings (ROLLBACK TO SAVEPOINT)
	txnNames      map[string]struct{} // settings read back since the transaction began
	txnSets       map[string]string   // settings changed in the open transaction
	txnPrev       map[string]*string  // what the server connection had before them
	txnResetAll   bool
	txnCommitted  bool
	state         frontend.ClientState // for the metrics and SHOW CLIENTS; under mu

	mTxn, mQuery prometheus.Counter

	// Routing (route.go). rt is nil for clusters without replicas. an
	// judges statements with the cluster's function lists.
	an    *router.Analyzer
	rt    *replica.Runtime
	asBuf []*router.Analysis
	// routing is the session's routing state: target, read_after, shard
	// key, and its writes for read-your-writes (Pref and the writes on mu).
	routing router.SessionRouting
	// serializable: the session's default_transaction_isolation is
	// SERIALIZABLE, which a hot standby refuses: its transactions go to
	// the primary (pref). Written under mu, read by the main loop.
	serializable atomic.Bool
	// reads: read-your-writes, the check the lease's first request
	// carries, a failed one, whether to read the primary's position
	// after a write (causal.go); posSeen is the one read, until its
	// ReadyForQuery (on mu).
	reads replica.Reads
	// relayLocked: the relay loop holds c.mu (set and read only by the
	// goroutine relaying replies, under c.mu or in its recover).
	relayLocked bool
	posSeen     lagmon.Position
	posBlocked  bool          // the request may start COPY FROM STDIN: no query behind it
	posDue      bool          // the request wrote outside a transaction, or ended one: a position query behind it
	leaseNode   *replica.Node // the replica of the current lease; nil on the primary
	leaseWrites bool          // the current lease is on the primary for a write
	// leaseIdle wakes the main loop waiting for a replica lease to answer
	// what it owes before a request that must run on the primary, or for
	// a cancel request to reach the server (on mu).
	leaseIdle sync.Cond
	// cfgSeen is the config the session's pools come from; poolCl and
	// poolUser are its cluster and user there (repool follows a reload).
	cfgSeen  *config.Config
	poolCl   *config.Cluster
	poolUser *config.User
	// replicaPools caches the replica pools of cfgSeen by address, so a
	// read routed to a replica takes no server-wide lock.
	replicaPools map[string]*poolEntry

	sh *clientShard // sharding (shard.go); nil for an unsharded cluster
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

func (s *Server) handle(conn net.Conn) {
	// This frame and run's are under every idle client's wait: the work
	// before the main loop is done in helpers (not inlined) whose frames
	// are gone by then, so an idle client's stack is shallow enough for
	// the GC to shrink it (issue 17: memory per idle client).
	c := s.newClient(conn)
	defer conn.Close()
	defer c.recoverPanic()
	slot, refused := c.connectSlot()
	defer slot.Release()
	defer s.unregister(c)
	if !c.startSession(refused) {
		return
	}
	defer c.loggedOut()
	if c.console {
		c.runConsole()
		return
	}
	c.run()
}

// clientIDs numbers the clients (clientConn.id).
var clientIDs atomic.Uint64

// newClient makes the session of a client that just connected.
//
//go:noinline
func (s *Server) newClient(conn net.Conn) *clientConn {
	c := &clientConn{
		id:    clientIDs.Add(1),
		srv:   s,
		conn:  conn,
		start: time.Now(),
		log:   s.log.With("client", conn.RemoteAddr().String()),
		state: frontend.StateIdle,
		stmts: make(map[string]*gstmt),
		an:    s.an,
	}
	c.rd = pgframe.NewReader(nil, maxClientMsg)
	c.takeReader(nil)
	c.writer()
	return c
}

// recoverPanic ends a session that panicked.
func (c *clientConn) recoverPanic() {
	if r := recover(); r != nil {
		c.log.Error("client session panicked; closing it", "panic", r)
		// The server connection it held may be mid-transaction: close
		// it, so its locks go and the pool replaces it. (TryLock: the
		// panic may have come with c.mu held.)
		if c.mu.TryLock() {
			sc := c.server
			c.mu.Unlock()
			if sc != nil {
				_ = sc.cancel(cancelTimeout)
				sc.conn.Close()
			}
		}
	}
}

// connectSlot counts the client from accept, so that clients still
// logging in count too: the cap protects file descriptors and memory, not
// just sessions.
//
//go:noinline
func (c *clientConn) connectSlot() (*limits.Slot, error) {
	cfg := c.srv.Config()
	slot, refused := c.srv.Limits.Clients.Connect(cfg.Proxy.MaxClientConns)
	c.slot = slot
	c.loginTimeout = c.srv.StartupTimeout
	if c.loginTimeout <= 0 {
		c.loginTimeout = cfg.Proxy.ClientLoginTimeout
	}
	if c.loginTimeout <= 0 {
		c.loginTimeout = config.DefaultClientLoginTimeout
	}
	return slot, refused
}

// startSession runs the startup up to the first ReadyForQuery; false: the
// session ends (refused, a cancel request, a client that left).
//
//go:noinline
func (c *clientConn) startSession(refused error) bool {
	_ = c.conn.SetDeadline(time.Now().Add(c.loginTimeout))
	ok, err := c.startup(refused)
	if err != nil {
		c.loginFailed(err)
		return false
	}
	if !ok { // cancel request or a client that left during startup
		return false
	}
	_ = c.conn.SetDeadline(time.Time{})
	metrics.ClientLogins.WithLabelValues("postgres", "ok").Inc()
	clientStates.Enter(&c.state)
	if c.console {
		c.log.Info("admin console session", "user", c.user.Name)
	} else {
		c.log.Debug("client logged in", "user", c.user.Name, "database", c.cluster.Database)
	}
	return true
}

// loggedOut closes the books of a session that logged in. A pump may
// still be finishing; the books close under mu, and clientStates.Set does nothing
// after this.
func (c *clientConn) loggedOut() {
	c.mu.Lock()
	clientStates.Leave(&c.state)
	pinned := c.pinReason != ""
	c.mu.Unlock()
	if pinned {
		metrics.PinnedSessions.WithLabelValues("postgres").Dec()
	}
}

func (c *clientConn) loginFailed(err error) {
	// The session ends here: its place in the client counts is free
	// before the client reads why, so a client that reconnects at once is
	// not refused for a place this one still held.
	c.slot.Release()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.loginTimedOut()
		return
	}
	if isQuiet(err) {
		return
	}
	var pe *pgError
	result := "rejected"
	if errors.As(err, &pe) && pe.Code == codeInvalidPassword {
		result = "auth_failed"
	}
	metrics.ClientLogins.WithLabelValues("postgres", result).Inc()
	c.log.Info("login refused", "err", err, "age", time.Since(c.start).Round(time.Millisecond))
	if pe != nil {
		_ = c.send(toErrorResponse(pe))
	}
}

// loginTimedOut closes a client that did not finish its login within
// client_login_timeout: one that sent nothing, stopped half-way through
// the startup, TLS or the password exchange, or does not read.
func (c *clientConn) loginTimedOut() {
	metrics.LoginTimeouts.WithLabelValues("postgres").Inc()
	metrics.ClientLogins.WithLabelValues("postgres", "timeout").Inc()
	c.log.Info("client login timed out; closing", "client_login_timeout", c.loginTimeout, "age", time.Since(c.start).Round(time.Millisecond))
	if c.noReply {
		return
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	// A write that timed out left its error in the buffer: start clean.
	c.bw.Reset(c.conn)
	_ = c.send(toErrorResponse(newFatal(codeProtocolViolation, "canceling authentication due to timeout (client_login_timeout = %s)", c.loginTimeout)))
}

// isQuiet says whether an error is a peer simply going away, which is not
// worth a log line.
func isQuiet(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// send writes one message the proxy itself produced and flushes.
func (c *clientConn) send(msgs ...pgproto3.BackendMessage) error {
	var err error
	buf := make([]byte, 0, 256)
	for _, m := range msgs {
		if buf, err = m.Encode(buf); err != nil {
			return err
		}
	}
	bw := c.writer()
	if _, err := bw.Write(buf); err != nil {
		return err
	}
	return bw.Flush()
}

// startup runs the startup phase: SSL/GSS negotiation, the startup message,
// authentication, and the greeting a real server sends. ok is false when
// the connection was a cancel request or ended quietly.
func (c *clientConn) startup(refused error) (ok bool, err error) {
	for {
		body, err := pgframe.ReadStartup(c.br, maxStartupLen)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return false, err
			}
			if isQuiet(err) {
				return false, nil
			}
			return false, newFatal(codeProtocolViolation, "%v", err)
		}
		code := binary.BigEndian.Uint32(body)
		switch code {
		case sslRequestCode:
			tc := c.srv.ClientTLS()
			if _, already := c.conn.(*tls.Conn); tc == nil || already {
				if _, err := c.conn.Write([]byte{'N'}); err != nil {
					return false, nil
				}
				continue
			}
			if c.br.Buffered() > 0 {
				// Bytes sent before the TLS handshake would be trusted as if
				// they came over TLS (CVE-2021-23222 in libpq's terms).
				return false, newFatal(codeProtocolViolation, "unexpected data after SSLRequest")
			}
			if _, err := c.conn.Write([]byte{'S'}); err != nil {
				return false, nil
			}
			tlsConn := tls.Server(c.conn, tc)
			if err := tlsConn.Handshake(); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					// Not a word in plain text into a half-made TLS stream.
					c.conn = tlsConn
					c.noReply = true
					return false, err
				}
				c.log.Info("TLS handshake failed", "err", err)
				return false, nil
			}
			c.conn = tlsConn
			if len(tc.Certificates) > 0 && len(tc.Certificates[0].Certificate) > 0 {
				// What channel binding hashes: the certificate this client
				// was served (the state's PeerCertificates, as a client
				// sees them).
				leaf := tc.Certificates[0].Leaf
				if leaf == nil {
					leaf, _ = x509.ParseCertificate(tc.Certificates[0].Certificate[0])
				}
				if leaf != nil {
					c.tlsCert = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
				}
			}
			c.br.Reset(tlsConn)
			c.bw.Reset(tlsConn)
			continue
		case gssEncReqCode:
			if _, err := c.conn.Write([]byte{'N'}); err != nil {
				return false, nil
			}
			continue
		case cancelReqCode, peerCancelCode:
			if len(body) == 12 {
				c.srv.cancel(binary.BigEndian.Uint32(body[4:]), body[8:12], code == peerCancelCode)
			}
			return false, nil
		}
		if code>>16 != 3 {
			return false, newFatal(codeFeatureNotSupported, "unsupported frontend protocol %d.%d: server supports 3.0", code>>16, code&0xffff)
		}
		params, err := pgframe.DecodeStartupParams(body[4:])
		if err != nil {
			return false, newFatal(codeProtocolViolation, "invalid startup packet: %v", err)
		}
		if err := c.login(code, params, refused); err != nil {
			return false, err
		}
		return true, nil
	}
}

func (c *clientConn) login(version uint32, params map[string]string, refused error) error {
	cfg := c.srv.Config()
	if refused != nil {
		metrics.LimitRefusals.WithLabelValues("postgres", limits.Total.String()).Inc()
		return newFatal(codeTooManyConnections, "sorry, too many clients already: %v", refused)
	}
	if c.srv.fe.Closing() {
		return newFatal(codeCannotConnectNow, "the proxy is shutting down")
	}
	name := params["user"]
	if name == "" {
		return newFatal(codeInvalidAuthorization, "no PostgreSQL user name specified in startup packet")
	}
	db := params["database"]
	if db == "" {
		db = name
	}
	var unknownOpts []string
	desired := make(map[string]string)
	for k, v := range params {
		switch {
		case k == "user" || k == "database":
		case strings.HasPrefix(k, "_pq_."):
			unknownOpts = append(unknownOpts, k)
		case k == "replication":
			if v != "false" && v != "off" && v != "0" && v != "no" {
				return newFatal(codeFeatureNotSupported, "replication connections are not supported through switchyard")
			}
		case k == "options":
			if strings.TrimSpace(v) != "" {
				return newFatal(codeFeatureNotSupported, "startup parameter \"options\" is not supported by switchyard; set parameters by name or with SET")
			}
		default:
			desired[strings.ToLower(k)] = v
		}
	}
	c.log = c.log.With("user", name, "database", db)
	u := cfg.User(name)
	host := limits.Host(c.conn.RemoteAddr())
	if left, blocked := c.srv.Limits.Auth.Blocked(host, cfg.Proxy.AuthFailuresPerMinute); blocked {
		metrics.AuthRefusals.WithLabelValues("postgres").Inc()
		return newFatal(codeInvalidAuthorization, "too many failed logins from %s (auth_failures_per_minute = %d); try again in %s",
			host, cfg.Proxy.AuthFailuresPerMinute, left.Round(time.Second))
	}
	var authErr error
	if pcl := cfg.Cluster(config.Postgres, db); u == nil && pcl != nil && pcl.Settings.AuthUser != "" && !isConsole(db) {
		u, authErr = c.passLogin(cfg, pcl, name)
	} else {
		authErr = c.authenticate(u, name)
	}
	c.clientKey = nil
	if err := authErr; err != nil {
		var pe *pgError
		if errors.As(err, &pe) && pe.Code == codeInvalidPassword {
			c.srv.Limits.Auth.Failed(host)
			metrics.AuthFailures.WithLabelValues("postgres").Inc()
		}
		return err
	}
	if isConsole(db) {
		if !u.Admin {
			return newFatal("42501", "user %q is not an admin; the admin console is for users with admin = true", name)
		}
		c.user, c.console = u, true
		c.srv.register(c)
		binary.BigEndian.PutUint32(c.key[:], randUint32())
		return c.send(&pgproto3.AuthenticationOk{},
			&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0 (switchyard admin console)"},
			&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"},
			&pgproto3.ParameterStatus{Name: "server_encoding", Value: "UTF8"},
			&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "on"},
			&pgproto3.ParameterStatus{Name: "DateStyle", Value: "ISO, MDY"},
			&pgproto3.ParameterStatus{Name: "integer_datetimes", Value: "on"},
			&pgproto3.BackendKeyData{ProcessID: c.pid, SecretKey: c.key[:]},
			&pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	if len(u.Databases) > 0 && !contains(u.Databases, db) {
		return newFatal(codeInvalidAuthorization, "user %q may not connect to database %q", name, db)
	}
	cl := cfg.Cluster(config.Postgres, db)
	if cl == nil {
		return newFatal(codeUnknownDatabase, "database %q does not exist", db)
	}
	if err := c.slot.Login(u.Name, u.MaxClientConns, "postgres", cl.Database, cl.Settings.MaxDBClientConns); err != nil {
		var r *limits.Refusal
		if errors.As(err, &r) {
			metrics.LimitRefusals.WithLabelValues("postgres", r.Kind.String()).Inc()
		}
		return newFatal(codeTooManyConnections, "sorry, too many clients already: %v", err)
	}
	c.user, c.cluster, c.desired = u, cl, desired
	c.noteIsolationLocked()
	c.cfgSeen, c.poolCl, c.poolUser = cfg, cl, u
	c.startupParams = make(map[string]string, len(desired))
	for k, v := range desired {
		c.startupParams[k] = v
	}
	if c.an = c.srv.Ans.For(cl.Name); c.an == nil { // a reload removed it meanwhile
		c.an = router.SettingsAnalyzer(router.Postgres, cl.Settings)
	}
	c.mode = cl.Settings.PoolMode
	if u.PoolMode != "" {
		c.mode = u.PoolMode
	}
	if c.mode == config.PoolTransaction && router.SearchPathNamesTemp(desired["search_path"]) {
		// A search_path startup parameter naming pg_temp pins as SET
		// search_path does (router): CREATE TABLE t may make a temp table.
		c.mu.Lock()
		c.pinLocked("search_path with pg_temp")
		c.mu.Unlock()
	}
	if cl.Sharding != nil { // sharding (shard.go)
		if err := c.shardLogin(cl, u); err != nil {
			return err
		}
	} else {
		n := frontend.Nodes(cl)[0]
		c.primary = c.srv.poolFor(cl, u, n.Addr, n.DB)
		c.rt = c.srv.Rts.Get(cl.Name)
	}
	c.mTxn = metrics.Transactions.WithLabelValues("postgres", cl.Name)
	c.mQuery = metrics.Queries.WithLabelValues("postgres", cl.Name)

	params, err := c.serverParams()
	if err != nil {
		return err
	}
	if cl.Sharding == nil {
		if err := c.checkStartupParams(params); err != nil {
			return err
		}
	}
	// The client has done its part of the login; the time the proxy took
	// to reach a server (the first login dials one) is not held against
	// it: it gets the timeout afresh to read its greeting.
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.loginTimeout))
	c.srv.register(c)
	binary.BigEndian.PutUint32(c.key[:], randUint32())
	msgs := []pgproto3.BackendMessage{&pgproto3.AuthenticationOk{}}
	if minor := version & 0xffff; minor > 0 || len(unknownOpts) > 0 {
		sort.Strings(unknownOpts)
		msgs = append(msgs, &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknownOpts})
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		msgs = append(msgs, &pgproto3.ParameterStatus{Name: canonicalParam(k), Value: params[k]})
	}
	msgs = append(msgs, &pgproto3.BackendKeyData{ProcessID: c.pid, SecretKey: c.key[:]}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	c.txStatus = 'I'
	return c.send(msgs...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// canonicalParam restores the capitalization PostgreSQL reports for the
// parameters whose names are not all lower case.
func canonicalParam(k string) string {
	switch k {
	case "datestyle":
		return "DateStyle"
	case "intervalstyle":
		return "IntervalStyle"
	case "timezone":
		return "TimeZone"
	}
	return k
}

// serverParams returns the ParameterStatus set for the greeting: what a
// fresh server connection reports, with the client's own requests on top
// (they are applied on every connection the client is given).
func (c *clientConn) serverParams() (map[string]string, error) {
	base, err := c.learnParams(c.primary)
	for try := 0; errors.Is(err, pool.ErrClosed) && try < 5 && c.repool(); try++ {
		base, err = c.learnParams(c.primary) // a reload closed the pool meanwhile
	}
	if err != nil && c.rt != nil {
		// The primary is down: clients that only read can still log in,
		// greeted with what a replica reports.
		c.log.Info("primary unreachable at login; taking the greeting from a replica", "err", err)
		for _, r := range c.rt.Replicas() {
			b, rerr := c.learnParams(c.srv.poolFor(c.cluster, c.user, r, c.primaryDB()))
			if rerr == nil {
				base, err = b, nil
				break
			}
			c.log.Info("replica unreachable at login", "replica", r, "err", rerr)
		}
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(base)+len(c.desired))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range c.desired {
		out[k] = v
	}
	return out, nil
}

// checkStartupParams tries, at login, the startup parameters a server
// does not report (search_path, statement_timeout, a misspelt name...) on
// a server connection, as PostgreSQL itself does during its startup: one
// it does not know or whose value it refuses fails the login with its
// words (FATAL 42704 unrecognized configuration parameter), where before
// the login succeeded and every request of the client then failed, which
// drivers that check a new connection with a ping take for a bad
// connection (lib/pq: "driver: bad connection"). Parameters the server
// reports (application_name, DateStyle, ...) are tried too, unless the
// value is the server's default (client_encoding=UTF8, what nearly every
// driver sends) or any string goes (application_name): a TimeZone or
// DateStyle the server refuses failed every request the same way. Nor are
// values the server took at an earlier login (poolEntry.accepted), so only
// the first login with a new one costs a lease. For a reported parameter
// the greeting (params) says what the server reports for the value
// (DateStyle=german is "German, DMY", client_encoding=utf8 "UTF8"), as a
// server's would. The connection keeps the values (syncParams records
// them), so the client's first request on it sends no SET. A failure to
// reach the server is left to the first request, as before.
func (c *clientConn) checkStartupParams(params map[string]string) error {
	e := c.primary
	if e == nil {
		return nil
	}
	var try []string
	e.mu.Lock()
	for k, v := range c.desired {
		if def, reported := e.params[k]; reported && (v == def || k == "application_name") {
			continue
		}
		if reported, ok := e.accepted[k+"="+v]; ok {
			if reported != "" {
				params[k] = reported
			}
			continue
		}
		try = append(try, k+"="+v)
	}
	e.mu.Unlock()
	if len(try) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cluster.Settings.QueryWaitTimeout+c.cluster.Settings.ConnectTimeout)
	ps, err := e.p.Get(ctx)
	cancel()
	if err != nil {
		return nil
	}
	sc := ps.Conn.(*serverConn)
	err = c.syncParams(sc)
	var pe *pgError
	if err != nil && !errors.As(err, &pe) {
		e.p.Put(ps, false)
		return nil
	}
	if pe != nil {
		e.p.Put(ps, true) // a refused SET leaves the connection usable
		return &pgError{Severity: "FATAL", Code: pe.Code, Message: pe.Message, Detail: pe.Detail, Hint: pe.Hint}
	}
	// Taken: the next login with these (lib/pq's and JDBC's
	// extra_float_digits, an application's search_path) needs no lease.
	// The connection reports a parameter's value in the server's words.
	e.mu.Lock()
	if e.accepted == nil {
		e.accepted = make(map[string]string)
	}
	for _, kv := range try {
		k, _, _ := strings.Cut(kv, "=")
		reported := ""
		if _, ok := e.params[k]; ok {
			if reported = sc.params[k]; reported != "" {
				params[k] = reported
			}
		}
		if len(e.accepted) < maxAcceptedParams {
			e.accepted[kv] = reported
		}
	}
	e.mu.Unlock()
	e.p.Put(ps, true)
	return nil
}

// learnParams returns the ParameterStatus values a fresh connection of
// e's node reports, asking the node once.
func (c *clientConn) learnParams(e *poolEntry) (map[string]string, error) {
	e.mu.Lock()
	base := e.params
	e.mu.Unlock()
	if base != nil {
		return base, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cluster.Settings.QueryWaitTimeout+c.cluster.Settings.ConnectTimeout)
	ps, err := e.p.Get(ctx)
	cancel()
	if err != nil {
		return nil, poolError(err)
	}
	sc := ps.Conn.(*serverConn)
	base = make(map[string]string, len(sc.params))
	for k, v := range sc.params {
		if _, set := sc.applied[k]; !set {
			base[k] = v
		}
	}
	if _, ok := base["in_hot_standby"]; ok {
		base["in_hot_standby"] = "off" // the proxy takes writes, whichever node answered
	}
	e.p.Put(ps, true)
	e.mu.Lock()
	e.params = base
	e.mu.Unlock()
	return base, nil
}

// poolError turns a pool failure into what the client is told.
func poolError(err error) error {
	switch {
	case errors.Is(err, pool.ErrPaused):
		return &pgError{Severity: "ERROR", Code: codeTooManyConnections, Message: "query_wait_timeout", cause: err,
			Hint: "the pool is paused (PAUSE on the admin console): clients wait for RESUME, up to query_wait_timeout"}
	case errors.Is(err, pool.ErrWaitTimeout):
		return &pgError{Severity: "ERROR", Code: codeTooManyConnections, Message: "query_wait_timeout", cause: err,
			Hint: "all server connections of the pool stayed busy; raise pool_size or query_wait_timeout, or make transactions shorter"}
	case errors.Is(err, pool.ErrQueueFull):
		metrics.LimitRefusals.WithLabelValues("postgres", "wait_queue").Inc()
		return &pgError{Severity: "ERROR", Code: codeTooManyConnections, Message: "max_wait_clients", cause: err,
			Hint: "too many clients wait for this pool already; raise max_wait_clients or pool_size, or make transactions shorter"}
	case errors.Is(err, pool.ErrClosed):
		return &pgError{Severity: "FATAL", Code: codeAdminShutdown, Message: "the pool was closed", cause: err}
	}
	var pe *pgError
	if errors.As(err, &pe) && pe.Code == codeInvalidAuthorization {
		return pe // a refused downgrade: the client sees its reason and the key
	}
	return &pgError{Severity: "ERROR", Code: codeConnectionFailure, Message: "could not connect to the server", cause: err}
}

// cancel forwards a CancelRequest to the server the client is using, and
// only while it is busy there: a late cancel must not hit the next client's
// query on the same server connection. In a fleet, a key another instance
// issued goes to that instance, when it is a configured peer (fromPeer:
// this one came from a peer, and is never sent on).
func (s *Server) cancel(pid uint32, secret []byte, fromPeer bool) {
	if inst := s.Config().Proxy.InstanceID; inst != 0 {
		if owner := fleet.Owner(uint64(pid)); owner != inst {
			s.forwardCancel(owner, pid, secret, fromPeer)
			return
		}
		if fromPeer {
			fleetCancels["received"].Inc()
		}
	}
	c := s.lookupClient(pid)
	if c == nil || subtle.ConstantTimeCompare(c.key[:], secret) != 1 {
		return
	}
	c.mu.Lock()
	sc := c.server
	if sc == nil || c.outstanding == 0 {
		c.mu.Unlock()
		return
	}
	// Hold the lease until the server has the signal: a lease is not
	// returned while writers is above zero. And hold the client's next
	// request until then (forward waits while cancelling is above zero):
	// a cancel that arrives after its statement ended must not hit the
	// next one. PostgreSQL drops a cancel signal that finds the backend
	// waiting for a command, so the next request is safe once the
	// postmaster has signalled, which it has when it closes the cancel
	// connection. (Directly, without a proxy, that race is the client's:
	// pgx sleeps after a cancel for it.)
	c.writers++
	c.cancelling++
	c.mu.Unlock()
	if testHookCancel != nil {
		testHookCancel()
	}
	if err := sc.cancel(cancelTimeout); err != nil {
		c.log.Info("forwarding cancel request failed", "err", err)
	}
	c.mu.Lock()
	c.cancelling--
	c.wakeLeaseWaitersLocked()
	c.mu.Unlock()
	c.finishWrite()
}

// testHookCancel, when a test sets it, runs in cancel while it holds the
// lease, before the cancel goes to the server.
var testHookCancel func()

var fleetCancels = map[string]prometheus.Counter{
	"forwarded": metrics.FleetCancels.WithLabelValues("postgres", "forwarded"),
	"received":  metrics.FleetCancels.WithLabelValues("postgres", "received"),
	"unknown":   metrics.FleetCancels.WithLabelValues("postgres", "unknown"),
	"failed":    metrics.FleetCancels.WithLabelValues("postgres", "failed"),
}

// forwardCancel sends a cancel whose key instance owner issued to that
// instance's postgres_listen, and waits until it closes the connection,
// which it does once its server has the signal: the client's cancel
// connection ends when the cancel has been delivered, as with a single
// server. Only configured peers are dialled: a client cannot make the
// proxy connect anywhere else.
func (s *Server) forwardCancel(owner int, pid uint32, secret []byte, fromPeer bool) {
	peer, ok := s.Config().Peer(owner)
	if fromPeer || !ok || peer.PostgresListen == "" {
		fleetCancels["unknown"].Inc()
		s.log.Debug("cancel request for an instance that is not a peer: dropped", "instance", owner, "from_peer", fromPeer)
		return
	}
	fleetCancels["forwarded"].Inc()
	if err := sendCancel(peer.PostgresListen, peerCancelCode, pid, secret, cancelTimeout); err != nil {
		fleetCancels["failed"].Inc()
		s.log.Info("forwarding a cancel request to a peer failed", "instance", owner, "addr", peer.PostgresListen, "err", err)
	}
}

// CloseIfIdle is shutdown's word to a client: go now if idle, else at the
// end of the current transaction.
func (c *clientConn) CloseIfIdle() {
	c.mu.Lock()
	c.closing = true
	// A session that holds its server connection between transactions
	// (pinned, or session pooling) is idle too when nothing is under way;
	// only a transaction in progress is worth the wait.
	idle := c.server == nil || c.heldIdleLocked()
	c.mu.Unlock()
	if idle {
		// Wake the main loop; it sees closing and says goodbye.
		_ = c.conn.SetReadDeadline(time.Now())
	}
}

// CloseConn closes the client's connection now (Shutdown's end).
func (c *clientConn) CloseConn() { c.conn.Close() }

// clientStates are the gauges of the clients by state.
var clientStates = frontend.NewClientStates(config.Postgres)

// syncParams makes the runtime parameters of a freshly leased server
// connection what this client asked for at startup, resetting what an
// earlier client set and this one did not. Nothing is sent when they
// already match, which is the common case.
func (c *clientConn) syncParams(sc *serverConn) error {
	// c.mu only for reading c.desired: the round trip below runs without
	// it, or a slow server would stall Shutdown, SHOW CLIENTS and cancels
	// that look at this client. sc is leased to nobody else yet.
	c.mu.Lock()
	var q []byte
	for k := range sc.applied {
		if _, want := c.desired[k]; !want {
			q = append(q, "RESET "...)
			q = appendIdent(q, k)
			q = append(q, ';')
		}
	}
	var sets []byte
	for k, v := range c.desired {
		if cur, ok := sc.applied[k]; ok && cur == v {
			continue
		}
		if _, ok := sc.applied[k]; !ok && sc.params[k] == v {
			continue
		}
		if len(sets) > 0 {
			sets = append(sets, ", "...)
		}
		sets = append(sets, "pg_catalog.set_config("...)
		sets = appendLiteral(sets, k)
		sets = append(sets, ", "...)
		sets = appendLiteral(sets, v)
		sets = append(sets, ", false)"...)
	}
	if len(q) == 0 && len(sets) == 0 {
		c.mu.Unlock()
		return nil
	}
	desired := maps.Clone(c.desired)
	c.mu.Unlock()
	if len(sets) > 0 {
		q = append(append(append(q, "SELECT "...), sets...), ';')
	}
	if err := sc.exec(string(q), c.cluster.Settings.QueryWaitTimeout); err != nil {
		return err
	}
	for k := range sc.applied {
		if _, want := desired[k]; !want {
			delete(sc.applied, k)
		}
	}
	maps.Copy(sc.applied, desired)
	return nil
}

// appendLiteral quotes s as an escape string literal, which reads the same
// whatever standard_conforming_strings says.
func appendLiteral(b []byte, s string) []byte {
	b = append(b, "E'"...)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\'', '\\':
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '\'')
}

func appendIdent(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}
