package pgwire

import (
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/internal/faultnet"
)

// authServer is a scripted PostgreSQL server that refuses TLS (as an
// on-path attacker who strips it would) and asks for the password with
// the method in ask: "password" (clear text) or "md5". It records what
// each login sent, and serves SELECT 1 once logged in.
type authServer struct {
	ln        net.Listener
	ask       string
	password  string
	user      string
	sent      atomic.Int64 // password messages received
	cleartext sync.Map     // passwords received in clear text
	tls       *tls.Config  // nil: TLS refused, as by an attacker who strips it
}

func newAuthServer(t *testing.T, ask, user, password string, tlsConf *tls.Config) *authServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &authServer{ln: ln, ask: ask, user: user, password: password, tls: tlsConf}
	t.Cleanup(faultnet.Serve(ln, func(c net.Conn, _ uint32) { a.serve(c) }))
	return a
}

func (a *authServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	be := pgproto3.NewBackend(c, c)
	var m pgproto3.FrontendMessage
	for {
		var err error
		if m, err = be.ReceiveStartupMessage(); err != nil {
			return
		}
		if _, ok := m.(*pgproto3.SSLRequest); ok {
			if a.tls == nil {
				if _, err := c.Write([]byte{'N'}); err != nil {
					return
				}
				continue
			}
			if _, err := c.Write([]byte{'S'}); err != nil {
				return
			}
			tc := tls.Server(c, a.tls)
			if tc.Handshake() != nil {
				return
			}
			defer tc.Close()
			be = pgproto3.NewBackend(tc, tc)
			continue
		}
		break
	}
	sm, ok := m.(*pgproto3.StartupMessage)
	if !ok {
		return
	}
	salt := [4]byte{1, 2, 3, 4}
	switch a.ask {
	case "password":
		be.Send(&pgproto3.AuthenticationCleartextPassword{})
		be.SetAuthType(pgproto3.AuthTypeCleartextPassword)
	case "md5":
		be.Send(&pgproto3.AuthenticationMD5Password{Salt: salt})
		be.SetAuthType(pgproto3.AuthTypeMD5Password)
	}
	if be.Flush() != nil {
		return
	}
	msg, err := be.Receive()
	if err != nil {
		return
	}
	pm, ok := msg.(*pgproto3.PasswordMessage)
	if !ok {
		return
	}
	a.sent.Add(1)
	good := false
	switch a.ask {
	case "password":
		a.cleartext.Store(pm.Password, true)
		good = pm.Password == a.password
	case "md5":
		h := md5.Sum([]byte(a.password + sm.Parameters["user"]))
		h2 := md5.Sum([]byte(hex.EncodeToString(h[:]) + string(salt[:])))
		good = pm.Password == "md5"+hex.EncodeToString(h2[:])
	}
	if !good || sm.Parameters["user"] != a.user {
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "password authentication failed"})
		_ = be.Flush()
		return
	}
	be.Send(&pgproto3.AuthenticationOk{})
	for _, kv := range [][2]string{{"server_version", "15.0"}, {"client_encoding", "UTF8"}, {"server_encoding", "UTF8"},
		{"standard_conforming_strings", "on"}, {"DateStyle", "ISO, MDY"}, {"integer_datetimes", "on"}} {
		be.Send(&pgproto3.ParameterStatus{Name: kv[0], Value: kv[1]})
	}
	be.Send(&pgproto3.BackendKeyData{ProcessID: 7, SecretKey: []byte{1, 2, 3, 4}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	for {
		m, err := be.Receive()
		if err != nil {
			return
		}
		switch m.(type) {
		case *pgproto3.Query:
			be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}})
			be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("1")}})
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			if be.Flush() != nil {
				return
			}
		case *pgproto3.Terminate:
			return
		}
	}
}

