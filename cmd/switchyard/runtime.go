package main

import (
	"os"
	"strings"
	"syscall"
)

// The Go runtime's sysmon thread sleeps deeply whenever every P is idle,
// and every goroutine that then enters a system call wakes it (a futex
// wake, and on a VM an inter-processor interrupt), after which it polls
// every 20 µs until the Ps are idle again. A proxy at a few clients goes
// idle between every request and its reply, so that happens twice per
// transaction: about 3 of its 9-10 system calls per pgbench transaction
// at one client were sysmon's futex and nanosleep calls, and the proxy's
// CPU per transaction was 30-40% higher than with sysmon kept out of deep
// sleep (README, Performance). The runtime skips the deep sleep when
// GODEBUG's schedtrace is set; at its largest value (2^31-1 ms, 24.8
// days) no trace is printed but once every 24.8 days of the machine's
// uptime (a line "SCHED ..." on stderr), and sysmon, never woken by
// system calls, backs off to one wake-up per 10 ms while nothing needs it.
//
// The setting is read when the process starts only, so the proxy execs
// itself once with it, keeping its pid, arguments and the rest of its
// environment. SWITCHYARD_RUNTIME_TUNING=off, or a GODEBUG that sets
// schedtrace already, leaves the runtime as it is.

const (
	runtimeTuningEnv = "SWITCHYARD_RUNTIME_TUNING"
	sysmonSetting    = "schedtrace=2147483647"
)

// tunedEnv is environ with the runtime setting added to GODEBUG; ok is
// false when nothing is to change.
func tunedEnv(environ []string) (env []string, ok bool) {
	godebug, i := "", -1
	for k, kv := range environ {
		switch {
		case kv == runtimeTuningEnv+"=off":
			return nil, false
		case strings.HasPrefix(kv, "GODEBUG="):
			godebug, i = strings.TrimPrefix(kv, "GODEBUG="), k
		}
	}
	for _, s := range strings.Split(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(s), "schedtrace=") {
			return nil, false
		}
	}
	env = append([]string(nil), environ...)
	if i < 0 {
		return append(env, "GODEBUG="+sysmonSetting), true
	}
	if godebug != "" {
		godebug += ","
	}
	env[i] = "GODEBUG=" + godebug + sysmonSetting
	return env, true
}

// tuneRuntime execs the proxy again with tunedEnv, when it changes
// anything; it returns only when it did not (or the exec failed: the
// proxy then runs with the runtime's defaults).
func tuneRuntime() {
	env, ok := tunedEnv(os.Environ())
	if !ok {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, env)
}
