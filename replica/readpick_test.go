package replica_test

import (
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lagmon"
	"github.com/switchyard/switchyard/replica"
)

// PickRead is the one read-your-writes choice of both wires: a read
// after a failed check goes where AfterFailedCheck says (the primary,
// without causal_read_timeout); a request that cannot carry a check, or
// read_your_writes off, is Pick's (no check); one that can, after a
// write no replica is known to have, goes to a replica with a check of
// the write's position, and says the write's position was not sampled
// yet (WantPosition).
func TestPickRead(t *testing.T) {
	prim := &switchProber{}
	prim.lsn.Store(100)
	rep := &switchProber{}
	rep.lsn.Store(100)
	var reg replica.Registry
	defer reg.Close()
	reload := func(ryw bool) *replica.Runtime {
		var cl config.Cluster
		cl.Name, cl.Primary, cl.Replicas = "pg", "127.0.0.1:1", []string{"127.0.0.1:2"}
		cl.Settings.ReadYourWrites = ryw
		cl.Settings.LagPollInterval = 50 * time.Millisecond
		cl.Settings.MaxReplicaLag = time.Minute
		reg.Reload([]replica.Spec{{Protocol: "postgres", Cluster: cl, NewProbe: func(addr string, primary bool) lagmon.Prober {
			if primary {
				return prim
			}
			return rep
		}}})
		return reg.Get("pg")
	}
	rt := reload(true)
	var mu sync.Mutex
	var w replica.Writes
	deadline := time.Now().Add(30 * time.Second)
	for rt.PickRead(&w, nil, "test", &mu, time.Time{}, true, true).Node == nil {
		if time.Now().After(deadline) {
			t.Fatal("no replica chosen for a read without writes within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var zero time.Time
	if r := rt.PickRead(&w, nil, "test", &mu, zero, true, true); r.Node == nil || r.Check != nil || r.WantPosition {
		t.Errorf("no writes: %+v; want a replica, no check", r)
	} else {
		rt.Set.Done(r.Node)
	}

	prim.lsn.Store(200) // a write the replica has not replayed
	w.Wrote(time.Now())
	if r := rt.PickRead(&w, nil, "test", &mu, zero, false, true); r.Node != nil || r.Check != nil {
		t.Errorf("after a write, no check possible: %+v; want the primary", r)
	}
	w.Wrote(time.Now())
	r := rt.PickRead(&w, nil, "test", &mu, zero, true, true)
	if r.Node == nil || r.Check == nil || r.Check.String() != lagmon.LSN(200).String() || !r.WantPosition || r.Start.IsZero() {
		t.Fatalf("after a write, check possible: %+v; want a replica with a check of %v, WantPosition", r, lagmon.LSN(200))
	}
	rt.Set.Done(r.Node)
	if r := rt.PickRead(&w, nil, "test", &mu, time.Now(), true, true); r.Node != nil || r.Check != nil {
		t.Errorf("after a failed check: %+v; want the primary", r)
	}

	// Reads keeps the same choice across a session's reads: the check
	// until the wire takes it, a failed check until the read is routed
	// again.
	var reads replica.Reads
	w.Wrote(time.Now())
	n := reads.Pick(rt, &w, nil, "test", &mu, true, true)
	if n == nil || !reads.Checking() || !reads.WantPosition() {
		t.Fatalf("Reads after a write: node %v, checking %v, want position %v; want a replica with a check", n, reads.Checking(), reads.WantPosition())
	}
	rt.Set.Done(n)
	pos, start, _ := reads.Take()
	if pos == nil || pos.String() != lagmon.LSN(200).String() || start.IsZero() || reads.Checking() {
		t.Fatalf("Take: %v %v, checking after %v; want %v once", pos, start, reads.Checking(), lagmon.LSN(200))
	}
	reads.CheckFailed(start)
	if n := reads.Pick(rt, &w, nil, "test", &mu, true, true); n != nil || reads.Checking() {
		t.Errorf("Reads after a failed check: %v, checking %v; want the primary", n, reads.Checking())
	}
	if n := reads.Pick(rt, &w, nil, "test", &mu, true, true); n == nil || !reads.Checking() {
		t.Errorf("Reads once the failed read was routed again: %v; want a replica with a check", n)
	} else {
		rt.Set.Done(n)
		reads.Drop()
		if reads.Checking() {
			t.Error("Drop kept the check")
		}
	}

	rt = reload(false)
	w = replica.Writes{}
	w.Wrote(time.Now())
	r = rt.PickRead(&w, nil, "test", &mu, zero, true, true)
	if r.Check != nil || r.WantPosition {
		t.Errorf("read_your_writes off: %+v; want no check", r)
	}
	if r.Node != nil {
		rt.Set.Done(r.Node)
	}
}
