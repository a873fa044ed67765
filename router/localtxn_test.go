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
