package pgwire

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/pool"
)

// Bounded memory: the proxy-wide statement registry, the per-client
// statement cap, the caps before authentication.

// Dynamic SQL (a new statement text per Parse) does not grow the registry
// past statement_registry_size; a statement a client prepared before the
// churn, and still names, keeps working on every server connection; a
// statement in steady use stays shared; failed Parses are not kept.
func TestStatementRegistryBounded(t *testing.T) {
	p := serveConfig(t, limitsConfig("statement_registry_size = 100", "pool_size = 2", ""))
	ctx := ctxT(t, 120*time.Second)
	dsn := p.rawDSN("app", "app", "app")
	old, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(ctx)
	if _, err := old.Prepare(ctx, "kept", "SELECT $1::int + 1000", nil); err != nil {
		t.Fatal(err)
	}
	hot, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer hot.Close(ctx)
	if _, err := hot.Prepare(ctx, "hot", "SELECT $1::int + 2000", nil); err != nil {
		t.Fatal(err)
	}
	hotName := p.srv.stmts.lookup([]byte("SELECT $1::int + 2000\x00\x00\x00"), "").name
	evictions := counterSum(t, "switchyard_statement_registry_evictions_total")

	dyn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer dyn.Close(ctx)
	const n = 2000
	maxSeen := 0
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("d%d", i)
		if _, err := dyn.Prepare(ctx, name, fmt.Sprintf("SELECT %d AS v, $1::int AS p", i), nil); err != nil {
			t.Fatalf("prepare %d: %v", i, err)
		}
		if i%2 == 0 { // executed once, as dynamic SQL is
			if res := dyn.ExecPrepared(ctx, name, [][]byte{[]byte("1")}, nil, nil).Read(); res.Err != nil {
				t.Fatalf("execute %d: %v", i, res.Err)
			}
		}
		if err := dyn.Deallocate(ctx, name); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
		if i%20 == 0 { // a statement in steady use
			res := hot.ExecPrepared(ctx, "hot", [][]byte{[]byte("1")}, nil, nil).Read()
			if res.Err != nil {
				t.Fatalf("hot statement at %d: %v", i, res.Err)
			}
		}
		maxSeen = max(maxSeen, p.srv.stmts.len())
	}
	if maxSeen > 100 {
		t.Errorf("registry reached %d statements with statement_registry_size = 100", maxSeen)
	}
	if got := counterSum(t, "switchyard_statement_registry_evictions_total") - evictions; got < n-100 {
		t.Errorf("evictions counted: %v, want at least %d", got, n-100)
	}
	if g := metricSum(t, "switchyard_statement_registry_size"); g <= 0 {
		t.Errorf("switchyard_statement_registry_size = %v", g)
	}
	// The statement in steady use is still the shared one.
	if g := p.srv.stmts.lookup([]byte("SELECT $1::int + 2000\x00\x00\x00"), ""); g == nil || g.name != hotName {
		t.Errorf("statement in steady use was evicted from the registry (now %v)", g)
	}
	// The statement prepared before the churn, never used since, still
	// runs, on whichever server connection the client gets.
	for i := 0; i < 4; i++ {
		res := old.ExecPrepared(ctx, "kept", [][]byte{[]byte(fmt.Sprint(i))}, nil, nil).Read()
		if res.Err != nil {
			t.Fatalf("statement prepared before the churn: %v", res.Err)
		}
		if len(res.Rows) != 1 || string(res.Rows[0][0]) != fmt.Sprint(1000+i) {
			t.Fatalf("statement prepared before the churn answered %q", res.Rows)
		}
	}

	// Failed Parses are not kept.
	before := p.srv.stmts.len()
	for i := 0; i < 200; i++ {
		_, err := dyn.Prepare(ctx, fmt.Sprintf("bad%d", i), fmt.Sprintf("SELECT * FROM no_such_table_%d", i), nil)
		if sqlstate(err) != "42P01" {
			t.Fatalf("bad prepare %d: %v", i, err)
		}
	}
	if after := p.srv.stmts.len(); after > before {
		t.Errorf("failed Parses kept: registry %d -> %d", before, after)
	}
	res := dyn.ExecParams(ctx, "SELECT 1", nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("session after the failed Parses: %v", res.Err)
	}
}

