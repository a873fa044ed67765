package testcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// command builds an exec.Cmd that runs in its own process group, as the
// given user, with a cleaned environment, and (on Linux) is killed when this
// process dies.
func command(as *runAs, dir, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = childEnv(as)
	cmd.SysProcAttr = sysProcAttr(as.credential())
	return cmd
}

// childEnv is this process's environment without the variables that would
// change what the PostgreSQL and MySQL tools connect to, in C locale.
func childEnv(as *runAs) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "MYSQL") || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" {
			continue
		}
		if as != nil && (k == "HOME" || k == "USER" || k == "LOGNAME") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C", "LANG=C")
	if as != nil {
		env = append(env, "USER="+as.name, "LOGNAME="+as.name, "HOME=/")
	}
	return env
}

// runTool runs a short-lived program (initdb, pg_basebackup, ...) to
// completion, with a time limit, and returns its output in the error.
func runTool(ctx context.Context, as *runAs, dir, bin string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	cmd := command(as, dir, bin, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", bin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, tail(out.Bytes(), 4000))
		}
		return nil
	case <-ctx.Done():
		killGroup(cmd.Process.Pid)
		<-done
		return fmt.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), ctx.Err(), tail(out.Bytes(), 4000))
	}
}

func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// server is one running server process. Its stdout and stderr are appended
// to logPath.
type server struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFrom int64 // size of the log file when this process started
	done    chan struct{}
	err     error // Wait's result, valid after done is closed
}

func startServer(name string, as *runAs, dir, logPath, bin string, args ...string) (*server, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := as.chown(logPath); err != nil {
		return nil, err
	}
	var from int64
	if fi, err := f.Stat(); err == nil {
		from = fi.Size()
	}
	fmt.Fprintf(f, "---- testcluster: %s: %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := command(as, dir, bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, logPath: logPath, logFrom: from, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the server and waits for it to exit; after stopTimeout
// it kills the whole process group. Any process left in the group is killed.
func (s *server) stop(sig syscall.Signal) error {
	if !s.exited() {
		_ = s.cmd.Process.Signal(sig)
	}
	var err error
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		err = fmt.Errorf("%s did not stop within %v after %v; killed it\n%s", s.name, stopTimeout, sig, s.logTail())
		killGroup(s.cmd.Process.Pid)
		<-s.done
	}
	killGroup(s.cmd.Process.Pid)
	return err
}

// logTail returns the end of what this process wrote to its log.
func (s *server) logTail() string {
	f, err := os.Open(s.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(s.logFrom, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return "---- " + s.name + " log (" + s.logPath + "):\n" + tail(b, 6000)
}

// waitReady polls check until it succeeds, the server exits, or the
// deadline passes.
func (s *server) waitReady(ctx context.Context, what string, check func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var last error
	for {
		if s.exited() {
			log := s.logTail()
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("%s: %w\n%s", s.name, errPortTaken, log)
			}
			return fmt.Errorf("%s exited while waiting for it to %s (%v)\n%s", s.name, what, s.err, log)
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s did not %s within %v (last error: %v)\n%s", s.name, what, startTimeout, last, s.logTail())
			}
			return ctx.Err()
		case <-s.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		return "[...]\n" + string(b)
	}
	return string(b)
}
