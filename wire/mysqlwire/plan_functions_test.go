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
