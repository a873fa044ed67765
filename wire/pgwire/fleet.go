package pgwire

import "github.com/switchyard/switchyard/internal/fleet"

// MapVersions returns the version of each sharded cluster's shard map in
// force, by cluster name (router.ShardSet.MapVersions).
func (s *Server) MapVersions() map[string]uint64 { return s.shards.MapVersions() }

// parseToken reads a read-your-writes token (package fleet) for the
// client's cluster.
func (c *clientConn) parseToken(tok string) (string, error) {
	cfg := c.srv.cfg.Load()
	return fleet.ParseToken(tok, c.cluster.Name, func(n string) bool { return cfg.ClusterByName(n) != nil })
}
