package testcluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Creating a data directory (initdb and the roles and databases, or
// mariadb-install-db) costs one to two seconds, more than everything else
// together. It is done once per machine and user: the result (a cleanly shut
// down data directory) is kept under the user's cache directory, keyed by
// the server binary and everything that goes into the directory, and every
// cluster copies it. SWITCHYARD_TESTCLUSTER_CACHE=off turns the cache off;
// SWITCHYARD_TESTCLUSTER_CACHE=/some/dir puts it elsewhere.

// templateFormat changes whenever the way templates are built changes.
const templateFormat = "1"

const cacheEnv = "SWITCHYARD_TESTCLUSTER_CACHE"

// lockTimeout bounds the wait for another process building the same
// template; after it, this process builds its own copy without the cache.
const lockTimeout = 3 * time.Minute

func cacheRoot() string {
	switch v := os.Getenv(cacheEnv); v {
	case "off", "0", "false", "no":
		return ""
	case "":
		d, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		return filepath.Join(d, "switchyard-testcluster")
	default:
		return v
	}
}

// templateKey names a template by kind ("pg", "mariadb") and a hash of
// the server binary's identity and of parts (the settings, SQL, ... that go
// into the directory).
func templateKey(kind, binary string, parts ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", templateFormat, binary)
	if fi, err := os.Stat(binary); err == nil {
		fmt.Fprintf(h, "%d\x00%d\x00", fi.Size(), fi.ModTime().UnixNano())
	}
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\x00", len(p), p)
	}
	return kind + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// cachedTemplate returns the path of the template directory for key,
// building it first if needed: build must create a data directory at the
// path it is given, which lies inside scratch (a directory the server's OS
// user can use). Concurrent test binaries build a missing template once; the
// others wait for it. Without a usable cache the template is built in
// scratch.
func cachedTemplate(key, scratch string, build func(dir string) error) (string, error) {
	local := filepath.Join(scratch, "template")
	cache := cacheRoot()
	if cache == "" {
		return local, build(local)
	}
	final := filepath.Join(cache, key)
	if isDir(final) {
		now := time.Now()
		_ = os.Chtimes(final, now, now) // mark as used, see pruneCache
		return final, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return local, build(local)
	}
	unlock, err := lockFile(final + ".lock")
	if err != nil {
		return local, build(local)
	}
	defer unlock()
	if isDir(final) {
		return final, nil
	}
	if err := build(local); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.tmp%d", final, os.Getpid())
	os.RemoveAll(tmp)
	if err := copyTree(local, tmp, nil); err != nil {
		os.RemoveAll(tmp)
		return local, nil // no cache this time; the local template works
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		if !isDir(final) {
			return local, nil
		}
	}
	os.RemoveAll(local)
	pruneCache(cache, key)
	return final, nil
}

// dropTemplate removes a cached template that did not work (for example
// because a cleaner removed some of its files).
func dropTemplate(path string) {
	if cache := cacheRoot(); cache != "" && filepath.Dir(path) == cache {
		os.RemoveAll(path)
	}
}

// pruneCache removes templates of the same kind that have not been used for
// a week (left behind by older server versions or settings).
func pruneCache(cache, keep string) {
	kind, _, _ := strings.Cut(keep, "-")
	entries, err := os.ReadDir(cache)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if name == keep || !strings.HasPrefix(name, kind+"-") || strings.HasSuffix(name, ".lock") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > 7*24*time.Hour {
			os.RemoveAll(filepath.Join(cache, name)) // lock files stay: tiny, and maybe in use
		}
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// lockFile takes an exclusive flock on path, waiting for it at most
// lockTimeout. The kernel releases it if this process dies.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(lockTimeout)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if (err != syscall.EWOULDBLOCK && err != syscall.EINTR) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
