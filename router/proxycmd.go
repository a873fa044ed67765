package router

import (
	"strings"
)

// The proxy's own session commands, read once for both protocols:
//
//	SET [SESSION] switchyard.target = primary | replica | auto | DEFAULT
//	SET [SESSION] switchyard.read_after = '<token of SHOW switchyard.write_position>'
//	SET [SESSION] switchyard.shard_key = '<key>'    (sharded databases)
//	RESET switchyard.<name>
//	SHOW switchyard.write_position
//	SHOW switchyard.shard_key
//
// The value may follow "=", ":=" (MySQL) or TO (PostgreSQL), quoted with
// ', " or ` or bare; DEFAULT (or an empty value, or RESET) clears it.
// They are matched by hand, not by a dialect's parser: "primary" is a
// reserved word to PostgreSQL's grammar, and the servers would reject the
// names anyway. The wire package answers the command in its protocol.

// ProxyKind is the kind of a proxy command.
type ProxyKind uint8

// Proxy command kinds.
const (
	NotProxyCommand   ProxyKind = iota
	ShowWritePosition           // SHOW switchyard.write_position
	ShowShardKey                // SHOW switchyard.shard_key
	SetTarget                   // SET switchyard.target
	SetReadAfter                // SET switchyard.read_after
	SetShardKey                 // SET switchyard.shard_key
	SetUnknown                  // SET or RESET of another switchyard.* name
)

// ProxyCommand is one proxy command, parsed.
type ProxyCommand struct {
	Kind ProxyKind
	// Name is the variable, lower case ("switchyard.target").
	Name string
	// Value is the value set, unquoted; "" when Reset.
	Value string
	// Reset: RESET, = DEFAULT or an empty value: back to the default.
	Reset bool
	// ResetStmt: the statement was RESET (PostgreSQL's command tag).
	ResetStmt bool
	// Pref is the value of SET switchyard.target; BadValue says the
	// value is none of primary, replica, auto.
	Pref     Preference
	BadValue bool
	// Trailing: other statements follow the command in the same text
	// ("SET switchyard.shard_key = 42; SELECT 1"). The command is refused:
	// read as one value they would set a key of "42; SELECT 1" and never
	// run, and sent to the server they would set a server setting of
	// that name on a pooled connection.
	Trailing bool
}

// IsProxyCommand reports, without allocating, whether text starts like a
// proxy command (SET, RESET or SHOW, optionally SESSION, then
// "switchyard."); every simple query is asked.
func IsProxyCommand(text string) bool {
	w, rest := splitWord(text)
	if !strings.EqualFold(w, "set") && !strings.EqualFold(w, "show") && !strings.EqualFold(w, "reset") {
		return false
	}
	w, rest = splitWord(rest)
	if strings.EqualFold(w, "session") {
		w, _ = splitWord(rest)
	}
	const p = "switchyard."
	return len(w) > len(p) && strings.EqualFold(w[:len(p)], p)
}

// nextWord splits off the first blank-separated word of s.
func splitWord(s string) (word, rest string) {
	s = strings.TrimLeft(s, " \t\r\n")
	i := strings.IndexAny(s, " \t\r\n")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// ParseProxyCommand reads a proxy command; Kind is NotProxyCommand for any
// other text, and for a SHOW of a name the proxy does not answer (it goes
// to the server, which says the name is unknown).
func ParseProxyCommand(text string) ProxyCommand {
	if !IsProxyCommand(text) {
		return ProxyCommand{}
	}
	t := strings.TrimSpace(strings.TrimRight(strings.TrimSpace(text), "; \t\r\n"))
	var c ProxyCommand
	if i := statementEnd(t); i >= 0 {
		c.Trailing = true
		t = strings.TrimSpace(t[:i])
	}
	verb, rest := splitWord(t)
	verb = strings.ToLower(verb)
	rest = strings.TrimSpace(rest)
	if len(rest) > 8 && strings.EqualFold(rest[:8], "session ") {
		rest = strings.TrimSpace(rest[8:])
	}
	if verb == "show" {
		switch strings.ToLower(rest) {
		case "switchyard.write_position":
			c.Kind, c.Name = ShowWritePosition, "switchyard.write_position"
		case "switchyard.shard_key":
			c.Kind, c.Name = ShowShardKey, "switchyard.shard_key"
		}
		return c
	}
	i := strings.IndexAny(rest, " \t=:")
	if i < 0 {
		i = len(rest)
	}
	c.Name = strings.ToLower(rest[:i])
	if verb == "reset" {
		c.Reset, c.ResetStmt = true, true
	} else {
		v := strings.TrimSpace(rest[i:])
		v = strings.TrimPrefix(v, ":")
		v = strings.TrimPrefix(v, "=")
		if len(v) >= 2 && strings.EqualFold(v[:2], "to") && (len(v) == 2 || v[2] == ' ' || v[2] == '\t') {
			v = v[2:]
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '\'' || v[0] == '"' || v[0] == '`') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		if v == "" || strings.EqualFold(v, "default") {
			c.Reset = true
		} else {
			c.Value = v
		}
	}
	switch c.Name {
	case "switchyard.target":
		c.Kind = SetTarget
		if !c.Reset {
			p, ok := ParsePreference(strings.ToLower(c.Value))
			c.Pref, c.BadValue = p, !ok
		}
	case "switchyard.read_after":
		c.Kind = SetReadAfter
	case "switchyard.shard_key":
		c.Kind = SetShardKey
	default:
		c.Kind = SetUnknown
	}
	return c
}

// statementEnd is the index of the first ';' of t outside quotes ('...',
// "...", `...`), -1 when there is none.
func statementEnd(t string) int {
	var quote byte
	for i := 0; i < len(t); i++ {
		switch b := t[i]; {
		case quote != 0:
			if b == quote {
				quote = 0
			}
		case b == '\'' || b == '"' || b == '`':
			quote = b
		case b == ';':
			return i
		}
	}
	return -1
}

// SessionKeyOf reads the value of SET switchyard.shard_key as the
// session's key: nil when cleared; an error when the map cannot place it
// (refused when it is set, not at each statement).
func (r *ShardRouting) SessionKeyOf(c ProxyCommand) (*KeyRef, error) {
	if c.Reset {
		return nil, nil
	}
	// The key outlives the statement: a copy, since the wire package's
	// command text may alias its read buffer, which the next message
	// overwrites.
	k := SessionKey(strings.Clone(c.Value))
	if _, err := r.KeyShard(k, nil); err != nil {
		return nil, err
	}
	return &k, nil
}
