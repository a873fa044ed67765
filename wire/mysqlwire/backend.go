package mysqlwire

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/rawconn"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// backend is one authenticated connection to a MySQL or MariaDB server. It
// is used by one session at a time, between pool.Get and pool.Put; Close
// may be called concurrently (the pool drains with it).
type backend struct {
	// deadline is the bound withDeadline set for housekeeping in progress
	// (zero: none). Whatever else sets a deadline on nc (a query of the
	// proxy's own, a re-opened socket) puts this one back afterwards, so
	// a silent server cannot hold a lease open past it.
	deadline time.Time
	nc       net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	addr     string
	version  string // the server's version string, from its handshake
	threadID uint32 // the server's connection id, for KILL
	caps     uint32 // negotiated with the server
	// tracking: the server reports session state changes
	// (SERVER_SESSION_STATE_CHANGED) on this connection (tracking.go).
	tracking bool
	status   uint16 // from the last OK/EOF
	// home is the status after login: what a clean session looks like
	// (autocommit on, unless the server's global default says off).
	home uint16

	// What this connection's session carries, so a lease can tell whether
	// it must reset and replay before serving a client.
	db string // current database on the server
	// dbLost: the server may be in another database than db (a USE the
	// proxy could not follow: prepared, or in a multi-statement query that
	// failed after it); the next lease switches to its own.
	dbLost  bool
	setsSig string // the SET statements replayed here, joined

	// stmts are the server-side prepared statements here, by query text
	// and the database they were prepared in (stmtKey), all prepared
	// under the settings in place (setsSig, collation; dropStmts).
	stmts map[stmtKey]*srvStmt

	tls     bool                // the connection is encrypted
	tlsConf *frontend.ServerTLS // what it was dialed with: side connections (KILL) use it too

	// broken: the stream is out of sync or the socket failed; never reuse.
	broken bool
	probe  frontend.Prober // alive's look at the socket
	// dirty: a session left state we do not describe (pinned session,
	// client gone); reset before the next lease.
	dirty bool

	buf []byte // scratch for packets read whole

	// What the connection was opened with that a session cannot change
	// (see session.sync): a client whose differ gets it re-opened.
	fixed    uint32 // the client capabilities of fixedCaps
	attrsSig string // the connection attributes sent, as connSpec.attrsSig
	dp       dialParams
	// Per session, set by the proxy: CLIENT_MULTI_STATEMENTS (by
	// COM_SET_OPTION) and the collation (the handshake's, or SET NAMES).
	multi     bool
	collation uint8

	closeMu *sync.Mutex // Close against takeOver
	closed  bool
}

type srvStmt struct {
	id      uint32
	params  uint16
	columns uint16
}

// maxStmtsPerConn bounds server-side statements per connection; beyond it
// the oldest go (MariaDB's max_prepared_stmt_count is global, 16382).
const maxStmtsPerConn = 256

// Close closes the socket. Safe to call concurrently with use.
func (b *backend) Close() error {
	if b.closeMu == nil {
		return b.nc.Close()
	}
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	b.closed = true
	return b.nc.Close()
}

// takeOver makes b the connection nb is (a pooled connection re-opened in
// its pool slot with other handshake parameters) and closes b's old one.
// A Close that came first (a pool drain) wins: nb is closed too.
func (b *backend) takeOver(nb *backend) error {
	mu := b.closeMu
	mu.Lock()
	if b.closed {
		mu.Unlock()
		nb.Close()
		return errors.New("server connection closed while it was re-opened")
	}
	old, dl := b.nc, b.deadline
	*b = *nb
	b.closeMu = mu
	b.deadline = dl
	_ = b.nc.SetDeadline(dl) // housekeeping in progress stays bounded
	mu.Unlock()
	_ = old.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = old.Write([]byte{1, 0, 0, 0, mysqlproto.ComQuit}) // best effort: the server logs no aborted connection
	return old.Close()
}

