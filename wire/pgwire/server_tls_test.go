package pgwire

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// TestServerTLS: server_tls decides whether the proxy's connections to the
// servers are encrypted, and verify-full checks the server's certificate
// against server_tls_ca.
func TestServerTLS(t *testing.T) {
	ca := testcluster.PG.TLSCA
	wrongCA, _ := writeSelfSigned(t)
	tests := []struct {
		name     string
		defaults string
		wantSSL  string // pg_stat_ssl.ssl of the proxy's server connection; "" : an error
		wantErr  string
	}{
		{"default prefer", ``, "true", ""},
		{"disable", `server_tls = "disable"`, "false", ""},
		{"require", `server_tls = "require"`, "true", ""},
		{"verify-full", fmt.Sprintf("server_tls = \"verify-full\"\nserver_tls_ca = %q", ca), "true", ""},
		{"verify-ca", fmt.Sprintf("server_tls = \"verify-ca\"\nserver_tls_ca = %q", ca), "true", ""},
		{"verify-full with a CA that did not sign", fmt.Sprintf("server_tls = \"verify-full\"\nserver_tls_ca = %q", wrongCA), "", "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, tt.defaults)
			ctx := ctxT(t, 20*time.Second)
			var got string
			conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
			if err == nil {
				defer conn.Close(ctx)
				err = conn.QueryRow(ctx, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&got)
			}
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
			if got != tt.wantSSL {
				t.Errorf("server connection ssl = %s, want %s", got, tt.wantSSL)
			}
		})
	}
}
