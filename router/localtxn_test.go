package router

import "testing"

// One table for both dialects: which transaction-control statements the
// proxy answers itself on a sharded cluster before a shard is known.
func TestLocalTxnVerb(t *testing.T) {
	for _, c := range []struct {
		sql    string
		pg, my TxnVerb
	}{
		{"BEGIN", TxnBeginVerb, TxnBeginVerb},
		{"begin work;", TxnBeginVerb, TxnBeginVerb},
		{"BEGIN TRANSACTION", TxnBeginVerb, NoTxnVerb},
		{"BEGIN ISOLATION LEVEL SERIALIZABLE", TxnBeginVerb, NoTxnVerb},
		{"/* app */ START TRANSACTION READ ONLY", TxnStartVerb, TxnStartVerb},
		{"start transaction", TxnStartVerb, TxnStartVerb},
		{"COMMIT", TxnCommitVerb, TxnCommitVerb},
		{"commit work", TxnCommitVerb, TxnCommitVerb},
		{"END", TxnCommitVerb, NoTxnVerb},
		{"ROLLBACK", TxnRollbackVerb, TxnRollbackVerb},
		{"ABORT", TxnRollbackVerb, NoTxnVerb},
		{"COMMIT AND CHAIN", NoTxnVerb, NoTxnVerb},
		{"ROLLBACK TO SAVEPOINT a", NoTxnVerb, NoTxnVerb},
		{"COMMIT PREPARED 'x'", NoTxnVerb, NoTxnVerb},
		{"SET TRANSACTION ISOLATION LEVEL READ COMMITTED", NoTxnVerb, TxnSetNextVerb},
		{"BEGIN; SELECT 1", NoTxnVerb, NoTxnVerb},
		{"SELECT 1", NoTxnVerb, NoTxnVerb},
	} {
		if got := LocalTxnVerb(Postgres, c.sql); got != c.pg {
			t.Errorf("PostgreSQL %q: %d, want %d", c.sql, got, c.pg)
		}
		if got := LocalTxnVerb(MySQL, c.sql); got != c.my {
			t.Errorf("MySQL %q: %d, want %d", c.sql, got, c.my)
		}
	}
}

// One table for both dialects: what the proxy does with a statement while
// no shard holds the session's transaction, with a BEGIN kept or not.
func TestLocalTxn(t *testing.T) {
	for _, c := range []struct {
		sql            string
		begun          bool
		pg, my         LocalTxnAction
		pgVerb, myVerb TxnVerb
	}{
		{"BEGIN", false, LocalBegin, LocalBegin, TxnBeginVerb, TxnBeginVerb},
		{"BEGIN", true, LocalPass, LocalBegin, TxnBeginVerb, TxnBeginVerb},
		{"START TRANSACTION READ ONLY", false, LocalBegin, LocalBegin, TxnStartVerb, TxnStartVerb},
		{"COMMIT", false, LocalPass, LocalPass, TxnCommitVerb, TxnCommitVerb},
		{"COMMIT", true, LocalEnd, LocalEnd, TxnCommitVerb, TxnCommitVerb},
		{"ROLLBACK", true, LocalEnd, LocalEnd, TxnRollbackVerb, TxnRollbackVerb},
		{"END", true, LocalEnd, LocalPass, TxnCommitVerb, NoTxnVerb},
		{"ROLLBACK TO SAVEPOINT a", true, LocalPass, LocalPass, NoTxnVerb, NoTxnVerb},
		{"SET TRANSACTION ISOLATION LEVEL READ COMMITTED", false, LocalPass, LocalSetNext, NoTxnVerb, TxnSetNextVerb},
		{"SELECT 1", true, LocalPass, LocalPass, NoTxnVerb, NoTxnVerb},
	} {
		if v, got := LocalTxn(Postgres, c.sql, c.begun); got != c.pg || v != c.pgVerb {
			t.Errorf("PostgreSQL %q (begun %v): %d %d, want %d %d", c.sql, c.begun, v, got, c.pgVerb, c.pg)
		}
		if v, got := LocalTxn(MySQL, c.sql, c.begun); got != c.my || v != c.myVerb {
			t.Errorf("MySQL %q (begun %v): %d %d, want %d %d", c.sql, c.begun, v, got, c.myVerb, c.my)
		}
	}
}
