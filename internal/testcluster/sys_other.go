//go:build unix && !linux

package testcluster

import (
	"io"
	"os"
	"syscall"
)

// sysProcAttr puts the child in its own process group so Stop can kill
// everything it started. (No parent-death signal outside Linux.)
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}

// copyFile copies a regular file.
func copyFile(src, dst string, perm os.FileMode, _ int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// removeStaleShm is a no-op outside Linux.
func removeStaleShm(string) {}
