package pgwire

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// SET switchyard.target = 'replica' and /* switchyard:replica */ apply to
// reads only: writes, row locks, sequences, advisory locks and read-write
// transactions run on the primary (before, they went to a replica and
// failed with "cannot execute ... in a read-only transaction"), while
// reads keep going to the replicas. Both the simple and the extended
// protocol.
func TestReplicaTargetNeverWrites(t *testing.T) {
	p := startSplitProxy(t, `causal_read_timeout = "2s"`)
	mustExec(t, `DROP TABLE IF EXISTS t_ovr; CREATE TABLE t_ovr (id serial PRIMARY KEY, port int); INSERT INTO t_ovr (port) VALUES (inet_server_port());
		DROP SEQUENCE IF EXISTS s_ovr; CREATE SEQUENCE s_ovr`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	primary, replicas := nodePorts()
	isReplica := func(port int) bool { return port == replicas[0] || port == replicas[1] }
	ctx := ctxT(t, 60*time.Second)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg, err := pgx.ParseConfig(p.rawDSN("app", "app", "app"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = mode
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			// The subtest before wrote on the primary: on a loaded
			// machine the replicas may replay it later than
			// max_replica_lag, and reads rightly go to the primary
			// meanwhile.
			waitReplicasEligible(t, p)
			reads := func(when string) {
				t.Helper()
				for _, q := range []string{
					`SELECT inet_server_port()`,
					`/* switchyard:replica */ SELECT inet_server_port()`,
					`SELECT inet_server_port() FROM t_ovr LIMIT 1`,
				} {
					if port := serverPort(t, conn, q); !isReplica(port) {
						t.Errorf("%s: read %q ran on %d, want a replica %v", when, q, port, replicas)
					}
				}
				var inRecovery bool
				if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery); err != nil || !inRecovery {
					t.Errorf("%s: pg_is_in_recovery() = %v (%v), want true", when, inRecovery, err)
				}
			}
			if _, err := conn.PgConn().Exec(ctx, `SET switchyard.target = 'replica'`).ReadAll(); err != nil {
				t.Fatal(err)
			}
			reads("before the writes")
			for _, q := range []string{
				`INSERT INTO t_ovr (port) VALUES (inet_server_port()) RETURNING inet_server_port()`,
				`/* switchyard:replica */ INSERT INTO t_ovr (port) VALUES (inet_server_port()) RETURNING inet_server_port()`,
				`WITH u AS (UPDATE t_ovr SET port = port RETURNING 1) SELECT inet_server_port() FROM u LIMIT 1`,
				`SELECT inet_server_port() FROM t_ovr FOR UPDATE LIMIT 1`,
				`/* switchyard:replica */ SELECT inet_server_port() FROM t_ovr FOR SHARE LIMIT 1`,
				`SELECT inet_server_port() + 0 * nextval('s_ovr')`,
				`SELECT inet_server_port() + 0 * setval('s_ovr', 100)`,
				`SELECT inet_server_port() FROM (SELECT pg_advisory_xact_lock(42)) l`,
			} {
				if port := serverPort(t, conn, q); port != primary {
					t.Errorf("%s ran on %d, want the primary %d", q, port, primary)
				}
			}
			// BEGIN; INSERT; COMMIT: a read-write transaction, whole on
			// the primary (pgx sends "begin" on its own).
			for _, hint := range []string{"", "/* switchyard:replica */ "} {
				tx, err := conn.BeginTx(ctx, pgx.TxOptions{BeginQuery: hint + "BEGIN"})
				if err != nil {
					t.Fatal(err)
				}
				var port int
				if err := tx.QueryRow(ctx, `INSERT INTO t_ovr (port) VALUES (inet_server_port()) RETURNING inet_server_port()`).Scan(&port); err != nil || port != primary {
					t.Errorf("%sBEGIN; INSERT: on %d (%v), want the primary %d", hint, port, err, primary)
				}
				if err := tx.Commit(ctx); err != nil {
					t.Errorf("%sCOMMIT: %v", hint, err)
				}
			}
			// A read-only transaction may still use a replica.
			waitReplicasEligible(t, p)
			tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
			if err != nil {
				t.Fatal(err)
			}
			var port int
			if err := tx.QueryRow(ctx, `SELECT inet_server_port()`).Scan(&port); err != nil || !isReplica(port) {
				t.Errorf("BEGIN READ ONLY: read on %d (%v), want a replica", port, err)
			}
			_ = tx.Rollback(ctx)
			reads("after the writes")
			var onReplica int
			if err := conn.QueryRow(context.Background(), `/* switchyard:primary */ SELECT count(*) FROM t_ovr WHERE port <> $1`, primary).Scan(&onReplica); err != nil || onReplica != 0 {
				t.Errorf("rows written on a replica: %d (%v)", onReplica, err)
			}
		})
	}
}
