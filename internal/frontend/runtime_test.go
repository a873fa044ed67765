package frontend

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// A config whose client certificate cannot be loaded: refused whole by a
// strict front end (the config in force stays), taken without client TLS
// by a lenient one.
func TestRuntimeReloadTLS(t *testing.T) {
	good := &config.Config{}
	bad := &config.Config{Proxy: config.Proxy{TLSCert: "/nonexistent/cert.pem", TLSKey: "/nonexistent/key.pem"}}

	var strict Runtime[struct{}]
	strict.Init(RuntimeOptions{Protocol: config.Postgres, RefusedPrefix: "refused: "})
	defer strict.Close()
	if err := strict.Reload(good); err != nil {
		t.Fatal(err)
	}
	err := strict.Reload(bad)
	if err == nil || !strings.HasPrefix(err.Error(), "refused: loading TLS certificate") {
		t.Fatalf("strict reload of a bad certificate: %v", err)
	}
	if strict.Config() != good {
		t.Fatal("a refused reload changed the config in force")
	}

	var lenient Runtime[struct{}]
	lenient.Init(RuntimeOptions{Protocol: config.MySQL, LenientTLS: true})
	defer lenient.Close()
	if err := lenient.Reload(bad); err != nil {
		t.Fatalf("lenient reload: %v", err)
	}
	if lenient.Config() != bad || lenient.ClientTLS() != nil {
		t.Fatal("lenient reload: config not in force, or client TLS set")
	}
}
