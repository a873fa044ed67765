package shard

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard/switchyard/internal/testcluster"
)

// TestPostgresHashMatchesServer asks a real PostgreSQL which partition
// (remainder) each key belongs to, with satisfies_hash_partition(), and
// compares with PostgresHash. It starts its own server (a second or two
// with the template cache).
func TestPostgresHashMatchesServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	pgc, err := testcluster.StartPostgres(testcluster.Options{Replicas: -1})
	if testcluster.IsMissingBinary(err) {
		t.Skipf("PostgreSQL is not installed: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer pgc.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, pgc.SuperDSN(pgc.Primary, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	const setup = `
CREATE TABLE pi8 (k bigint) PARTITION BY HASH (k);
CREATE TABLE pi4 (k integer) PARTITION BY HASH (k);
CREATE TABLE pt (k text) PARTITION BY HASH (k);
CREATE TABLE pv (k varchar(100)) PARTITION BY HASH (k);`
	if _, err := conn.Exec(ctx, setup).ReadAll(); err != nil {
		t.Fatal(err)
	}
	// remainders returns key → remainder for modulus m, computed by the
	// server over the keys of a VALUES list or query.
	remainders := func(table, keys string, m int) map[string]int {
		t.Helper()
		sql := fmt.Sprintf(`SELECT k::text, r FROM (%s) AS s(k), generate_series(0, %d) AS r
			WHERE satisfies_hash_partition('%s'::regclass, %d, r, k)`, keys, m-1, table, m)
		res, err := conn.Exec(ctx, sql).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		out := map[string]int{}
		for _, row := range res[0].Rows {
			r, _ := strconv.Atoi(string(row[1]))
			if _, dup := out[string(row[0])]; dup {
				t.Fatalf("%s: key %q in two partitions", table, row[0])
			}
			out[string(row[0])] = r
		}
		return out
	}

	intKeys := `SELECT k FROM generate_series(-2000, 2000) k
		UNION SELECT k * 1000003 FROM generate_series(-500, 500) k
		UNION VALUES (9223372036854775807), (-9223372036854775808), (2147483647), (-2147483648), (4294967296), (-4294967297)`
	textKeys := `SELECT md5(i::text) FROM generate_series(1, 300) i
		UNION SELECT left(repeat('abcdefghijklmnopqrstuvwxyz0123456789', 2), n) FROM generate_series(0, 40) n
		UNION SELECT i::text FROM generate_series(-50, 50) i
		UNION VALUES ('é'), ('日本語のキー'), ('a b'), (E'tab\there')`
	for _, m := range []int{1, 2, 3, 4, 7, 16} {
		for _, c := range []struct {
			table, keys string
			typ         PostgresKeyType
		}{
			{"pi8", "SELECT k::bigint FROM (" + intKeys + ") x(k)", PostgresInteger},
			{"pi4", "SELECT k::integer FROM (" + intKeys + ") x(k) WHERE k BETWEEN -2147483648 AND 2147483647", PostgresInteger},
			{"pt", textKeys, PostgresText},
			{"pv", "SELECT k::varchar(100) FROM (" + textKeys + ") x(k)", PostgresText},
		} {
			want := remainders(c.table, c.keys, m)
			if len(want) < 100 {
				t.Fatalf("%s: only %d keys", c.table, len(want))
			}
			h, err := NewPostgresHash(m, c.typ, 1)
			if err != nil {
				t.Fatal(err)
			}
			bad := 0
			for k, r := range want {
				var got int
				if c.typ == PostgresInteger {
					n, _ := strconv.ParseInt(k, 10, 64)
					got, err = h.ShardOfInt(n)
				} else {
					got, err = h.ShardOf(k)
				}
				if err != nil || got != r {
					if bad++; bad <= 5 {
						t.Errorf("%s modulus %d: key %q → shard %d (%v); PostgreSQL says remainder %d", c.table, m, k, got, err, r)
					}
				}
				// Every shape of the key agrees.
				if s, err := h.ShardOfBytes([]byte(k)); err != nil || s != got {
					t.Errorf("%s: ShardOfBytes(%q) = %d, %v; want %d", c.table, k, s, err, got)
				}
			}
		}
	}
}

func TestPostgresHashKeys(t *testing.T) {
	h, _ := NewPostgresHash(4, PostgresInteger, 3)
	if h.Shards() != 4 || h.Version() != 3 {
		t.Fatalf("Shards %d Version %d", h.Shards(), h.Version())
	}
	for _, c := range []struct {
		v   any
		err error
	}{
		{nil, ErrNullKey},
		{"4.5", ErrKeyType},
		{"abc", ErrKeyType},
		{1.5, ErrKeyType},
	} {
		if _, err := h.ShardOf(c.v); !errors.Is(err, c.err) {
			t.Errorf("ShardOf(%#v) = %v; want %v", c.v, err, c.err)
		}
	}
	a, _ := h.ShardOf(int64(42))
	b, _ := h.ShardOf(" +042")
	c, _ := h.ShardOfBytes([]byte("42"))
	if a != b || a != c {
		t.Errorf("42 as int64, string, bytes: %d %d %d", a, b, c)
	}
	ht, _ := NewPostgresHash(4, PostgresText, 3)
	a, _ = ht.ShardOfInt(42)
	b, _ = ht.ShardOf("42")
	if a != b {
		t.Errorf("text map: 42 and \"42\": %d %d", a, b)
	}
	if _, err := ht.ShardOfBytes(nil); !errors.Is(err, ErrNullKey) {
		t.Errorf("ShardOfBytes(nil) = %v", err)
	}
	for _, bad := range []struct {
		n int
		t PostgresKeyType
	}{{0, PostgresInteger}, {2, 0}, {2, 9}} {
		if _, err := NewPostgresHash(bad.n, bad.t, 1); err == nil {
			t.Errorf("NewPostgresHash(%d, %d) accepted", bad.n, bad.t)
		}
	}
}
