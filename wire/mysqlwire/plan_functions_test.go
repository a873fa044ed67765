package mysqlwire

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// TestFunctionLists: read_only_functions and write_functions steer reads
// (the same lists PostgreSQL honours).
func TestFunctionLists(t *testing.T) {
	rootExec(t, "DROP FUNCTION IF EXISTS app.ro_port")
	rootExec(t, "CREATE FUNCTION app.ro_port() RETURNS INT READS SQL DATA RETURN @@port")
	p := startSplitProxy(t, `read_only_functions = ["ro_port"]
write_functions = ["upper"]`)
	if err := testcluster.Maria.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitEligible(t, p, replicaNode().Addr())
	// Two pools of one connection: a call judged a write makes its
	// client read its own writes from the primary for a while.
	reader, writer := p.open(t, ""), p.open(t, "")
	reader.SetMaxOpenConns(1)
	writer.SetMaxOpenConns(1)
	primary := testcluster.Maria.Primary.Port
	ctx := context.Background()
	if port := portOf(t, reader, "SELECT ro_port()"); port == primary {
		t.Errorf("SELECT ro_port() (read_only_functions) ran on the primary")
	}
	if port := portOf(t, reader, "SELECT @@port + LENGTH(LOWER('x')) - 1"); port == primary {
		t.Errorf("a call of LOWER() (built-in, not listed) ran on the primary")
	}
	if err := writer.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	if port := portOf(t, writer, "SELECT @@port + LENGTH(UPPER('x')) - 1"); port != primary {
		t.Errorf("a call of UPPER() (write_functions) ran on %d, not the primary %d", port, primary)
	}
}

// TestFunctionListsReload: a reload that changes write_functions takes
// effect at the next transaction of a session already open, in both
// protocols (text and prepared statements).
func TestFunctionListsReload(t *testing.T) {
	p := startSplitProxy(t, "")
	if err := testcluster.Maria.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitEligible(t, p, replicaNode().Addr())
	c := conn(t, p.open(t, ""))
	const q = "SELECT @@port + LENGTH(UPPER(?)) - 1"
	primary := testcluster.Maria.Primary.Port
	stmt, err := c.PrepareContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	stmtPort := func() int {
		var port int
		if err := stmt.QueryRowContext(context.Background(), "x").Scan(&port); err != nil {
			t.Fatal(err)
		}
		return port
	}
	if port := stmtPort(); port == primary {
		t.Fatalf("UPPER() (not listed) ran on the primary")
	}
	if port := portOf(t, c, "SELECT @@port + LENGTH(UPPER('x')) - 1"); port == primary {
		t.Fatalf("UPPER() (not listed) ran on the primary")
	}
	p.srv.Reload(splitConfig(t, `write_functions = ["upper"]`, true))
	if port := stmtPort(); port != primary {
		t.Errorf("prepared: after the reload that lists UPPER() in write_functions, it ran on %d, not the primary %d", port, primary)
	}
	if port := portOf(t, c, "SELECT @@port + LENGTH(UPPER('x')) - 1"); port != primary {
		t.Errorf("text: after the reload that lists UPPER() in write_functions, it ran on %d, not the primary %d", port, primary)
	}
}
