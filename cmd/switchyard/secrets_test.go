package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/testcluster"
)

// writeSelfSigned writes a self-signed certificate for localhost (not for
// 127.0.0.1, so that only pinning accepts it at that address).
func writeSelfSigned(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchyard test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPath, keyPath = filepath.Join(dir, "proxy.crt"), filepath.Join(dir, "proxy.key")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certPath, keyPath
}

// TestSecretsAndAdminProtection runs the proxy on a config whose secrets
// come from the environment and from files, with an admin token and the
// admin listener on TLS, as an operator would deploy it: `switchyard check`
// names what is missing without printing secrets, a client logs in with
// the password from the environment, `switchyard reload` gets through,
// and a request without the token or from a web page changes nothing.
func TestSecretsAndAdminProtection(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := writeSelfSigned(t, dir)
	tokenFile := filepath.Join(dir, "admin_token")
	os.WriteFile(tokenFile, []byte("first-admin-token-0123456789\n"), 0o600)
	// The server's password for app is "app" (internal/testcluster); the
	// client's password toward the proxy is another one.
	os.WriteFile(filepath.Join(dir, "server_pw"), []byte("app\n"), 0o600)
	pg, err := testcluster.StartPostgres(testcluster.Options{Replicas: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	pgPort, adminPort := freePort(t), freePort(t)
	cfgText := fmt.Sprintf(`[proxy]
postgres_listen = "127.0.0.1:%d"
admin_listen = "127.0.0.1:%d"
tls_cert = %q
tls_key = %q
admin_tls = true
admin_token = "${file:admin_token}"

[[users]]
name = "app"
password = "${SY_TEST_APP_PASSWORD}"
server_password = "${file:server_pw}"

[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
`, pgPort, adminPort, certPath, keyPath, pg.Primary.Addr())
	path := filepath.Join(dir, "switchyard.toml")
	os.WriteFile(path, []byte(cfgText), 0o600)

	// Missing: check names the variable, exits 1, prints no secret.
	os.Unsetenv("SY_TEST_APP_PASSWORD")
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-config", path}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "users[0].password: environment variable SY_TEST_APP_PASSWORD is not set") {
		t.Fatalf("check without the variable: exit %d, %q", code, errb.String())
	}
	if strings.Contains(errb.String(), "first-admin-token") {
		t.Fatalf("check printed a secret: %q", errb.String())
	}
	t.Setenv("SY_TEST_APP_PASSWORD", "app-pw-from-env")
	out.Reset()
	errb.Reset()
	if code := run([]string{"check", "-config", path}, &out, &errb); code != 0 {
		t.Fatalf("check: exit %d: %s", code, errb.String())
	}

	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Users[0].Password != "app-pw-from-env" || cfg.Users[0].ServerPassword != "app" || cfg.Proxy.AdminToken != "first-admin-token-0123456789" {
		t.Fatalf("secrets not resolved: %+v %+v", cfg.Users[0], cfg.Proxy)
	}
	p, err := start(cfg, path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	waitListening(t, pgPort)
	waitListening(t, adminPort)

	// A client logs in with the password that came from the environment,
	// and the proxy reaches the server with the one from the file.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://app:app-pw-from-env@127.0.0.1:%d/app?sslmode=disable", pgPort))
	if err != nil {
		t.Fatalf("login with the password from the environment: %v", err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("a query with server_password from the file: %v", err)
	}
	conn.Close(ctx)
	if c, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://app:%s@127.0.0.1:%d/app?sslmode=disable", "${SY_TEST_APP_PASSWORD}", pgPort)); err == nil {
		c.Close(ctx)
		t.Fatal("the reference itself was accepted as the password")
	}

	// switchyard reload: over TLS, with the token read from the file.
	out.Reset()
	errb.Reset()
	if code := run([]string{"reload", "-config", path}, &out, &errb); code != 0 || !strings.Contains(out.String(), "reloaded") {
		t.Fatalf("switchyard reload: exit %d, %q %q", code, out.String(), errb.String())
	}

	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	post := func(hdr map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("https://127.0.0.1:%d/reload", adminPort), nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := insecure.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(nil); code != http.StatusUnauthorized {
		t.Fatalf("POST /reload without the token: %d", code)
	}
	if code := post(map[string]string{"Authorization": "Bearer first-admin-token-0123456789", "Origin": "http://attacker.example"}); code != http.StatusForbidden {
		t.Fatalf("POST /reload from a web page: %d", code)
	}
	// Plain HTTP is not served on the TLS listener.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Post(fmt.Sprintf("http://127.0.0.1:%d/reload", adminPort), "text/plain", nil); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP reload accepted on an admin_tls listener")
		}
	}

	// Rotating the token file takes effect with a reload; the old token
	// stops working.
	os.WriteFile(tokenFile, []byte("second-admin-token-9876543210\n"), 0o600)
	if err := p.reload(); err != nil {
		t.Fatal(err)
	}
	if code := post(map[string]string{"Authorization": "Bearer first-admin-token-0123456789"}); code != http.StatusUnauthorized {
		t.Fatalf("old token after rotation: %d", code)
	}
	if code := post(map[string]string{"Authorization": "Bearer second-admin-token-9876543210"}); code != http.StatusOK {
		t.Fatalf("new token after rotation: %d", code)
	}
}