// dialParams describe the connection a pool opens.
type dialParams struct {
	addr      string
	user      string
	password  string
	db        string
	caps      uint32 // mirrored client capabilities (mirrorCaps bits)
	collation uint8
	attrs     map[string]string   // connection attributes (CLIENT_CONNECT_ATTRS)
	attrsSig  string              // attrs, canonical (connSpec.attrsSig)
	plugin    string              // preferred auth plugin (tests); "" follows the server
	noTrack   bool                // tests, a client of the proxy: no CLIENT_SESSION_TRACK unless caps has it, no tracking SET
	tls       *frontend.ServerTLS // nil: no TLS
}

// dialBackend connects and authenticates. Any panic while parsing what the
// server sent is turned into an error: a malformed handshake must not take
// the proxy down.
func dialBackend(ctx context.Context, p dialParams) (*backend, error) {
	b, err := dialBackendOnce(ctx, p)
	if err != nil && errors.Is(err, errTLSHandshake) && p.tls != nil && p.tls.Mode == config.TLSPrefer && ctx.Err() == nil {
		// prefer, as libpq's: a server whose TLS we cannot speak is used
		// without it.
		p.tls = p.tls.Plain()
		return dialBackendOnce(ctx, p)
	}
	return b, err
}

// errTLSHandshake marks a failed TLS handshake with a server.
var errTLSHandshake = errors.New("TLS handshake failed")

func dialBackendOnce(ctx context.Context, p dialParams) (b *backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("connecting to %s: malformed server reply: %v", p.addr, r)
			if b != nil {
				b.nc.Close()
				b = nil
			}
		}
	}()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	nc = rawconn.Wrap(nc)
	b = &backend{
		nc:        nc,
		br:        bufio.NewReaderSize(nc, 64<<10),
		bw:        bufio.NewWriterSize(nc, 16<<10),
		addr:      p.addr,
		db:        p.db,
		tlsConf:   p.tls,
		fixed:     p.caps & fixedCaps,
		multi:     p.caps&mysqlproto.CapMultiStatements != 0,
		collation: p.collation,
		attrsSig:  p.attrsSig,
		dp:        p,
		closeMu:   new(sync.Mutex),
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	err = b.authenticate(p)
	if err == nil {
		err = b.trackState()
	}
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connecting to %s: %w", p.addr, ctx.Err())
		}
		return nil, err
	}
	if !stop() {
		nc.Close()
		return nil, fmt.Errorf("connecting to %s: %w", p.addr, ctx.Err())
	}
	_ = nc.SetDeadline(time.Time{})
	return b, nil
}

func (b *backend) readPacket() ([]byte, uint8, error) {
	p, seq, err := mysqlproto.ReadPacket(b.br, b.buf[:0], mysqlproto.MaxChunk*4)
	b.buf = p
	return p, seq, err
}

func (b *backend) writePacket(seq uint8, payload []byte) (uint8, error) {
	seq, err := mysqlproto.WritePacket(b.bw, seq, payload)
	if err == nil {
		err = b.bw.Flush()
	}
	return seq, err
}

