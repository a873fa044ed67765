package shard

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
)

func TestCollect(t *testing.T) {
	h, _ := NewHash(4, 64, 9)
	for _, c := range []struct {
		in   []int
		want Route
	}{
		{[]int{2}, Direct{Shard: 2, Version: 9}},
		{[]int{1, 1, 1}, Direct{Shard: 1, Version: 9}},
		{[]int{3, 1, 3, 0}, Multi{Shards: []int{0, 1, 3}, Version: 9}},
		{[]int{0, 1, 2, 3}, Multi{Shards: []int{0, 1, 2, 3}, Version: 9}},
	} {
		in := slices.Clone(c.in)
		got, err := Collect(h, in)
		if err != nil {
			t.Fatal(err)
		}
		if !routeEqual(got, c.want) {
			t.Errorf("Collect(%v) = %#v; want %#v", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("Collect modified its argument: %v", in)
		}
	}
	if _, err := Collect(h, nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("Collect(nil) = %v; want ErrNoKey", err)
	}
	if r := AllOf(h); !routeEqual(r, All{Version: 9}) {
		t.Errorf("AllOf = %#v", r)
	}
}

func routeEqual(a, b Route) bool {
	switch a := a.(type) {
	case Direct:
		b, ok := b.(Direct)
		return ok && a == b
	case Multi:
		b, ok := b.(Multi)
		return ok && a.Version == b.Version && slices.Equal(a.Shards, b.Shards)
	case All:
		b, ok := b.(All)
		return ok && a == b
	}
	return false
}

func TestResolve(t *testing.T) {
	r, _ := NewRange([][2]any{{int64(0), int64(100)}, {int64(100), int64(200)}}, 4)
	for _, c := range []struct {
		keys []any
		want Route
		err  error
	}{
		{[]any{int64(5)}, Direct{0, 4}, nil},
		{[]any{int64(5), "7", []byte("99")}, Direct{0, 4}, nil},
		{[]any{int64(150), int64(5)}, Multi{[]int{0, 1}, 4}, nil},
		{[]any{int64(5), int64(500)}, nil, ErrNoShard},
		{[]any{nil}, nil, ErrNullKey},
		{nil, nil, ErrNoKey},
	} {
		got, err := Resolve(r, c.keys...)
		if !errors.Is(err, c.err) || c.err == nil && !routeEqual(got, c.want) {
			t.Errorf("Resolve(%v) = %#v, %v; want %#v, %v", c.keys, got, err, c.want, c.err)
		}
	}
}

// A map from outside the package still gets correct routes, just boxed.
type fakeMap struct{}

func (fakeMap) Shards() int                      { return 2 }
func (fakeMap) Version() uint64                  { return 5 }
func (fakeMap) ShardOf(any) (int, error)         { return 1, nil }
func (fakeMap) ShardOfInt(int64) (int, error)    { return 1, nil }
func (fakeMap) ShardOfBytes([]byte) (int, error) { return 1, nil }

func TestRoutesForeignMap(t *testing.T) {
	if r := DirectTo(fakeMap{}, 1); !routeEqual(r, Direct{1, 5}) {
		t.Errorf("DirectTo = %#v", r)
	}
	if r := AllOf(fakeMap{}); !routeEqual(r, All{5}) {
		t.Errorf("AllOf = %#v", r)
	}
}

// The common decision (one key, one shard) allocates nothing.
func TestDirectRouteAllocs(t *testing.T) {
	h, _ := NewHash(4, 1024, 1)
	key := []byte("123456789")
	allocs := testing.AllocsPerRun(1000, func() {
		s, err := h.ShardOfBytes(key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Collect(h, []int{s}); err != nil {
			t.Fatal(err)
		}
		_ = DirectTo(h, s)
		_, _ = h.ShardOfInt(123456789)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per routed key", allocs)
	}
}

func TestFromConfig(t *testing.T) {
	const hashFile = `
[proxy]
postgres_listen = "127.0.0.1:6432"

[[users]]
name = "app"
password = "app"

[[clusters]]
name = "orders"
protocol = "postgres"
database = "orders"
  [clusters.sharding]
  kind = "hash"
  key = "customer_id"
  buckets = 64
  [[clusters.shards]]
  primary = "127.0.0.1:15432"
  database = "orders_0"
  [[clusters.shards]]
  primary = "127.0.0.1:15432"
  database = "orders_1"
`
	cfg, err := config.Parse([]byte(hashFile), "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := FromConfig(&cfg.Clusters[0], 11)
	if err != nil {
		t.Fatal(err)
	}
	h, ok := m.(*Hash)
	if !ok || h.Shards() != 2 || h.NumBuckets() != 64 || h.Version() != 11 {
		t.Fatalf("FromConfig = %#v", m)
	}

	rangeFile := strings.NewReplacer(`kind = "hash"`, `kind = "range"`, "buckets = 64", "",
		`database = "orders_0"`, `database = "orders_0"`+"\n  range = [0, 1000]",
		`database = "orders_1"`, `database = "orders_1"`+"\n  range = [1000, 2000]").Replace(hashFile)
	cfg, err = config.Parse([]byte(rangeFile), "")
	if err != nil {
		t.Fatal(err)
	}
	m, err = FromConfig(&cfg.Clusters[0], 12)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := m.ShardOf(int64(1500)); err != nil || s != 1 || m.Version() != 12 {
		t.Errorf("range map from config: ShardOf(1500) = %d, %v", s, err)
	}

	for _, c := range []*config.Cluster{
		nil,
		{Name: "plain"},
		{Name: "x", Sharding: &config.Sharding{Kind: "modulo"}, Shards: make([]config.Shard, 1)},
		{Name: "x", Sharding: &config.Sharding{Kind: "range"}, Shards: make([]config.Shard, 1)},
		{Name: "x", Sharding: &config.Sharding{Kind: "hash"}},
	} {
		if _, err := FromConfig(c, 1); err == nil {
			t.Errorf("FromConfig(%+v) accepted", c)
		}
	}
	// Buckets 0 in a hand-built config means the default.
	m, err = FromConfig(&config.Cluster{Sharding: &config.Sharding{Kind: "hash"}, Shards: make([]config.Shard, 3)}, 1)
	if err != nil || m.(*Hash).NumBuckets() != config.DefaultBuckets {
		t.Errorf("default buckets: %v %v", m, err)
	}
}

func TestMapFor(t *testing.T) {
	cl := func(primary0 string, replicas []string, buckets int) *config.Cluster {
		return &config.Cluster{Name: "c", Sharding: &config.Sharding{Kind: config.ShardHash, Key: "k", Buckets: buckets},
			Shards: []config.Shard{{Primary: primary0, Replicas: replicas}, {Primary: "b:1"}}}
	}
	m1, kept, err := MapFor(cl("a:1", nil, 64), nil, nil)
	if err != nil || kept || m1.Version() != 1 {
		t.Fatalf("first: %v %v %v", m1, kept, err)
	}
	// Replicas come and go: the map stays.
	if m, kept, err := MapFor(cl("a:1", []string{"r:1"}, 64), cl("a:1", nil, 64), m1); err != nil || !kept || m != m1 {
		t.Errorf("replica added: %v %v %v", m, kept, err)
	}
	// Another primary or bucket count: a new map, the next version.
	for _, c := range []*config.Cluster{cl("x:1", nil, 64), cl("a:1", nil, 128)} {
		if m, kept, err := MapFor(c, cl("a:1", nil, 64), m1); err != nil || kept || m.Version() != 2 {
			t.Errorf("changed placement: %v %v %v", m, kept, err)
		}
	}
}
