package pgwire

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/shard"
	"github.com/switchyard/switchyard/wire/pgframe"
)

// A 4-byte key sent in binary format means an int4 or four characters of
// text depending on the parameter's type; routing follows the type, and
// refuses when the type is unknown rather than guessing.
func TestKeyShardBinaryParameters(t *testing.T) {
	m, err := shard.NewHash(4, 1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	four := []byte("abcd")
	bind, _ := (&pgproto3.Bind{ParameterFormatCodes: []int16{1}, Parameters: [][]byte{four}}).Encode(nil)
	k := router.KeyRef{Param: 1}
	r := &router.ShardRouting{Map: m}
	keyShard := func(_ shard.Map, k router.KeyRef, bind []byte, types []uint32) (int, error) {
		return r.KeyShard(k, bindParams{bind, types})
	}

	wantText, _ := m.ShardOfBytes(four)
	if got, err := keyShard(m, k, bind, []uint32{25}); err != nil || got != wantText {
		t.Fatalf("text: shard %d %v, want %d", got, err, wantText)
	}
	wantInt, _ := m.ShardOfInt(int64(binary.BigEndian.Uint32(four)))
	if got, err := keyShard(m, k, bind, []uint32{23}); err != nil || got != wantInt {
		t.Fatalf("int4: shard %d %v, want %d", got, err, wantInt)
	}
	if _, err := keyShard(m, k, bind, nil); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("unknown type: want a refusal, got %v", err)
	}
	// Text-format parameters need no type.
	tb, _ := (&pgproto3.Bind{Parameters: [][]byte{[]byte("42")}}).Encode(nil)
	want42, _ := m.ShardOfInt(42)
	if got, err := keyShard(m, k, tb, nil); err != nil || got != want42 {
		t.Fatalf("text 42: shard %d %v, want %d", got, err, want42)
	}
	// Parse-declared types are what routing reads for the unnamed statement.
	parse, _ := (&pgproto3.Parse{Query: "SELECT $1", ParameterOIDs: []uint32{20}}).Encode(nil)
	if got := pgframe.ParseParamTypes(parse); len(got) != 1 || got[0] != 20 {
		t.Fatalf("parseParamTypes: %v", got)
	}
}

// pgx's QueryExecModeDescribeExec parses each statement unnamed without
// parameter types, asks the server to describe it, and then binds an int64
// key in binary format: routing reads it by the type the server described
// (it was refused as "binary format of unknown type (oid 0)").
func TestShardDescribeExecBinaryKey(t *testing.T) {
	p := startShardProxy(t)
	shards := shardConns(t)
	ctx := ctxT(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, p.rawDSN("app", "app", "orders")+"&default_query_exec_mode=describe_exec")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for s := range 2 {
		for _, k := range keysOn(s, 3, 1000) {
			if _, err := conn.Exec(ctx, "INSERT INTO orders (customer_id, amount) VALUES ($1, $2)", k, 7); err != nil {
				t.Fatalf("insert key %d: %v", k, err)
			}
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE customer_id = $1", k).Scan(&n); err != nil || n != 1 {
				t.Fatalf("read key %d: %d rows, %v", k, n, err)
			}
		}
		if got := shardCount(t, shards[s], "WHERE amount = 7"); got != 3 {
			t.Errorf("shard %d holds %d of its 3 rows", s, got)
		}
	}
}
