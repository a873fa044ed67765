package main

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

// sysProcAttr puts a child in its own process group, so that stopping it
// stops whatever it started too (go test's test binaries), and has the
// kernel SIGKILL it when this process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// proc is a long-running child (the proxy); its output goes to logPath.
type proc struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // Wait's result, valid once done is closed
}

func startProc(logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig, waits up to grace, then kills the process group.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if !p.exited() {
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
	}
	killGroup(p.cmd.Process.Pid)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	return tail(b, n)
}

// runCmd runs a program to completion within timeout in its own process
// group (all of it is killed when ctx ends or the time is up), with its
// stdout to out (when set) and returns its stderr.
func runCmd(ctx context.Context, timeout time.Duration, dir string, env []string, out io.Writer, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error {
		killGroup(cmd.Process.Pid)
		return nil
	}
	cmd.WaitDelay = 10 * time.Second
	var errOut bytes.Buffer
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, &errOut
	err := cmd.Run()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("%s %s: timed out after %v", bin, strings.Join(args, " "), timeout)
	case ctx.Err() != nil:
		err = ctx.Err()
	case err != nil:
		err = fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
	}
	return errOut.String(), err
}

// tail returns the end of b, at most n bytes, from a line start.
func tail(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	b = b[len(b)-n:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}

// baseEnv is this process's environment without what would change where
// pgx's tests connect (PG*, PGX_*, DATABASE_URL) or let the go command
// reach the network, plus extra.
func baseEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || k == "DATABASE_URL" || k == "GOPROXY" || k == "GOTOOLCHAIN" || k == "GOFLAGS" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}
