package pgwire

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/config"
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

// TestFunctionListsReload: a reload that changes write_functions takes
// effect at the next transaction of a session already open, as it does in
// MySQL (a PostgreSQL session kept the lists of its login, and a call of a
// function just declared a write went on running on a replica). A named
// statement prepared before the reload is judged again too.
func TestFunctionListsReload(t *testing.T) {
	p := startSplitProxy(t, "")
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	const q = `SELECT inet_server_port() + length(upper('x')) - 1`
	primary, _ := nodePorts()
	modes := []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement}
	for _, mode := range modes {
		if port := serverPort(t, conn, q, mode); port == primary {
			t.Fatalf("%v: upper() (not listed) ran on the primary", mode)
		}
	}
	cfg := *p.srv.Config()
	cfg.Clusters = append([]config.Cluster(nil), cfg.Clusters...)
	cfg.Clusters[0].Settings.WriteFunctions = "upper"
	if err := p.srv.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	for _, mode := range modes {
		if port := serverPort(t, conn, q, mode); port != primary {
			t.Errorf("%v: after the reload that lists upper() in write_functions, it ran on %d, not the primary %d", mode, port, primary)
		}
	}
}
