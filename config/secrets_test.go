package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretReferences(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pw"), []byte("from-file\r\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "big"), make([]byte, maxSecretFile+1), 0o600)
	t.Setenv("SY_SECRET_APP", "from-env")
	t.Setenv("SY_SECRET_EMPTY", "")
	os.Unsetenv("SY_SECRET_MISSING")
	path := filepath.Join(dir, "cfg.toml")
	head := `[proxy]
postgres_listen = "127.0.0.1:6432"
`
	cluster := `
[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = "127.0.0.1:5432"
monitor_user = "mon"
monitor_password = "${file:pw}"
`
	good := head + `admin_token = "${SY_SECRET_APP}-padded-to-16"
[[users]]
name = "app"
password = "${SY_SECRET_APP}"
server_password = "${file:` + filepath.Join(dir, "pw") + `}"
[[users]]
name = "lit"
password = "p${NOT_A_REF}"
` + cluster
	cfg, err := Parse([]byte(good), path)
	if err != nil {
		t.Fatal(err)
	}
	if u := cfg.User("app"); u.Password != "from-env" || u.ServerPassword != "from-file" {
		t.Errorf("app: password %q, server_password %q", u.Password, u.ServerPassword)
	}
	if u := cfg.User("lit"); u.Password != "p${NOT_A_REF}" || u.ServerPassword != "p${NOT_A_REF}" {
		t.Errorf("a value that is not wholly a reference changed: %+v", u)
	}
	if cfg.Clusters[0].MonitorPassword != "from-file" {
		t.Errorf("monitor_password %q (relative file)", cfg.Clusters[0].MonitorPassword)
	}
	if cfg.Proxy.AdminToken != "${SY_SECRET_APP}-padded-to-16" {
		t.Errorf("admin_token %q: only a whole-value reference is expanded", cfg.Proxy.AdminToken)
	}

	for _, tc := range []struct{ value, want string }{
		{"${SY_SECRET_MISSING}", "users[0].password: environment variable SY_SECRET_MISSING is not set"},
		{"${SY_SECRET_EMPTY}", "users[0].password: environment variable SY_SECRET_EMPTY is empty"},
		{"${file:nope}", "users[0].password: stat " + filepath.Join(dir, "nope")},
		{"${file:empty}", "is empty"},
		{"${file:big}", "is larger than"},
		{"${file:}", "names no file"},
		{"${1BAD}", "is not a secret reference"},
	} {
		src := head + "[[users]]\nname = \"app\"\npassword = \"" + tc.value + "\"\nserver_password = \"x\"\n" + cluster
		_, err := Parse([]byte(src), path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.value, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "from-file") {
			t.Errorf("%s: the error prints a secret: %v", tc.value, err)
		}
		if err != nil && !strings.Contains(err.Error(), "cfg.toml:5:") {
			t.Errorf("%s: the error names no line: %v", tc.value, err)
		}
	}

	for _, tc := range []struct{ proxy, want string }{
		{`admin_token = "short"`, "use at least 16"},
		{`admin_token = ""`, "must not be empty"},
		{`admin_tls = true`, "tls_cert and tls_key, which are not set"},
	} {
		src := head + tc.proxy + "\n[[users]]\nname = \"app\"\npassword = \"x\"\n" + cluster
		if _, err := Parse([]byte(src), path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.proxy, err, tc.want)
		}
	}
}

// TestComposeConfig keeps the compose file's config valid: its secrets
// come from the environment docker-compose.yml sets.
func TestComposeConfig(t *testing.T) {
	t.Setenv("APP_PASSWORD", "app")
	t.Setenv("SWITCHYARD_ADMIN_TOKEN", "demo-admin-token-change-me")
	cfg, err := Load("../deploy/config.compose.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User("app").Password != "app" || cfg.Proxy.AdminToken != "demo-admin-token-change-me" {
		t.Fatalf("secrets not taken from the environment: %+v", cfg.Proxy)
	}
	os.Unsetenv("APP_PASSWORD")
	if _, err := Load("../deploy/config.compose.toml"); err == nil || !strings.Contains(err.Error(), "APP_PASSWORD is not set") {
		t.Fatalf("without APP_PASSWORD: %v", err)
	}
}
