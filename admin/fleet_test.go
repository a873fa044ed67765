package admin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/fleet"
)

// The peer channel serves a KILL only with the admin token, and only when
// one is configured: the ids it names are no secret.
func TestPeerKillNeedsToken(t *testing.T) {
	token := ""
	var got []fleet.KillRequest
	h := NewHandler(func() error { return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.Token = func() string { return token }
	h.PeerKill = func(k fleet.KillRequest) fleet.KillReply {
		got = append(got, k)
		return fleet.KillReply{Result: fleet.KillDenied, Message: "You are not owner of thread 7"}
	}
	h.Instance = func() Instance {
		return Instance{InstanceID: 2, ConfigVersion: 3, MapVersions: map[string]uint64{"orders": 4}}
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(auth, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+fleet.KillPath, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	kill := `{"id":7,"query":true,"user":"app"}`
	if code, body := post("", kill); code != http.StatusForbidden || !strings.Contains(body, "admin_token") {
		t.Fatalf("without a configured token: %d %q", code, body)
	}
	token = "fleet-token-0123456789"
	if code, _ := post("", kill); code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", code)
	}
	if code, _ := post("wrong-token-0123456789", kill); code != http.StatusUnauthorized {
		t.Fatalf("with a wrong token: %d", code)
	}
	if code, _ := post(token, `{"id":7}`); code != http.StatusBadRequest {
		t.Fatalf("without a user: %d", code)
	}
	if len(got) != 0 {
		t.Fatalf("refused requests reached the server: %+v", got)
	}
	code, body := post(token, kill)
	var r fleet.KillReply
	if code != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil || r.Result != fleet.KillDenied {
		t.Fatalf("with the token: %d %q", code, body)
	}
	if len(got) != 1 || got[0] != (fleet.KillRequest{ID: 7, Query: true, User: "app"}) {
		t.Fatalf("the server got %+v", got)
	}

	// /status and the reload answer say which instance and versions.
	resp, err := http.Get(srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		InstanceID    int               `json:"instance_id"`
		ConfigVersion uint64            `json:"config_version"`
		MapVersions   map[string]uint64 `json:"map_versions"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.InstanceID != 2 || st.ConfigVersion != 3 || st.MapVersions["orders"] != 4 {
		t.Fatalf("status: %+v %v", st, err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/reload", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "reloaded: instance 2, config version 3, shard maps orders=v4\n"; string(b) != want {
		t.Fatalf("reload answer %q, want %q", b, want)
	}
}
