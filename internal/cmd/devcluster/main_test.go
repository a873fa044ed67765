package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePorts(t *testing.T) {
	got, err := parsePorts(" 15432, 15433,15434 ")
	if err != nil || len(got) != 3 || got[0] != 15432 || got[2] != 15434 {
		t.Fatalf("got %v, %v", got, err)
	}
	if got, err := parsePorts(""); err != nil || got != nil {
		t.Fatalf("empty: got %v, %v", got, err)
	}
	for _, bad := range []string{"x", "1,,2", "0", "65536", "-5"} {
		if _, err := parsePorts(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestClusterDir(t *testing.T) {
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	// Short and reachable: used as is.
	got, err := clusterDir(base, "mariadb", false)
	if err != nil || got != filepath.Join(base, "mariadb") {
		t.Fatalf("got %q, %v", got, err)
	}
	// Too long for unix sockets: placed elsewhere, linked from base.
	long := filepath.Join(base, strings.Repeat("d", maxDir))
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err = clusterDir(long, "postgres", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(got)) })
	if len(got) > maxDir || filepath.Base(got) != "postgres" {
		t.Errorf("placed at %q", got)
	}
	if link, err := os.Readlink(filepath.Join(long, "postgres")); err != nil || link != got {
		t.Errorf("link: %q, %v; want %q", link, err, got)
	}
	if err := os.MkdirAll(got, 0o700); err != nil {
		t.Fatal(err)
	}
	// A second run finds the link.
	if again, err := clusterDir(long, "postgres", false); err != nil || again != got {
		t.Errorf("second run: %q, %v; want %q", again, err, got)
	}
}

func TestReachable(t *testing.T) {
	d := t.TempDir()
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(d, "x")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if reachable(sub) {
		t.Errorf("%s under a 0700 directory: reachable", sub)
	}
	if !reachable("/") {
		t.Error("/ not reachable")
	}
}
