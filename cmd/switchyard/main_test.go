package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(good, []byte("[proxy]\npostgres_listen = \"127.0.0.1:6432\"\n[[users]]\nname = \"app\"\npassword = \"app\"\n[[clusters]]\nname = \"pg\"\nprotocol = \"postgres\"\ndatabase = \"app\"\nprimary = \"127.0.0.1:5432\"\n"), 0o600)
	os.WriteFile(bad, []byte("[proxy]\npostgres_listen = \"127.0.0.1:6432\"\n[[clusters]]\nname = \"pg\"\nprotocol = \"postgres\"\ndatabase = \"app\"\nprimary = \"nowhere\"\npool_sise = 3\n"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-config", good}, &out, &errb); code != 0 {
		t.Fatalf("good file: exit %d: %s", code, errb.String())
	}
	out.Reset()
	errb.Reset()
	code := run([]string{"check", "-config", bad}, &out, &errb)
	msg := errb.String()
	if code != 1 || !strings.Contains(msg, "bad.toml:7") || !strings.Contains(msg, "bad.toml:8") {
		t.Fatalf("bad file: exit %d, message %q: want exit 1 naming lines 7 and 8", code, msg)
	}
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "switchyard") {
		t.Fatalf("version: %d %q", code, out.String())
	}
}

func TestParseInstanceID(t *testing.T) {
	host := func(h string) func() (string, error) { return func() (string, error) { return h, nil } }
	for _, tt := range []struct {
		in, host string
		want     int
		err      string
	}{
		{"2", "", 2, ""},
		{"0", "", 0, ""},
		{"1023", "", 1023, ""},
		{"1024", "", 0, "not a number from 1 to 1023"},
		{"two", "", 0, "not a number"},
		{"from-hostname", "switchyard-0", 1, ""},
		{"from-hostname", "switchyard-2.switchyard-peers.default.svc", 3, ""},
		{"from-hostname", "switchyard", 0, "does not end in -K"},
		{"from-hostname", "switchyard-1023", 0, "does not end in -K"},
	} {
		got, err := parseInstanceID(tt.in, host(tt.host))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q on %q: %v, want an error with %q", tt.in, tt.host, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q on %q: %d %v, want %d", tt.in, tt.host, got, err, tt.want)
		}
	}
}

func TestInstanceIDOverride(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fleet.toml")
	os.WriteFile(path, []byte("[proxy]\npostgres_listen = \"127.0.0.1:6432\"\ninstance_id = 1\n[[users]]\nname = \"app\"\npassword = \"app\"\n"), 0o600)
	cfg, err := loadConfig(path, "")
	if err != nil || cfg.Proxy.InstanceID != 1 {
		t.Fatalf("file: %v %v", cfg, err)
	}
	cfg, err = loadConfig(path, "3")
	if err != nil || cfg.Proxy.InstanceID != 3 {
		t.Fatalf("override: %v %v", cfg, err)
	}
	if _, err := loadConfig(path, "5000"); err == nil {
		t.Fatal("5000 accepted")
	}
	var out, errb bytes.Buffer
	if code := run([]string{"-config", path, "-instance-id", "x"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "-instance-id") {
		t.Fatalf("bad flag: exit %d: %s", code, errb.String())
	}
}
