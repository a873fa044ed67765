package router

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
// ONLY, since what follows BEGIN is not known yet. Comment hints beat the
// session preference, which beats the statements.
func Decide(pref Preference, as []*Analysis) (Target, string) {
	for _, a := range as {
		switch a.Hint {
		case HintPrimary:
			return Primary{}, "hint"
		case HintReplica:
			return Replica{}, "hint"
		}
	}
	switch pref {
	case PreferPrimary:
		return Primary{}, "session"
	case PreferReplica:
		return Replica{}, "session"
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
