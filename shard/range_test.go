package shard

import (
	"errors"
	"strings"
	"testing"
)

func TestRangeIntegers(t *testing.T) {
	// Out of order, with a gap [2000, 5000) and nothing below 0.
	r, err := NewRange([][2]any{
		{int64(1000), int64(2000)},
		{int64(0), int64(1000)},
		{int64(5000), int64(1<<63 - 1)},
	}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Integers() || r.Shards() != 3 || r.Version() != 3 {
		t.Fatalf("Integers %v Shards %d Version %d", r.Integers(), r.Shards(), r.Version())
	}
	for _, c := range []struct {
		v     any
		shard int
		err   error
		msg   string
	}{
		{int64(0), 1, nil, ""},
		{int64(999), 1, nil, ""},
		{int64(1000), 0, nil, ""}, // low inclusive
		{int64(1999), 0, nil, ""},
		{int64(2000), 0, ErrNoShard, "shard key 2000: no shard's range holds the key"}, // high exclusive
		{int64(4999), 0, ErrNoShard, "4999"},
		{int64(5000), 2, nil, ""},
		{int64(1<<63 - 2), 2, nil, ""},
		{int64(1<<63 - 1), 0, ErrNoShard, "9223372036854775807"},
		{int64(-1), 0, ErrNoShard, "shard key -1:"},
		{int64(-1 << 63), 0, ErrNoShard, ""},
		{42, 1, nil, ""},
		{"1500", 0, nil, ""},
		{[]byte("5001"), 2, nil, ""},
		{"-5", 0, ErrNoShard, "-5"},
		{"01500", 0, nil, ""},
		{[]byte(" +5001 "), 2, nil, ""},
		{"4x", 0, ErrKeyType, `shard key "4x": not a usable shard key: the shard ranges are integers`},
		{"1500.5", 0, ErrKeyType, `shard key "1500.5": not a usable shard key: a number that is not a whole int64`},
		{"abc", 0, ErrKeyType, ""},
		{"", 0, ErrKeyType, ""},
		{nil, 0, ErrNullKey, "NULL"},
		{2.5, 0, ErrKeyType, ""},
	} {
		s, err := r.ShardOf(c.v)
		if !errors.Is(err, c.err) || err == nil && s != c.shard {
			t.Errorf("ShardOf(%#v) = %d, %v; want %d, %v", c.v, s, err, c.shard, c.err)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ShardOf(%#v) error %q does not contain %q", c.v, err, c.msg)
		}
		// The typed entry points agree with ShardOf.
		switch v := c.v.(type) {
		case int64:
			if s2, err2 := r.ShardOfInt(v); s2 != s || !errors.Is(err2, c.err) {
				t.Errorf("ShardOfInt(%d) = %d, %v; ShardOf says %d, %v", v, s2, err2, s, err)
			}
		case string:
			if s2, err2 := r.ShardOfBytes([]byte(v)); s2 != s || !errors.Is(err2, c.err) {
				t.Errorf("ShardOfBytes(%q) = %d, %v; ShardOf says %d, %v", v, s2, err2, s, err)
			}
		}
	}
	if _, err := r.ShardOfBytes(nil); !errors.Is(err, ErrNullKey) {
		t.Errorf("ShardOfBytes(nil) = %v", err)
	}
	got := r.Ranges()
	if got[0] != [2]any{int64(1000), int64(2000)} || got[1] != [2]any{int64(0), int64(1000)} {
		t.Errorf("Ranges() = %v", got)
	}
}

func TestRangeStrings(t *testing.T) {
	r, err := NewRange([][2]any{
		{"a", "m"},
		{"m", "z"},
		{"0", "9"}, // digits: integer keys compare as their decimal text
	}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Integers() {
		t.Fatal("Integers() on a string map")
	}
	for _, c := range []struct {
		v     any
		shard int
		err   error
	}{
		{"a", 0, nil},
		{"alice", 0, nil},
		{"lzzzz", 0, nil},
		{"m", 1, nil},
		{"mallory", 1, nil},
		{"yyy", 1, nil},
		{"z", 0, ErrNoShard},
		{"zed", 0, ErrNoShard},
		{"B", 0, ErrNoShard}, // bytewise: "B" < "a"
		{"", 0, ErrNoShard},
		{[]byte("bob"), 0, nil},
		{[]byte("zz"), 0, ErrNoShard},
		{int64(42), 2, nil},        // "42"
		{int64(-1), 0, ErrNoShard}, // "-1" < "0"
		{int64(9), 0, ErrNoShard},  // "9" is the exclusive high
		{int64(899), 2, nil},       // "899" < "9"
		{"é", 0, ErrNoShard},       // UTF-8 bytes above "z"
		{nil, 0, ErrNullKey},
		{1.5, 0, ErrKeyType},
	} {
		s, err := r.ShardOf(c.v)
		if !errors.Is(err, c.err) || err == nil && s != c.shard {
			t.Errorf("ShardOf(%#v) = %d, %v; want %d, %v", c.v, s, err, c.shard, c.err)
		}
		if n, ok := c.v.(int64); ok {
			if s2, err2 := r.ShardOfInt(n); s2 != s || !errors.Is(err2, c.err) {
				t.Errorf("ShardOfInt(%d) = %d, %v; ShardOf says %d, %v", n, s2, err2, s, err)
			}
		}
	}
	_, err = r.ShardOf("zed")
	if err == nil || err.Error() != `shard key "zed": no shard's range holds the key` {
		t.Errorf("gap error = %v", err)
	}
	_, err = r.ShardOfBytes([]byte("zed"))
	if err == nil || err.Error() != `shard key "zed": no shard's range holds the key` {
		t.Errorf("gap error from bytes = %v", err)
	}
}

func TestNewRangeErrors(t *testing.T) {
	for _, c := range []struct {
		ranges [][2]any
		msg    string
	}{
		{nil, "at least one shard"},
		{[][2]any{{int64(0), int64(0)}}, "low must be less than high"},
		{[][2]any{{int64(5), int64(1)}}, "low must be less than high"},
		{[][2]any{{"b", "a"}}, "low must be less than high"},
		{[][2]any{{"a", "a"}}, "low must be less than high"},
		{[][2]any{{int64(0), "a"}}, "two integers or two strings"},
		{[][2]any{{nil, int64(1)}}, "two integers or two strings"},
		{[][2]any{{1.5, 2.5}}, "two integers or two strings"},
		{[][2]any{{int64(0), int64(10)}, {"a", "b"}}, "shards[1] has a string range but shards[0] an integer one"},
		{[][2]any{{int64(0), int64(10)}, {int64(9), int64(20)}}, "shards[1] range [9, 20) overlaps shards[0] range [0, 10)"},
		{[][2]any{{int64(9), int64(20)}, {int64(0), int64(10)}}, "shards[1] range [0, 10) overlaps shards[0] range [9, 20)"},
		{[][2]any{{int64(0), int64(100)}, {int64(200), int64(300)}, {int64(50), int64(60)}}, "shards[2] range [50, 60) overlaps shards[0]"},
		{[][2]any{{"a", "n"}, {"m", "z"}}, `shards[1] range ["m", "z") overlaps shards[0] range ["a", "n")`},
		{[][2]any{{int64(0), int64(10)}, {int64(0), int64(10)}}, "overlaps"},
	} {
		_, err := NewRange(c.ranges, 1)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("NewRange(%v) = %v; want an error containing %q", c.ranges, err, c.msg)
		}
	}
	// Adjacent ranges do not overlap; Go int bounds are fine.
	if _, err := NewRange([][2]any{{0, 10}, {10, 20}}, 1); err != nil {
		t.Errorf("adjacent ranges: %v", err)
	}
}
