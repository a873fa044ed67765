// Package admin is the operator's HTTP window on a running proxy:
// Prometheus metrics, a JSON view of the pools, and reload. It reads the
// state the other packages expose and changes nothing but through Reload.
//
// Protection: reads (GET /metrics, GET /status) are open to whoever reaches
// the listener, as Prometheus scrapes expect. A request that changes state
// (any method but GET and HEAD) is refused with 403 when it carries a
// browser's Origin header, so that a web page open in the operator's
// browser cannot make it reload the proxy (a cross-site form POST needs no
// CORS approval), and with 401 when an admin token is configured and the
// request does not carry it as "Authorization: Bearer <token>".
//
// POST /peer/kill is the fleet's peer channel (package fleet): another
// instance sends a MySQL KILL for one of this instance's clients. It is
// guarded like /reload and, further, refused unless an admin token is
// configured.
//
// /debug/pprof/* (Go's profiler) is served too, as operators expect, but a
// profile costs CPU and reveals the binary's internals, so every request
// there, whatever its method, is guarded like a state-changing one: it
// needs the token when one is configured, and one from a browser page is
// refused.
package admin

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/metrics"
)

// Handler serves /metrics, /status, /reload and /debug/pprof/.
type Handler struct {
	// Reload loads and applies the config file; its error (a rejected
	// file names the line) is shown to the caller.
	Reload  func() error
	Log     *slog.Logger
	Started time.Time
	// Sections adds named parts to /status (replicas, clients, shards),
	// supplied by the packages that own that state.
	Sections map[string]func() any
	// Token returns the bearer token that state-changing requests and
	// /debug/pprof requests must carry; "" (or a nil Token) requires none. Read at each request, so a
	// reload that changes admin_token applies to the next one.
	Token func() string
	// PeerKill, when set, serves the fleet's peer channel (POST
	// /peer/kill): a MySQL KILL another instance took for one of this
	// instance's clients. It is served only when an admin token is
	// configured: the ids are no secret, the token is what proves the
	// sender is an instance of the fleet.
	PeerKill func(fleet.KillRequest) fleet.KillReply
	// Instance, when set, describes this instance for /status and for the
	// answer to a reload: its instance_id and the versions it serves.
	Instance func() Instance
	mux      *http.ServeMux
}

// Instance is what /status and /reload say about the instance itself.
type Instance struct {
	// InstanceID is proxy.instance_id (0: not in a fleet).
	InstanceID int `json:"instance_id"`
	// ConfigVersion counts the configs this process has applied: 1 at
	// start, one more at each accepted reload.
	ConfigVersion uint64 `json:"config_version"`
	// MapVersions are the shard map versions in force, by cluster name
	// (sharded clusters only).
	MapVersions map[string]uint64 `json:"map_versions"`
	// RestartNeeded lists what the config file asks for that a reload
	// cannot apply (a listener's address, bound at start), as
	// `proxy.postgres_listen: "a" -> "b"`: the running value stays.
	RestartNeeded []string `json:"restart_needed,omitempty"`
}

// String is the one-line form `switchyard reload` prints.
func (i Instance) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "instance %d, config version %d, shard maps", i.InstanceID, i.ConfigVersion)
	if len(i.MapVersions) == 0 {
		b.WriteString(" none")
	}
	names := make([]string, 0, len(i.MapVersions))
	for n := range i.MapVersions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, " %s=v%d", n, i.MapVersions[n])
	}
	if len(i.RestartNeeded) > 0 {
		fmt.Fprintf(&b, "; not applied until a restart: %s", strings.Join(i.RestartNeeded, ", "))
	}
	return b.String()
}

// Refusals counts the admin requests refused, by reason: "origin" (a
// browser page), "token" (missing or wrong bearer token).
var Refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "switchyard_admin_refused_total",
	Help: "Admin HTTP requests that would change state or read /debug/pprof, refused: reason origin (sent by a browser page) or token (missing or wrong bearer token).",
}, []string{"reason"})

func init() { metrics.Registry.MustRegister(Refusals) }

