package config

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestServerAuthKeys(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err := os.WriteFile(filepath.Join(dir, "mysql.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `[proxy]
postgres_listen = "127.0.0.1:6432"
[defaults]
auth_user = "lookup"
auth_cache_ttl = "30s"
[[users]]
name = "lookup"
password = "pw"
[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = "127.0.0.1:5432"
server_allow_cleartext_password = true
[[clusters]]
name = "pg2"
protocol = "postgres"
database = "app2"
primary = "127.0.0.1:5432"
auth_user = ""
[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = "127.0.0.1:3306"
server_public_key_path = "mysql.pem"
[[clusters]]
name = "my2"
protocol = "mysql"
database = "app2"
primary = "127.0.0.1:3306"
auth_user = "lookup"
`
	cfg, err := Parse([]byte(src), filepath.Join(dir, "cfg.toml"))
	if err != nil {
		t.Fatal(err)
	}
	pg, pg2, my := cfg.Clusters[0].Settings, cfg.Clusters[1].Settings, cfg.Clusters[2].Settings
	if !pg.ServerAllowCleartextPassword || pg2.ServerAllowCleartextPassword || my.ServerAllowCleartextPassword {
		t.Errorf("server_allow_cleartext_password: %v %v %v, want true false false", pg.ServerAllowCleartextPassword, pg2.ServerAllowCleartextPassword, my.ServerAllowCleartextPassword)
	}
	if pg.AuthUser != "lookup" || pg.AuthQuery != DefaultAuthQuery || pg.AuthCacheTTL != 30*time.Second {
		t.Errorf("pg passthrough settings %q %q %v", pg.AuthUser, pg.AuthQuery, pg.AuthCacheTTL)
	}
	if pg2.AuthUser != "" {
		t.Errorf("auth_user = \"\" in a cluster should turn passthrough off, got %q", pg2.AuthUser)
	}
	if my.AuthUser != "" {
		t.Errorf("a mysql cluster inherited auth_user %q", my.AuthUser)
	}
	if my2 := cfg.Clusters[3].Settings; my2.AuthUser != "lookup" || my2.AuthQuery != DefaultMySQLAuthQuery {
		t.Errorf("a mysql cluster with its own auth_user: %q, auth_query %q", my2.AuthUser, my2.AuthQuery)
	}
	if my.ServerPublicKeyPath != filepath.Join(dir, "mysql.pem") {
		t.Errorf("server_public_key_path = %q", my.ServerPublicKeyPath)
	}
	if d := DefaultSettings(); d.AuthCacheTTL != time.Minute || d.ServerAllowCleartextPassword || d.AuthUser != "" {
		t.Errorf("defaults: %+v", d)
	}
}
