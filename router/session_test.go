package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lagmon"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/shard"
)

// One table of the proxy's session commands for both protocols: each case
// runs with PostgreSQL's position (an LSN) and MySQL's (a MariaDB GTID),
// on an unsharded and, where it matters, a sharded database.
func TestSessionRoutingApply(t *testing.T) {
	m, _ := shard.NewHash(2, 1024, 1)
	sharded := &ShardCluster{ShardRouting: NewShardRouting(Postgres, m, KeySpec{Default: "customer_id"}, false, nil)}
	cfg := &config.Config{Clusters: []config.Cluster{{Name: "main"}, {Name: "orders"}}}
	dialects := []struct {
		name  string
		pos   string // a position in the dialect's form
		parse func(string) (lagmon.Position, error)
	}{
		{"postgres", "0/3000060", func(s string) (lagmon.Position, error) { return lagmon.ParseLSN(s) }},
		{"mysql", "0-1-5", func(s string) (lagmon.Position, error) { return lagmon.ParseMariaDBGTID(s) }},
	}
	type want struct {
		ans     Answer
		err     CommandErrorKind
		isErr   bool
		reason  string // in CommandError.Reason
		check   func(*SessionRouting) string
		sharded bool // on a sharded database (Shards: nil with gone)
		gone    bool
	}
	for _, d := range dialects {
		for _, tc := range []struct {
			pre  []string // commands applied first
			cmd  string
			want want
		}{
			{cmd: "SET switchyard.target = 'replica'", want: want{check: func(s *SessionRouting) string {
				return ifNot(s.Pref == PreferReplica, "Pref %v", s.Pref)
			}}},
			{pre: []string{"SET switchyard.target = primary"}, cmd: "RESET switchyard.target", want: want{check: func(s *SessionRouting) string {
				return ifNot(s.Pref == Auto, "Pref %v", s.Pref)
			}}},
			{cmd: "SET switchyard.target = 'sideways'", want: want{isErr: true, err: CmdBadValue, reason: "primary, replica or auto"}},
			{cmd: "SET switchyard.nope = 1", want: want{isErr: true, err: CmdUnknownName}},
			{cmd: "SET switchyard.read_after = 'main@" + d.pos + "'", want: want{check: func(s *SessionRouting) string {
				return ifNot(s.ReadAfter != nil && s.ReadAfter.String() == d.pos, "ReadAfter %v", s.ReadAfter)
			}}},
			{cmd: "SET switchyard.read_after = '" + d.pos + "'", want: want{check: func(s *SessionRouting) string {
				return ifNot(s.ReadAfter != nil, "a bare position not taken")
			}}},
			{pre: []string{"SET switchyard.read_after = 'main@" + d.pos + "'"}, cmd: "SET switchyard.read_after = ''", want: want{check: func(s *SessionRouting) string {
				return ifNot(s.ReadAfter == nil, "ReadAfter %v after clearing", s.ReadAfter)
			}}},
			{cmd: "SET switchyard.read_after = 'orders@" + d.pos + "'", want: want{isErr: true, err: CmdBadValue, reason: `a position of cluster "orders"`}},
			{cmd: "SET switchyard.read_after = 'elsewhere@" + d.pos + "'", want: want{isErr: true, err: CmdBadValue, reason: "which this proxy does not serve"}},
			{cmd: "SET switchyard.read_after = 'main@nonsense'", want: want{isErr: true, err: CmdBadValue, reason: "not a position from SHOW switchyard.write_position"}},
			{cmd: "SHOW switchyard.write_position", want: want{ans: Answer{Show: true, Column: "write_position"}}},
			// A sharded database has no one position: tokens are refused,
			// not answered with an empty one that covers nothing.
			{cmd: "SHOW switchyard.write_position", want: want{sharded: true, isErr: true, err: CmdTokenSharded}},
			{cmd: "SET switchyard.read_after = 'orders@" + d.pos + "'", want: want{sharded: true, isErr: true, err: CmdTokenSharded}},
			{cmd: "SET switchyard.read_after = ''", want: want{sharded: true}},
			{cmd: "SHOW switchyard.shard_key", want: want{ans: Answer{Pass: true}}},
			{cmd: "SHOW switchyard.shard_key", want: want{sharded: true, ans: Answer{Show: true, Column: "shard_key"}}},
			{pre: []string{"SET switchyard.shard_key = '042'"}, cmd: "SHOW switchyard.shard_key", want: want{sharded: true, ans: Answer{Show: true, Column: "shard_key", Value: "042"}}},
			{pre: []string{"SET switchyard.shard_key = 'abc'"}, cmd: "SHOW switchyard.shard_key", want: want{sharded: true, ans: Answer{Show: true, Column: "shard_key", Value: "abc"}}},
			{pre: []string{"SET switchyard.shard_key = 7"}, cmd: "SET switchyard.shard_key = DEFAULT", want: want{sharded: true, check: func(s *SessionRouting) string {
				return ifNot(s.Key == nil, "Key %v after DEFAULT", s.Key)
			}}},
			{cmd: "SET switchyard.shard_key = '4.5'", want: want{sharded: true, isErr: true, err: CmdBadValue}},
			{cmd: "SET switchyard.shard_key = 7", want: want{isErr: true, err: CmdNotSharded}},
			{cmd: "SET switchyard.shard_key = 7", want: want{sharded: true, gone: true, isErr: true, err: CmdNoLongerSharded}},
		} {
			name := fmt.Sprintf("%s/%s(sharded=%v)", d.name, tc.cmd, tc.want.sharded)
			env := SessionEnv{Cluster: "main", Database: "db", Config: cfg, Sharded: tc.want.sharded, ParsePosition: d.parse}
			if tc.want.sharded && !tc.want.gone {
				env.Shards = sharded
			}
			var s SessionRouting
			for _, p := range tc.pre {
				if _, err := s.Apply(ParseProxyCommand(p), env); err != nil {
					t.Fatalf("%s: %s: %v", name, p, err)
				}
			}
			ans, err := s.Apply(ParseProxyCommand(tc.cmd), env)
			switch {
			case tc.want.isErr && err == nil:
				t.Errorf("%s: no error, want kind %d", name, tc.want.err)
			case !tc.want.isErr && err != nil:
				t.Errorf("%s: %v", name, err)
			case err != nil && (err.Kind != tc.want.err || !strings.Contains(err.Reason, tc.want.reason)):
				t.Errorf("%s: %+v, want kind %d with %q", name, err, tc.want.err, tc.want.reason)
			case err == nil && ans != tc.want.ans:
				t.Errorf("%s: %+v, want %+v", name, ans, tc.want.ans)
			case tc.want.check != nil:
				if msg := tc.want.check(&s); msg != "" {
					t.Errorf("%s: %s", name, msg)
				}
			}
		}
	}
}