func (b *backend) authenticate(p dialParams) error {
	pkt, _, err := b.readPacket()
	if err != nil {
		return fmt.Errorf("reading handshake from %s: %w", p.addr, err)
	}
	if len(pkt) > 0 && pkt[0] == mysqlproto.HeaderERR {
		e, _ := mysqlproto.DecodeERR(pkt)
		return &mysqlproto.ServerError{Code: e.Code, State: e.State, Message: e.Message}
	}
	var hs mysqlproto.Handshake
	if err := hs.Decode(pkt); err != nil {
		return fmt.Errorf("handshake from %s: %w", p.addr, err)
	}
	if hs.Capabilities&mysqlproto.CapProtocol41 == 0 {
		return fmt.Errorf("server %s does not speak protocol 4.1", p.addr)
	}
	want := mysqlproto.CapLongPassword | mysqlproto.CapLongFlag | mysqlproto.CapProtocol41 | mysqlproto.CapTransactions |
		mysqlproto.CapSecureConnection | mysqlproto.CapPluginAuth | mysqlproto.CapPluginAuthLenenc | p.caps
	if p.db != "" {
		want |= mysqlproto.CapConnectWithDB
	}
	if missing := p.caps &^ hs.Capabilities; missing != 0 {
		return fmt.Errorf("server %s lacks capabilities %#x that the client negotiated", p.addr, missing)
	}
	if len(p.attrs) > 0 && hs.Capabilities&mysqlproto.CapConnectAttrs != 0 {
		want |= mysqlproto.CapConnectAttrs
	}
	// Whatever the client negotiated: the relay reads state changes the
	// SQL text does not show (tracking.go), and strips them from OK
	// packets for a client without CLIENT_SESSION_TRACK.
	if !p.noTrack {
		want |= mysqlproto.CapSessionTrack
	}
	b.caps = want & hs.Capabilities
	b.threadID = hs.ConnectionID
	b.version = hs.ServerVersion
	seq := uint8(1)
	if p.tls != nil && p.tls.Err != nil {
		return fmt.Errorf("TLS toward %s: %w", p.addr, p.tls.Err)
	}
	if p.tls != nil && p.tls.Conf != nil && hs.Capabilities&mysqlproto.CapSSL != 0 {
		// SSLRequest: the first part of the handshake response, then the
		// TLS handshake, then the whole response over TLS.
		b.caps |= mysqlproto.CapSSL
		req := mysqlproto.HandshakeResponse{Capabilities: b.caps, MaxPacket: mysqlproto.MaxChunk, Collation: p.collation, SSLRequest: true}
		if _, err := b.writePacket(seq, req.Encode(nil)); err != nil {
			return err
		}
		seq++
		tc := tls.Client(b.nc, p.tls.Conf)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("%w with %s: %w", errTLSHandshake, p.addr, err)
		}
		b.nc = tc
		b.br.Reset(tc)
		b.bw.Reset(tc)
		b.tls = true
	} else if p.tls.Required() {
		return fmt.Errorf("server %s does not offer TLS, and server_tls = %q requires it", p.addr, p.tls.Mode)
	}
	scramble := append([]byte(nil), hs.Scramble...)
	plugin := hs.AuthPlugin
	if plugin == "" {
		plugin = mysqlproto.PluginNative
	}
	if plugin != mysqlproto.PluginNative && plugin != mysqlproto.PluginCachingSHA2 {
		// Answer with native; the server switches us if it must.
		plugin = mysqlproto.PluginNative
	}
	if _, pass := passHash(p.password); pass {
		plugin = mysqlproto.PluginNative // all a passthrough user can answer
	}
	if p.plugin != "" {
		plugin = p.plugin
	}
	if plugin == mysqlproto.PluginClearText && !p.tls.SendPlain(b.tls) {
		return b.refuseCleartext(p)
	}
	auth, err := scrambleFor(plugin, scramble, p.password)
	if err != nil {
		return err
	}
	resp := mysqlproto.HandshakeResponse{
		Capabilities: b.caps,
		MaxPacket:    mysqlproto.MaxChunk,
		Collation:    p.collation,
		User:         p.user,
		AuthResponse: auth,
		Database:     p.db,
		AuthPlugin:   plugin,
		Attributes:   p.attrs,
	}
	if _, err := b.writePacket(seq, resp.Encode(nil)); err != nil {
		return err
	}
	askedKey := false // the server's public key was asked for
	for round := 0; round < 8; round++ {
		pkt, s, err := b.readPacket()
		if err != nil {
			return fmt.Errorf("authenticating to %s: %w", p.addr, err)
		}
		seq := s + 1
		if len(pkt) == 0 {
			return fmt.Errorf("authenticating to %s: empty packet", p.addr)
		}
		switch pkt[0] {
		case mysqlproto.HeaderOK:
			ok, err := mysqlproto.DecodeOK(pkt, b.caps)
			if err != nil {
				return err
			}
			b.status = ok.Status
			b.home = ok.Status & mysqlproto.StatusAutocommit
			return nil
		case mysqlproto.HeaderERR:
			e, _ := mysqlproto.DecodeERR(pkt)
			return &mysqlproto.ServerError{Code: e.Code, State: e.State, Message: e.Message}
		case mysqlproto.HeaderEOF: // auth switch request
			r := mysqlproto.NewReader(pkt[1:])
			name := string(r.NulStringOrEOF())
			data := r.Rest()
			if len(data) > 0 && data[len(data)-1] == 0 {
				data = data[:len(data)-1]
			}
			if name == "" {
				return fmt.Errorf("server %s asks for the old (pre-4.1) password scheme", p.addr)
			}
			plugin, scramble = name, append([]byte(nil), data...)
			if plugin == mysqlproto.PluginClearText && !p.tls.SendPlain(b.tls) {
				return b.refuseCleartext(p)
			}
			auth, err := scrambleFor(plugin, scramble, p.password)
			if err != nil {
				return err
			}
			if _, err = b.writePacket(seq, auth); err != nil {
				return err
			}
		case mysqlproto.HeaderAuthMore:
			data := pkt[1:]
			if plugin != mysqlproto.PluginCachingSHA2 {
				return fmt.Errorf("server %s sent unexpected auth data for %s", p.addr, plugin)
			}
			switch {
			case len(data) == 1 && data[0] == 3: // fast auth succeeded; OK follows
			case len(data) == 1 && data[0] == 4 && b.tls: // full authentication over TLS
				// The server takes the password as it is here; whoever
				// holds the TLS session reads it.
				if !p.tls.SendPlain(b.tls) {
					return b.refuseFullAuth(p)
				}
				if _, err = b.writePacket(seq, append([]byte(p.password), 0)); err != nil {
					return err
				}
			case len(data) == 1 && data[0] == 4 && p.tls != nil && p.tls.PubKey != nil:
				// Full authentication in the clear, to the pinned key.
				enc, err := mysqlproto.RSAEncryptPasswordKey(p.tls.PubKey, scramble, p.password)
				if err != nil {
					return fmt.Errorf("caching_sha2_password full authentication to %s: %w", p.addr, err)
				}
				if _, err = b.writePacket(seq, enc); err != nil {
					return err
				}
			case len(data) == 1 && data[0] == 4: // full authentication in the clear
				// The server would send the key to encrypt the password
				// with, and a key from an unverified peer is the
				// attacker's as likely as the server's.
				if !p.tls.SendPlain(b.tls) {
					return b.refuseFullAuth(p)
				}
				if _, err = b.writePacket(seq, []byte{2}); err != nil {
					return err
				}
				askedKey = true
			case !askedKey:
				return fmt.Errorf("server %s sent auth data nobody asked for", p.addr)
			default: // the public key
				askedKey = false
				enc, err := rsaEncryptPassword(data, scramble, p.password)
				if err != nil {
					return fmt.Errorf("caching_sha2_password full authentication to %s: %w", p.addr, err)
				}
				if _, err = b.writePacket(seq, enc); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("authenticating to %s: unexpected packet %#x", p.addr, pkt[0])
		}
	}
	return fmt.Errorf("authenticating to %s: too many rounds", p.addr)
}

