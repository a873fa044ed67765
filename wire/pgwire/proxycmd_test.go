package pgwire

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The proxy's own commands sent through the extended protocol (pgx's
// default) would reach PostgreSQL, which takes SET switchyard.x as a
// setting of its own: the proxy refuses them with a clear error instead,
// and the session goes on; as simple queries they work.
func TestProxyCommandExtendedProtocol(t *testing.T) {
	p := startProxy(t, "")
	ctx := ctxT(t, 20*time.Second)
	conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{"SET switchyard.target = 'primary'", "  show SWITCHYARD.write_position", "RESET switchyard.target"} {
		err := conn.PgConn().ExecParams(ctx, q, nil, nil, nil, nil).Read().Err
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "simple query protocol") {
			t.Errorf("%q in the extended protocol: %v, want 0A000 naming the simple query protocol", q, err)
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT 41 + $1::int", 1).Scan(&n); err != nil || n != 42 {
			t.Fatalf("after the refusal: %d, %v", n, err)
		}
	}
	if _, err := conn.PgConn().Exec(ctx, "SET switchyard.target = 'primary'").ReadAll(); err != nil {
		t.Errorf("simple protocol: %v", err)
	}
	var pos string
	if err := conn.QueryRow(ctx, "SHOW switchyard.write_position", pgx.QueryExecModeSimpleProtocol).Scan(&pos); err != nil {
		t.Errorf("simple protocol SHOW: %v", err)
	}
}
