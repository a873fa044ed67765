package mysqlwire

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/faultnet"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// authServer is a scripted MySQL server that asks for the password in a
// way that would hand it to whoever answers in the server's place:
// "clear" switches to mysql_clear_password, "sha2full" asks for
// caching_sha2_password's full authentication (and sends its RSA key when
// asked). With tls set it offers TLS with a certificate nobody can verify
// unless given the CA; without, it offers none, as an attacker who strips
// TLS would.
type authServer struct {
	ln       net.Listener
	ask      string
	password string
	tls      *tls.Config
	key      *rsa.PrivateKey

	keyAsked  atomic.Int64 // public key requests
	gotPass   atomic.Int64 // logins where the password reached the server
	cleartext sync.Map     // passwords received as they are
}

func newMyAuthServer(t *testing.T, ask, password string, tlsConf *tls.Config) *authServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	a := &authServer{ln: ln, ask: ask, password: password, tls: tlsConf, key: key}
	t.Cleanup(faultnet.Serve(ln, a.serve))
	return a
}

// publicKeyPEM is the server's key as MySQL's public_key.pem holds it.
func (a *authServer) publicKeyPEM(t *testing.T) []byte {
	der, err := x509.MarshalPKIXPublicKey(&a.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func (a *authServer) serve(c net.Conn, id uint32) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	var rw net.Conn = c
	bw := bufio.NewWriter(rw)
	scramble := mysqlproto.NewScramble()
	caps := uint32(proxyCaps)
	if a.tls != nil {
		caps |= mysqlproto.CapSSL
	}
	plugin := mysqlproto.PluginNative
	if a.ask == "sha2full" {
		plugin = mysqlproto.PluginCachingSHA2
	}
	hs := mysqlproto.Handshake{ServerVersion: "8.0.40-scripted", ConnectionID: id, Scramble: scramble,
		Capabilities: caps, Collation: defaultCollation, Status: mysqlproto.StatusAutocommit, AuthPlugin: plugin}
	if _, err := mysqlproto.WritePacket(bw, 0, hs.Encode(nil)); err != nil || bw.Flush() != nil {
		return
	}
	p, seq, err := mysqlproto.ReadPacket(rw, nil, 1<<20)
	if err != nil {
		return
	}
	var resp mysqlproto.HandshakeResponse
	if resp.Decode(p) != nil {
		return
	}
	encrypted := false
	if resp.SSLRequest {
		if a.tls == nil {
			return
		}
		tc := tls.Server(c, a.tls)
		if tc.Handshake() != nil {
			return
		}
		rw, encrypted = tc, true
		bw = bufio.NewWriter(rw)
		if p, seq, err = mysqlproto.ReadPacket(rw, nil, 1<<20); err != nil || resp.Decode(p) != nil {
			return
		}
	}
	send := func(payload []byte) bool {
		seq++
		_, err := mysqlproto.WritePacket(bw, seq, payload)
		return err == nil && bw.Flush() == nil
	}
	recv := func() []byte {
		p, s, err := mysqlproto.ReadPacket(rw, nil, 1<<20)
		if err != nil {
			return nil
		}
		seq = s
		return append([]byte(nil), p...)
	}
	var got string
	switch a.ask {
	case "clear":
		sw := append([]byte{mysqlproto.HeaderEOF}, mysqlproto.PluginClearText...)
		sw = append(sw, 0)
		if !send(sw) {
			return
		}
		p := recv()
		if p == nil {
			return
		}
		got = strings.TrimSuffix(string(p), "\x00")
		a.cleartext.Store(got, true)
	case "sha2full":
		if !send([]byte{mysqlproto.HeaderAuthMore, 4}) {
			return
		}
		p := recv()
		if p == nil {
			return
		}
		if encrypted {
			got = strings.TrimSuffix(string(p), "\x00")
			a.cleartext.Store(got, true)
			break
		}
		if len(p) == 1 && p[0] == 2 {
			a.keyAsked.Add(1)
			if !send(append([]byte{mysqlproto.HeaderAuthMore}, a.publicKeyPEMBytes()...)) {
				return
			}
			if p = recv(); p == nil {
				return
			}
		}
		plain, err := rsa.DecryptOAEP(sha1.New(), nil, a.key, p, nil)
		if err != nil {
			break
		}
		for i := range plain {
			plain[i] ^= scramble[i%len(scramble)]
		}
		got = strings.TrimSuffix(string(plain), "\x00")
	}
	if got != a.password {
		send(mysqlproto.AppendERR(nil, mysqlproto.ERAccessDenied, "28000", "Access denied"))
		return
	}
	a.gotPass.Add(1)
	okCaps := resp.Capabilities & caps
	if !send(mysqlproto.AppendOK(nil, okCaps, mysqlproto.HeaderOK, 0, 0, mysqlproto.StatusAutocommit, 0)) {
		return
	}
	for {
		p, _, err := mysqlproto.ReadPacket(rw, nil, 1<<20)
		if err != nil || len(p) == 0 || p[0] == mysqlproto.ComQuit {
			return
		}
		if _, err := mysqlproto.WritePacket(bw, 1, mysqlproto.AppendOK(nil, okCaps, mysqlproto.HeaderOK, 0, 0, mysqlproto.StatusAutocommit, 0)); err != nil || bw.Flush() != nil {
			return
		}
	}
}

func (a *authServer) publicKeyPEMBytes() []byte {
	der, _ := x509.MarshalPKIXPublicKey(&a.key.PublicKey)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// dialScripted dials a as the pools do, with the cluster keys in st.
func dialScripted(t *testing.T, a *authServer, st config.Settings) (*backend, error) {
	t.Helper()
	addr := a.ln.Addr().String()
	stls, err := frontend.NewServerTLS(st, addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := dialBackend(ctx, dialParams{addr: addr, user: "app", password: "s3cret", db: "app", collation: defaultCollation, tls: stls})
	if b != nil {
		t.Cleanup(func() { b.Close() })
	}
	return b, err
}

// serverTLSFiles writes a certificate for 127.0.0.1 and returns a server
// TLS config with it and the file that verifies it.
func serverTLSFiles(t *testing.T) (*tls.Config, string) {
	certPEM, keyPEM := selfSigned(t)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, ca
}

// wantRefused checks a dial was refused with 2061 naming key, and that
// the password never reached the server.
func wantDowngradeRefused(t *testing.T, a *authServer, err error, key string) {
	t.Helper()
	var se *mysqlproto.SQLError
	if !errors.As(err, &se) || se.Num != mysqlproto.CRAuthPluginErr || !strings.Contains(se.Message, key) {
		t.Fatalf("dial: %v; want error %d naming %s", err, mysqlproto.CRAuthPluginErr, key)
	}
	if n := a.gotPass.Load(); n != 0 {
		t.Errorf("the password reached the server %d times", n)
	}
	n := 0
	a.cleartext.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Errorf("the server received %d passwords as they are", n)
	}
	if n := a.keyAsked.Load(); n != 0 {
		t.Errorf("the proxy asked the server for its public key %d times", n)
	}
}

// TestServerClearPasswordRefused: an AuthSwitchRequest to
// mysql_clear_password over a connection whose server is not verified is
// refused unless server_allow_cleartext_password is set.
func TestServerClearPasswordRefused(t *testing.T) {
	srvTLS, ca := serverTLSFiles(t)
	for _, tc := range []struct {
		name string
		tls  *tls.Config
		st   config.Settings
		ok   bool
	}{
		{"prefer/no TLS", nil, config.Settings{ServerTLS: "prefer"}, false},
		{"disable", nil, config.Settings{ServerTLS: "disable"}, false},
		{"require/unverified TLS", srvTLS, config.Settings{ServerTLS: "require"}, false},
		{"prefer/opt-in", nil, config.Settings{ServerTLS: "prefer", ServerAllowCleartextPassword: true}, true},
		{"verify-full", srvTLS, config.Settings{ServerTLS: "verify-full", ServerTLSCA: ca}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newMyAuthServer(t, "clear", "s3cret", tc.tls)
			_, err := dialScripted(t, a, tc.st)
			if !tc.ok {
				wantDowngradeRefused(t, a, err, "server_allow_cleartext_password")
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if _, ok := a.cleartext.Load("s3cret"); !ok || a.gotPass.Load() != 1 {
				t.Error("the server did not get the password")
			}
		})
	}
}

// TestServerSHA2FullAuthRefused: caching_sha2_password's full
// authentication over plain TCP would encrypt the password to a key the
// peer sends; refused unless the key is pinned (server_public_key_path,
// then the server is never asked for it) or the operator opts in. Over
// TLS whose certificate is not checked, the password would go as it is.
func TestServerSHA2FullAuthRefused(t *testing.T) {
	srvTLS, ca := serverTLSFiles(t)
	t.Run("prefer/no TLS", func(t *testing.T) {
		a := newMyAuthServer(t, "sha2full", "s3cret", nil)
		_, err := dialScripted(t, a, config.Settings{ServerTLS: "prefer"})
		wantDowngradeRefused(t, a, err, "server_public_key_path")
	})
	t.Run("require/unverified TLS", func(t *testing.T) {
		a := newMyAuthServer(t, "sha2full", "s3cret", srvTLS)
		_, err := dialScripted(t, a, config.Settings{ServerTLS: "require"})
		wantDowngradeRefused(t, a, err, "server_allow_cleartext_password")
	})
	t.Run("pinned key", func(t *testing.T) {
		a := newMyAuthServer(t, "sha2full", "s3cret", nil)
		path := filepath.Join(t.TempDir(), "server.pem")
		if err := os.WriteFile(path, a.publicKeyPEM(t), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := dialScripted(t, a, config.Settings{ServerTLS: "prefer", ServerPublicKeyPath: path}); err != nil {
			t.Fatalf("dial with server_public_key_path: %v", err)
		}
		if a.gotPass.Load() != 1 || a.keyAsked.Load() != 0 {
			t.Errorf("logins %d, key requests %d; want 1 and 0", a.gotPass.Load(), a.keyAsked.Load())
		}
	})
	t.Run("wrong pinned key", func(t *testing.T) {
		a := newMyAuthServer(t, "sha2full", "s3cret", nil)
		other := newMyAuthServer(t, "sha2full", "s3cret", nil)
		path := filepath.Join(t.TempDir(), "server.pem")
		if err := os.WriteFile(path, other.publicKeyPEM(t), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := dialScripted(t, a, config.Settings{ServerTLS: "prefer", ServerPublicKeyPath: path})
		if err == nil || a.gotPass.Load() != 0 {
			t.Fatalf("dial with another server's key: %v, logins %d", err, a.gotPass.Load())
		}
	})
	t.Run("opt-in trusts the server's key", func(t *testing.T) {
		a := newMyAuthServer(t, "sha2full", "s3cret", nil)
		if _, err := dialScripted(t, a, config.Settings{ServerTLS: "prefer", ServerAllowCleartextPassword: true}); err != nil {
			t.Fatalf("dial: %v", err)
		}
		if a.gotPass.Load() != 1 || a.keyAsked.Load() != 1 {
			t.Errorf("logins %d, key requests %d; want 1 and 1", a.gotPass.Load(), a.keyAsked.Load())
		}
	})
	t.Run("verify-full", func(t *testing.T) {
		a := newMyAuthServer(t, "sha2full", "s3cret", srvTLS)
		if _, err := dialScripted(t, a, config.Settings{ServerTLS: "verify-full", ServerTLSCA: ca}); err != nil {
			t.Fatalf("dial: %v", err)
		}
		if _, ok := a.cleartext.Load("s3cret"); !ok {
			t.Error("the server did not get the password over verified TLS")
		}
	})
}

// TestServerDowngradeClientError: a client of a cluster whose server asks
// for the password in clear text gets the reason and the key.
func TestServerDowngradeClientError(t *testing.T) {
	a := newMyAuthServer(t, "clear", "s3cret", nil)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
[proxy]
mysql_listen = "127.0.0.1:0"
shutdown_timeout = "5s"
[[users]]
name = "app"
password = "s3cret"
[[clusters]]
name = "scripted"
protocol = "mysql"
database = "app"
primary = %q
query_wait_timeout = "5s"
`, a.ln.Addr())), "")
	if err != nil {
		t.Fatal(err)
	}
	p := serveProxy(t, cfg, 0, false)
	db, err := sql.Open("mysql", p.dsn("app", "s3cret", "app", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, "DO 1")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != mysqlproto.CRAuthPluginErr || !strings.Contains(me.Message, "server_allow_cleartext_password") {
		t.Fatalf("DO 1: %v; want error %d naming server_allow_cleartext_password", err, mysqlproto.CRAuthPluginErr)
	}
	if a.gotPass.Load() != 0 {
		t.Error("the password reached the server")
	}
}
