package mysqlwire

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/switchyard/switchyard/config"
)

// serverTLS is TLS toward one server, as the cluster's server_tls says:
// "disable" never asks for it, "prefer" uses it when the server offers it,
// "require" insists on it without checking the certificate, "verify-ca"
// checks the certificate against server_tls_ca (or the system's roots),
// and "verify-full" checks as well that it names the server's host.
type serverTLS struct {
	mode string
	conf *tls.Config // nil for disable
	err  error       // set: the TLS settings are unusable; no dial succeeds
}

// newServerTLS builds the TLS of the connections to addr. It reads the CA
// file once, when the pool is made.
func newServerTLS(st config.Settings, addr string) (*serverTLS, error) {
	mode := st.ServerTLS
	if mode == "" {
		mode = config.TLSPrefer
	}
	t := &serverTLS{mode: mode}
	if mode == config.TLSDisable {
		return t, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var roots *x509.CertPool
	if st.ServerTLSCA != "" {
		pem, err := os.ReadFile(st.ServerTLSCA)
		if err != nil {
			return nil, fmt.Errorf("server_tls_ca: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server_tls_ca: %s holds no PEM certificate", st.ServerTLSCA)
		}
	}
	t.conf = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, RootCAs: roots}
	switch mode {
	case config.TLSPrefer, config.TLSRequire:
		t.conf.InsecureSkipVerify = true // encryption only, as libpq's require
	case config.TLSVerifyCA:
		// The chain must lead to a trusted root; the name is not checked.
		t.conf.InsecureSkipVerify = true
		t.conf.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	}
	return t, nil
}

// required reports whether a server without TLS must be refused.
func (t *serverTLS) required() bool {
	return t != nil && t.mode != config.TLSDisable && t.mode != config.TLSPrefer
}
