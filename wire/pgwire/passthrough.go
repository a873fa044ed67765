package pgwire

// Passthrough authentication (PgBouncer's auth_user and auth_query): a
// client whose user is not in [[users]] logs in to a cluster that sets
// auth_user with the password it has on the servers. The proxy looks the
// user's verifier up on the cluster's primary (auth_query, run as
// auth_user), checks the client against it, and logs in to the servers
// as that user without ever knowing the password:
//
//   - SCRAM-SHA-256: the client's proof of the exchange with the proxy
//     gives its ClientKey (proof XOR HMAC(StoredKey, AuthMessage)), checked
//     against the verifier's StoredKey. With ClientKey and the verifier the
//     proxy answers the server's SCRAM challenge itself, as PgBouncer does
//     (its "SCRAM pass-through"); the server-final signature is checked with
//     the verifier's ServerKey. This needs the salt and iteration count of
//     the server's verifier to be the ones auth_query returned: the same
//     role on every node of the cluster (replicas replay it).
//   - md5: the stored "md5"+md5(password+user) answers the server's salted
//     challenge as the password would.
//
// The server connections of such a user dial with the keys of the latest
// client that logged in as that user, so a pool never needs a password.

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/authcache"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/rawconn"
	"github.com/switchyard/switchyard/wire/pgauth"
)

// passthrough is the Server's state for auth_query users.
type passthrough struct {
	cache  authcache.Cache
	mu     sync.Mutex
	users  map[string]*passUser // by cluster name + "\x00" + user name
	byUser map[*config.User]*passUser
}

// passUser is one user logged in by passthrough on one cluster. user is
// the stand-in *config.User the sessions and pools use; it never changes,
// so pools keep their key.
type passUser struct {
	user *config.User
	mu   sync.Mutex
	cred passCred
}

// passCred is what the proxy can log in with instead of a password.
type passCred struct {
	md5  string            // "md5" + hex(md5(password + user)); "" unknown
	keys *pgauth.SCRAMKeys // nil: unknown
}

func (pu *passUser) current() passCred {
	pu.mu.Lock()
	defer pu.mu.Unlock()
	return pu.cred
}

// of returns the passthrough user behind u, or nil for a [[users]] user.
func (p *passthrough) of(u *config.User) *passUser {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byUser[u]
}

// userFor returns the passthrough user name of cluster cl, creating it.
func (p *passthrough) userFor(cl, name string) *passUser {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := cl + "\x00" + name
	if pu := p.users[k]; pu != nil {
		return pu
	}
	if p.users == nil {
		p.users = make(map[string]*passUser)
		p.byUser = make(map[*config.User]*passUser)
	}
	pu := &passUser{user: &config.User{Name: name, ServerUser: name, Auth: config.AuthSCRAM}}
	p.users[k] = pu
	p.byUser[pu.user] = pu
	return pu
}

// lookupVerifier returns the password verifier of user name on cluster
// cl, from the cache or by running auth_query on the primary as
// auth_user. "" with a nil error: no such user (or no password).
func (s *Server) lookupVerifier(cfg *config.Config, cl *config.Cluster, name string) (string, error) {
	return s.pass.cache.Lookup("postgres", cl, name, func() (string, error) { return s.runAuthQuery(cfg, cl, name) })
}

// runAuthQuery runs auth_query for name on the cluster's primary (the
// first shard's for a sharded cluster) over a connection of its own.
func (s *Server) runAuthQuery(cfg *config.Config, cl *config.Cluster, name string) (string, error) {
	st := cl.Settings
	au, n, timeout, err := frontend.AuthQueryTarget(cfg, cl)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pcfg, err := serverConfig(n.Addr, st, "application_name=switchyard_auth_query")
	if err != nil {
		return "", err
	}
	pcfg.User, pcfg.Password = au.ServerCreds()
	pcfg.Database = n.DB
	pc, err := pgconn.ConnectConfig(ctx, pcfg)
	if err != nil {
		return "", downgradeError(n.Addr, st, err)
	}
	defer pc.Close(context.Background())
	r := pc.ExecParams(ctx, st.AuthQuery, [][]byte{[]byte(name)}, nil, nil, nil).Read()
	if r.Err != nil {
		return "", r.Err
	}
	if len(r.Rows) == 0 {
		return "", nil
	}
	if len(r.Rows[0]) < 2 {
		return "", fmt.Errorf("auth_query returned %d columns; it must return the user name and the password verifier", len(r.Rows[0]))
	}
	v := string(r.Rows[0][1])
	if r.Rows[0][1] == nil || v == "" {
		return "", nil // a role without a password cannot log in with one
	}
	switch config.KindOfPassword(v) {
	case config.PasswordSCRAM:
		if _, err := pgauth.ParseSCRAMVerifier(v); err != nil {
			return "", fmt.Errorf("auth_query returned a malformed SCRAM verifier for %q", name)
		}
	case config.PasswordMD5:
	default:
		return "", fmt.Errorf("auth_query returned a password for %q that is neither a SCRAM-SHA-256 nor an md5 verifier", name)
	}
	return v, nil
}

