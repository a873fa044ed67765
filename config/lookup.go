package config

// The lookups below serve every new client connection, so they go through
// maps built once at load instead of walking the slices.

type clusterKey struct {
	protocol Protocol
	database string
}

type index struct {
	clusters map[clusterKey]int
	byName   map[string]int
	users    map[string]int
}

func (c *Config) buildIndex() {
	x := &index{
		clusters: make(map[clusterKey]int, len(c.Clusters)),
		byName:   make(map[string]int, len(c.Clusters)),
		users:    make(map[string]int, len(c.Users)),
	}
	for i, cl := range c.Clusters {
		x.clusters[clusterKey{cl.Protocol, cl.Database}] = i
		x.byName[cl.Name] = i
	}
	for i, u := range c.Users {
		x.users[u.Name] = i
	}
	c.idx = x
}

// Cluster returns the cluster that serves database over protocol, or nil.
func (c *Config) Cluster(protocol Protocol, database string) *Cluster {
	match := func(cl *Cluster) bool { return cl.Protocol == protocol && cl.Database == database }
	if c.idx != nil {
		if i, ok := c.idx.clusters[clusterKey{protocol, database}]; ok && i < len(c.Clusters) && match(&c.Clusters[i]) {
			return &c.Clusters[i]
		}
	}
	return c.scanClusters(match)
}

// ClusterByName returns the cluster called name, or nil.
func (c *Config) ClusterByName(name string) *Cluster {
	match := func(cl *Cluster) bool { return cl.Name == name }
	if c.idx != nil {
		if i, ok := c.idx.byName[name]; ok && i < len(c.Clusters) && match(&c.Clusters[i]) {
			return &c.Clusters[i]
		}
	}
	return c.scanClusters(match)
}

// User returns the user called name, or nil.
func (c *Config) User(name string) *User {
	if c.idx != nil {
		if i, ok := c.idx.users[name]; ok && i < len(c.Users) && c.Users[i].Name == name {
			return &c.Users[i]
		}
	}
	for i := range c.Users {
		if c.Users[i].Name == name {
			return &c.Users[i]
		}
	}
	return nil
}

// scanClusters serves Configs built by hand (tests) or copied and edited,
// whose index is missing or stale: a miss in the map is never trusted.
func (c *Config) scanClusters(match func(*Cluster) bool) *Cluster {
	for i := range c.Clusters {
		if match(&c.Clusters[i]) {
			return &c.Clusters[i]
		}
	}
	return nil
}

// Peer returns the [[peers]] entry of instance id, unless id is this
// instance's own (or 0: no fleet).
func (c *Config) Peer(id int) (Peer, bool) {
	if id == 0 || id == c.Proxy.InstanceID {
		return Peer{}, false
	}
	for _, p := range c.Peers {
		if p.InstanceID == id {
			return p, true
		}
	}
	return Peer{}, false
}

// OtherPeers returns the [[peers]] entries but this instance's own.
func (c *Config) OtherPeers() []Peer {
	out := make([]Peer, 0, len(c.Peers))
	for _, p := range c.Peers {
		if p.InstanceID != c.Proxy.InstanceID {
			out = append(out, p)
		}
	}
	return out
}
