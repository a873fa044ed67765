package testcluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// tlsFiles are the certificate files every node of a cluster serves TLS
// with: a CA of the cluster's own, and a server certificate it signed for
// 127.0.0.1, ::1 and localhost.
type tlsFiles struct {
	ca, cert, key string
}

// writeTLS makes a fresh CA and server certificate in root/tls, readable by
// owner (the servers' OS user; nil: the current user). The key is 0600, as
// PostgreSQL demands.
func writeTLS(root string, owner *runAs) (tlsFiles, error) {
	dir := filepath.Join(root, "tls")
	f := tlsFiles{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "server.pem"), key: filepath.Join(dir, "server.key")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return f, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "testcluster CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caTmpl, &srvKey.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		return f, err
	}
	files := []struct {
		path  string
		block *pem.Block
		mode  os.FileMode
	}{
		{f.ca, &pem.Block{Type: "CERTIFICATE", Bytes: caDER}, 0o644},
		{f.cert, &pem.Block{Type: "CERTIFICATE", Bytes: srvDER}, 0o644},
		{f.key, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}, 0o600},
	}
	for _, x := range files {
		if err := os.WriteFile(x.path, pem.EncodeToMemory(x.block), x.mode); err != nil {
			return f, err
		}
		if err := owner.chown(x.path); err != nil {
			return f, err
		}
	}
	return f, owner.chown(dir)
}