// authProxy serves database "app" from a, with extra cluster keys.
func authProxy(t *testing.T, a *authServer, extra string) *testProxy {
	return serveConfig(t, fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
shutdown_timeout = "5s"

[[users]]
name = "app"
password = "s3cret"

[[clusters]]
name = "fake"
protocol = "postgres"
database = "app"
primary = %q
connect_timeout = "5s"
query_wait_timeout = "5s"
%s
`, a.ln.Addr().String(), extra))
}

// selectOne connects through the proxy and runs SELECT 1 in the simple
// protocol; the proxy dials the server on the first query.
func selectOne(t *testing.T, p *testProxy) error {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	conn, err := pgx.Connect(ctx, p.dsn("app", "s3cret", "app")+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var x int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&x)
}

// TestServerCleartextPasswordRefused: a server (or whoever stands between
// it and the proxy) that refuses TLS and asks for the password in clear
// text gets nothing, and the client is told which key allows it.
func TestServerCleartextPasswordRefused(t *testing.T) {
	certFile, keyFile := writeSelfSigned(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode string
		tls  bool // the server speaks TLS (with a certificate require does not check)
	}{{"prefer", false}, {"disable", false}, {"require", true}, {"prefer", true}} {
		t.Run(fmt.Sprintf("%s/tls=%v", tc.mode, tc.tls), func(t *testing.T) {
			var conf *tls.Config
			if tc.tls {
				conf = &tls.Config{Certificates: []tls.Certificate{cert}}
			}
			a := newAuthServer(t, "password", "app", "s3cret", conf)
			p := authProxy(t, a, fmt.Sprintf("server_tls = %q", tc.mode))
			err := selectOne(t, p)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) {
				t.Fatalf("SELECT 1 through a server that asks for a clear-text password: %v, want an error from the proxy", err)
			}
			if pe.Code != "28000" || !strings.Contains(pe.Message, "clear text") || !strings.Contains(pe.Hint, "server_allow_cleartext_password") {
				t.Errorf("error %s %q (hint %q); want 28000 naming server_allow_cleartext_password", pe.Code, pe.Message, pe.Hint)
			}
			if n := a.sent.Load(); n != 0 {
				t.Errorf("the server received %d password messages", n)
			}
		})
	}
}

// TestServerCleartextPasswordOptIn: with server_allow_cleartext_password
// the operator accepts the risk and the password is sent.
func TestServerCleartextPasswordOptIn(t *testing.T) {
	a := newAuthServer(t, "password", "app", "s3cret", nil)
	p := authProxy(t, a, "server_allow_cleartext_password = true")
	if err := selectOne(t, p); err != nil {
		t.Fatalf("SELECT 1 with server_allow_cleartext_password = true: %v", err)
	}
	if _, ok := a.cleartext.Load("s3cret"); !ok {
		t.Error("the server did not receive the password")
	}
}

// TestServerCleartextPasswordVerified: over TLS to a verified server the
// password method is as safe as the server itself, and needs no opt-in.
func TestServerCleartextPasswordVerified(t *testing.T) {
	certFile, keyFile := writeSelfSigned(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	a := newAuthServer(t, "password", "app", "s3cret", &tls.Config{Certificates: []tls.Certificate{cert}})
	p := authProxy(t, a, fmt.Sprintf("server_tls = \"verify-full\"\nserver_tls_ca = %q", certFile))
	if err := selectOne(t, p); err != nil {
		t.Fatalf("SELECT 1 over verify-full: %v", err)
	}
	if _, ok := a.cleartext.Load("s3cret"); !ok {
		t.Error("the server did not receive the password")
	}
}

// TestServerMD5PasswordAllowed: md5 answers a salted challenge and never
// reveals the password, so it stays allowed over plain text.
func TestServerMD5PasswordAllowed(t *testing.T) {
	a := newAuthServer(t, "md5", "app", "s3cret", nil)
	p := authProxy(t, a, "")
	if err := selectOne(t, p); err != nil {
		t.Fatalf("SELECT 1 through an md5 server: %v", err)
	}
	if a.sent.Load() == 0 {
		t.Error("the server received no md5 answer")
	}
}
