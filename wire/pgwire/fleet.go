package pgwire

import "github.com/switchyard/switchyard/internal/fleet"

// MapVersions returns the version of each sharded cluster's shard map in
// force, by cluster name, for the admin /status view and reload answers
// (a fleet's operator compares them across instances).
func (s *Server) MapVersions() map[string]uint64 {
	out := map[string]uint64{}
	if p := s.shards.Load(); p != nil {
		for name, rt := range *p {
			out[name] = rt.m.Version()
		}
	}
	return out
}

// parseToken reads a read-your-writes token (package fleet) for the
// client's cluster.
func (c *clientConn) parseToken(tok string) (string, error) {
	cfg := c.srv.cfg.Load()
	return fleet.ParseToken(tok, c.cluster.Name, func(n string) bool { return cfg.ClusterByName(n) != nil })
}
