// Package admin is the operator's HTTP window on a running proxy:
// Prometheus metrics, a JSON view of the pools, and reload. It reads the
// state the other packages expose and changes nothing but through Reload.
package admin

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/internal/metrics"
)

// Handler serves /metrics, /status and /reload.
type Handler struct {
	// Reload loads and applies the config file; its error (a rejected
	// file names the line) is shown to the caller.
	Reload  func() error
	Log     *slog.Logger
	Started time.Time
	// Sections adds named parts to /status (replicas, clients, shards),
	// supplied by the packages that own that state.
	Sections map[string]func() any
	mux      *http.ServeMux
}

// NewHandler wires the routes.
func NewHandler(reload func() error, log *slog.Logger) *Handler {
	h := &Handler{Reload: reload, Log: log, Started: time.Now(), mux: http.NewServeMux()}
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	h.mux.HandleFunc("GET /status", h.status)
	h.mux.HandleFunc("POST /reload", h.reload)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// PoolStatus is one pool in /status.
type PoolStatus struct {
	Protocol string `json:"protocol"`
	Cluster  string `json:"cluster"`
	Node     string `json:"node"`
	User     string `json:"user"`
	Size     int    `json:"size"`
	Active   int    `json:"active"`
	Idle     int    `json:"idle"`
	Dialing  int    `json:"dialing"`
	Waiting  int    `json:"waiting"`
	Gets     int64  `json:"leases"`
	Timeouts int64  `json:"wait_timeouts"`
	MaxWait  string `json:"max_wait"`
}

func (h *Handler) status(w http.ResponseWriter, _ *http.Request) {
	var out struct {
		Uptime   string         `json:"uptime"`
		Pools    []PoolStatus   `json:"pools"`
		Sections map[string]any `json:"sections,omitempty"`
	}
	out.Uptime = time.Since(h.Started).Round(time.Second).String()
	out.Pools = []PoolStatus{}
	for _, pi := range metrics.Pools() {
		st := pi.Pool.Stats()
		out.Pools = append(out.Pools, PoolStatus{
			Protocol: pi.Protocol, Cluster: pi.Cluster, Node: pi.Node, User: pi.User, Size: pi.Size,
			Active: st.Active, Idle: st.Idle, Dialing: st.Dialing, Waiting: st.Waiting,
			Gets: st.Gets, Timeouts: st.WaitTimeouts, MaxWait: st.MaxWait.String(),
		})
	}
	if len(h.Sections) > 0 {
		out.Sections = make(map[string]any, len(h.Sections))
		for name, f := range h.Sections {
			out.Sections[name] = f()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

func (h *Handler) reload(w http.ResponseWriter, _ *http.Request) {
	if h.Reload == nil {
		http.Error(w, "reload is not available", http.StatusNotImplemented)
		return
	}
	if err := h.Reload(); err != nil {
		h.Log.Warn("reload rejected", "err", err)
		http.Error(w, "reload rejected; the running config stays:\n"+err.Error()+"\n", http.StatusBadRequest)
		return
	}
	_, _ = w.Write([]byte("reloaded\n"))
}

// Serve runs the admin listener until ln is closed.
func Serve(ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
