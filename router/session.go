package router

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lagmon"
	"github.com/switchyard/switchyard/replica"
)

// SessionRouting is the routing state of one client session, the same for both
// protocols: its standing target (SET switchyard.target), the position
// its reads must follow (SET switchyard.read_after), its shard key (SET
// switchyard.shard_key, sharded databases) and its writes, for
// read-your-writes. Apply validates and applies the proxy's own commands
// (ParseProxyCommand) to it, once for both wires; a wire package only
// renders the answer, or the CommandError, in its protocol.
type SessionRouting struct {
	Pref      Preference
	ReadAfter lagmon.Position
	// Key is the session's shard key; nil when unset or unsharded.
	Key *KeyRef
	// Writes are the client's writes on the cluster's primary;
	// ShardWrites its writes per shard primary (sharded databases).
	Writes      replica.Writes
	ShardWrites replica.WritesByPrimary
}

// SessionEnv is what Apply needs to know of the session's connection.
type SessionEnv struct {
	// Cluster and Database name the connection's cluster and database.
	Cluster, Database string
	// Config is the config in force (which clusters this instance
	// serves, for a read_after token's refusal).
	Config *config.Config
	// Sharded: the database was sharded when the session logged in;
	// Shards is the sharded cluster in force, nil when a reload made the
	// database unsharded since.
	Sharded bool
	Shards  *ShardCluster
	// Replicas is the replica runtime of an unsharded cluster (nil
	// without replicas), where SHOW switchyard.write_position reads the
	// position of Writes.
	Replicas *replica.Runtime
	// Lock, when not nil, guards Pref and Writes (a wire whose other
	// goroutines read them).
	Lock sync.Locker
	// ParsePosition reads a database position (a PostgreSQL LSN, a
	// MySQL or MariaDB GTID set).
	ParsePosition func(string) (lagmon.Position, error)
}

// CommandErrorKind is the class of a refused proxy command; each
// protocol maps it to its codes.
type CommandErrorKind uint8

const (
	// CmdBadValue: the value cannot be set (PostgreSQL 22023, MySQL
	// 1231 ER_WRONG_VALUE_FOR_VAR).
	CmdBadValue CommandErrorKind = iota
	// CmdUnknownName: no such switchyard.* variable (42704, MySQL 1193
	// ER_UNKNOWN_SYSTEM_VARIABLE).
	CmdUnknownName
	// CmdNotSharded: switchyard.shard_key on a database that is not
	// sharded (42704, MySQL 1231).
	CmdNotSharded
	// CmdNoLongerSharded: a reload made the session's sharded database
	// unsharded (0A000, MySQL 1235); the client must reconnect.
	CmdNoLongerSharded
	// CmdTokenSharded: SHOW switchyard.write_position or SET
	// switchyard.read_after on a sharded database, where one cluster
	// position would not say which shard's writes it covers (PostgreSQL
	// 0A000, MySQL 1235 ER_NOT_SUPPORTED_YET). It was answered with an
	// empty token that covered nothing.
	CmdTokenSharded
	// CmdNoPosition: SHOW switchyard.write_position cannot read the
	// primary's position after the client's last write
	// (replica.ErrWritePositionUnknown, in Reason): no token would cover
	// it (PostgreSQL 55000, MySQL 1105 ER_UNKNOWN_ERROR). The wire logs it.
	CmdNoPosition
)

// CommandError is a proxy command refused. Reason (for CmdBadValue) says
// why the value cannot be set, without the value; each wire phrases the
// whole message the way its database words such an error.
type CommandError struct {
	Kind     CommandErrorKind
	Name     string // the variable
	Value    string // the value refused
	Database string // the session's database (CmdNotSharded, CmdNoLongerSharded)
	Reason   string
}

func (e *CommandError) Error() string {
	switch e.Kind {
	case CmdUnknownName:
		return fmt.Sprintf("unknown variable %s", e.Name)
	case CmdNotSharded:
		return fmt.Sprintf("%s: database %q is not sharded", e.Name, e.Database)
	case CmdNoLongerSharded:
		return fmt.Sprintf("database %q is no longer sharded; reconnect", e.Database)
	case CmdNoPosition:
		return "switchyard: " + e.Reason
	case CmdTokenSharded:
		return fmt.Sprintf("%s: read-your-writes tokens are not supported on sharded database %q", e.Name, e.Database)
	}
	return fmt.Sprintf("%s cannot be set to %q: %s", e.Name, e.Value, e.Reason)
}

