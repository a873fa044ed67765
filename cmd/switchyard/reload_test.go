package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReloadReportsListenerChanges: a reload cannot move a listener; the
// answer to `switchyard reload` (and POST /reload) says so, and the change
// is judged against the address bound at start. Before, the answer said
// only "reloaded" (the warning went to the log alone), and the next
// reload compared with the last file: reverting the change was logged as
// a change still to come, and keeping it was no longer mentioned.
func TestReloadReportsListenerChanges(t *testing.T) {
	dir := t.TempDir()
	pgPort, movedPort := freePort(t), freePort(t)
	path := filepath.Join(dir, "switchyard.toml")
	write := func(port int) {
		os.WriteFile(path, []byte(fmt.Sprintf(`[proxy]
postgres_listen = "127.0.0.1:%d"
mysql_listen = ""
admin_listen = ""

[[users]]
name = "app"
password = "app"

[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = "127.0.0.1:1"
`, port)), 0o600)
	}
	write(pgPort)
	cfg, err := loadConfig(path, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := start(cfg, path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	waitListening(t, pgPort)

	write(movedPort)
	for i := 0; i < 2; i++ { // the second reload of the same file still says it
		if err := p.reload(); err != nil {
			t.Fatal(err)
		}
		if s := p.instanceStatus().String(); !strings.Contains(s, "not applied until a restart") || !strings.Contains(s, fmt.Sprintf("proxy.postgres_listen: \"127.0.0.1:%d\" -> \"127.0.0.1:%d\"", pgPort, movedPort)) {
			t.Fatalf("reload %d with a moved listener answers %q", i+1, s)
		}
	}
	write(pgPort)
	if err := p.reload(); err != nil {
		t.Fatal(err)
	}
	if s := p.instanceStatus().String(); strings.Contains(s, "restart") {
		t.Fatalf("reload with the listener as bound answers %q", s)
	}
}
