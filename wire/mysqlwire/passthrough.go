package mysqlwire

// Passthrough authentication (auth_user, auth_query) for MySQL, as
// ProxySQL does it: a client whose user is not in [[users]] is checked
// against the mysql_native_password hash the server stores,
// "*" + hex(SHA1(SHA1(password))), looked up on the primary with
// auth_query as auth_user. The client's answer to the scramble is
// SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))), so the proxy,
// knowing the stored hash, recovers SHA1(password) and checks it against
// the hash. SHA1(password) is all mysql_native_password needs to answer
// any later scramble, so the session's server connections log in with it;
// it is kept in the session's pool key and nowhere else.
//
// Not possible: caching_sha2_password (MySQL 8's default) and ed25519
// users: what the server stores cannot check a client's answer, and the
// answer gives nothing that logs in to a server.

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strings"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// passPrefix marks a server password that is SHA1(password) of a
// passthrough user (raw bytes follow) rather than the password.
const passPrefix = "\x00passthrough-sha1:"

// passHash returns SHA1(password) from a passthrough server password.
func passHash(pw string) ([]byte, bool) {
	h, ok := strings.CutPrefix(pw, passPrefix)
	if !ok || len(h) != sha1.Size {
		return nil, false
	}
	return []byte(h), true
}

// passCluster is the cluster a login names, as pickCluster chooses it,
// when it does passthrough authentication.
func passCluster(cfg *config.Config, db string) *config.Cluster {
	var c *config.Cluster
	if db == "" {
		for i := range cfg.Clusters {
			if cfg.Clusters[i].Protocol == config.MySQL {
				if c != nil {
					return nil
				}
				c = &cfg.Clusters[i]
			}
		}
	} else {
		c = cfg.Cluster(config.MySQL, db)
	}
	if c == nil || c.Settings.AuthUser == "" {
		return nil
	}
	return c
}

// lookupHash returns the stored mysql_native_password hash of name on
// cluster cl ("" for no such user, or one passthrough cannot serve).
func (s *Server) lookupHash(cfg *config.Config, cl *config.Cluster, name string) (string, error) {
	return s.passCache.Lookup("mysql", cl, name, func() (string, error) { return s.runAuthQuery(cfg, cl, name) })
}

// runAuthQuery runs auth_query on the primary (the first shard's) as
// auth_user, $1 being the name as a hex literal: the client chose it, and
// a hex literal cannot end the string.
func (s *Server) runAuthQuery(cfg *config.Config, cl *config.Cluster, name string) (string, error) {
	st := cl.Settings
	au, n, timeout, err := frontend.AuthQueryTarget(cfg, cl)
	if err != nil {
		return "", err
	}
	stls, err := frontend.NewServerTLS(st, n.Addr)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	user, pw := au.ServerCreds()
	b, err := dialBackend(ctx, dialParams{addr: n.Addr, user: user, password: pw, collation: defaultCollation, tls: stls})
	if err != nil {
		return "", err
	}
	defer b.Close()
	q := strings.ReplaceAll(st.AuthQuery, "$1", "X'"+hex.EncodeToString([]byte(name))+"'")
	v, ok, err := b.queryColumn(ctx, q, 1)
	if err != nil {
		return "", err
	}
	if !ok || v == "" {
		return "", nil
	}
	if _, native := mysqlproto.NativeHash(v); !native {
		s.log.Warn("passthrough: the user's stored password is not a mysql_native_password hash; it cannot log in through the proxy",
			"cluster", cl.Name, "user", name)
		return "", nil
	}
	return v, nil
}
