package router

import "strings"

// TxnVerb is a transaction-control statement the proxy may answer itself
// while no shard holds the session's transaction: the lazy BEGIN of a
// sharded cluster, whose shard is not known until a statement names a
// key. Anything else (COMMIT AND CHAIN, ROLLBACK TO SAVEPOINT, COMMIT
// PREPARED, a second statement) is NoTxnVerb and goes to a server.
type TxnVerb uint8

// Transaction-control verbs.
const (
	NoTxnVerb       TxnVerb = iota
	TxnBeginVerb            // BEGIN [WORK] (PostgreSQL: with its transaction modes)
	TxnStartVerb            // START TRANSACTION [modes]
	TxnCommitVerb           // COMMIT [WORK], PostgreSQL's END
	TxnRollbackVerb         // ROLLBACK [WORK], PostgreSQL's ABORT
	TxnSetNextVerb          // MySQL's SET TRANSACTION ...: for the next transaction
)

// LocalTxnVerb says which transaction-control statement text is, in
// dialect d, as far as the proxy answers it without a server.
func LocalTxnVerb(d Dialect, text string) TxnVerb {
	t := strings.ToLower(strings.Join(strings.Fields(strings.TrimRight(StripLeadingComments(text), "; \t\r\n")), " "))
	w, rest, _ := strings.Cut(t, " ")
	plain := rest == "" || rest == "work" || d == Postgres && rest == "transaction"
	switch {
	case w == "begin" && (plain || d == Postgres && !strings.Contains(rest, ";")):
		return TxnBeginVerb
	case w == "start" && (rest == "transaction" || strings.HasPrefix(rest, "transaction ")) && !strings.Contains(rest, ";"):
		return TxnStartVerb
	case plain && (w == "commit" || d == Postgres && w == "end"):
		return TxnCommitVerb
	case plain && (w == "rollback" || d == Postgres && w == "abort"):
		return TxnRollbackVerb
	case d == MySQL && w == "set" && strings.HasPrefix(rest, "transaction ") && !strings.Contains(rest, ";"):
		return TxnSetNextVerb
	}
	return NoTxnVerb
}

// LocalTxnAction is what the proxy does with a statement while no shard
// holds the session's transaction (LocalTxn).
type LocalTxnAction uint8

const (
	// LocalPass: not the proxy's to answer; a server runs it.
	LocalPass LocalTxnAction = iota
	// LocalBegin: answered; the BEGIN is kept, to send ahead of the
	// first statement that names a shard (lazy BEGIN).
	LocalBegin
	// LocalEnd: the COMMIT or ROLLBACK of a kept BEGIN that nothing
	// followed: answered, the BEGIN dropped.
	LocalEnd
	// LocalSetNext: MySQL's SET TRANSACTION, for the next transaction:
	// answered, kept to send ahead of it.
	LocalSetNext
)

// LocalTxn decides, once for both protocols, whether the proxy answers a
// transaction-control statement itself while no shard holds the session's
// transaction: text in dialect d, begun when a BEGIN it answered is kept.
// A second BEGIN goes to PostgreSQL, which warns that a transaction is
// under way; MySQL's BEGIN ends the one before (nothing ran in it), so
// the new one is kept instead.
func LocalTxn(d Dialect, text string, begun bool) (TxnVerb, LocalTxnAction) {
	v := LocalTxnVerb(d, text)
	switch {
	case v == TxnSetNextVerb:
		return v, LocalSetNext
	case v == TxnBeginVerb || v == TxnStartVerb:
		if begun && d == Postgres {
			return v, LocalPass
		}
		return v, LocalBegin
	case (v == TxnCommitVerb || v == TxnRollbackVerb) && begun:
		return v, LocalEnd
	}
	return v, LocalPass
}
