package pgwire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/internal/metrics"
)

// BenchmarkRelay measures the proxy's cost of one autocommit transaction
// (pgbench -S's shape: one point SELECT) end to end on loopback, against a
// scripted server that answers from pre-encoded bytes, so that allocs/op
// and a CPU profile (-cpuprofile) show the relay's own work: the client
// loop, routing, the lease, the pump and the release. The scripted server
// and the client allocate nothing per transaction. Simple: one Query;
// extended: Parse/Bind/Describe/Execute/Sync of the unnamed statement, as
// pgbench -M extended sends them. cpu-ns/op (the process's CPU time per
// transaction) is the figure to compare on a shared machine.
//
// The routing variants price what a feature adds per statement, against
// simple (the same Query, a cluster with only a primary): replica, a
// cluster with a replica (another scripted server, whose WAL position the
// lag monitor reads as caught up), the read going there; ryw, the same
// cluster, an autocommit UPDATE then the SELECT per op, the read checked
// against the client's write position (compare with write-read, the same
// pair without replicas); sharded, a 2-shard hash cluster on key aid, the
// SELECT routed by its literal.
func BenchmarkRelay(b *testing.B) {
	for _, mode := range []string{"simple", "extended", "replica", "write-read", "ryw", "sharded"} {
		b.Run(mode, func(b *testing.B) { benchRelay(b, mode) })
	}
}

func benchRelay(b *testing.B, mode string) {
	addr := scriptedServer(b)
	cluster := fmt.Sprintf(`
[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
primary = %q
`, addr)
	switch mode {
	case "replica", "ryw":
		cluster += fmt.Sprintf("replicas = [%q]\n", scriptedServer(b))
	case "sharded":
		cluster = fmt.Sprintf(`
[[clusters]]
name = "pg"
protocol = "postgres"
database = "app"
[clusters.sharding]
kind = "hash"
key = "aid"
[[clusters.shards]]
primary = %q
database = "app"
[[clusters.shards]]
primary = %q
database = "app"
`, addr, scriptedServer(b))
	}
	p := serveConfig(b, `
[proxy]
postgres_listen = "127.0.0.1:0"
mysql_listen = ""
admin_listen = ""
shutdown_timeout = "5s"

[defaults]
pool_size = 2
server_tls = "disable"

[[users]]
name = "app_trust"
password = ""
auth = "trust"
`+cluster)
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 8192)
	startup, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "app_trust", "database": "app", "application_name": "pgbench"}}).Encode(nil)
	if _, err := conn.Write(startup); err != nil {
		b.Fatal(err)
	}
	if err := readUntilZ(br); err != nil {
		b.Fatal(err)
	}
	const q = "SELECT abalance FROM pgbench_accounts WHERE aid = 4711;"
	var req, first []byte // first: a request answered before req is sent
	switch mode {
	case "write-read", "ryw":
		first, _ = (&pgproto3.Query{String: "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 4711;"}).Encode(nil)
		req, _ = (&pgproto3.Query{String: q}).Encode(nil)
	case "extended":
		req, _ = (&pgproto3.Parse{Query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"}).Encode(nil)
		req, _ = (&pgproto3.Bind{Parameters: [][]byte{[]byte("4711")}}).Encode(req)
		req, _ = (&pgproto3.Describe{ObjectType: 'P'}).Encode(req)
		req, _ = (&pgproto3.Execute{}).Encode(req)
		req, _ = (&pgproto3.Sync{}).Encode(req)
	default:
		req, _ = (&pgproto3.Query{String: q}).Encode(nil)
	}
	round := func() {
		for _, r := range [][]byte{first, req} {
			if r == nil {
				continue
			}
			if _, err := conn.Write(r); err != nil {
				b.Fatal(err)
			}
			if err := readUntilZ(br); err != nil {
				b.Fatal(err)
			}
		}
	}
	if mode == "replica" || mode == "ryw" {
		// Until the lag monitor has positions, reads go to the primary.
		time.Sleep(500 * time.Millisecond)
	}
	for i := 0; i < 100; i++ { // warm: the pool, buffers, the analysis cache
		round()
	}
	replicaReads := func() float64 {
		var m dto.Metric
		_ = metrics.Routed.WithLabelValues("postgres", "pg", "replica", "read").Write(&m)
		return m.GetCounter().GetValue()
	}
	before := replicaReads()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		round()
	}
	// CPU time per transaction: on a loaded machine wall time per op
	// measures the queue for the CPUs; this measures the work (the
	// scripted server's and the client's included, a constant).
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	if n := replicaReads() - before; mode == "replica" && n < float64(b.N)/2 {
		b.Fatalf("%v of %d reads went to the replica", n, b.N)
	}
}

