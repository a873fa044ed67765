package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
)

func selfSigned(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fleet test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPath, keyPath = filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certPath, keyPath
}

// Under admin_tls a peer is accepted when it serves the fleet's own
// certificate, and refused when it serves another one that does not
// verify; the token goes with every request.
func TestKillOverAdminTLS(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := selfSigned(t, dir)
	cfg := &config.Config{Proxy: config.Proxy{AdminTLS: true, TLSCert: certPath, TLSKey: keyPath, AdminToken: "fleet-token-0123456789"}}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	var auth string
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		var k KillRequest
		_ = json.NewDecoder(r.Body).Decode(&k)
		_ = json.NewEncoder(w).Encode(KillReply{Result: KillOK, Message: k.User})
	})
	ours := httptest.NewUnstartedServer(handler)
	ours.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ours.StartTLS()
	defer ours.Close()
	other := httptest.NewTLSServer(handler) // httptest's own certificate
	defer other.Close()

	c, err := NewClient(cfg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	ctx := context.Background()
	r, err := c.Kill(ctx, config.Peer{InstanceID: 2, AdminListen: ours.Listener.Addr().String()}, KillRequest{ID: 1, Query: true, User: "app"})
	if err != nil || r.Result != KillOK || r.Message != "app" || auth != "Bearer fleet-token-0123456789" {
		t.Fatalf("to a peer with the fleet's certificate: %+v %v (auth %q)", r, err, auth)
	}
	if _, err := c.Kill(ctx, config.Peer{InstanceID: 3, AdminListen: other.Listener.Addr().String()}, KillRequest{ID: 1, User: "app"}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("to a listener with another certificate: %v", err)
	}
	if _, err := c.Kill(ctx, config.Peer{InstanceID: 4}, KillRequest{ID: 1, User: "app"}); err == nil {
		t.Fatal("a peer without admin_listen")
	}
}