// refuseCleartext is the error for a server that asks for
// mysql_clear_password over a connection whose server is not verified.
// The number is the client library's for a plugin that refused
// (CR_AUTH_PLUGIN_ERR), as a mysql client connected directly says it.
func (b *backend) refuseCleartext(p dialParams) error {
	return mysqlproto.NewSQLError(mysqlproto.CRAuthPluginErr, "HY000",
		"Authentication plugin 'mysql_clear_password' reported error: server %s asked for the password in clear text over a connection that is not TLS-verified (server_tls = %q); switchyard refused to send it. Set server_tls = \"verify-full\" (or \"verify-ca\") for this cluster or, to send it anyway, server_allow_cleartext_password = true",
		p.addr, p.tls.ModeName())
}

// refuseFullAuth is the error for caching_sha2_password's full
// authentication that would hand the password to an unverified peer.
func (b *backend) refuseFullAuth(p dialParams) error {
	if b.tls {
		return mysqlproto.NewSQLError(mysqlproto.CRAuthPluginErr, "HY000",
			"Authentication plugin 'caching_sha2_password' reported error: server %s needs the password itself (full authentication) over TLS whose certificate is not verified (server_tls = %q); switchyard refused to send it. Set server_tls = \"verify-full\" (or \"verify-ca\") for this cluster or, to send it anyway, server_allow_cleartext_password = true",
			p.addr, p.tls.ModeName())
	}
	return mysqlproto.NewSQLError(mysqlproto.CRAuthPluginErr, "HY000",
		"Authentication plugin 'caching_sha2_password' reported error: server %s needs full authentication over a connection without TLS (server_tls = %q), and switchyard does not encrypt the password to a public key the server sends. Set server_public_key_path to the server's public key, or server_tls = \"verify-full\" (or \"verify-ca\"), or, to trust the key the server sends, server_allow_cleartext_password = true",
		p.addr, p.tls.ModeName())
}

