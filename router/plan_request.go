package router

import (
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/scatter"
)

// RequestStmt is one statement of a request for PlanRequest: its text,
// its bind values (nil: none), and whether the request runs it (false: it
// is only prepared, which any shard can do; the request that binds it is
// planned).
type RequestStmt struct {
	SQL    string
	Params Params
	Runs   bool
}

// PlanRequest plans the statements of one request together (PostgreSQL's
// extended-protocol batch up to Sync is one request): every statement
// that names a shard must name the same one, and a statement that needs
// several shards runs so only when it is the request's one statement
// (ShardSession.NotAlone). It returns the target (AnyShard when no
// statement names a shard), the ShardKeys of the statement that decided
// it and its index (-1 for AnyShard). A statement run without text (a
// Bind of a statement the proxy does not know) is left to the server,
// which says so. The error is one of the statements' Params.
func (r *ShardRouting) PlanRequest(stmts []RequestStmt, sess ShardSession) (ShardTarget, *ShardKeys, int, error) {
	n := 0
	for _, st := range stmts {
		if st.Runs && st.SQL != "" {
			n++
		}
	}
	sess.NotAlone = sess.NotAlone || n > 1
	var out ShardTarget = AnyShard{}
	var outKeys *ShardKeys
	at := -1
	for i, st := range stmts {
		if !st.Runs || st.SQL == "" {
			continue
		}
		t, sk, err := r.PlanShard(st.SQL, st.Params, sess)
		if err != nil {
			return nil, sk, i, err
		}
		switch t := t.(type) {
		case AnyShard:
			continue
		case OneShard:
			if o, ok := out.(OneShard); ok && o.Shard != t.Shard {
				return refuse("transaction touches two shards (%d and %d); a transaction must stay on one shard", o.Shard, t.Shard), sk, i, nil
			}
		default: // several shards, or refused: the request goes no further
			return t, sk, i, nil
		}
		out, outKeys, at = t, sk, i
	}
	return out, outKeys, at, nil
}

// ScatterRequest is what package scatter runs for a statement (text sql,
// keys sk) the plan sends to several shards: t a ScatterShards (a SELECT,
// merged as sk says; a LIMIT or OFFSET given as a parameter is the
// caller's to read, Request.ReadParam) or a WriteShards (an UPDATE or
// DELETE on each shard in its own transaction). ok is false for any
// other target. The caller sets Job.Parallel when its shards can run at
// once.
func (sc *ShardCluster) ScatterRequest(t ShardTarget, sk *ShardKeys, sql string) (req scatter.Request, ok bool) {
	req = scatter.Request{Job: scatter.Job{Protocol: string(sc.protocol), Cluster: sc.Cluster.Name, MaxBytes: sc.Cluster.Settings.MaxScatterBytes},
		SQL: sql, Unoffset: PostgresScatterLimit}
	if sc.protocol == config.MySQL {
		req.Unoffset = MySQLScatterLimit
	}
	switch t := t.(type) {
	case ScatterShards:
		req.Shards = t.Shards
	case WriteShards:
		req.Shards, req.Write = t.Shards, true
	default:
		return req, false
	}
	if sk == nil || req.Write != (sk.Kind != StmtSelect) {
		return req, false
	}
	if req.Shards == nil {
		req.Shards = scatter.AllShards(sc.Map.Shards())
	}
	if !req.Write {
		req.Spec, req.LimitParam, req.OffsetParam = sk.MergeSpec(), sk.LimitParam, sk.OffsetParam
	}
	return req, true
}
