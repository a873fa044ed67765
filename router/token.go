package router

import (
	"fmt"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/replica"
)

// Read-your-writes tokens (SHOW switchyard.write_position, SET
// switchyard.read_after) are "<cluster>@<position>": the position is the
// database's own (a PostgreSQL LSN, a MySQL GTID set), so any instance
// serving the same clusters honours it, and the cluster name keeps a
// token of one cluster from being read as a position of another (LSNs of
// two clusters compare, and mean nothing to each other). A bare position,
// the form before the cluster was part of it, is still accepted for the
// connection's own cluster.

// Token returns the token of position pos of cluster ("" for none).
func Token(cluster, pos string) string {
	if pos == "" {
		return ""
	}
	return cluster + "@" + pos
}

// WriteToken answers SHOW switchyard.write_position for a client of
// cluster whose writes on the primary of rt (nil: no replicas) are w;
// lock guards w (nil: none needed). "" when the client has not written;
// replica.ErrWritePositionUnknown when the primary's position after the
// last write cannot be read (the wire answers with an error, never with
// a token that would not cover the write).
func WriteToken(rt *replica.Runtime, cluster string, w *replica.Writes, lock sync.Locker) (string, error) {
	pos, err := rt.WritePosition(w, lock)
	return Token(cluster, pos), err
}

// ReadAfterToken reads the value of SET switchyard.read_after for a
// client of cluster: the text of the position the token carries, which
// the wire package parses in its database's form.
func ReadAfterToken(tok, cluster string, cfg *config.Config) (string, error) {
	return ParseToken(tok, cluster, func(n string) bool { return cfg.ClusterByName(n) != nil })
}

// ParseToken returns the position a token carries for cluster, the
// connection's. known says whether a cluster name is one this instance
// serves, for a clearer refusal.
func ParseToken(tok, cluster string, known func(string) bool) (pos string, err error) {
	// Positions never hold '@'; cluster names might.
	i := strings.LastIndexByte(tok, '@')
	if i < 0 {
		return tok, nil
	}
	name, pos := tok[:i], tok[i+1:]
	switch {
	case name == cluster:
		return pos, nil
	case known != nil && known(name):
		return "", fmt.Errorf("the token is a position of cluster %q, and this connection's database is served by cluster %q", name, cluster)
	default:
		return "", fmt.Errorf("the token is a position of cluster %q, which this proxy does not serve (a token is honoured by the instances that serve the same clusters)", name)
	}
}