func ifNot(ok bool, format string, args ...any) string {
	if ok {
		return ""
	}
	return fmt.Sprintf(format, args...)
}

func TestSessionRoutingReset(t *testing.T) {
	s := SessionRouting{Pref: PreferReplica, ReadAfter: lagmon.LSN(5), Key: &KeyRef{Literal: int64(1)}}
	s.Reset()
	if s.Pref != Auto || s.ReadAfter != nil || s.Key != nil {
		t.Errorf("after Reset: %+v", s)
	}
}

// downProber answers a primary's position, or fails while down.
type downProber struct {
	down atomic.Bool
	lsn  atomic.Uint64
}

func (p *downProber) Probe(context.Context) (lagmon.Position, error) {
	if p.down.Load() {
		return nil, errors.New("connection refused")
	}
	return lagmon.LSN(p.lsn.Load()), nil
}

// SHOW switchyard.write_position: the token of the client's last write,
// or CmdNoPosition when the primary's position after it cannot be read
// (never the position from before the write).
func TestSessionRoutingWritePosition(t *testing.T) {
	prim, rep := &downProber{}, &downProber{}
	prim.lsn.Store(200)
	var cl config.Cluster
	cl.Name, cl.Primary, cl.Replicas = "main", "127.0.0.1:1", []string{"127.0.0.1:2"}
	cl.Settings.ReadYourWrites = true
	cl.Settings.LagPollInterval = time.Hour // only on-demand probes
	cl.Settings.MaxReplicaLag = time.Second
	var reg replica.Registry
	reg.Reload([]replica.Spec{{Protocol: "postgres", Cluster: cl, NewProbe: func(addr string, primary bool) lagmon.Prober {
		if primary {
			return prim
		}
		return rep
	}}})
	defer reg.Close()
	env := SessionEnv{Cluster: "main", Replicas: reg.Get("main")}
	show := ParseProxyCommand("SHOW switchyard.write_position")
	var s SessionRouting
	if ans, err := s.Apply(show, env); err != nil || ans.Value != "" {
		t.Fatalf("before any write: %+v, %v; want an empty token", ans, err)
	}
	s.Writes.Wrote(time.Now())
	if ans, err := s.Apply(show, env); err != nil || ans.Value != "main@"+lagmon.LSN(200).String() {
		t.Fatalf("after a write: %+v, %v; want main@%s", ans, err, lagmon.LSN(200))
	}
	time.Sleep(2 * time.Millisecond)
	prim.down.Store(true)
	s.Writes.Wrote(time.Now())
	if ans, err := s.Apply(show, env); err == nil || err.Kind != CmdNoPosition {
		t.Fatalf("after a write with the primary unreachable: %+v, %v; want CmdNoPosition", ans, err)
	}
	// Command, as the wires run it: the session is told that its client
	// hands its position on, for SHOW switchyard.write_position only.
	handedOn := 0
	for _, text := range []string{"SHOW switchyard.write_position", "SET switchyard.target = primary"} {
		_, _ = s.Command(ParseProxyCommand(text), env, func() { handedOn++ }, slog.New(slog.DiscardHandler))
	}
	if handedOn != 1 {
		t.Fatalf("the position was handed on %d times; want once", handedOn)
	}
}
