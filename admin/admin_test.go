package admin

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStatusMetricsReload(t *testing.T) {
	fail := false
	h := NewHandler(func() error {
		if fail {
			return errors.New("config.toml:3: proxy.max_client_conns: must be more than 0")
		}
		return nil
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.Sections = map[string]func() any{"postgres": func() any { return map[string]int{"replicas": 2} }}
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Uptime   string
		Pools    []PoolStatus
		Sections map[string]map[string]int
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Sections["postgres"]["replicas"] != 2 {
		t.Fatalf("status: %+v %v", st, err)
	}
	resp.Body.Close()

	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "go_goroutines") {
		t.Fatalf("metrics: %.200s", body)
	}

	resp, _ = http.Post(srv.URL+"/reload", "text/plain", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("reload: %d", resp.StatusCode)
	}
	fail = true
	resp, _ = http.Post(srv.URL+"/reload", "text/plain", nil)
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "config.toml:3") {
		t.Fatalf("rejected reload: %d %s", resp.StatusCode, body)
	}
	if r, _ := http.Get(srv.URL + "/reload"); r.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /reload: %d", r.StatusCode)
	}
}

func TestReloadProtection(t *testing.T) {
	reloads := 0
	token := "s3cret-token-0123456789"
	h := NewHandler(func() error { reloads++; return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.Token = func() string { return token }
	srv := httptest.NewServer(h)
	defer srv.Close()

	post := func(hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/reload", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"wrong token", map[string]string{"Authorization": "Bearer nope-nope-nope-nope"}, http.StatusUnauthorized},
		{"basic auth", map[string]string{"Authorization": "Basic " + token}, http.StatusUnauthorized},
		{"no scheme", map[string]string{"Authorization": token}, http.StatusUnauthorized},
		{"browser page with the token", map[string]string{"Authorization": "Bearer " + token, "Origin": "https://evil.example"}, http.StatusForbidden},
		{"fetch metadata cross-site", map[string]string{"Authorization": "Bearer " + token, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
	} {
		if code, body := post(tc.hdr); code != tc.want {
			t.Errorf("%s: got %d %q, want %d", tc.name, code, body, tc.want)
		}
	}
	if reloads != 0 {
		t.Fatalf("a refused request reloaded %d times", reloads)
	}
	if code, body := post(map[string]string{"Authorization": "Bearer " + token}); code != 200 || reloads != 1 {
		t.Fatalf("with the token: %d %q, %d reloads", code, body, reloads)
	}
	// The scheme is case-insensitive (RFC 7235).
	if code, body := post(map[string]string{"Authorization": "bearer " + token}); code != 200 || reloads != 2 {
		t.Fatalf("with the token after \"bearer\": %d %q, %d reloads", code, body, reloads)
	}
	// Reads stay open: Prometheus scrapes without a token.
	if r, err := http.Get(srv.URL + "/status"); err != nil || r.StatusCode != 200 {
		t.Fatalf("GET /status without the token: %v %v", r, err)
	}
	// A token changed by a reload applies to the next request.
	token = "another-token-9876543210"
	if code, _ := post(map[string]string{"Authorization": "Bearer s3cret-token-0123456789"}); code != http.StatusUnauthorized {
		t.Fatalf("old token after a change: %d", code)
	}
	// No token configured: a tool's POST works, a browser page's does not.
	token = ""
	if code, _ := post(nil); code != 200 {
		t.Fatalf("no token configured: %d", code)
	}
	if code, _ := post(map[string]string{"Origin": "http://127.0.0.1:9930"}); code != http.StatusForbidden {
		t.Fatalf("no token configured, Origin header: %d", code)
	}
	if reloads != 3 {
		t.Fatalf("reloads = %d, want 3", reloads)
	}
}

// /debug/pprof is served on the handler's own mux and guarded for every
// method: the token when one is set, never from a browser page.
func TestPprofProtection(t *testing.T) {
	token := "pprof-token-0123456789"
	h := NewHandler(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.Token = func() string { return token }
	srv := httptest.NewServer(h)
	defer srv.Close()

	get := func(path string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	bearer := map[string]string{"Authorization": "Bearer " + token}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline", "/debug/pprof/symbol", "/debug/pprof"} {
		if code, body := get(path, nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d %.100q, want 401", path, code, body)
		}
		if code, body := get(path, map[string]string{"Authorization": "Bearer wrong-token-000000000"}); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d %.100q, want 401", path, code, body)
		}
		if code, body := get(path, map[string]string{"Authorization": "Bearer " + token, "Origin": "https://evil.example"}); code != http.StatusForbidden {
			t.Errorf("GET %s from a browser page with the token: %d %.100q, want 403", path, code, body)
		}
	}
	if code, body := get("/debug/pprof/", bearer); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("index with the token: %d %.200q", code, body)
	}
	if code, body := get("/debug/pprof/goroutine?debug=1", bearer); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("goroutine profile with the token: %d %.200q", code, body)
	}
	if code, body := get("/debug/pprof/profile?seconds=1", bearer); code != 200 || len(body) == 0 {
		t.Fatalf("CPU profile with the token: %d, %d bytes", code, len(body))
	}
	// POST (pprof's symbol lookup takes one) is guarded the same way.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/debug/pprof/symbol", strings.NewReader("0x1"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST symbol without the token: %v %v", resp, err)
	}
	// No token configured: a tool reads profiles, a browser page does not.
	token = ""
	if code, _ := get("/debug/pprof/", nil); code != 200 {
		t.Fatalf("no token configured: %d", code)
	}
	if code, _ := get("/debug/pprof/heap", map[string]string{"Origin": "http://127.0.0.1:9930"}); code != http.StatusForbidden {
		t.Fatalf("no token configured, Origin header: %d", code)
	}
	// The rest of the reads stay open.
	token = "pprof-token-0123456789"
	if code, _ := get("/status", nil); code != 200 {
		t.Fatalf("GET /status without the token: %d", code)
	}
}