// Answer is what the proxy answers a proxy command with: Pass when the
// command is not the proxy's to answer (the server says the name is
// unknown), a one-row result (Column, Value) when Show, else the SET or
// RESET completed.
type Answer struct {
	Pass          bool
	Show          bool
	Column, Value string
}

// Command is a wire's way to run the proxy command cmd: a SHOW
// switchyard.write_position first tells the session (handOn) that the
// client hands its position on, so that its next writes read the
// position behind them on their own connection and the next SHOW needs no
// probe of the primary; then Apply, and a refusal for want of a position
// is logged.
func (s *SessionRouting) Command(cmd ProxyCommand, env SessionEnv, handOn func(), log *slog.Logger) (Answer, *CommandError) {
	if cmd.Kind == ShowWritePosition {
		handOn()
	}
	ans, cerr := s.Apply(cmd, env)
	if cerr != nil && cerr.Kind == CmdNoPosition {
		log.Warn("SHOW switchyard.write_position: no position", "err", cerr.Reason)
	}
	return ans, cerr
}

// Apply validates cmd and applies it to s, or returns why not.
func (s *SessionRouting) Apply(cmd ProxyCommand, env SessionEnv) (Answer, *CommandError) {
	bad := func(reason string, args ...any) *CommandError {
		return &CommandError{Kind: CmdBadValue, Name: cmd.Name, Value: cmd.Value, Reason: fmt.Sprintf(reason, args...)}
	}
	if cmd.Trailing && cmd.Kind != NotProxyCommand {
		return Answer{}, bad("a switchyard command must be sent alone, not with other statements in one query")
	}
	switch cmd.Kind {
	case ShowWritePosition:
		if env.Sharded { // a shard's writes have no one cluster position
			return Answer{}, &CommandError{Kind: CmdTokenSharded, Name: cmd.Name, Database: env.Database}
		}
		tok, err := WriteToken(env.Replicas, env.Cluster, &s.Writes, env.Lock)
		if err != nil {
			return Answer{}, &CommandError{Kind: CmdNoPosition, Name: cmd.Name, Reason: err.Error()}
		}
		return Answer{Show: true, Column: "write_position", Value: tok}, nil
	case ShowShardKey:
		if !env.Sharded {
			return Answer{Pass: true}, nil
		}
		v := ""
		if s.Key != nil {
			v = fmt.Sprint(s.Key.Literal)
		}
		return Answer{Show: true, Column: "shard_key", Value: v}, nil
	case SetTarget:
		if cmd.BadValue {
			return Answer{}, bad("not one of primary, replica or auto")
		}
		if env.Lock != nil {
			env.Lock.Lock()
			defer env.Lock.Unlock()
		}
		s.Pref = cmd.Pref
	case SetReadAfter:
		if cmd.Reset {
			s.ReadAfter = nil
			break
		}
		if env.Sharded {
			return Answer{}, &CommandError{Kind: CmdTokenSharded, Name: cmd.Name, Database: env.Database}
		}
		tok, err := ReadAfterToken(cmd.Value, env.Cluster, env.Config)
		if err != nil {
			return Answer{}, bad("%v", err)
		}
		pos, err := env.ParsePosition(tok)
		if err != nil {
			return Answer{}, bad("not a position from SHOW switchyard.write_position (%v)", err)
		}
		s.ReadAfter = pos
	case SetShardKey:
		switch {
		case !env.Sharded:
			return Answer{}, &CommandError{Kind: CmdNotSharded, Name: cmd.Name, Database: env.Database}
		case env.Shards == nil:
			return Answer{}, &CommandError{Kind: CmdNoLongerSharded, Name: cmd.Name, Database: env.Database}
		}
		k, err := env.Shards.SessionKeyOf(cmd)
		if err != nil {
			return Answer{}, bad("%v", err)
		}
		s.Key = k
	case SetUnknown:
		return Answer{}, &CommandError{Kind: CmdUnknownName, Name: cmd.Name}
	default:
		return Answer{Pass: true}, nil
	}
	return Answer{}, nil
}

// Reset is the session's routing state after MySQL's COM_RESET_CONNECTION
// or COM_CHANGE_USER: no target, read_after or shard key. Its writes stay
// (the data it wrote is still where it is).
func (s *SessionRouting) Reset() {
	s.Pref, s.ReadAfter, s.Key = Auto, nil, nil
}