// NewHandler wires the routes.
func NewHandler(reload func() error, log *slog.Logger) *Handler {
	h := &Handler{Reload: reload, Log: log, Started: time.Now(), mux: http.NewServeMux()}
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	h.mux.HandleFunc("GET /status", h.status)
	h.mux.HandleFunc("POST /reload", h.reload)
	h.mux.HandleFunc("POST "+fleet.KillPath, h.peerKill)
	// On our own mux, not http.DefaultServeMux (which importing
	// net/http/pprof fills too, but which nothing here serves).
	h.mux.HandleFunc("/debug/pprof/", pprof.Index)
	h.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	h.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	h.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	h.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	guarded := r.Method != http.MethodGet && r.Method != http.MethodHead ||
		strings.HasPrefix(r.URL.Path, "/debug/pprof")
	if guarded && !h.allowed(w, r) {
		return
	}
	h.mux.ServeHTTP(w, r)
}

// allowed guards a request that may change state or profile the proxy,
// answering it when it is refused.
func (h *Handler) allowed(w http.ResponseWriter, r *http.Request) bool {
	// Browsers send Origin on every cross-site POST, and Sec-Fetch-Site on
	// every request; tools such as curl and switchyard reload send neither.
	if origin := r.Header.Get("Origin"); origin != "" || fromBrowserPage(r) {
		Refusals.WithLabelValues("origin").Inc()
		h.Log.Warn("admin: refused a guarded request sent by a browser page", "path", r.URL.Path, "origin", origin, "remote", r.RemoteAddr)
		http.Error(w, "refused: requests from a web page (an Origin header) cannot change the proxy's state or profile it\n", http.StatusForbidden)
		return false
	}
	want := ""
	if h.Token != nil {
		want = h.Token()
	}
	if want == "" {
		return true
	}
	// The scheme is case-insensitive (RFC 7235): "bearer" works too.
	auth := r.Header.Get("Authorization")
	scheme, got, ok := strings.Cut(auth, " ")
	ok = ok && strings.EqualFold(scheme, "Bearer")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1 {
		Refusals.WithLabelValues("token").Inc()
		h.Log.Warn("admin: refused a guarded request without the admin token", "path", r.URL.Path, "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard admin"`)
		http.Error(w, "unauthorized: this request needs the admin token (proxy.admin_token) as \"Authorization: Bearer <token>\"\n", http.StatusUnauthorized)
		return false
	}
	return true
}

// fromBrowserPage says whether fetch metadata marks a request as made by a
// page of another site (or the same site: the admin listener serves no
// pages, so any page is foreign). "none" is a user typing the address.
func fromBrowserPage(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "none":
		return false
	}
	return true
}

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
		*Instance
		Uptime   string         `json:"uptime"`
		Pools    []PoolStatus   `json:"pools"`
		Sections map[string]any `json:"sections,omitempty"`
	}
	if h.Instance != nil {
		in := h.Instance()
		out.Instance = &in
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
	if h.Instance != nil {
		_, _ = w.Write([]byte("reloaded: " + h.Instance().String() + "\n"))
		return
	}
	_, _ = w.Write([]byte("reloaded\n"))
}

// peerKill serves POST /peer/kill for the instances of the fleet.
func (h *Handler) peerKill(w http.ResponseWriter, r *http.Request) {
	if h.PeerKill == nil {
		http.Error(w, "this instance serves no MySQL clients\n", http.StatusNotFound)
		return
	}
	if h.Token == nil || h.Token() == "" {
		// allowed() let it through without a token: none is configured.
		Refusals.WithLabelValues("token").Inc()
		h.Log.Warn("admin: refused a KILL from a peer: the peer channel needs proxy.admin_token", "remote", r.RemoteAddr)
		http.Error(w, "refused: the peer channel needs proxy.admin_token on every instance\n", http.StatusForbidden)
		return
	}
	var k fleet.KillRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&k); err != nil || k.User == "" {
		http.Error(w, "malformed KILL request\n", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(h.PeerKill(k))
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
