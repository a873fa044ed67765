package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeKeyPair writes a self-signed certificate and its key into dir.
func writeKeyPair(t *testing.T, dir, certName, keyName string) {
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
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(certName, "CERTIFICATE", der)
	write(keyName, "EC PRIVATE KEY", keyDER)
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	writeKeyPair(t, dir, "server.crt", "server.key")
	writeKeyPair(t, dir, "other.crt", "other.key")

	// Relative paths are relative to the config file.
	path := filepath.Join(dir, "config.toml")
	src := "[proxy]\npostgres_listen = \":6432\"\ntls_cert = \"server.crt\"\ntls_key = \"server.key\"\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "server.crt"); cfg.Proxy.TLSCert != want {
		t.Errorf("TLSCert = %q, want %q", cfg.Proxy.TLSCert, want)
	}
	if want := filepath.Join(dir, "server.key"); cfg.Proxy.TLSKey != want {
		t.Errorf("TLSKey = %q, want %q", cfg.Proxy.TLSKey, want)
	}

	// A certificate with another certificate's key.
	bad := "[proxy]\npostgres_listen = \":6432\"\ntls_cert = \"" + filepath.Join(dir, "server.crt") +
		"\"\ntls_key = \"" + filepath.Join(dir, "other.key") + "\"\n"
	checkProblems(t, bad, []string{
		`cfg.toml:3: proxy.tls_cert: cannot load the certificate and key: tls: private key does not match public key`,
	})
	// Files that are no PEM at all.
	notPEM := "[proxy]\npostgres_listen = \":6432\"\ntls_cert = \"" + path + "\"\ntls_key = \"" + path + "\"\n"
	checkProblems(t, notPEM, []string{
		`cfg.toml:3: proxy.tls_cert: cannot load the certificate and key: tls: failed to find any PEM data`,
	})
}
