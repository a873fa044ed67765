package pool

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// BenchmarkGetPut measures the lease itself, the cost every transaction pays
// on top of the relay. uncontended: an idle connection is always at hand
// (with and without the checks a production pool has); parallel: as many connections as goroutines, so the cost is the shared
// lock; starved: fewer connections than goroutines, so most Gets queue and
// are served by a handoff.
func BenchmarkGetPut(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, o Options, parallel bool) {
		p, _ := newTestPool(b, o)
		size := o.Size
		warm := make([]*Server, size)
		for i := range warm {
			warm[i] = mustGet(b, p)
		}
		for _, s := range warm {
			p.Put(s, true)
		}
		b.ReportAllocs()
		b.ResetTimer()
		if !parallel {
			for b.Loop() {
				s, err := p.Get(ctx)
				if err != nil {
					b.Fatal(err)
				}
				p.Put(s, true)
			}
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s, err := p.Get(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				p.Put(s, true)
			}
		})
	}
	procs := runtime.GOMAXPROCS(0)
	// checks: the options a production pool has, which make Get and Put
	// read the clock and call Alive.
	checks := Options{Size: 1, IdleTimeout: time.Minute, Lifetime: time.Hour,
		CheckDelay: time.Minute, Ping: ping, Alive: alive}
	b.Run("uncontended", func(b *testing.B) { run(b, Options{Size: 1}, false) })
	b.Run("uncontended-checks", func(b *testing.B) { run(b, checks, false) })
	b.Run("parallel", func(b *testing.B) { run(b, Options{Size: procs}, true) })
	b.Run("starved", func(b *testing.B) { b.SetParallelism(4); run(b, Options{Size: 1}, true) })
}
