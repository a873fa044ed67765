package mysqlwire

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
