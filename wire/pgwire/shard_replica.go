package pgwire

import (
	"context"
	"errors"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
)

// Shard replicas.
//
// Each shard with replicas is, for read/write splitting, a cluster of its
// own: a lag monitor of its primary and replicas and a replica set, built
// on (re)load like the unsharded clusters' (route.go) and kept across
// reloads that do not change them. A transaction routed to one shard goes
// to a replica of that shard under the same rules as an unsharded read
// (router.Decide, max_replica_lag, read-your-writes); the client's writes
// are remembered per shard, since positions of two shards' primaries do
// not compare. A scatter SELECT picks a replica per shard the same way.

func clusterDB(cl *config.Cluster) string {
	if cl.ServerDatabase != "" {
		return cl.ServerDatabase
	}
	return cl.Database
}

// shardWroteLocked books a write transaction that ended on the shard of
// the lease. c.mu must be held.
func (c *clientConn) shardWroteLocked(now time.Time) {
	if c.sh.curKey != "" {
		c.routing.ShardWrites.For(c.sh.curKey).Wrote(now)
	}
}

// shardAnalyses are the verdicts route.go decides on for a request of a
// sharded client: a BEGIN the proxy answered comes first, as it would
// have reached the server first.
func (c *clientConn) shardAnalyses(typ byte, raw []byte) []*router.Analysis {
	as := c.batchAnalyses(typ, raw)
	if c.sh.begin != nil {
		as = append([]*router.Analysis{c.an.Analyze(string(c.sh.begin))}, as...)
		c.asBuf = as
	}
	return as
}

// shardRead picks where a transaction (or one shard's part of a scatter)
// on shard i runs: a caught-up replica of the shard when the statements
// are reads the router lets a replica serve, else the shard's primary.
// rep is the shard's replica machinery (nil without replicas); node is the
// replica picked, to hand back with rep.Set.Done.
func (c *clientConn) shardRead(rt *router.ShardCluster, i int, as []*router.Analysis) (e *poolEntry, node *replica.Node, rep *replica.Runtime, write bool) {
	primary := c.shardPool(rt, i)
	if rt.Replicas != nil {
		rep = rt.Replicas[i]
	}
	if c.keeps() != router.HoldNone {
		return primary, nil, rep, true
	}
	why, toReplica := router.PlanRead(rep, c.pref(), as)
	if !toReplica || rep == nil {
		return primary, nil, rep, !toReplica
	}
	c.mu.Lock()
	w := c.routing.ShardWrites.For(rt.Primary(i))
	c.mu.Unlock()
	if node = rep.Pick(w, nil, why, &c.mu); node == nil {
		return primary, nil, rep, false
	}
	return c.shardReplicaPool(rt, i, node.Name), node, rep, false
}

// getShardConn leases a connection for one shard's part of a scatter:
// from the replica picked, or from the primary when the replica cannot be
// reached (nothing was sent yet); the replica then sits out a while.
func (c *clientConn) getShardConn(rt *router.ShardCluster, i int, e *poolEntry, node *replica.Node, rep *replica.Runtime) (*pool.Server, *pool.Pool, error) {
	ps, err := e.p.Get(context.Background())
	if err != nil && node != nil && !errors.Is(err, pool.ErrWaitTimeout) && !errors.Is(err, pool.ErrQueueFull) && !errors.Is(err, pool.ErrClosed) {
		c.log.Warn("shard replica unreachable; reading from the shard's primary", "replica", node.Name, "err", err)
		rep.Set.Ban(node.Name, err.Error())
		p := c.shardPool(rt, i).p
		ps, err = p.Get(context.Background())
		return ps, p, err
	}
	return ps, e.p, err
}