// roundTrip sends a command whose answer is a single OK or ERR packet
// (COM_INIT_DB, COM_RESET_CONNECTION, COM_PING, a SET statement) and reads
// it. An ERR comes back as *mysqlproto.ServerError with the connection still usable.
func (b *backend) roundTrip(payload []byte) error {
	if _, err := b.writePacket(0, payload); err != nil {
		b.broken = true
		return err
	}
	return b.answer()
}

// answer reads the OK or ERR of a command roundTrip (or reset) sent.
func (b *backend) answer() error {
	pkt, _, err := b.readPacket()
	if err != nil {
		b.broken = true
		return err
	}
	switch {
	case len(pkt) > 0 && pkt[0] == mysqlproto.HeaderERR:
		e, _ := mysqlproto.DecodeERR(pkt)
		return &mysqlproto.ServerError{Code: e.Code, State: e.State, Message: e.Message}
	case len(pkt) > 0 && (pkt[0] == mysqlproto.HeaderOK || pkt[0] == mysqlproto.HeaderEOF):
		st, ok := mysqlproto.StatusOf(pkt, b.caps)
		if !ok {
			b.broken = true
			return mysqlproto.ErrMalformed
		}
		b.status = st
		return nil
	}
	// A result set where none was expected: the stream is out of step.
	b.broken = true
	return errors.New("unexpected result set from server")
}

// reset returns the server session to its just-connected state:
// COM_RESET_CONNECTION rolls back, drops temporary tables, releases locks
// (LOCK TABLES, GET_LOCK), user variables and prepared statements, and
// reverts session variables (autocommit among them). The current database
// stays. The server's answer must prove it: no transaction open and
// autocommit as at login; otherwise the connection is broken (closed, never
// handed on).
func (b *backend) reset() error {
	if err := b.resetAndTrack(); err != nil {
		return err
	}
	if !b.clean() {
		b.broken = true
		return fmt.Errorf("%s: COM_RESET_CONNECTION left status %#x (transaction open or autocommit changed)", b.addr, b.status)
	}
	b.setsSig = ""
	b.stmts = nil
	b.dirty = false
	b.collation = b.dp.collation // the handshake's again
	return nil
}

// clean says whether the last status the server sent describes a session
// with no transaction open and autocommit as it was at login.
func (b *backend) clean() bool {
	return b.status&mysqlproto.StatusInTrans == 0 && b.status&mysqlproto.StatusAutocommit == b.home
}

// withDeadline bounds housekeeping I/O (reset, replay) that no client
// waits on with its own timeout.
func (b *backend) withDeadline(d time.Duration, f func() error) error {
	b.deadline = time.Now().Add(d)
	_ = b.nc.SetDeadline(b.deadline)
	err := f()
	b.deadline = time.Time{}
	_ = b.nc.SetDeadline(time.Time{})
	return err
}

func (b *backend) ping(ctx context.Context) error {
	dl := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = b.nc.SetDeadline(dl)
	err := b.roundTrip([]byte{mysqlproto.ComPing})
	_ = b.nc.SetDeadline(time.Time{})
	return err
}

// dropStmts closes every server statement here. The server parsed them
// under the session's settings of the moment (sql_mode, character set);
// called when those change without a reset, so that the statements kept
// are always those of the settings in place.
func (b *backend) dropStmts() {
	for k := range b.stmts {
		b.closeStmt(k)
	}
}

