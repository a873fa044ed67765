package pgwire

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// TestFunctionLists: read_only_functions and write_functions steer
// PostgreSQL reads as they steer MySQL's (they were ignored here: a call
// of a listed read-only user function went to the primary, a listed
// writing built-in to a replica).
func TestFunctionLists(t *testing.T) {
	p := startSplitProxy(t, `read_only_functions = ["ro_port"]
write_functions = ["upper"]`)
	mustExec(t, `CREATE OR REPLACE FUNCTION ro_port() RETURNS int LANGUAGE sql STABLE AS 'SELECT inet_server_port()'`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 60*time.Second)
	// Two clients: a call judged a write makes its client read its own
	// writes from the primary for a while.
	reader, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(context.Background())
	writer, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close(context.Background())
	primary, _ := nodePorts()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		if port := serverPort(t, reader, `SELECT ro_port()`, mode); port == primary {
			t.Errorf("%v: SELECT ro_port() (read_only_functions) ran on the primary", mode)
		}
		if port := serverPort(t, reader, `SELECT inet_server_port() + length(lower('x')) - 1`, mode); port == primary {
			t.Errorf("%v: a call of lower() (built-in, not listed) ran on the primary", mode)
		}
		if port := serverPort(t, writer, `SELECT inet_server_port() + length(upper('x')) - 1`, mode); port != primary {
			t.Errorf("%v: a call of upper() (write_functions) ran on %d, not the primary %d", mode, port, primary)
		}
	}
}
