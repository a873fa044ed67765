package testcluster

import (
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts the child in its own process group (so Stop can kill
// everything it started) and makes the kernel send it SIGKILL when this
// process dies, so a crashed test leaves no server behind. Go sets the
// parent-death signal after switching credentials, so it survives the switch
// to the server's OS user.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}

// copyFile copies a regular file with raw system calls and sendfile(2):
// templates have thousands of small files, and this is about twice as fast
// as going through os.File (no poller registration, no failed
// copy_file_range across file systems).
func copyFile(src, dst string, perm os.FileMode, size int64) error {
	in, err := syscall.Open(src, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: src, Err: err}
	}
	defer syscall.Close(in)
	out, err := syscall.Open(dst, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, uint32(perm))
	if err != nil {
		return &os.PathError{Op: "open", Path: dst, Err: err}
	}
	for size > 0 {
		n, err := syscall.Sendfile(out, in, nil, int(min(size, 1<<30)))
		if err == syscall.EINTR || err == syscall.EAGAIN {
			continue
		}
		if err != nil || n == 0 {
			syscall.Close(out)
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return &os.PathError{Op: "sendfile", Path: dst, Err: err}
		}
		size -= int64(n)
	}
	if err := syscall.Close(out); err != nil {
		return &os.PathError{Op: "close", Path: dst, Err: err}
	}
	return nil
}

// removeStaleShm removes the System V shared memory segment named in the
// postmaster.pid file of a dead PostgreSQL server, if no process is attached
// to it and its key still matches.
func removeStaleShm(pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return
	}
	f := strings.Fields(lines[6]) // "key shmid"
	if len(f) != 2 {
		return
	}
	key, err1 := strconv.ParseInt(f[0], 10, 64)
	id, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return
	}
	table, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(table), "\n") {
		// key shmid perms size cpid lpid nattch ...
		c := strings.Fields(line)
		if len(c) < 7 || c[1] != strconv.Itoa(id) {
			continue
		}
		if k, err := strconv.ParseInt(c[0], 10, 64); err == nil && k == key && c[6] == "0" {
			const ipcRMID = 0
			_, _, _ = syscall.Syscall(syscall.SYS_SHMCTL, uintptr(id), ipcRMID, 0)
		}
		return
	}
}