// processCPU is the user plus system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readUntilZ reads messages up to and including a ReadyForQuery; an
// ErrorResponse is an error.
func readUntilZ(br *bufio.Reader) error {
	for {
		hdr, err := br.Peek(5)
		if err != nil {
			return err
		}
		typ, n := hdr[0], int(binary.BigEndian.Uint32(hdr[1:]))+1
		if typ == 'E' {
			body, _ := br.Peek(n)
			return fmt.Errorf("error from the proxy: %q", body)
		}
		if _, err := br.Discard(n); err != nil {
			return err
		}
		if typ == 'Z' {
			return nil
		}
	}
}

// scriptedServer is a PostgreSQL server on loopback that logs anyone in
// (trust) and answers every Query with one row and every extended batch
// with what PostgreSQL sends for it, from pre-encoded bytes. It stops when
// the benchmark ends.
func scriptedServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	var greet []byte
	greet, _ = (&pgproto3.AuthenticationOk{}).Encode(greet)
	for _, kv := range [][2]string{{"server_version", "15.0"}, {"server_encoding", "UTF8"}, {"client_encoding", "UTF8"},
		{"DateStyle", "ISO, MDY"}, {"integer_datetimes", "on"}, {"TimeZone", "UTC"}, {"standard_conforming_strings", "on"},
		{"application_name", ""}, {"IntervalStyle", "postgres"}, {"is_superuser", "off"}, {"session_authorization", "app"}} {
		greet, _ = (&pgproto3.ParameterStatus{Name: kv[0], Value: kv[1]}).Encode(greet)
	}
	greet, _ = (&pgproto3.BackendKeyData{ProcessID: 4242, SecretKey: []byte{0, 0, 16, 146}}).Encode(greet)
	greet, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(greet)
	rowDesc, _ := (&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("abalance"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}}).Encode(nil)
	// The value reads as a WAL position: the lag monitor's probes get the
	// same answer as every other query (caught up).
	dataRow, _ := (&pgproto3.DataRow{Values: [][]byte{[]byte("0/1000000")}}).Encode(nil)
	tag, _ := (&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}).Encode(nil)
	rfq, _ := (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(nil)
	simple := append(append(append(append([]byte(nil), rowDesc...), dataRow...), tag...), rfq...)
	execute := append(append([]byte(nil), dataRow...), tag...)
	reply := map[byte][]byte{
		'Q': simple,
		'P': {'1', 0, 0, 0, 4},
		'B': {'2', 0, 0, 0, 4},
		'D': rowDesc,
		'E': execute,
		'S': rfq,
		'C': {'3', 0, 0, 0, 4},
	}
	serve := func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		bw := bufio.NewWriter(c)
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		if _, err := br.Discard(int(binary.BigEndian.Uint32(hdr[:])) - 4); err != nil {
			return
		}
		if _, err := c.Write(greet); err != nil {
			return
		}
		for {
			h, err := br.Peek(5)
			if err != nil {
				return
			}
			typ, n := h[0], int(binary.BigEndian.Uint32(h[1:]))+1
			if typ == 'X' {
				return
			}
			if _, err := br.Discard(n); err != nil {
				return
			}
			_, _ = bw.Write(reply[typ])
			if br.Buffered() == 0 {
				if err := bw.Flush(); err != nil {
					return
				}
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}
