package mysqlwire

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/testcluster"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

func myLookups(t *testing.T, result string) float64 {
	t.Helper()
	var m dto.Metric
	if err := metrics.AuthQueries.WithLabelValues("mysql", "my", result).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestPassthroughAuth: a user that is not in [[users]] logs in with its
// password on the server (mysql_native_password): the proxy checks it
// against the hash auth_query reads from mysql.user and logs in to the
// server as that user with the SHA1(password) the client proved.
func TestPassthroughAuth(t *testing.T) {
	for _, q := range []string{
		"CREATE USER IF NOT EXISTS 'sy_auth'@'%' IDENTIFIED BY 'sy_auth'",
		"GRANT SELECT ON mysql.user TO 'sy_auth'@'%'",
		"CREATE USER IF NOT EXISTS 'pt_native'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('pt-pass')",
		"GRANT ALL ON app.* TO 'pt_native'@'%'",
	} {
		rootExec(t, q)
	}
	cfgSrc := []byte(fmt.Sprintf(`
[proxy]
mysql_listen = "127.0.0.1:0"
shutdown_timeout = "5s"
[[users]]
name = "sy_auth"
password = "sy_auth"
[[clusters]]
name = "my"
protocol = "mysql"
database = "app"
primary = %q
pool_size = 4
query_wait_timeout = "10s"
auth_user = "sy_auth"
`, testcluster.Maria.Primary.Addr()))
	cfg, err := config.Parse(cfgSrc, "")
	if err != nil {
		t.Fatal(err)
	}
	p := serveProxy(t, cfg, 0, false)
	found0, cached0, missing0 := myLookups(t, "found"), myLookups(t, "cached"), myLookups(t, "not_found")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	db, err := sql.Open("mysql", p.dsn("pt_native", "pt-pass", "app", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var who string
	if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&who); err != nil || !strings.HasPrefix(who, "pt_native@") {
		t.Fatalf("CURRENT_USER() = %q, %v; want pt_native", who, err)
	}
	// Several server connections at once: each logs in with what the
	// client proved.
	var conns []*sql.Conn
	ids := map[int64]bool{}
	for i := 0; i < 3; i++ {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		var id int64
		if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID(), CURRENT_USER()").Scan(&id, &who); err != nil || !strings.HasPrefix(who, "pt_native@") {
			t.Fatalf("in transaction %d: %q, %v", i, who, err)
		}
		ids[id] = true
	}
	for _, c := range conns {
		_, _ = c.ExecContext(ctx, "ROLLBACK")
		c.Close()
	}
	if len(ids) != 3 {
		t.Errorf("3 open transactions ran on %d server connections", len(ids))
	}

	for _, c := range []struct{ user, pw string }{{"pt_native", "wrong"}, {"nobody_here", "x"}} {
		bad, _ := sql.Open("mysql", p.dsn(c.user, c.pw, "app", ""))
		err := bad.PingContext(ctx)
		bad.Close()
		if mysqlErrNum(err) != mysqlproto.ERAccessDenied {
			t.Errorf("%s with a wrong password: %v, want 1045", c.user, err)
		}
	}
	// A reload that replaces the pools keeps the session working as that
	// user (its pool is still the cluster's).
	cfg2, err := config.Parse([]byte(strings.Replace(string(cfgSrc), "pool_size = 4", "pool_size = 5", 1)), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&who); err != nil || !strings.HasPrefix(who, "pt_native@") {
		t.Fatalf("after a reload: %q, %v", who, err)
	}
	if d := myLookups(t, "found") - found0; d != 1 {
		t.Errorf("found look-ups: %v, want 1", d)
	}
	if d := myLookups(t, "cached") - cached0; d < 1 {
		t.Errorf("cached look-ups: %v, want at least 1", d)
	}
	if d := myLookups(t, "not_found") - missing0; d != 1 {
		t.Errorf("not_found look-ups: %v, want 1", d)
	}
}

func TestRecoverSHA1(t *testing.T) {
	scramble := mysqlproto.NewScramble()
	h1 := sha1Sum([]byte("pw"))
	h2 := sha1Sum(h1)
	got, ok := mysqlproto.RecoverSHA1(scramble, mysqlproto.NativeScramble(scramble, "pw"), h2)
	if !ok || string(got) != string(h1) {
		t.Fatal("SHA1(password) not recovered from a right answer")
	}
	if _, ok := mysqlproto.RecoverSHA1(scramble, mysqlproto.NativeScramble(scramble, "other"), h2); ok {
		t.Fatal("a wrong password passed")
	}
	// What the proxy sends a server from it is what the password gives.
	s2 := mysqlproto.NewScramble()
	a, err := scrambleFor(mysqlproto.PluginNative, s2, passPrefix+string(got))
	if err != nil || string(a) != string(mysqlproto.NativeScramble(s2, "pw")) {
		t.Fatalf("server answer from SHA1(password): %v", err)
	}
	if _, err := scrambleFor(mysqlproto.PluginCachingSHA2, s2, passPrefix+string(got)); err == nil {
		t.Fatal("caching_sha2 answered without the password")
	}
}

func sha1Sum(b []byte) []byte {
	h := sha1.Sum(b)
	return h[:]
}
