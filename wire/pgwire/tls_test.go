package pgwire

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// writeSelfSigned writes a certificate for 127.0.0.1 and its key.
func writeSelfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "switchyard test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestClientTLS(t *testing.T) {
	cert, key := writeSelfSigned(t)
	p := serveConfig(t, fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
tls_cert = %q
tls_key = %q
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
`, cert, key, testcluster.PG.Primary.Addr()))
	ctx := ctxT(t, 30*time.Second)
	base := fmt.Sprintf("postgres://app:app@%s/app?default_query_exec_mode=exec", p.addr)
	for _, mode := range []string{"require", "disable", "prefer"} {
		conn, err := pgx.Connect(ctx, base+"&sslmode="+mode)
		if err != nil {
			t.Fatalf("sslmode=%s: %v", mode, err)
		}
		tlsOn := conn.PgConn().Conn() != nil && isTLS(conn.PgConn().Conn())
		if want := mode != "disable"; tlsOn != want {
			t.Fatalf("sslmode=%s: TLS %v, want %v", mode, tlsOn, want)
		}
		var one int
		if err := conn.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
			t.Fatalf("sslmode=%s: %v", mode, err)
		}
		conn.Close(ctx)
	}
	// Without TLS configured, sslmode=require is refused ('N').
	plain := startProxy(t, "")
	if _, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app:app@%s/app?sslmode=require", plain.addr)); err == nil {
		t.Fatal("sslmode=require accepted by a proxy without TLS")
	}
}

func isTLS(c net.Conn) bool {
	_, ok := c.(*tls.Conn)
	return ok
}

// TestSCRAMChannelBinding: over TLS the proxy offers SCRAM-SHA-256-PLUS
// (tls-server-end-point) as PostgreSQL does. It offered SCRAM-SHA-256
// only, so a client with channel_binding=require (libpq, pgx) could not
// log in: "server did not offer an authentication method that supports
// channel binding".
func TestSCRAMChannelBinding(t *testing.T) {
	cert, key := writeSelfSigned(t)
	p := serveConfig(t, fmt.Sprintf(`
[proxy]
postgres_listen = "127.0.0.1:0"
tls_cert = %q
tls_key = %q
[[users]]
name = "app"
password = "app"
[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
`, cert, key, testcluster.PG.Primary.Addr()))
	ctx := ctxT(t, 30*time.Second)
	for _, cb := range []string{"require", "prefer", "disable"} {
		conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app:app@%s/app?default_query_exec_mode=exec&sslmode=require&channel_binding=%s", p.addr, cb))
		if err != nil {
			t.Fatalf("channel_binding=%s: %v", cb, err)
		}
		var one int
		if err := conn.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
			t.Fatalf("channel_binding=%s: %v", cb, err)
		}
		conn.Close(ctx)
	}
	// A wrong password is still refused as such.
	_, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app:wrong@%s/app?sslmode=require&channel_binding=require", p.addr))
	if sqlstate(err) != "28P01" {
		t.Fatalf("wrong password with channel binding: want 28P01, got %v", err)
	}
	// Without TLS there is nothing to bind to: PLUS is not offered, and a
	// client that requires it refuses to go on.
	if _, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app:app@%s/app?sslmode=disable&channel_binding=require", p.addr)); err == nil {
		t.Fatal("channel_binding=require accepted without TLS")
	}
}
