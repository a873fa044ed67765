package router

import (
	"testing"

	"github.com/switchyard/switchyard/shard"
)

// One table for both protocols' spellings of the proxy's commands.
func TestParseProxyCommand(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  ProxyCommand
		isCmd bool
	}{
		{"SET switchyard.target = 'primary'", ProxyCommand{Kind: SetTarget, Name: "switchyard.target", Value: "primary", Pref: PreferPrimary}, true},
		{"set switchyard.target=replica", ProxyCommand{Kind: SetTarget, Name: "switchyard.target", Value: "replica", Pref: PreferReplica}, true},
		{"SET switchyard.target TO primary;", ProxyCommand{Kind: SetTarget, Name: "switchyard.target", Value: "primary", Pref: PreferPrimary}, true},
		{"SET switchyard.target = sideways", ProxyCommand{Kind: SetTarget, Name: "switchyard.target", Value: "sideways", BadValue: true}, true},
		{"SET switchyard.target = DEFAULT", ProxyCommand{Kind: SetTarget, Name: "switchyard.target", Reset: true}, true},
		{"RESET switchyard.target", ProxyCommand{Kind: SetTarget, Name: "switchyard.target", Reset: true, ResetStmt: true}, true},
		{"  SET SESSION switchyard.read_after := \"0-1-5\" ", ProxyCommand{Kind: SetReadAfter, Name: "switchyard.read_after", Value: "0-1-5"}, true},
		{"SET switchyard.read_after = ''", ProxyCommand{Kind: SetReadAfter, Name: "switchyard.read_after", Reset: true}, true},
		{"set switchyard.shard_key = `42`", ProxyCommand{Kind: SetShardKey, Name: "switchyard.shard_key", Value: "42"}, true},
		{"SET switchyard.nope = 1", ProxyCommand{Kind: SetUnknown, Name: "switchyard.nope", Value: "1"}, true},
		{"show SWITCHYARD.write_position", ProxyCommand{Kind: ShowWritePosition, Name: "switchyard.write_position"}, true},
		{"SHOW switchyard.shard_key;", ProxyCommand{Kind: ShowShardKey, Name: "switchyard.shard_key"}, true},
		{"SHOW switchyard.other", ProxyCommand{}, true},
		{"SET NAMES utf8mb4", ProxyCommand{}, false},
		{"SELECT 'set switchyard.x'", ProxyCommand{}, false},
		{"SET @switchyard = 1", ProxyCommand{}, false},
		{"SET switchyard.", ProxyCommand{}, false},
		{"SET switchyard.shard_key = 42; SELECT 1", ProxyCommand{Kind: SetShardKey, Name: "switchyard.shard_key", Value: "42", Trailing: true}, true},
		{"SET switchyard.shard_key = 'a;b';", ProxyCommand{Kind: SetShardKey, Name: "switchyard.shard_key", Value: "a;b"}, true},
		{"SHOW switchyard.shard_key; DELETE FROM t", ProxyCommand{Kind: ShowShardKey, Name: "switchyard.shard_key", Trailing: true}, true},
	} {
		if got := IsProxyCommand(tc.in); got != tc.isCmd {
			t.Errorf("IsProxyCommand(%q) = %v", tc.in, got)
		}
		if got := ParseProxyCommand(tc.in); got != tc.want {
			t.Errorf("ParseProxyCommand(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestSessionKeyOf(t *testing.T) {
	m, _ := shard.NewHash(2, 1024, 1)
	r := NewShardRouting(Postgres, m, KeySpec{Default: "customer_id"}, false, nil)
	k, err := r.SessionKeyOf(ParseProxyCommand("SET switchyard.shard_key = '042'"))
	if err != nil || k == nil {
		t.Fatalf("'042': %v %v", k, err)
	}
	if got, want := must(r.KeyShard(*k, nil)), must(m.ShardOfInt(42)); got != want {
		t.Errorf("'042' is on shard %d, 42 on %d", got, want)
	}
	if _, err := r.SessionKeyOf(ParseProxyCommand("SET switchyard.shard_key = '4.5'")); err == nil {
		t.Error("'4.5' placed")
	}
	if k, err := r.SessionKeyOf(ParseProxyCommand("RESET switchyard.shard_key")); err != nil || k != nil {
		t.Errorf("RESET: %v %v", k, err)
	}
}

func must(n int, err error) int {
	if err != nil {
		panic(err)
	}
	return n
}
