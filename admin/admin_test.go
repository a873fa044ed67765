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
