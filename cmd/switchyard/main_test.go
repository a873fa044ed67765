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
