package frontend

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/config"
)

// A client is counted in one state from login to logout, and a client
// that left is not counted again by a late change.
func TestClientStates(t *testing.T) {
	g := NewClientStates(config.Protocol("test"))
	val := func(m prometheus.Gauge) float64 {
		var d dto.Metric
		_ = m.Write(&d)
		return d.GetGauge().GetValue()
	}
	counts := func() [3]float64 { return [3]float64{val(g[StateIdle]), val(g[StateWaiting]), val(g[StateActive])} }
	var st ClientState
	g.Enter(&st)
	g.Set(&st, StateWaiting)
	g.Set(&st, StateActive)
	if c := counts(); c != [3]float64{0, 0, 1} || st.String() != "active" {
		t.Fatalf("active: %v %v", c, st)
	}
	g.Leave(&st)
	g.Set(&st, StateIdle)
	g.Leave(&st)
	if c := counts(); c != [3]float64{} || st != StateGone {
		t.Fatalf("after logout: %v %v", c, st)
	}
}