// A client over max_client_prepared_statements gets 53400 for the next
// named Parse, outside and inside a transaction, and its session goes on:
// its statements still run, and one more fits once it closed one.
func TestClientPreparedStatementCap(t *testing.T) {
	p, logs := serveLogged(t, limitsConfig("max_client_prepared_statements = 5", "", ""))
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	refusals := counterSum(t, "switchyard_client_limit_refusals_total")
	for i := 0; i < 5; i++ {
		if _, err := conn.Prepare(ctx, fmt.Sprintf("s%d", i), fmt.Sprintf("SELECT %d + $1::int", i), nil); err != nil {
			t.Fatalf("prepare %d: %v", i, err)
		}
	}
	_, err = conn.Prepare(ctx, "s5", "SELECT 5 + $1::int", nil)
	if sqlstate(err) != "53400" || !strings.Contains(err.Error(), "max_client_prepared_statements = 5") {
		t.Fatalf("sixth statement: got %v, want 53400 naming max_client_prepared_statements", err)
	}
	// Re-preparing a name the client has is refused as PostgreSQL refuses
	// it (42P05), not as one statement too many.
	if _, err := conn.Prepare(ctx, "s0", "SELECT 0 + $1::int", nil); sqlstate(err) != "42P05" {
		t.Fatalf("re-prepare s0: got %v, want 42P05 (prepared statement already exists)", err)
	}
	// Inside a transaction, on the leased connection.
	if _, err := conn.Exec(ctx, "BEGIN").ReadAll(); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Prepare(ctx, "s5", "SELECT 5 + $1::int", nil)
	if sqlstate(err) != "53400" {
		t.Fatalf("sixth statement in a transaction: got %v, want 53400", err)
	}
	res := conn.ExecPrepared(ctx, "s3", [][]byte{[]byte("1")}, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "4" {
		t.Fatalf("s3 in the transaction: %v %q", res.Err, res.Rows)
	}
	if _, err := conn.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Deallocate(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	// Parses the server refused do not count (PostgreSQL has no such
	// names), though they take a name in the books until then.
	for i := 0; i < 3; i++ {
		_, err := conn.Prepare(ctx, fmt.Sprintf("bad%d", i), "SELECT * FROM no_such_table", nil)
		if sqlstate(err) != "42P01" {
			t.Fatalf("bad prepare %d: %v", i, err)
		}
	}
	if _, err := conn.Prepare(ctx, "s5", "SELECT 5 + $1::int", nil); err != nil {
		t.Fatalf("prepare after a Close: %v", err)
	}
	res = conn.ExecPrepared(ctx, "s5", [][]byte{[]byte("1")}, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "6" {
		t.Fatalf("s5: %v %q", res.Err, res.Rows)
	}
	if got := counterSum(t, "switchyard_client_limit_refusals_total") - refusals; got != 2 {
		t.Errorf("refusals counted: %v, want 2", got)
	}
	if !strings.Contains(logs.String(), "prepared statement refused") {
		t.Errorf("no log line for the refusal")
	}
	waitIdle(t, p)
}

// waitIdle waits until every pool of p has no connection in use.
func waitIdle(t *testing.T, p *testProxy) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		busy := 0
		p.srv.Pools.Each(func(_ frontend.PoolKey, p *pool.Pool, _ *poolEntry) { busy += p.Stats().Active })
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d server connections still in use", busy)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A password or SASL message over maxAuthMsg, before authentication, is
// refused from its header with 08P01 and the connection closed, at once:
// the proxy neither waits for nor allocates the length the client claims.
func TestPreAuthMessageCapped(t *testing.T) {
	p := serveConfig(t, limitsConfig("", "", `
[[users]]
name = "app_md5"
password = "app_md5"
auth = "md5"
server_user = "app"
server_password = "app"
`))
	refusals := counterSum(t, "switchyard_client_limit_refusals_total")
	for _, tc := range []struct {
		user  string
		claim uint32
	}{
		{"app", 1 << 30},     // SCRAM: SASLInitialResponse claiming 1 GB
		{"app", 100 << 20},   // under the session's 256 MB message cap
		{"app_md5", 8 << 10}, // md5: an 8 KB password message
	} {
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		startup, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
			Parameters: map[string]string{"user": tc.user, "database": "app"}}).Encode(nil)
		if _, err := conn.Write(startup); err != nil {
			t.Fatal(err)
		}
		fe := pgproto3.NewFrontend(conn, conn)
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("%s: auth request: %v", tc.user, err)
		}
		switch msg.(type) {
		case *pgproto3.AuthenticationSASL, *pgproto3.AuthenticationMD5Password:
		default:
			t.Fatalf("%s: got %T, want an authentication request", tc.user, msg)
		}
		start := time.Now()
		hdr := []byte{'p', byte(tc.claim >> 24), byte(tc.claim >> 16), byte(tc.claim >> 8), byte(tc.claim)}
		if _, err := conn.Write(append(hdr, "SCRAM-SHA-256\x00"...)); err != nil {
			t.Fatal(err)
		}
		msg, err = fe.Receive()
		if err != nil {
			t.Fatalf("%s, %d bytes claimed: no error response: %v", tc.user, tc.claim, err)
		}
		er, ok := msg.(*pgproto3.ErrorResponse)
		if !ok || er.Code != "08P01" || er.Severity != "FATAL" {
			t.Fatalf("%s, %d bytes claimed: got %#v, want FATAL 08P01", tc.user, tc.claim, msg)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: refusal took %v", tc.user, d)
		}
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s: connection still open after the refusal", tc.user)
		}
		conn.Close()
	}
	if got := counterSum(t, "switchyard_client_limit_refusals_total") - refusals; got != 3 {
		t.Errorf("refusals counted: %v, want 3", got)
	}
	// A normal login still works.
	conn, err := pgconn.Connect(ctxT(t, 10*time.Second), p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
}

