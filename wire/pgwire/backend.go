package pgwire

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/rawconn"
	"github.com/switchyard/switchyard/wire/pgframe"
)

// serverConn is one authenticated connection to a PostgreSQL server. It is
// owned by exactly one goroutine at a time: the pool while idle, the client
// session (main loop and its pump, which split reading and writing) while
// leased.
type serverConn struct {
	conn   net.Conn
	br     *bufio.Reader
	rd     *pgframe.Reader
	bw     *bufio.Writer
	addr   string
	pid    uint32
	secret []byte

	// params are the values the server reported with ParameterStatus,
	// keys lower-cased (GUC names are case-insensitive).
	params map[string]string
	// applied records values this proxy set for a client (raw, as the
	// client asked), so equal requests skip the round trip even when the
	// server normalizes the value it reports.
	applied map[string]string

	// stmts is what this connection has prepared under global names.
	stmts stmtCache
	// causalReady: the position check (causal.go) is prepared here.
	causalReady bool
	// lastClient is the id (clientConn.id) of the client that leased it
	// last: its sequence state (currval, lastval) is that client's.
	lastClient uint64

	probe frontend.Prober // alive's look at the socket
}

const (
	serverReadBuf  = 32 << 10
	serverWriteBuf = 16 << 10
	maxServerMsg   = 1 << 30 // PostgreSQL's own limit for a message
	// maxPreparedPerConn bounds the statements one server connection
	// keeps prepared; the least recently used is closed beyond it.
	maxPreparedPerConn = 1000
)

// serverConfig is the pgconn configuration toward one server: its address
// and TLS as the cluster's server_tls and server_tls_ca say (libpq's
// sslmode and sslrootcert, so "prefer" falls back to plain text when the
// server has no TLS, and "verify-full" checks the certificate names addr).
func serverConfig(addr string, st config.Settings, extra string) (*pgconn.Config, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	conn := fmt.Sprintf("host=%s port=%s sslmode=%s", quoteConnValue(host), quoteConnValue(port), frontend.ServerTLSMode(st))
	if st.ServerTLSCA != "" {
		conn += " sslrootcert=" + quoteConnValue(st.ServerTLSCA)
	}
	if extra != "" {
		conn += " " + extra
	}
	cfg, err := pgconn.ParseConfig(conn)
	if err != nil {
		return nil, err
	}
	for _, c := range append([]*pgconn.FallbackConfig{{TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...) {
		if c.TLSConfig != nil {
			c.TLSConfig.MinVersion = tls.VersionTLS12
		}
	}
	if !frontend.CleartextAllowed(st) {
		// libpq's require_auth=!password: the password method sends
		// server_password as it is, so anyone who can stand between the
		// proxy and a server that is not verified (prefer falls back to
		// plain text; require takes any certificate) could ask for it.
		// md5 and SCRAM answer a challenge and never reveal it.
		cfg.RequireAuth = "!password"
	}
	return cfg, nil
}

// downgradeError names the setting behind a refused password request, in
// place of pgconn's words for the require_auth check.
func downgradeError(addr string, st config.Settings, err error) error {
	if err == nil || !strings.Contains(err.Error(), "require_auth") {
		return err
	}
	mode := frontend.ServerTLSMode(st)
	return &pgError{Severity: "ERROR", Code: codeInvalidAuthorization,
		Message: fmt.Sprintf("server %s asked for the password in clear text (password authentication) over a connection that is not TLS-verified (server_tls = %q); switchyard refused to send it", addr, mode),
		Hint:    "use scram-sha-256 or md5 on the server, or set server_tls = \"verify-full\" (or \"verify-ca\") for this cluster; to send it anyway, set server_allow_cleartext_password = true",
		cause:   err}
}

// quoteConnValue quotes a value for a libpq keyword/value connection string.
func quoteConnValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// dialServer connects and authenticates with pgconn (SCRAM, md5, trust,
// TLS), then takes the raw connection over so messages can be relayed
// without decoding.
func dialServer(ctx context.Context, addr string, st config.Settings, user, password, database string) (*serverConn, error) {
	cfg, err := serverConfig(addr, st, "")
	if err != nil {
		return nil, err
	}
	cfg.User = user
	cfg.Password = password
	cfg.Database = database
	cfg.RuntimeParams = map[string]string{}
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return rawconn.Wrap(nc), nil
	}
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, downgradeError(addr, st, err)
	}
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, err
	}
	hj, err := pc.Hijack()
	if err != nil {
		return nil, err
	}
	s := newServerConn(hj.Conn, addr)
	s.pid, s.secret = hj.PID, hj.SecretKey
	for k, v := range hj.ParameterStatuses {
		s.params[strings.ToLower(k)] = v
	}
	return s, nil
}