// closeStmt drops a server statement; COM_STMT_CLOSE has no response.
func (b *backend) closeStmt(k stmtKey) {
	st := b.stmts[k]
	if st == nil {
		return
	}
	delete(b.stmts, k)
	var p [5]byte
	p[0] = mysqlproto.ComStmtClose
	putUint32(p[1:], st.id)
	if _, err := mysqlproto.WritePacket(b.bw, 0, p[:]); err != nil {
		b.broken = true
	}
	// Flushed with the next command.
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// queryValue runs q, a query that returns one row of one column, and
// returns that value as text (ok false for NULL or no row). It is for the
// proxy's own connections (the lag monitor's), not for client traffic. An
// error other than *mysqlproto.ServerError leaves the connection broken.
func (b *backend) queryValue(ctx context.Context, q string) (val string, ok bool, err error) {
	return b.queryColumn(ctx, q, 0)
}

// queryColumn is queryValue for column col of the first row.
func (b *backend) queryColumn(ctx context.Context, q string, col int) (val string, ok bool, err error) {
	dl := time.Now().Add(5 * time.Second)
	if d, has := ctx.Deadline(); has && d.Before(dl) {
		dl = d
	}
	if !b.deadline.IsZero() && b.deadline.Before(dl) {
		dl = b.deadline
	}
	_ = b.nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = b.nc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if stop() {
			_ = b.nc.SetDeadline(b.deadline) // the caller's bound, if any
		}
		if err != nil {
			var se *mysqlproto.ServerError
			if !errors.As(err, &se) {
				b.broken = true
			}
		}
	}()
	if _, err := b.writePacket(0, append([]byte{mysqlproto.ComQuery}, q...)); err != nil {
		return "", false, err
	}
	val, ok, err = b.readColumn(col)
	if errors.Is(err, errNoResultSet) {
		err = fmt.Errorf("%s: %q returned no result set", b.addr, q)
	}
	return val, ok, err
}

// errNoResultSet: an OK where readColumn wanted a result set.
var errNoResultSet = fmt.Errorf("%w: no result set", mysqlproto.ErrMalformed)

// readColumn reads a text result set and returns column col of its first
// row (ok false: no row, or NULL), keeping the status of its terminator.
func (b *backend) readColumn(col int) (val string, ok bool, err error) {
	p, _, err := b.readPacket()
	if err != nil {
		return "", false, err
	}
	switch {
	case len(p) == 0:
		return "", false, mysqlproto.ErrMalformed
	case p[0] == mysqlproto.HeaderERR:
		e, _ := mysqlproto.DecodeERR(p)
		return "", false, &mysqlproto.ServerError{Code: e.Code, State: e.State, Message: e.Message}
	case p[0] == mysqlproto.HeaderOK:
		return "", false, errNoResultSet
	}
	r := mysqlproto.NewReader(p)
	cols, _ := r.LenEnc()
	if r.Err() != nil || cols == 0 {
		return "", false, mysqlproto.ErrMalformed
	}
	deof := b.caps&mysqlproto.CapDeprecateEOF != 0
	skip := int(cols)
	if !deof {
		skip++ // the EOF after the column definitions
	}
	for i := 0; i < skip; i++ {
		if _, _, err := b.readPacket(); err != nil {
			return "", false, err
		}
	}
	first := true
	for {
		p, _, err := b.readPacket()
		if err != nil {
			return "", false, err
		}
		if len(p) == 0 {
			return "", false, mysqlproto.ErrMalformed
		}
		if mysqlproto.IsTerminator(p[0], len(p), deof) {
			if st, good := mysqlproto.StatusOf(p, b.caps); good {
				b.status = st
			}
			return val, ok, nil
		}
		if p[0] == mysqlproto.HeaderERR {
			e, _ := mysqlproto.DecodeERR(p)
			return "", false, &mysqlproto.ServerError{Code: e.Code, State: e.State, Message: e.Message}
		}
		if first {
			first = false
			r := mysqlproto.NewReader(p)
			for i := 0; i < col && r.Err() == nil; i++ {
				if r.SkipNull() {
					continue
				}
				r.LenEncBytes()
			}
			if r.Err() != nil || r.Len() == 0 {
				return "", false, mysqlproto.ErrMalformed
			}
			if r.SkipNull() {
				continue
			}
			v := r.LenEncBytes()
			if r.Err() != nil {
				return "", false, mysqlproto.ErrMalformed
			}
			val, ok = string(v), true
		}
	}
}
