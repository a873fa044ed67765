package replica_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lagmon"
	"github.com/switchyard/switchyard/replica"
)

// switchProber answers the primary's position, or fails while down.
type switchProber struct {
	down atomic.Bool
	lsn  atomic.Uint64
}

func (p *switchProber) Probe(context.Context) (lagmon.Position, error) {
	if p.down.Load() {
		return nil, errors.New("connection refused")
	}
	return lagmon.LSN(p.lsn.Load()), nil
}

// SHOW switchyard.write_position after a write whose primary position
// cannot be read answers an error, never the position from before the
// write: a token of that one would not cover the write, and a connection
// that reads after it could read stale data.
func TestWritePositionPrimaryUnreachable(t *testing.T) {
	prim := &switchProber{}
	prim.lsn.Store(100)
	rep := &switchProber{}
	rep.lsn.Store(100)
	var cl config.Cluster
	cl.Name, cl.Primary, cl.Replicas = "pg", "127.0.0.1:1", []string{"127.0.0.1:2"}
	cl.Settings.ReadYourWrites = true
	cl.Settings.LagPollInterval = time.Hour // only on-demand probes
	cl.Settings.MaxReplicaLag = time.Second
	var reg replica.Registry
	reg.Reload([]replica.Spec{{Protocol: "postgres", Cluster: cl, NewProbe: func(addr string, primary bool) lagmon.Prober {
		if primary {
			return prim
		}
		return rep
	}}})
	defer reg.Close()
	rt := reg.Get("pg")

	var w replica.Writes
	// A write while the primary answers: its position.
	prim.lsn.Store(200)
	w.Wrote(time.Now())
	if pos, err := rt.WritePosition(&w, nil); err != nil || pos != lagmon.LSN(200).String() {
		t.Fatalf("write_position with the primary reachable: %q, %v; want %q", pos, err, lagmon.LSN(200).String())
	}
	// A second write, then the primary cannot be probed.
	time.Sleep(2 * time.Millisecond)
	prim.down.Store(true)
	w.Wrote(time.Now())
	start := time.Now()
	pos, err := rt.WritePosition(&w, nil)
	if !errors.Is(err, replica.ErrWritePositionUnknown) {
		t.Fatalf("write_position with the primary unreachable: %q, %v; want ErrWritePositionUnknown (not the position before the write)", pos, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the error took %v; want about 2s", took)
	}
	// Reachable again: the new position.
	prim.down.Store(false)
	prim.lsn.Store(300)
	if pos, err := rt.WritePosition(&w, nil); err != nil || pos != lagmon.LSN(300).String() {
		t.Fatalf("write_position once the primary answers again: %q, %v; want %q", pos, err, lagmon.LSN(300).String())
	}
}