// newServerConn wraps an authenticated (or, for passthrough, about to be)
// connection to the server at addr with the proxy's buffers and books.
func newServerConn(conn net.Conn, addr string) *serverConn {
	br := bufio.NewReaderSize(conn, serverReadBuf)
	return &serverConn{
		conn:    conn,
		br:      br,
		rd:      pgframe.NewReader(br, maxServerMsg),
		bw:      bufio.NewWriterSize(conn, serverWriteBuf),
		addr:    addr,
		params:  make(map[string]string),
		applied: make(map[string]string),
		stmts:   stmtCache{max: maxPreparedPerConn},
	}
}

func (s *serverConn) Close() error {
	// Terminate tells the server to end the session cleanly instead of
	// logging an unexpected EOF.
	_ = s.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = s.conn.Write([]byte{'X', 0, 0, 0, 4})
	return s.conn.Close()
}

// alive is the cheap check before a lease: an idle server connection must
// have nothing to say. A byte waiting (a FATAL from a restarting server) or
// EOF means it is dead. It costs one non-blocking recvfrom(2); a Go Read
// with an expired deadline would not even try to read.
func (s *serverConn) alive() bool {
	return s.br.Buffered() == 0 && s.probe.Peek(s.conn) == frontend.Quiet
}

// ping is the health check of a connection idle for long: Sync asks for a
// ReadyForQuery and nothing else.
func (s *serverConn) ping(ctx context.Context) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	_ = s.conn.SetDeadline(deadline)
	defer s.conn.SetDeadline(time.Time{})
	if _, err := s.bw.Write([]byte{'S', 0, 0, 0, 4}); err != nil {
		return err
	}
	if err := s.bw.Flush(); err != nil {
		return err
	}
	for {
		typ, raw, err := s.rd.Next()
		if err != nil {
			return err
		}
		switch typ {
		case 'Z':
			if raw[5] != 'I' {
				return fmt.Errorf("server connection in transaction state %q while idle", raw[5])
			}
			return nil
		case 'S':
			s.noteParameter(raw[5:])
		case 'N':
		default:
			return fmt.Errorf("unexpected message %q from idle server connection", typ)
		}
	}
}

// noteParameter records a ParameterStatus body.
func (s *serverConn) noteParameter(body []byte) {
	var ps pgproto3.ParameterStatus
	if ps.Decode(body) == nil {
		s.params[strings.ToLower(ps.Name)] = ps.Value
	}
}

// exec runs SQL the proxy itself needs (parameter sync, cleanup) and
// swallows the replies; the first server error is returned as a *pgError.
func (s *serverConn) exec(sql string, timeout time.Duration) error {
	_ = s.conn.SetDeadline(time.Now().Add(timeout))
	defer s.conn.SetDeadline(time.Time{})
	buf, _ := (&pgproto3.Query{String: sql}).Encode(nil)
	if _, err := s.bw.Write(buf); err != nil {
		return err
	}
	if err := s.bw.Flush(); err != nil {
		return err
	}
	var first error
	for {
		typ, raw, err := s.rd.Next()
		if err != nil {
			return err
		}
		switch typ {
		case 'Z':
			return first
		case 'S':
			s.noteParameter(raw[5:])
		case 'E':
			if first == nil {
				first = serverError(raw[5:])
			}
		}
	}
}

// serverError turns an ErrorResponse body into a *pgError that keeps the
// server's SQLSTATE and words.
func serverError(body []byte) error {
	var er pgproto3.ErrorResponse
	if err := er.Decode(body); err != nil {
		return newError(codeProtocolViolation, "malformed error from server: %v", err)
	}
	sev := er.Severity
	if sev == "" {
		sev = "ERROR"
	}
	return &pgError{Severity: sev, Code: er.Code, Message: er.Message, Detail: er.Detail, Hint: er.Hint}
}

// cancel asks the server to cancel whatever this connection runs, over a
// connection of its own as the protocol requires.
func (s *serverConn) cancel(timeout time.Duration) error {
	return sendCancel(s.addr, cancelReqCode, s.pid, s.secret, timeout)
}

// sendCancel sends one CancelRequest (code: cancelReqCode, or
// peerCancelCode toward a peer) and waits for the other end to close.
func sendCancel(addr string, code, pid uint32, secret []byte, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	msg := make([]byte, 12, 12+len(secret))
	binary.BigEndian.PutUint32(msg[0:], uint32(12+len(secret)))
	binary.BigEndian.PutUint32(msg[4:], code)
	binary.BigEndian.PutUint32(msg[8:], pid)
	msg = append(msg, secret...)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	// The postmaster (or the peer) closes the connection once the backend
	// is signalled; waiting for that closes the race with the next lease.
	var b [1]byte
	_, _ = c.Read(b[:])
	return nil
}
