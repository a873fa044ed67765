package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The proxy's CPU time per transaction is the figure that survives a
// shared machine: TPS and latency measure the queue for the CPUs as much
// as the proxy, while the CPU a proxy burns per transaction is its own
// cost (what PgBouncer's "adds 4 µs per query" means). A sampler reads the
// proxy's utime+stime from /proc every cpuSampleEvery during a run; the
// measured window of the run (pgbench's per-transaction log) picks the two
// samples around it.

const cpuSampleEvery = 100 * time.Millisecond

// clockTick is the unit of utime and stime in /proc/<pid>/stat
// (sysconf(_SC_CLK_TCK), 100 on Linux).
const clockTick = 10 * time.Millisecond

type cpuSample struct {
	at  time.Time
	cpu time.Duration
}

// cpuSampler samples one process's CPU time until stopped.
type cpuSampler struct {
	pid     int
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []cpuSample
}

// startCPUSampler samples pid's CPU time; nil when pid is 0 (no proxy).
func startCPUSampler(pid int) *cpuSampler {
	if pid == 0 {
		return nil
	}
	s := &cpuSampler{pid: pid, stop: make(chan struct{})}
	s.sample()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(cpuSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				s.sample()
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *cpuSampler) sample() {
	cpu, err := procCPU(s.pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.samples = append(s.samples, cpuSample{time.Now(), cpu})
	s.mu.Unlock()
}

// finish stops the sampler and returns its samples.
func (s *cpuSampler) finish() []cpuSample {
	if s == nil {
		return nil
	}
	close(s.stop)
	s.wg.Wait()
	return s.samples
}

// cpuBetween is the CPU time the process used between from and to, from
// the last sample at or before from to the first at or after to (so a
// little more than the interval), and the length of that span.
func cpuBetween(samples []cpuSample, from, to time.Time) (cpu, span time.Duration, ok bool) {
	a, b := -1, -1
	for i, s := range samples {
		if !s.at.After(from) {
			a = i
		}
		if b < 0 && !s.at.Before(to) {
			b = i
		}
	}
	if a < 0 || b < 0 || b <= a {
		return 0, 0, false
	}
	return samples[b].cpu - samples[a].cpu, samples[b].at.Sub(samples[a].at), true
}

// procCPU reads utime+stime of pid from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	return time.Duration(ut+st) * clockTick, nil
}
