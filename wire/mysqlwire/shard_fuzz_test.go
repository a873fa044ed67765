package mysqlwire

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

var (
	fuzzShardOnce   sync.Once
	fuzzShard       *Server
	fuzzShardDB     *sql.DB
	fuzzShardPanics atomic.Int64
)

// panicCounter is a log handler that counts the session panics the
// proxy recovers from (and logs), so the fuzzer can see them.
type panicCounter struct{ slog.Handler }

func (h panicCounter) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		fuzzShardPanics.Add(1)
	}
	return nil
}
func (h panicCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h panicCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h panicCounter) WithGroup(string) slog.Handler            { return h }

func fuzzShardServer(t testing.TB) (*Server, *sql.DB) {
	fuzzShardOnce.Do(func() {
		resetShardTables(t)
		src := "[proxy]\nmysql_listen = \"127.0.0.1:0\"\n[defaults]\npool_size = 4\nquery_wait_timeout = \"5s\"\n" +
			"[[users]]\nname = \"app_trust\"\nauth = \"trust\"\nserver_user = \"app\"\nserver_password = \"app\"\n" +
			shardConfigSrc(hashSharding+"\nallow_all_shard_writes = true", hashShards(false))
		cfg, err := config.Parse([]byte(src), "fuzz-shard.toml")
		if err != nil {
			t.Fatal(err)
		}
		fuzzShard = NewServer(cfg, slog.New(panicCounter{}))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go fuzzShard.Serve(ln)
		fuzzShardDB, err = sql.Open("mysql", "app:app@tcp("+ln.Addr().String()+")/orders?timeout=5s&readTimeout=10s")
		if err != nil {
			t.Fatal(err)
		}
		fuzzShardDB.SetMaxOpenConns(1)
	})
	return fuzzShard, fuzzShardDB
}

// FuzzShardSession drives a session of the sharded database "orders" from
// arbitrary bytes after a trust login: keyed and keyless statements,
// transactions across shards, scatters, prepared statements with
// parameter bytes of any shape. The proxy must answer or close, never
// panic or hang, and then serve another client.
func FuzzShardSession(f *testing.F) {
	q := func(s string) []byte { return packets(0, cmd(mysqlproto.ComQuery, []byte(s)...)) }
	f.Add(bytes.Join([][]byte{q("BEGIN"), q("INSERT INTO orders (id, customer_id) VALUES (1, 1)"),
		q("SELECT * FROM orders WHERE customer_id = 2"), q("SELECT COUNT(*) FROM orders"), q("ROLLBACK")}, nil))
	f.Add(q("SELECT id, total FROM orders ORDER BY total DESC LIMIT 2, 3"))
	f.Add(q("SELECT COUNT(*), SUM(total), MIN(note), MAX(id) FROM orders"))
	f.Add(q("SELECT note, COUNT(*) FROM orders GROUP BY note"))
	f.Add(bytes.Join([][]byte{q("SET switchyard.shard_key = '7'"), q("SELECT COUNT(*) FROM orders"), q("SET switchyard.shard_key = DEFAULT")}, nil))
	f.Add(q("UPDATE orders SET note = 'x' WHERE note IS NULL"))
	f.Add(bytes.Join([][]byte{q("SET TRANSACTION READ ONLY"), q("START TRANSACTION"), q("SELECT 1"), q("COMMIT")}, nil))
	f.Add(bytes.Join([][]byte{
		packets(0, cmd(mysqlproto.ComStmtPrepare, []byte("SELECT id FROM orders WHERE customer_id = ? ORDER BY id LIMIT ?")...)),
		packets(0, []byte{mysqlproto.ComStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0x08, 0, 0x08, 0, 7, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0}),
		packets(0, cmd(mysqlproto.ComStmtPrepare, []byte("SELECT id FROM orders WHERE id > ? ORDER BY id LIMIT 3")...)),
		packets(0, []byte{mysqlproto.ComStmtExecute, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0xfd, 0, 1, '0'}),
		packets(0, []byte{mysqlproto.ComStmtExecute, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0}),
	}, nil))
	f.Add(q("/* switchyard:shard=1 */ SELECT DATABASE()"))
	s, db := fuzzShardServer(f)
	login := packets(1, (&mysqlproto.HandshakeResponse{
		Capabilities: proxyCaps &^ mysqlproto.CapSSL, MaxPacket: 1 << 24, Collation: 45,
		User: "app_trust", Database: "orders", AuthPlugin: mysqlproto.PluginNative,
	}).Encode(nil))
	routed := func() float64 { return shardCounter("orders", "0") + shardCounter("orders", "1") }
	before := routed()
	f.Fuzz(func(t *testing.T, data []byte) {
		before := fuzzShardPanics.Load()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.serveConn(&bytesConn{r: bytes.NewReader(append(login[:len(login):len(login)], data...))})
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end")
		}
		if fuzzShardPanics.Load() != before {
			t.Fatal("the session panicked (recovered by the proxy)")
		}
		var n int
		if err := db.QueryRow("SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
			t.Fatalf("another client: %d, %v", n, err)
		}
	})
	// (When fuzzing, the sessions run in worker processes.)
	if fl := flag.Lookup("test.fuzz"); (fl == nil || fl.Value.String() == "") && routed() == before {
		f.Error("no fuzzed session reached a shard: is the login right?")
	}
}