// passLogin checks a client of a user that is not in [[users]] against
// the verifier auth_query returns, and on success records what the
// proxy needs to log in to the servers as that user. It returns the
// stand-in user, or an error as authenticate does.
func (c *clientConn) passLogin(cfg *config.Config, cl *config.Cluster, name string) (*config.User, error) {
	v, err := c.srv.lookupVerifier(cfg, cl, name)
	if err != nil {
		c.log.Warn("auth_query failed", "cluster", cl.Name, "auth_user", cl.Settings.AuthUser, "err", err)
		// Said without the server's words: the client is not logged in.
		return nil, newFatal(codeConnectionFailure, "could not look up user %q (auth_query failed; see the proxy's log)", name)
	}
	if v == "" {
		return nil, c.authenticate(nil, name) // fails as for any unknown user
	}
	tmp := &config.User{Name: name, Password: v, Auth: config.AuthSCRAM}
	if config.KindOfPassword(v) == config.PasswordMD5 {
		tmp.Auth = config.AuthMD5
	}
	cr, err := c.srv.creds.Get(tmp)
	if err != nil {
		return nil, newFatal(codeInternalError, "credentials of user %q: %v", name, err)
	}
	c.clientKey, c.wantClientKey = nil, true
	err = c.checkPassword(tmp.Auth, cr, name)
	c.wantClientKey = false
	if err != nil {
		return nil, err
	}
	pu := c.srv.pass.userFor(cl.Name, name)
	pu.mu.Lock()
	if tmp.Auth == config.AuthMD5 {
		pu.cred = passCred{md5: v}
	} else if c.clientKey != nil {
		pu.cred = passCred{keys: &pgauth.SCRAMKeys{Salt: cr.SCRAM.Salt, Iters: cr.SCRAM.Iters,
			ClientKey: c.clientKey, StoredKey: cr.SCRAM.StoredKey, ServerKey: cr.SCRAM.ServerKey}}
	}
	pu.mu.Unlock()
	c.clientKey = nil
	return pu.user, nil
}

// dialServerPass connects and logs in as user with cred instead of a
// password: the startup pgconn does for the others, with the TLS modes of
// serverConfig (prefer tries TLS, then plain text).
func dialServerPass(ctx context.Context, addr string, st config.Settings, user string, cred passCred, database string) (*serverConn, error) {
	cfg, err := serverConfig(addr, st, "")
	if err != nil {
		return nil, err
	}
	attempts := []*tls.Config{cfg.TLSConfig}
	for _, f := range cfg.Fallbacks {
		attempts = append(attempts, f.TLSConfig)
	}
	var first error
	for _, tc := range attempts {
		sc, retry, err := dialServerPassOnce(ctx, addr, tc, user, cred, database)
		if err == nil {
			return sc, nil
		}
		if first == nil {
			first = err
		}
		if !retry || ctx.Err() != nil {
			return nil, err
		}
	}
	return nil, first
}

// errPassNoTLS: the server refused TLS; prefer goes on without it.
var errPassNoTLS = errors.New("server refused TLS connection")