// The settings a session carries are bounded: past maxClientSettings
// distinct names the session is pinned to its server connection (which
// holds them), the proxy records no more, and every setting still reads
// back as the client set it.
func TestSessionSettingsBounded(t *testing.T) {
	p := serveConfig(t, limitsConfig("", "", ""))
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgconn.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pins := counterSum(t, "switchyard_session_pins_total")
	const n = maxClientSettings + 500
	for i := 0; i < n; i += 100 {
		var q strings.Builder
		for j := i; j < i+100 && j < n; j++ {
			fmt.Fprintf(&q, "SET app.k%d = 'v%d';", j, j)
		}
		if _, err := conn.Exec(ctx, q.String()).ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	var c *clientConn
	for _, cc := range p.srv.fe.Clients() {
		c = cc
	}
	c.mu.Lock()
	kept, pin := len(c.desired), c.pinReason
	c.mu.Unlock()
	// The overshoot: the request that crossed the cap, and the next one
	// if it was sent before the settings read back after the first came.
	if kept > maxClientSettings+200 {
		t.Errorf("the proxy keeps %d settings for one client (pin %q)", kept, pin)
	}
	t.Logf("kept %d settings", kept)
	if pin == "" {
		t.Errorf("session not pinned past %d settings", maxClientSettings)
	}
	if got := counterSum(t, "switchyard_session_pins_total") - pins; got != 1 {
		t.Errorf("pins counted: %v, want 1", got)
	}
	for _, k := range []int{0, maxClientSettings - 1, n - 1} {
		res := conn.ExecParams(ctx, fmt.Sprintf("SELECT current_setting('app.k%d')", k), nil, nil, nil, nil).Read()
		if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != fmt.Sprintf("v%d", k) {
			t.Errorf("app.k%d: %q, %v", k, res.Rows, res.Err)
		}
	}
}
