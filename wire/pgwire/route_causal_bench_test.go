package pgwire

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// BenchmarkCausalRead prices read-your-writes: the latency of a read that
// goes to a replica with no position to check (plain) against one right
// after the client's own write, which must find a replica that has
// replayed it (after-write: the write itself is not timed). Run with
//
//	go test -run '^$' -bench BenchmarkCausalRead -benchtime 500x ./wire/pgwire
func BenchmarkCausalRead(b *testing.B) {
	p := startSplitProxy(b, "")
	mustExec(b, `DROP TABLE IF EXISTS t_causal_bench; CREATE TABLE t_causal_bench (id bigint PRIMARY KEY)`)
	if err := testcluster.PG.WaitReplicasCaughtUp(10 * time.Second); err != nil {
		b.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.dsn("app", "app", "app"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	primary, _ := nodePorts()
	onPrimary := 0
	read := func(b *testing.B, id int64) {
		var n, port int
		if err := conn.QueryRow(ctx, `SELECT count(*), inet_server_port() FROM t_causal_bench WHERE id = $1`, id).Scan(&n, &port); err != nil {
			b.Fatal(err)
		}
		if port == primary {
			onPrimary++
		}
	}
	b.Run("plain", func(b *testing.B) {
		onPrimary = 0
		for i := 0; i < b.N; i++ {
			read(b, int64(i))
		}
		b.ReportMetric(float64(onPrimary)/float64(b.N), "primary-reads/op")
	})
	var id int64
	b.Run("after-write", func(b *testing.B) {
		onPrimary = 0
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			id++
			if _, err := conn.Exec(ctx, `INSERT INTO t_causal_bench VALUES ($1)`, id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			read(b, id)
		}
		b.ReportMetric(float64(onPrimary)/float64(b.N), "primary-reads/op")
	})
}