func dialServerPassOnce(ctx context.Context, addr string, tc *tls.Config, user string, cred passCred, database string) (sc *serverConn, retry bool, err error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	nc = rawconn.Wrap(nc)
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() && err == nil {
			err = ctx.Err()
		}
		if err != nil {
			nc.Close()
			sc = nil
			return
		}
		_ = nc.SetDeadline(time.Time{})
	}()
	var conn net.Conn = nc
	if tc != nil {
		var req [8]byte
		binary.BigEndian.PutUint32(req[0:], 8)
		binary.BigEndian.PutUint32(req[4:], 80877103)
		if _, err := nc.Write(req[:]); err != nil {
			return nil, false, err
		}
		var b [1]byte
		if _, err := nc.Read(b[:]); err != nil {
			return nil, false, err
		}
		if b[0] != 'S' {
			return nil, true, fmt.Errorf("%s: %w", addr, errPassNoTLS)
		}
		tconn := tls.Client(nc, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			return nil, true, fmt.Errorf("TLS with %s: %w", addr, err)
		}
		conn = tconn
	}
	s := newServerConn(conn, addr)
	rd, bw := s.rd, s.bw
	send := func(m pgproto3.FrontendMessage) error {
		buf, err := m.Encode(nil)
		if err != nil {
			return err
		}
		if _, err := bw.Write(buf); err != nil {
			return err
		}
		return bw.Flush()
	}
	if err := send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": user, "database": database}}); err != nil {
		return nil, false, err
	}
	var sasl *pgauth.SCRAMClient
	authed := false
	for {
		typ, raw, err := rd.Next()
		if err != nil {
			return nil, false, fmt.Errorf("logging in to %s: %w", addr, err)
		}
		body := raw[5:]
		switch typ {
		case 'R':
			if len(body) < 4 {
				return nil, false, fmt.Errorf("%s: malformed authentication request", addr)
			}
			switch kind := binary.BigEndian.Uint32(body); kind {
			case pgproto3.AuthTypeOk:
				authed = true
			case pgproto3.AuthTypeMD5Password:
				if cred.md5 == "" || len(body) < 8 {
					return nil, false, passMethodError(addr, user, "md5", "the client's verifier is SCRAM-SHA-256")
				}
				sum := md5.Sum(append([]byte(cred.md5[3:]), body[4:8]...))
				if err := send(&pgproto3.PasswordMessage{Password: "md5" + hex.EncodeToString(sum[:])}); err != nil {
					return nil, false, err
				}
			case pgproto3.AuthTypeSASL:
				if cred.keys == nil {
					return nil, false, passMethodError(addr, user, "SCRAM-SHA-256", "the client's verifier is md5")
				}
				if !strings.Contains(string(body[4:]), "SCRAM-SHA-256\x00") {
					return nil, false, passMethodError(addr, user, "SASL without SCRAM-SHA-256", "")
				}
				sasl = pgauth.NewSCRAMClient(cred.keys)
				if err := send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte(sasl.First())}); err != nil {
					return nil, false, err
				}
			case pgproto3.AuthTypeSASLContinue:
				if sasl == nil {
					return nil, false, fmt.Errorf("%s: SASL continue without SASL", addr)
				}
				final, err := sasl.Final(string(body[4:]))
				if err != nil {
					return nil, false, fmt.Errorf("SCRAM with %s as %q: %w", addr, user, err)
				}
				if err := send(&pgproto3.SASLResponse{Data: []byte(final)}); err != nil {
					return nil, false, err
				}
			case pgproto3.AuthTypeSASLFinal:
				if sasl == nil || !sasl.Verify(string(body[4:])) {
					return nil, false, fmt.Errorf("SCRAM with %s as %q: the server's signature does not match the verifier auth_query returned", addr, user)
				}
			case pgproto3.AuthTypeCleartextPassword:
				return nil, false, passMethodError(addr, user, "password (clear text)", "")
			default:
				return nil, false, passMethodError(addr, user, "authentication type "+strconv.Itoa(int(kind)), "")
			}
		case 'E':
			return nil, false, serverError(body)
		case 'S':
			s.noteParameter(body)
		case 'K':
			if len(body) < 8 {
				return nil, false, fmt.Errorf("%s: malformed BackendKeyData", addr)
			}
			s.pid = binary.BigEndian.Uint32(body)
			s.secret = append([]byte(nil), body[4:]...)
		case 'Z':
			if !authed {
				return nil, false, fmt.Errorf("%s: ReadyForQuery before AuthenticationOk", addr)
			}
			return s, false, nil
		case 'N', 'v':
		default:
			return nil, false, fmt.Errorf("%s: unexpected message %q during login", addr, typ)
		}
	}
}

// passMethodError says why a passthrough user cannot log in to a server.
func passMethodError(addr, user, method, why string) error {
	msg := fmt.Sprintf("server %s asks user %q (passthrough authentication) for %s, which the proxy cannot answer without the password", addr, user, method)
	if why != "" {
		msg += ": " + why
	}
	return &pgError{Severity: "ERROR", Code: codeInvalidAuthorization, Message: msg,
		Hint: "passthrough works with scram-sha-256 or md5 on the servers, the same verifier auth_query returns; or list the user in [[users]]"}
}
