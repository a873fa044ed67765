package mysqlwire

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/testcluster"
)

// TestServerTLS: server_tls decides whether the proxy's connections to
// MariaDB are encrypted; verify-full checks the certificate against
// server_tls_ca.
func TestServerTLS(t *testing.T) {
	ca := testcluster.Maria.TLSCA
	certPEM, _ := selfSigned(t)
	wrongCA := filepath.Join(t.TempDir(), "wrong-ca.pem")
	if err := os.WriteFile(wrongCA, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		defaults string
		wantTLS  bool
		wantErr  string
	}{
		{"default prefer", ``, true, ""},
		{"disable", `server_tls = "disable"`, false, ""},
		{"require", `server_tls = "require"`, true, ""},
		{"verify-ca", fmt.Sprintf("server_tls = \"verify-ca\"\nserver_tls_ca = %q", ca), true, ""},
		{"verify-full", fmt.Sprintf("server_tls = \"verify-full\"\nserver_tls_ca = %q", ca), true, ""},
		{"verify-full with a CA that did not sign", fmt.Sprintf("server_tls = \"verify-full\"\nserver_tls_ca = %q", wrongCA), false, "certificate"},
		{"verify-ca with a CA that did not sign", fmt.Sprintf("server_tls = \"verify-ca\"\nserver_tls_ca = %q", wrongCA), false, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, tt.defaults)
			db := p.open(t, "")
			var name, cipher string
			err := db.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one that mentions %q", err, tt.wantErr)
				}
				t.Logf("client saw: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cipher != ""; got != tt.wantTLS {
				t.Errorf("server connection cipher = %q, want TLS %v", cipher, tt.wantTLS)
			}
		})
	}
}

// server_tls = "prefer" falls back to plain text when the TLS handshake
// fails (here: a TLS version the server refuses), as libpq's prefer does;
// "require" does not.
func TestServerTLSPreferFallsBack(t *testing.T) {
	oldTLS := &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10, InsecureSkipVerify: true}
	addr := testcluster.Maria.Primary.Addr()
	dial := func(mode string) (*backend, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return dialBackend(ctx, dialParams{addr: addr, user: "app", password: "app", db: "app",
			collation: defaultCollation, tls: &frontend.ServerTLS{Mode: mode, Conf: oldTLS}})
	}
	if b, err := dial("require"); err == nil {
		b.Close()
		t.Skip("this server still speaks TLS 1.0; nothing to fall back from")
	} else if !strings.Contains(err.Error(), "TLS handshake") {
		t.Fatalf("require: %v, want a TLS handshake error", err)
	}
	b, err := dial("prefer")
	if err != nil {
		t.Fatalf("prefer: %v, want a plain-text connection", err)
	}
	defer b.Close()
	if b.tls {
		t.Error("prefer: connection says TLS after a failed handshake")
	}
}
