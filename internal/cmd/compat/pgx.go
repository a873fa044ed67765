package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// pgxDir is where the writable copy of pgx lives: one directory per
// version, the same from run to run, so that the go command's build cache
// (which keys compiled packages by their directory too) spares the second
// run the compiling. A lock (lockPgx) keeps two runs apart.
func (o *options) pgxDir() string {
	return filepath.Join(os.TempDir(), "switchyard-compat-pgx-"+o.pgxVersion)
}

// lockPgx takes the lock on the pgx copy for the whole run, waiting for
// another run that holds it. The lock goes with this process.
func lockPgx(o *options, stderr io.Writer) error {
	f, err := os.OpenFile(o.pgxDir()+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		return nil
	}
	fmt.Fprintf(stderr, "compat: another run uses %s; waiting for it\n", o.pgxDir())
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
}

// sumFile records which module zip the copy was made from.
const sumFile = ".switchyard-compat-sum"

// preparePgx downloads pgx at the pinned version through the Go module
// proxy (GOPROXY as the Makefile sets it), copies it out of the read-only
// module cache, and downloads the modules its tests need, so that the runs
// need no network.
func preparePgx(ctx context.Context, o *options) error {
	env := baseEnv("GOFLAGS=-buildvcs=false")
	var out bytes.Buffer
	mod := modulePath + "@" + o.pgxVersion
	if errOut, err := runCmd(ctx, 10*time.Minute, "", env, &out, "go", "mod", "download", "-json", mod); err != nil {
		return fmt.Errorf("go mod download %s: %w\n%s%s", mod, err, out.String(), errOut)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out.Bytes(), &info); err != nil {
		return fmt.Errorf("go mod download %s: %w", mod, err)
	}
	if info.Error != "" || info.Dir == "" {
		return fmt.Errorf("go mod download %s: %s", mod, info.Error)
	}
	var sum struct{ Sum string }
	_ = json.Unmarshal(out.Bytes(), &sum)
	dst := o.pgxDir()
	if have, err := os.ReadFile(filepath.Join(dst, sumFile)); err != nil || sum.Sum == "" || string(have) != sum.Sum {
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := copyTree(info.Dir, dst); err != nil {
			return fmt.Errorf("copying %s: %w", info.Dir, err)
		}
		if err := os.WriteFile(filepath.Join(dst, sumFile), []byte(sum.Sum), 0o644); err != nil {
			return err
		}
	}
	if errOut, err := runCmd(ctx, 10*time.Minute, dst, env, nil, "go", "mod", "download"); err != nil {
		return fmt.Errorf("go mod download (pgx's dependencies): %w\n%s", err, errOut)
	}
	// Everything the test binaries import must now be here: checked with
	// the proxy off, as the runs will have it.
	offline := append(env, "GOPROXY=off", "GOTOOLCHAIN=local")
	args := append([]string{"list", "-test", "-deps"}, pkgArgs(o.pkgs)...)
	if errOut, err := runCmd(ctx, 5*time.Minute, dst, offline, nil, "go", args...); err != nil {
		return fmt.Errorf("pgx's test dependencies are not all downloaded: %w\n%s", err, errOut)
	}
	return nil
}

// pkgArgs turns short package names into go test's relative patterns.
func pkgArgs(pkgs []string) []string {
	var out []string
	for _, p := range pkgs {
		if p == "pgx" {
			out = append(out, ".")
		} else {
			out = append(out, "./"+strings.TrimPrefix(p, "./"))
		}
	}
	return out
}

// copyTree copies the module's files, writable (the module cache's are
// read-only and some tests write next to themselves).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm()|0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
