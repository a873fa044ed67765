package mysqlwire

import (
	"crypto/rsa"
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
//
// It carries as well what may be done with the password on a connection
// that ends up without a verified server (see sendPlain): the cluster's
// server_allow_cleartext_password and server_public_key_path.
type serverTLS struct {
	mode string
	conf *tls.Config // nil for disable, and after prefer fell back to plain text
	err  error       // set: the TLS settings are unusable; no dial succeeds

	allowCleartext bool
	pubKey         *rsa.PublicKey // pinned key for caching_sha2_password over plain TCP; nil: none
}

// newServerTLS builds the TLS of the connections to addr. It reads the CA
// file once, when the pool is made.
func newServerTLS(st config.Settings, addr string) (*serverTLS, error) {
	mode := st.ServerTLS
	if mode == "" {
		mode = config.TLSPrefer
	}
	t := &serverTLS{mode: mode, allowCleartext: st.ServerAllowCleartextPassword}
	if st.ServerPublicKeyPath != "" {
		data, err := os.ReadFile(st.ServerPublicKeyPath)
		if err != nil {
			return nil, fmt.Errorf("server_public_key_path: %w", err)
		}
		if t.pubKey, err = config.ParseRSAPublicKey(data); err != nil {
			return nil, fmt.Errorf("server_public_key_path: %s %w", st.ServerPublicKeyPath, err)
		}
	}
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

// plain is t for the plain-text retry of prefer: no TLS, the same rules
// for the password.
func (t *serverTLS) plain() *serverTLS {
	if t == nil {
		return nil
	}
	c := *t
	c.conf = nil
	return &c
}

// verified reports whether the server of a connection is known to be the
// one configured: TLS with its certificate checked (verify-ca,
// verify-full). prefer and require take any certificate, so an on-path
// attacker can terminate TLS there as well.
func (t *serverTLS) verified(encrypted bool) bool {
	return encrypted && t != nil && (t.mode == config.TLSVerifyCA || t.mode == config.TLSVerifyFull)
}

// sendPlain reports whether the password may be sent as it is (the
// mysql_clear_password plugin, caching_sha2_password's full
// authentication over TLS): to a verified server, or when the operator
// accepted the risk with server_allow_cleartext_password. MySQL's own
// client refuses the first without --enable-cleartext-plugin.
func (t *serverTLS) sendPlain(encrypted bool) bool {
	return t.verified(encrypted) || t != nil && t.allowCleartext
}

// modeName is server_tls as the operator reads it in an error.
func (t *serverTLS) modeName() string {
	if t == nil || t.mode == "" {
		return config.TLSPrefer
	}
	return t.mode
}

// required reports whether a server without TLS must be refused.
func (t *serverTLS) required() bool {
	return t != nil && t.mode != config.TLSDisable && t.mode != config.TLSPrefer
}
