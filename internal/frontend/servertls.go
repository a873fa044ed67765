package frontend

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

// Toward the servers, both protocols follow one policy: server_tls picks
// how much TLS a connection has, and the password goes in clear text
// only to a server whose certificate was checked, or where the operator
// accepted the risk (server_allow_cleartext_password). pgwire hands the
// mode to pgconn (CleartextAllowed decides its require_auth); mysqlwire,
// whose handshake is its own, dials with a ServerTLS.

// ServerTLSMode is st's server_tls, prefer when unset.
func ServerTLSMode(st config.Settings) string {
	if st.ServerTLS == "" {
		return config.TLSPrefer
	}
	return st.ServerTLS
}

// CleartextAllowed reports whether a server under st may be sent the
// password as it is: its certificate is verified (verify-ca,
// verify-full), or server_allow_cleartext_password says so.
func CleartextAllowed(st config.Settings) bool {
	return (&ServerTLS{Mode: ServerTLSMode(st), AllowCleartext: st.ServerAllowCleartextPassword}).SendPlain(true)
}

// ServerTLS is TLS toward one server, as the cluster's server_tls says:
// "disable" never asks for it, "prefer" uses it when the server offers it,
// "require" insists on it without checking the certificate, "verify-ca"
// checks the certificate against server_tls_ca (or the system's roots),
// and "verify-full" checks as well that it names the server's host.
//
// It carries as well what may be done with the password on a connection
// that ends up without a verified server (see SendPlain): the cluster's
// server_allow_cleartext_password and server_public_key_path.
type ServerTLS struct {
	Mode string
	Conf *tls.Config // nil for disable, and after prefer fell back to plain text
	Err  error       // set: the TLS settings are unusable; no dial succeeds

	AllowCleartext bool
	PubKey         *rsa.PublicKey // pinned key for caching_sha2_password over plain TCP; nil: none
}

// NewServerTLS builds the TLS of the connections to addr. It reads the CA
// file once, when the pool is made.
func NewServerTLS(st config.Settings, addr string) (*ServerTLS, error) {
	mode := ServerTLSMode(st)
	t := &ServerTLS{Mode: mode, AllowCleartext: st.ServerAllowCleartextPassword}
	if st.ServerPublicKeyPath != "" {
		data, err := os.ReadFile(st.ServerPublicKeyPath)
		if err != nil {
			return nil, fmt.Errorf("server_public_key_path: %w", err)
		}
		if t.PubKey, err = config.ParseRSAPublicKey(data); err != nil {
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
	t.Conf = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, RootCAs: roots}
	switch mode {
	case config.TLSPrefer, config.TLSRequire:
		t.Conf.InsecureSkipVerify = true // encryption only, as libpq's require
	case config.TLSVerifyCA:
		// The chain must lead to a trusted root; the name is not checked.
		t.Conf.InsecureSkipVerify = true
		t.Conf.VerifyConnection = func(cs tls.ConnectionState) error {
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

// Plain is t for the plain-text retry of prefer: no TLS, the same rules
// for the password.
func (t *ServerTLS) Plain() *ServerTLS {
	if t == nil {
		return nil
	}
	c := *t
	c.Conf = nil
	return &c
}

// Verified reports whether the server of a connection is known to be the
// one configured: TLS with its certificate checked (verify-ca,
// verify-full). prefer and require take any certificate, so an on-path
// attacker can terminate TLS there as well.
func (t *ServerTLS) Verified(encrypted bool) bool {
	return encrypted && t != nil && (t.Mode == config.TLSVerifyCA || t.Mode == config.TLSVerifyFull)
}

// SendPlain reports whether the password may be sent as it is (the
// mysql_clear_password plugin, caching_sha2_password's full
// authentication over TLS): to a verified server, or when the operator
// accepted the risk with server_allow_cleartext_password. MySQL's own
// client refuses the first without --enable-cleartext-plugin.
func (t *ServerTLS) SendPlain(encrypted bool) bool {
	return t.Verified(encrypted) || t != nil && t.AllowCleartext
}

// ModeName is server_tls as the operator reads it in an error.
func (t *ServerTLS) ModeName() string {
	if t == nil || t.Mode == "" {
		return config.TLSPrefer
	}
	return t.Mode
}

// Required reports whether a server without TLS must be refused.
func (t *ServerTLS) Required() bool {
	return t != nil && t.Mode != config.TLSDisable && t.Mode != config.TLSPrefer
}
