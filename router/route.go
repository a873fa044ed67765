package router

import "github.com/switchyard/switchyard/replica"

// Replica sends the statement to a replica of the cluster that is caught
// up enough for the client; which one is the replica set's choice.
type Replica struct{}

func (Replica) isTarget() {}

var _ Target = Replica{}

// Preference is a session's standing order (SET switchyard.target).
type Preference uint8

const (
	Auto Preference = iota
	PreferPrimary
	PreferReplica
)

// ParsePreference reads the value of SET switchyard.target.
func ParsePreference(s string) (Preference, bool) {
	switch s {
	case "auto", "default", "":
		return Auto, true
	case "primary":
		return PreferPrimary, true
	case "replica":
		return PreferReplica, true
	}
	return Auto, false
}

func (p Preference) String() string {
	switch p {
	case PreferPrimary:
		return "primary"
	case PreferReplica:
		return "replica"
	}
	return "auto"
}

// Decide returns where a transaction goes that starts with the statements
// analysed in as (a simple query's, or an extended-protocol request's up
// to its Sync), and why. Any statement that may write sends the whole
// transaction to the primary; so does a transaction opened without READ
// ONLY, since what follows BEGIN is not known yet. A primary hint beats
// everything; a replica hint beats the session preference, which beats
// the statements. A replica hint or preference applies to reads only:
// statements that must run on the primary (MustPrimary) still go there.
func Decide(pref Preference, as []*Analysis) (Target, string) {
	replicaHint := false
	for _, a := range as {
		switch a.Hint {
		case HintPrimary:
			return Primary{}, "hint"
		case HintReplica:
			replicaHint = true
		}
	}
	if replicaHint || pref == PreferReplica {
		if must, why := MustPrimary(as); must {
			return Primary{}, why
		}
		if replicaHint {
			return Replica{}, "hint"
		}
		return Replica{}, "session"
	}
	if pref == PreferPrimary {
		return Primary{}, "session"
	}
	if len(as) == 0 {
		return Primary{}, "other"
	}
	if first := as[0]; first.Class == TxnBegin {
		if first.ReadOnlyBegin {
			return Replica{}, "read_only_transaction"
		}
		return Primary{}, "transaction"
	}
	for _, a := range as {
		switch {
		case a.Class == Write:
			return Primary{}, "write"
		case a.MustPrimary:
			return Primary{}, "must_primary"
		case a.Class == Read:
		default:
			return Primary{}, "other"
		}
	}
	return Replica{}, "read"
}

// MustPrimary reports whether a request whose statements are analysed in
// as may not run on a replica whatever a routing override asks: it may
// write (DML, DDL, nextval/setval, functions not known to be read-only,
// text the parser rejects), lock rows (FOR UPDATE/SHARE), take advisory
// locks, open a read-write transaction, or pin the session. why is
// "write" when a statement may write, else "must_primary". It is the one
// check both protocols make before honouring /* switchyard:replica */ or
// SET switchyard.target = replica.
func MustPrimary(as []*Analysis) (must bool, why string) {
	for _, a := range as {
		switch {
		case a == nil:
		case a.Class == Write:
			return true, "write"
		case a.MustPrimary:
			must, why = true, "must_primary"
		}
	}
	return must, why
}

// PlanRead is the plan of a transaction on a node set with replicas (a
// cluster's, or a shard's): Decide over the analyses as that start it.
// toReplica false: it goes to the primary for what it does (a write, a
// hint, the session's preference, a must-go-to-primary rule), counted on
// rt (nil: no replicas, nothing counted), and its lease is one of the
// client's writes for read-your-writes. toReplica true: the caller asks
// rt for a replica that has the client's writes (replica.Runtime.Pick, or
// PickChecked), giving it why; none means the primary after all. Written
// once for both protocols and for shards.
func PlanRead(rt *replica.Runtime, pref Preference, as []*Analysis) (why string, toReplica bool) {
	t, why := Decide(pref, as)
	if _, ok := t.(Replica); !ok {
		if rt != nil {
			rt.Routed("primary", why)
		}
		return why, false
	}
	return why, true
}
