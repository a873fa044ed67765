package pgwire

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// BenchmarkCausalRead prices read-your-writes: the latency of a read that
// goes to a replica with no position to check (plain), of one that needs
// a position the replicas have replayed but the lag monitor has not seen,
// so that the replica checks it in the same round trip (checked: the bar
// of issue 14 is within 20% of plain), and of one right after the
// client's own write, which must find a replica that has replayed it
// (after-write: the write itself is not timed). One op is one read of
// each kind, interleaved so that the load of a shared machine hits them
// alike; the metrics are their medians. The lag monitor polls every 10s,
// so positions are learnt from checks and probes. Run with
//
//	go test -run '^$' -bench BenchmarkCausalRead -benchtime 500x ./wire/pgwire
func BenchmarkCausalRead(b *testing.B) {
	p := splitProxy(b, testcluster.PG, `pool_size = 4
max_replica_lag = "1h"
lag_poll_interval = "10s"`, "")
	mustExec(b, `DROP TABLE IF EXISTS t_causal_bench; CREATE TABLE t_causal_bench (id bigint PRIMARY KEY)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	connect := func(addr string) *pgx.Conn {
		c, err := pgx.Connect(ctx, addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close(ctx) })
		return c
	}
	direct := connect(fmt.Sprintf("postgres://app:app@%s/app?sslmode=disable", testcluster.PG.Primary.Addr()))
	var replicas []*pgx.Conn
	for _, r := range testcluster.PG.Replicas {
		replicas = append(replicas, connect(fmt.Sprintf("postgres://app:app@%s/app?sslmode=disable", r.Addr())))
	}
	kinds := []string{"plain", "checked", "after-write"}
	conns := map[string]*pgx.Conn{}
	for _, k := range kinds {
		conns[k] = connect(p.dsn("app", "app", "app"))
	}
	primary, _ := nodePorts()
	lat := map[string][]time.Duration{}
	onPrimary := map[string]int{}
	read := func(kind string, id int64) {
		var n, port int
		start := time.Now()
		err := conns[kind].QueryRow(ctx, `SELECT count(*), inet_server_port() FROM t_causal_bench WHERE id = $1`, id).Scan(&n, &port)
		lat[kind] = append(lat[kind], time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if kind != "plain" && n != 1 {
			b.Fatalf("%s read of %d: stale", kind, id)
		}
		if port == primary {
			onPrimary[kind]++
		}
	}
	var id int64
	passed0, _ := causalCounts(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		read("plain", id)
		id++
		var lsn string
		if err := direct.QueryRow(ctx, `INSERT INTO t_causal_bench VALUES ($1) RETURNING pg_current_wal_insert_lsn()::text`, id).Scan(&lsn); err != nil {
			b.Fatal(err)
		}
		for _, r := range replicas {
			for {
				var ok bool
				if err := r.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&ok); err != nil {
					b.Fatal(err)
				}
				if ok {
					break
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
		if _, err := conns["checked"].Exec(ctx, `SET switchyard.read_after = 'pg@`+lsn+`'`, pgx.QueryExecModeSimpleProtocol); err != nil {
			b.Fatal(err)
		}
		read("checked", id)
		id++
		if _, err := conns["after-write"].Exec(ctx, `INSERT INTO t_causal_bench VALUES ($1)`, id); err != nil {
			b.Fatal(err)
		}
		read("after-write", id)
	}
	b.StopTimer()
	passed1, _ := causalCounts(b)
	median := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds())
	}
	for _, k := range kinds {
		b.ReportMetric(median(lat[k]), k+"-µs")
	}
	b.ReportMetric(median(lat["checked"])/median(lat["plain"]), "checked/plain")
	b.ReportMetric(float64(onPrimary["after-write"])/float64(b.N), "after-write-primary/op")
	b.ReportMetric((passed1-passed0)/float64(b.N), "checks-passed/op")
}
