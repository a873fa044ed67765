package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTunedEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want string // GODEBUG after; "" = unchanged
	}{
		{"no GODEBUG", []string{"PATH=/bin"}, sysmonSetting},
		{"other settings kept", []string{"GODEBUG=madvdontneed=1", "PATH=/bin"}, "madvdontneed=1," + sysmonSetting},
		{"empty GODEBUG", []string{"GODEBUG="}, sysmonSetting},
		{"schedtrace set by the operator", []string{"GODEBUG=gctrace=1,schedtrace=1000"}, ""},
		{"turned off", []string{runtimeTuningEnv + "=off", "GODEBUG=gctrace=1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, ok := tunedEnv(tc.in)
			if tc.want == "" {
				if ok {
					t.Fatalf("changed %v to %v; want it left alone", tc.in, env)
				}
				return
			}
			if !ok {
				t.Fatalf("left %v alone; want GODEBUG=%s", tc.in, tc.want)
			}
			var got []string
			for _, kv := range env {
				if strings.HasPrefix(kv, "GODEBUG=") {
					got = append(got, strings.TrimPrefix(kv, "GODEBUG="))
				}
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("GODEBUG = %q, want one %q", got, tc.want)
			}
			if !slices.Contains(env, "PATH=/bin") && slices.Contains(tc.in, "PATH=/bin") {
				t.Fatalf("lost the rest of the environment: %v", env)
			}
		})
	}
}

// The serving proxy runs with the runtime setting (same pid, exec'd once),
// unless the operator turns it off; subcommands are not re-executed.
func TestServingProxyTunesRuntime(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("needs /proc")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "switchyard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "c.toml")
	src := `
[proxy]
postgres_listen = "127.0.0.1:0"
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
`
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		extra []string
		want  bool
	}{{nil, true}, {[]string{runtimeTuningEnv + "=off"}, false}} {
		log := &lockedBuffer{}
		cmd := exec.Command(bin, "-config", cfg)
		cmd.Env = append(os.Environ(), tc.extra...)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !strings.Contains(log.String(), "listening"); {
			time.Sleep(20 * time.Millisecond)
		}
		// The same pid runs the exec'd proxy, with the new environment.
		env, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/environ")
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		got := bytes.Contains(env, []byte(sysmonSetting))
		if got != tc.want {
			t.Errorf("%v: the serving proxy's environment has %s: %v, want %v (log: %s)", tc.extra, sysmonSetting, got, tc.want, log.String())
		}
		if up := uptime(); strings.Contains(log.String(), "SCHED") && up > 0 && up < 24*24*time.Hour {
			t.Errorf("the runtime printed a scheduler trace (machine up %v): %s", up, log.String())
		}
	}
}

// uptime is the machine's, from /proc/uptime (0: unknown). The runtime
// prints its trace once the monotonic clock passes 2^31-1 ms.
func uptime() time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
