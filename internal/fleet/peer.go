package fleet

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/switchyard/switchyard/config"
)

// The peer channel is a route of the admin listener, POST /peer/kill,
// under its protections (admin_token, admin_tls); it carries a MySQL
// KILL to the instance whose client it names. A KILL is not a PostgreSQL
// cancel: its id is no secret (MySQL's are sequential), so what allows it
// is the user name, which the instance that took the statement has
// authenticated, and the admin token, which proves the request comes from
// an instance of the fleet. The alternative, the peer's MySQL listener
// with the client's credentials, needs a password the proxy may not hold
// (verifiers, auth_query users).

// KillPath is the admin route of the peer channel.
const KillPath = "/peer/kill"

// KillRequest is a KILL sent to the peer whose client it names.
type KillRequest struct {
	ID    uint64 `json:"id"`
	Query bool   `json:"query"` // KILL QUERY; else KILL CONNECTION
	User  string `json:"user"`  // the user who sent it, authenticated by the sender
}

// Results of a KillReply.
const (
	KillOK      = "ok"
	KillUnknown = "unknown" // no such client (or not this instance's)
	KillDenied  = "denied"  // the client is another user's
	KillError   = "error"   // the server refused or could not be reached
)

// KillReply is the peer's answer.
type KillReply struct {
	Result  string `json:"result"`
	Message string `json:"message,omitempty"`
}

// Client talks to peers' admin listeners.
type Client struct {
	HTTP  *http.Client
	https bool
	token string
	cfg   *config.Config

	mu         sync.Mutex
	transports map[string]*http.Transport // by host, under admin_tls
}

// NewClient returns a client for the peers of cfg: HTTPS when admin_tls,
// with the token of admin_token. Every instance of a fleet reads the same
// file, so a peer serves the same certificate as this one.
func NewClient(cfg *config.Config, timeout time.Duration) (*Client, error) {
	c := &Client{HTTP: &http.Client{Timeout: timeout}, https: cfg.Proxy.AdminTLS, token: cfg.Proxy.AdminToken, cfg: cfg}
	if cfg.Proxy.AdminTLS {
		// Fail now on a certificate that cannot be loaded.
		if _, err := AdminClientTLS(cfg, ""); err != nil {
			return nil, err
		}
		c.transports = map[string]*http.Transport{}
		c.HTTP.Transport = roundTripper(c.roundTrip)
	}
	return c, nil
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip sends r through a transport that verifies the certificate for
// r's host (admin_tls).
func (c *Client) roundTrip(r *http.Request) (*http.Response, error) {
	host := r.URL.Hostname()
	c.mu.Lock()
	t := c.transports[host]
	if t == nil {
		tc, err := AdminClientTLS(c.cfg, host)
		if err != nil {
			c.mu.Unlock()
			return nil, err
		}
		t = &http.Transport{TLSClientConfig: tc}
		c.transports[host] = t
	}
	c.mu.Unlock()
	return t.RoundTrip(r)
}

// CloseIdleConnections closes the connections kept for later requests.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.transports {
		t.CloseIdleConnections()
	}
	c.HTTP.CloseIdleConnections()
}

// URL is the address of path on the admin listener addr.
func (c *Client) URL(addr, path string) string {
	if c.https {
		return "https://" + addr + path
	}
	return "http://" + addr + path
}

// Post sends a state-changing request to a peer's admin listener.
func (c *Client) Post(ctx context.Context, addr, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL(addr, path), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", "text/plain")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.HTTP.Do(req)
}

// Kill sends k to the peer's admin listener and returns its answer.
func (c *Client) Kill(ctx context.Context, peer config.Peer, k KillRequest) (KillReply, error) {
	if peer.AdminListen == "" {
		return KillReply{}, fmt.Errorf("peer %d has no admin_listen", peer.InstanceID)
	}
	body, _ := json.Marshal(k)
	resp, err := c.Post(ctx, peer.AdminListen, KillPath, body)
	if err != nil {
		return KillReply{}, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return KillReply{}, fmt.Errorf("peer %d: %s: %s", peer.InstanceID, resp.Status, bytes.TrimSpace(data))
	}
	var r KillReply
	if err := json.Unmarshal(data, &r); err != nil {
		return KillReply{}, fmt.Errorf("peer %d: malformed answer: %w", peer.InstanceID, err)
	}
	return r, nil
}

// AdminClientTLS is how a client of the admin listeners (switchyard
// reload, a peer) checks one at host under admin_tls. It reads the same
// config file as the proxy, so it knows the certificate the proxy serves:
// that exact certificate is accepted (which works for a self-signed one
// and for an address such as 127.0.0.1 that a certificate rarely names);
// anything else must verify against the system's roots for host.
func AdminClientTLS(cfg *config.Config, host string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(cfg.Proxy.TLSCert, cfg.Proxy.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("admin_tls: %w", err)
	}
	want := pair.Certificate[0]
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is done below, by VerifyConnection.
		InsecureSkipVerify: true, //nolint:gosec
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("admin listener sent no certificate")
			}
			if bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return nil
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: host, Intermediates: inter})
			return err
		},
	}, nil
}
