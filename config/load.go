package config

import (
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Built-in defaults, used where neither [defaults] nor a cluster sets a key.
const (
	DefaultMaxClientConns = 10000
	DefaultBuckets        = 1024
	DefaultAuth           = AuthSCRAM
)

// DefaultSettings returns the values of the [defaults] keys that a file
// leaves out. A function, not a variable, so that no caller can change what
// every later Load starts from.
func DefaultSettings() Settings { return defaultSettings }

var defaultSettings = Settings{
	PoolMode:         PoolTransaction,
	PoolSize:         20,
	MinPoolSize:      0,
	QueryWaitTimeout: 5 * time.Second,
	IdleTimeout:      5 * time.Minute,
	ServerLifetime:   time.Hour,
	ServerCheckDelay: 30 * time.Second,
	ConnectTimeout:   5 * time.Second,
	MaxReplicaLag:    time.Second,
	ReadYourWrites:   true,
	LagPollInterval:  50 * time.Millisecond,
	ServerTLS:        TLSPrefer,
	AuthQuery:        DefaultAuthQuery,
	AuthCacheTTL:     time.Minute,
	MaxScatterBytes:  256 << 20,
}

// DefaultShutdownTimeout is proxy.shutdown_timeout when the file leaves it out.
const DefaultShutdownTimeout = 30 * time.Second

// Defaults of [proxy] keys.
const (
	DefaultClientLoginTimeout    = 15 * time.Second
	DefaultAuthFailuresPerMinute = 20
	// DefaultStatementRegistrySize is proxy.statement_registry_size.
	DefaultStatementRegistrySize = 10000
	// DefaultMaxClientPreparedStatements is
	// proxy.max_client_prepared_statements.
	DefaultMaxClientPreparedStatements = 10000
)

// Values of User.Auth.
const (
	AuthSCRAM = "scram-sha-256"
	AuthMD5   = "md5"
	AuthTrust = "trust"
)

// Values of Sharding.Kind.
const (
	ShardHash  = "hash"
	ShardRange = "range"
)

// maxBuckets bounds sharding.buckets: the shard map allocates one entry per
// bucket, and a typo must not cost gigabytes.
const maxBuckets = 1 << 20

// Load reads and validates the config file at path. On any problem in the
// file it returns nil and every problem found, each an *Error naming the
// line, joined with errors.Join; a file it cannot read is a plain error.
//
// Relative tls_cert and tls_key paths are resolved against the directory of
// path, so that the file means the same wherever the proxy is started;
// the returned Config holds the resolved paths.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Parse validates a config held in memory. path names the file in error
// messages and anchors relative TLS paths; it may be "" (then they are
// relative to the working directory).
func Parse(data []byte, path string) (*Config, error) {
	l := &loader{file: path, src: data}
	if path != "" {
		l.dir = filepath.Dir(path)
	}

	var raw rawFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		return nil, l.decodeError(err)
	}
	l.unknownKeys(md)

	cfg := l.build(&raw)
	if len(l.errs) > 0 {
		return nil, l.joined()
	}
	cfg.buildIndex()
	return cfg, nil
}

// The raw* types mirror the file. Scalars are `any` so that a value of the
// wrong type becomes one reported problem with its line instead of aborting
// the decode; toml still marks them decoded, so md.Undecoded() lists exactly
// the unknown keys.
type rawFile struct {
	Proxy    rawProxy     `toml:"proxy"`
	Defaults rawSettings  `toml:"defaults"`
	Users    []rawUser    `toml:"users"`
	Clusters []rawCluster `toml:"clusters"`
	Peers    []rawPeer    `toml:"peers"`
}

type rawPeer struct {
	InstanceID     any `toml:"instance_id"`
	PostgresListen any `toml:"postgres_listen"`
	MySQLListen    any `toml:"mysql_listen"`
	AdminListen    any `toml:"admin_listen"`
}

type rawProxy struct {
	PostgresListen  any `toml:"postgres_listen"`
	MySQLListen     any `toml:"mysql_listen"`
	AdminListen     any `toml:"admin_listen"`
	MaxClientConns  any `toml:"max_client_conns"`
	ShutdownTimeout any `toml:"shutdown_timeout"`
	TLSCert         any `toml:"tls_cert"`
	TLSKey          any `toml:"tls_key"`
	LoginTimeout    any `toml:"client_login_timeout"`
	AuthFailures    any `toml:"auth_failures_per_minute"`
	AdminToken      any `toml:"admin_token"`
	AdminTLS        any `toml:"admin_tls"`
	RegistrySize    any `toml:"statement_registry_size"`
	ClientStmts     any `toml:"max_client_prepared_statements"`
	InstanceID      any `toml:"instance_id"`
}

type rawSettings struct {
	PoolMode         any `toml:"pool_mode"`
	PoolSize         any `toml:"pool_size"`
	MinPoolSize      any `toml:"min_pool_size"`
	QueryWaitTimeout any `toml:"query_wait_timeout"`
	IdleTimeout      any `toml:"idle_timeout"`
	ServerLifetime   any `toml:"server_lifetime"`
	ServerCheckDelay any `toml:"server_check_delay"`
	ConnectTimeout   any `toml:"connect_timeout"`
	MaxReplicaLag    any `toml:"max_replica_lag"`
	ReadYourWrites   any `toml:"read_your_writes"`
	LagPollInterval  any `toml:"lag_poll_interval"`
	CausalReadTO     any `toml:"causal_read_timeout"`
	WriteFunctions   any `toml:"write_functions"`
	ReadOnlyFuncs    any `toml:"read_only_functions"`
	SessionFuncs     any `toml:"session_functions"`
	MaxDBClientConns any `toml:"max_db_client_conns"`
	MaxWaitClients   any `toml:"max_wait_clients"`
	MaxScatterBytes  any `toml:"max_scatter_bytes"`
	ServerTLS        any `toml:"server_tls"`
	ServerTLSCA      any `toml:"server_tls_ca"`
	AllowCleartext   any `toml:"server_allow_cleartext_password"`
	ServerPublicKey  any `toml:"server_public_key_path"`
	AuthUser         any `toml:"auth_user"`
	AuthQuery        any `toml:"auth_query"`
	AuthCacheTTL     any `toml:"auth_cache_ttl"`
}

type rawUser struct {
	Name           any `toml:"name"`
	Password       any `toml:"password"`
	Auth           any `toml:"auth"`
	ServerUser     any `toml:"server_user"`
	ServerPassword any `toml:"server_password"`
	PoolMode       any `toml:"pool_mode"`
	Admin          any `toml:"admin"`
	Databases      any `toml:"databases"`
	MaxClientConns any `toml:"max_client_conns"`
}

type rawCluster struct {
	rawSettings
	Name           any          `toml:"name"`
	Protocol       any          `toml:"protocol"`
	Database       any          `toml:"database"`
	ServerDatabase any          `toml:"server_database"`
	Primary        any          `toml:"primary"`
	Replicas       any          `toml:"replicas"`
	Sharding       *rawSharding `toml:"sharding"`
	Shards         []rawShard   `toml:"shards"`
	MonitorUser    any          `toml:"monitor_user"`
	MonitorPass    any          `toml:"monitor_password"`
}

type rawSharding struct {
	Kind     any            `toml:"kind"`
	Key      any            `toml:"key"`
	Tables   map[string]any `toml:"tables"`
	Buckets  any            `toml:"buckets"`
	AllowAll any            `toml:"allow_all_shard_writes"`
}

type rawShard struct {
	Primary  any `toml:"primary"`
	Replicas any `toml:"replicas"`
	Database any `toml:"database"`
	Range    any `toml:"range"`
}

// loader collects problems while it builds a Config. Problems carry their
// key path; lines are looked up once at the end, so a valid file is never
// scanned a second time.
type loader struct {
	file  string
	dir   string
	src   []byte
	lines *lineIndex
	errs  []*Error
	// getenv looks up environment variables for secret references; nil:
	// the process's environment.
	getenv func(string) (string, bool)
}

func (l *loader) errorf(key, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: l.file, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) index() *lineIndex {
	if l.lines == nil {
		l.lines = indexLines(l.src)
	}
	return l.lines
}

func (l *loader) joined() error {
	for _, e := range l.errs {
		if e.Line == 0 && e.Key != "" {
			e.Line = l.index().lineOf(e.Key)
		}
	}
	sortErrors(l.errs)
	errs := make([]error, len(l.errs))
	for i, e := range l.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// decodeRE picks the line out of the errors BurntSushi/toml returns as plain
// strings (a table where an array of tables belongs, and the like).
var decodeRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

func (l *loader) decodeError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: l.file, Line: pe.Position.Line, Msg: pe.Message}
	}
	if m := decodeRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		msg := m[3]
		// Only tables and arrays of tables are decoded into typed fields, so
		// these are the shapes an operator can get wrong.
		switch {
		case strings.HasSuffix(msg, "destination has type slice"):
			msg = fmt.Sprintf("must be an array of tables, written [[%s]]", m[2])
		case strings.HasSuffix(msg, "destination has type struct"),
			strings.HasSuffix(msg, "destination has type map"),
			strings.Contains(msg, "expected table but found"):
			msg = fmt.Sprintf("must be a table, written [%s]", m[2])
		}
		return &Error{File: l.file, Line: line, Key: m[2], Msg: msg}
	}
	return &Error{File: l.file, Msg: err.Error()}
}

// unknownKeys reports every key the schema does not know, at each place it
// is written: md.Undecoded() names a key once for all [[clusters]], without
// saying which. Only the outermost unknown part is reported: the table
// [metrics], not each key in it.
func (l *loader) unknownKeys(md toml.MetaData) {
	undecoded := md.Undecoded()
	if len(undecoded) == 0 {
		return
	}
	unknown := make(map[string]bool, len(undecoded))
	for _, k := range undecoded {
		unknown[k.String()] = true
	}
	// A prefix of a decoded key is known, even when TOML only implies it
	// (a dotted key); MetaData lists no such implied tables.
	known := map[string]bool{}
	for _, k := range md.Keys() {
		if unknown[k.String()] {
			continue
		}
		for i := 1; i <= len(k); i++ {
			known[k[:i].String()] = true
		}
	}
	var tops []string
	isTop := map[string]bool{}
	for _, k := range undecoded {
		for i := 1; i <= len(k); i++ {
			if p := k[:i].String(); !known[p] {
				if !isTop[p] {
					isTop[p] = true
					tops = append(tops, p)
				}
				break
			}
		}
	}
	found := map[string]bool{}
	for _, ik := range l.index().keys {
		if isTop[ik.key] {
			found[ik.key] = true
			l.errs = append(l.errs, &Error{File: l.file, Line: ik.line, Key: ik.path, Msg: "unknown key"})
		}
	}
	// Whatever the scanner missed is still reported, without a line.
	for _, p := range tops {
		if !found[p] {
			l.errorf(p, "unknown key")
		}
	}
}

func (l *loader) build(raw *rawFile) *Config {
	cfg := &Config{Path: l.file}
	l.proxy(&cfg.Proxy, &raw.Proxy)

	cfg.Defaults = DefaultSettings()
	l.settings(&cfg.Defaults, &raw.Defaults, "defaults")
	if d := cfg.Defaults; d.MinPoolSize > d.PoolSize {
		key := "defaults.min_pool_size"
		if raw.Defaults.MinPoolSize == nil {
			key = "defaults.pool_size"
		}
		l.errorf(key, "min_pool_size (%d) is larger than pool_size (%d)", d.MinPoolSize, d.PoolSize)
	}

	cfg.Clusters = make([]Cluster, len(raw.Clusters))
	for i := range raw.Clusters {
		l.cluster(&cfg.Clusters[i], &raw.Clusters[i], fmt.Sprintf("clusters[%d]", i), cfg.Defaults)
	}
	l.uniqueClusters(cfg.Clusters)

	cfg.Users = make([]User, len(raw.Users))
	for i := range raw.Users {
		l.user(&cfg.Users[i], &raw.Users[i], fmt.Sprintf("users[%d]", i), cfg.Clusters)
	}
	l.uniqueUsers(cfg.Users)
	l.authUsers(cfg, raw)
	cfg.Peers = l.peers(raw.Peers)
	return cfg
}

// peers reads the [[peers]] entries: every one needs its instance_id, an
// id appears once, and each address is a host:port to dial.
func (l *loader) peers(raw []rawPeer) []Peer {
	var out []Peer
	seen := map[int]int{}
	for i, r := range raw {
		k := fmt.Sprintf("peers[%d]", i)
		var p Peer
		n, ok := l.integer(r.InstanceID, k+".instance_id")
		switch {
		case r.InstanceID == nil:
			l.errorf(k, "instance_id is missing (1..%d, the peer's proxy.instance_id)", MaxInstanceID)
			continue
		case !ok:
			continue
		case n < 1 || n > MaxInstanceID:
			l.errorf(k+".instance_id", "must be from 1 to %d, not %d", MaxInstanceID, n)
			continue
		}
		if prev, dup := seen[n]; dup {
			l.errorf(k+".instance_id", "%d is also the instance_id of peers[%d]", n, prev)
			continue
		}
		seen[n] = i
		p.InstanceID = n
		addrs := []struct {
			dst *string
			raw any
			key string
		}{
			{&p.PostgresListen, r.PostgresListen, k + ".postgres_listen"},
			{&p.MySQLListen, r.MySQLListen, k + ".mysql_listen"},
			{&p.AdminListen, r.AdminListen, k + ".admin_listen"},
		}
		for _, a := range addrs {
			if a.raw == nil {
				continue
			}
			if s, ok := l.serverAddr(a.raw, a.key); ok {
				*a.dst = s
			}
		}
		if p.PostgresListen == "" && p.MySQLListen == "" && p.AdminListen == "" && !l.hasErrorAt(k+".postgres_listen", k+".mysql_listen", k+".admin_listen") {
			l.errorf(k, "a peer needs at least one of postgres_listen, mysql_listen, admin_listen")
		}
		out = append(out, p)
	}
	return out
}

// authUsers checks that every auth_user names a [[users]] entry, whose
// server credentials run the auth_query, and gives MySQL clusters their
// own passthrough defaults.
func (l *loader) authUsers(cfg *Config, raw *rawFile) {
	names := make(map[string]bool, len(cfg.Users))
	for _, u := range cfg.Users {
		names[u.Name] = true
	}
	if u := cfg.Defaults.AuthUser; u != "" && !names[u] {
		l.errorf("defaults.auth_user", "%q is not a [[users]] name (auth_user names the entry whose server_user and server_password run auth_query)", u)
	}
	for i := range cfg.Clusters {
		c := &cfg.Clusters[i]
		k := fmt.Sprintf("clusters[%d].auth_user", i)
		own := raw.Clusters[i].AuthUser != nil
		if c.Protocol == MySQL {
			// [defaults] auth_user and auth_query are PostgreSQL's: a
			// MySQL cluster sets its own, and looks in mysql.user by
			// default.
			if !own {
				c.Settings.AuthUser = ""
			} else if raw.Clusters[i].AuthQuery == nil {
				c.Settings.AuthQuery = DefaultMySQLAuthQuery
			}
		}
		switch {
		case own && c.Settings.AuthUser != "" && !names[c.Settings.AuthUser]:
			l.errorf(k, "%q is not a [[users]] name (auth_user names the entry whose server_user and server_password run auth_query)", c.Settings.AuthUser)
		}
		if c.Protocol == Postgres && raw.Clusters[i].ServerPublicKey != nil {
			l.errorf(fmt.Sprintf("clusters[%d].server_public_key_path", i), "is for mysql clusters (caching_sha2_password); PostgreSQL never encrypts a password to a server key")
		}
	}
}

func (l *loader) proxy(p *Proxy, r *rawProxy) {
	p.MaxClientConns = DefaultMaxClientConns
	p.ShutdownTimeout = DefaultShutdownTimeout
	p.ClientLoginTimeout = DefaultClientLoginTimeout
	p.AuthFailuresPerMinute = DefaultAuthFailuresPerMinute
	p.StatementRegistrySize = DefaultStatementRegistrySize
	p.MaxClientPreparedStatements = DefaultMaxClientPreparedStatements

	listens := []struct {
		dst *string
		raw any
		key string
	}{
		{&p.PostgresListen, r.PostgresListen, "proxy.postgres_listen"},
		{&p.MySQLListen, r.MySQLListen, "proxy.mysql_listen"},
		{&p.AdminListen, r.AdminListen, "proxy.admin_listen"},
	}
	used := map[string]string{}
	for _, ls := range listens {
		s, ok := l.str(ls.raw, ls.key)
		if !ok || s == "" {
			continue
		}
		if msg := checkAddr(s, true); msg != "" {
			l.errorf(ls.key, "%s", msg)
			continue
		}
		if other, dup := used[s]; dup {
			l.errorf(ls.key, "%q is also %s", s, other)
			continue
		}
		used[s] = ls.key
		*ls.dst = s
	}
	if p.PostgresListen == "" && p.MySQLListen == "" && !l.hasErrorAt("proxy.postgres_listen", "proxy.mysql_listen") {
		l.errorf("proxy", "no listener: set postgres_listen or mysql_listen (or both)")
	}

	if n, ok := l.integer(r.MaxClientConns, "proxy.max_client_conns"); ok {
		if n <= 0 {
			l.errorf("proxy.max_client_conns", "must be at least 1, not %d", n)
		} else {
			p.MaxClientConns = n
		}
	}
	if d, ok := l.duration(r.ShutdownTimeout, "proxy.shutdown_timeout", false); ok {
		p.ShutdownTimeout = d
	}
	if d, ok := l.duration(r.LoginTimeout, "proxy.client_login_timeout", false); ok {
		p.ClientLoginTimeout = d
	}
	if n, ok := l.integer(r.AuthFailures, "proxy.auth_failures_per_minute"); ok {
		if n < 0 {
			l.errorf("proxy.auth_failures_per_minute", "must not be negative, not %d (0: no limit)", n)
		} else {
			p.AuthFailuresPerMinute = n
		}
	}
	if n, ok := l.integer(r.RegistrySize, "proxy.statement_registry_size"); ok {
		if n < 100 {
			l.errorf("proxy.statement_registry_size", "must be at least 100, not %d", n)
		} else {
			p.StatementRegistrySize = n
		}
	}
	if n, ok := l.integer(r.ClientStmts, "proxy.max_client_prepared_statements"); ok {
		if n < 1 {
			l.errorf("proxy.max_client_prepared_statements", "must be at least 1, not %d", n)
		} else {
			p.MaxClientPreparedStatements = n
		}
	}

	if n, ok := l.integer(r.InstanceID, "proxy.instance_id"); ok {
		if n < 0 || n > MaxInstanceID {
			l.errorf("proxy.instance_id", "must be from 1 to %d (0 or absent: no fleet), not %d", MaxInstanceID, n)
		} else {
			p.InstanceID = n
		}
	}

	if tok, ok := l.secret(r.AdminToken, "proxy.admin_token"); ok {
		switch {
		case tok == "":
			l.errorf("proxy.admin_token", "must not be empty (leave it out for no token)")
		case len(tok) < 16:
			l.errorf("proxy.admin_token", "is %d characters long; use at least 16 (e.g. openssl rand -hex 32)", len(tok))
		default:
			p.AdminToken = tok
		}
	}
	p.AdminTLS, _ = l.boolean(r.AdminTLS, "proxy.admin_tls")
	if p.AdminTLS && r.TLSCert == nil && r.TLSKey == nil {
		l.errorf("proxy.admin_tls", "admin_tls serves the admin listener with tls_cert and tls_key, which are not set")
	}

	cert, certOK := l.str(r.TLSCert, "proxy.tls_cert")
	key, keyOK := l.str(r.TLSKey, "proxy.tls_key")
	if !certOK && r.TLSCert != nil || !keyOK && r.TLSKey != nil {
		return // already reported as the wrong type
	}
	switch {
	case cert == "" && key == "":
	case cert == "":
		l.errorf("proxy.tls_key", "tls_key is set but tls_cert is not; set both or neither")
	case key == "":
		l.errorf("proxy.tls_cert", "tls_cert is set but tls_key is not; set both or neither")
	default:
		p.TLSCert, p.TLSKey = l.resolve(cert), l.resolve(key)
		certOK := l.regularFile(p.TLSCert, "proxy.tls_cert")
		keyOK := l.regularFile(p.TLSKey, "proxy.tls_key")
		if certOK && keyOK {
			if _, err := tls.LoadX509KeyPair(p.TLSCert, p.TLSKey); err != nil {
				l.errorf("proxy.tls_cert", "cannot load the certificate and key: %v", err)
			}
		}
	}
}

func (l *loader) hasErrorAt(keys ...string) bool {
	for _, e := range l.errs {
		for _, k := range keys {
			if e.Key == k {
				return true
			}
		}
	}
	return false
}

func (l *loader) resolve(p string) string {
	if filepath.IsAbs(p) || l.dir == "" {
		return p
	}
	return filepath.Join(l.dir, p)
}

// regularFile refuses what is not a plain file before it is read: a
// directory gives a confusing error, and a device such as /dev/zero would
// be read forever.
func (l *loader) regularFile(p, key string) bool {
	fi, err := os.Stat(p)
	if err != nil {
		l.errorf(key, "%v", err)
		return false
	}
	if !fi.Mode().IsRegular() {
		l.errorf(key, "%s is not a regular file", p)
		return false
	}
	return true
}

// settings applies the keys r sets onto dst, which holds the values to
// inherit; prefix is "defaults" or "clusters[i]".
func (l *loader) settings(dst *Settings, r *rawSettings, prefix string) {
	k := func(name string) string { return prefix + "." + name }
	if m, ok := l.poolMode(r.PoolMode, k("pool_mode")); ok {
		dst.PoolMode = m
	}
	if n, ok := l.integer(r.PoolSize, k("pool_size")); ok {
		if n < 1 {
			l.errorf(k("pool_size"), "must be at least 1, not %d", n)
		} else {
			dst.PoolSize = n
		}
	}
	if n, ok := l.integer(r.MinPoolSize, k("min_pool_size")); ok {
		if n < 0 {
			l.errorf(k("min_pool_size"), "must not be negative, not %d", n)
		} else {
			dst.MinPoolSize = n
		}
	}
	durations := []struct {
		dst    *time.Duration
		raw    any
		name   string
		zeroOK bool
	}{
		{&dst.QueryWaitTimeout, r.QueryWaitTimeout, "query_wait_timeout", false},
		{&dst.IdleTimeout, r.IdleTimeout, "idle_timeout", false},
		{&dst.ServerLifetime, r.ServerLifetime, "server_lifetime", false},
		// 0: health-check every connection before use, as in PgBouncer.
		{&dst.ServerCheckDelay, r.ServerCheckDelay, "server_check_delay", true},
		{&dst.ConnectTimeout, r.ConnectTimeout, "connect_timeout", false},
		// 0: only replicas that have replayed everything get reads.
		{&dst.MaxReplicaLag, r.MaxReplicaLag, "max_replica_lag", true},
		{&dst.LagPollInterval, r.LagPollInterval, "lag_poll_interval", false},
		// 0: a read that needs the client's own write goes to the primary
		// at once when no replica has it.
		{&dst.CausalReadTimeout, r.CausalReadTO, "causal_read_timeout", true},
		// 0: look the user up at every login.
		{&dst.AuthCacheTTL, r.AuthCacheTTL, "auth_cache_ttl", true},
	}
	for _, d := range durations {
		if v, ok := l.duration(d.raw, k(d.name), d.zeroOK); ok {
			*d.dst = v
		}
	}
	if b, ok := l.boolean(r.ReadYourWrites, k("read_your_writes")); ok {
		dst.ReadYourWrites = b
	}
	if v, ok := l.strings(r.WriteFunctions, k("write_functions")); ok {
		dst.WriteFunctions = strings.ToLower(strings.Join(v, ","))
	}
	if v, ok := l.strings(r.ReadOnlyFuncs, k("read_only_functions")); ok {
		dst.ReadOnlyFunctions = strings.ToLower(strings.Join(v, ","))
	}
	if v, ok := l.strings(r.SessionFuncs, k("session_functions")); ok {
		dst.SessionFunctions = strings.ToLower(strings.Join(v, ","))
	}
	limits := []struct {
		dst  *int
		raw  any
		name string
	}{
		{&dst.MaxDBClientConns, r.MaxDBClientConns, "max_db_client_conns"},
		{&dst.MaxWaitClients, r.MaxWaitClients, "max_wait_clients"},
	}
	for _, lim := range limits {
		if n, ok := l.integer(lim.raw, k(lim.name)); ok {
			if n < 0 {
				l.errorf(k(lim.name), "must not be negative, not %d (0: no limit)", n)
			} else {
				*lim.dst = n
			}
		}
	}
	if n, ok := l.byteSize(r.MaxScatterBytes, k("max_scatter_bytes")); ok {
		dst.MaxScatterBytes = n
	}
	if s, ok := l.str(r.ServerTLS, k("server_tls")); ok {
		switch s {
		case TLSDisable, TLSPrefer, TLSRequire, TLSVerifyCA, TLSVerifyFull:
			dst.ServerTLS = s
		default:
			l.errorf(k("server_tls"), "%q is not a TLS mode (disable, prefer, require, verify-ca or verify-full)", s)
		}
	}
	if s, ok := l.str(r.ServerTLSCA, k("server_tls_ca")); ok {
		if s == "" {
			l.errorf(k("server_tls_ca"), "must not be empty (leave it out to use the system's roots)")
		} else if p := l.resolve(s); l.regularFile(p, k("server_tls_ca")) {
			if pem, err := os.ReadFile(p); err != nil {
				l.errorf(k("server_tls_ca"), "%v", err)
			} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
				l.errorf(k("server_tls_ca"), "%s holds no PEM certificate", p)
			} else {
				dst.ServerTLSCA = p
			}
		}
	}
	if b, ok := l.boolean(r.AllowCleartext, k("server_allow_cleartext_password")); ok {
		dst.ServerAllowCleartextPassword = b
	}
	if s, ok := l.str(r.ServerPublicKey, k("server_public_key_path")); ok {
		if s == "" {
			l.errorf(k("server_public_key_path"), "must not be empty (leave it out to refuse caching_sha2_password full authentication over plain TCP)")
		} else if p := l.resolve(s); l.regularFile(p, k("server_public_key_path")) {
			if data, err := os.ReadFile(p); err != nil {
				l.errorf(k("server_public_key_path"), "%v", err)
			} else if _, err := ParseRSAPublicKey(data); err != nil {
				l.errorf(k("server_public_key_path"), "%s: %v", p, err)
			} else {
				dst.ServerPublicKeyPath = p
			}
		}
	}
	if s, ok := l.str(r.AuthUser, k("auth_user")); ok {
		dst.AuthUser = s // "" turns passthrough off again for one cluster
	}
	if s, ok := l.str(r.AuthQuery, k("auth_query")); ok {
		if !strings.Contains(s, "$1") {
			l.errorf(k("auth_query"), "must take the user name as $1, e.g. %q", DefaultAuthQuery)
		} else {
			dst.AuthQuery = s
		}
	}
}

// ParseRSAPublicKey reads a PEM RSA public key (PKIX "PUBLIC KEY", as
// MySQL's public_key.pem, or PKCS #1 "RSA PUBLIC KEY").
func ParseRSAPublicKey(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("holds no PEM block")
	}
	if k, err := x509.ParsePKIXPublicKey(block.Bytes); err == nil {
		pub, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("holds a public key that is not RSA")
		}
		return pub, nil
	}
	pub, err := x509.ParsePKCS1PublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("holds no RSA public key: %v", err)
	}
	return pub, nil
}

func (l *loader) poolMode(v any, key string) (PoolMode, bool) {
	s, ok := l.str(v, key)
	if !ok {
		return "", false
	}
	switch m := PoolMode(s); m {
	case PoolTransaction, PoolSession:
		return m, true
	}
	l.errorf(key, "%q is not a pool mode (transaction or session)", s)
	return "", false
}

func (l *loader) cluster(c *Cluster, r *rawCluster, k string, defaults Settings) {
	key := func(name string) string { return k + "." + name }

	c.Name, _ = l.str(r.Name, key("name"))
	if c.Name == "" && !l.hasErrorAt(key("name")) {
		l.errorf(key("name"), "a cluster needs a name")
	}
	if s, ok := l.str(r.Protocol, key("protocol")); ok {
		switch p := Protocol(s); p {
		case Postgres, MySQL:
			c.Protocol = p
		default:
			l.errorf(key("protocol"), "%q is not a protocol (postgres or mysql)", s)
		}
	} else if r.Protocol == nil {
		l.errorf(key("protocol"), "a cluster needs a protocol (postgres or mysql)")
	}
	c.Database, _ = l.str(r.Database, key("database"))
	if c.Database == "" && !l.hasErrorAt(key("database")) {
		l.errorf(key("database"), "a cluster needs the database name clients connect to")
	}
	c.ServerDatabase = c.Database
	if s, ok := l.str(r.ServerDatabase, key("server_database")); ok {
		if s == "" {
			l.errorf(key("server_database"), "must not be empty (leave it out to use database)")
		} else {
			c.ServerDatabase = s
		}
	}

	c.Settings = defaults
	l.settings(&c.Settings, &r.rawSettings, k)
	c.MonitorUser, _ = l.str(r.MonitorUser, key("monitor_user"))
	c.MonitorPassword, _ = l.secret(r.MonitorPass, key("monitor_password"))
	if (r.PoolSize != nil || r.MinPoolSize != nil) && c.Settings.MinPoolSize > c.Settings.PoolSize {
		at := key("min_pool_size")
		if r.MinPoolSize == nil {
			at = key("pool_size")
		}
		l.errorf(at, "min_pool_size (%d) is larger than pool_size (%d)", c.Settings.MinPoolSize, c.Settings.PoolSize)
	}

	primary, primarySet := l.serverAddr(r.Primary, key("primary"))
	replicas := l.replicas(r.Replicas, key("replicas"), primary)

	if r.Sharding == nil {
		if len(r.Shards) > 0 {
			l.errorf(key("shards"), "shards need a [clusters.sharding] table that says how keys map to them")
		}
		if r.Primary == nil {
			l.errorf(key("primary"), "a cluster needs a primary (or [clusters.sharding] and shards)")
		}
		if primarySet {
			c.Primary = primary
		}
		c.Replicas = replicas
		return
	}

	if r.Primary != nil {
		l.errorf(key("primary"), "a sharded cluster has no primary of its own: each [[clusters.shards]] has one")
	}
	if r.Replicas != nil {
		l.errorf(key("replicas"), "a sharded cluster has no replicas of its own: each [[clusters.shards]] has them")
	}
	c.Sharding = l.sharding(r.Sharding, key("sharding"), len(r.Shards))
	if len(r.Shards) == 0 {
		l.errorf(key("sharding"), "a sharded cluster needs at least one [[clusters.shards]]")
		return
	}
	c.Shards = make([]Shard, len(r.Shards))
	for j := range r.Shards {
		l.shard(&c.Shards[j], &r.Shards[j], fmt.Sprintf("%s[%d]", key("shards"), j), c)
	}
	seen := map[[2]string]int{}
	for j, s := range c.Shards {
		if s.Primary == "" {
			continue
		}
		id := [2]string{s.Primary, s.Database}
		if prev, dup := seen[id]; dup {
			l.errorf(fmt.Sprintf("%s[%d].database", key("shards"), j),
				"shards[%d] has the same primary and database (%s, %q)", prev, s.Primary, s.Database)
			continue
		}
		seen[id] = j
	}
	if c.Sharding != nil && c.Sharding.Kind == ShardRange {
		l.rangesDisjoint(c.Shards, key("shards"))
	}
}

func (l *loader) sharding(r *rawSharding, k string, shards int) *Sharding {
	key := func(name string) string { return k + "." + name }
	sh := &Sharding{Buckets: DefaultBuckets}
	if s, ok := l.str(r.Kind, key("kind")); ok {
		switch s {
		case ShardHash, ShardRange:
			sh.Kind = s
		default:
			l.errorf(key("kind"), "%q is not a sharding kind (hash or range)", s)
		}
	} else if r.Kind == nil {
		l.errorf(key("kind"), "sharding needs a kind (hash or range)")
	}
	sh.Key, _ = l.str(r.Key, key("key"))
	if sh.Key == "" && !l.hasErrorAt(key("key")) {
		l.errorf(key("key"), "sharding needs the key column")
	}
	if len(r.Tables) > 0 {
		sh.Tables = make(map[string]string, len(r.Tables))
		for table, v := range r.Tables {
			tk := joinPath(key("tables"), table)
			if col, ok := l.str(v, tk); ok {
				if col == "" {
					l.errorf(tk, "the key column of table %q must not be empty", table)
				} else {
					sh.Tables[table] = col
				}
			}
		}
	}
	sh.AllowAllShardWrites, _ = l.boolean(r.AllowAll, key("allow_all_shard_writes"))
	if n, ok := l.integer(r.Buckets, key("buckets")); ok {
		switch {
		case n < 1 || n > maxBuckets:
			l.errorf(key("buckets"), "must be between 1 and %d, not %d", maxBuckets, n)
		case sh.Kind == ShardHash && n < shards:
			l.errorf(key("buckets"), "%d buckets cannot cover %d shards", n, shards)
		default:
			sh.Buckets = n
		}
	}
	return sh
}

func (l *loader) shard(s *Shard, r *rawShard, k string, c *Cluster) {
	key := func(name string) string { return k + "." + name }
	if r.Primary == nil {
		l.errorf(key("primary"), "a shard needs a primary")
	}
	s.Primary, _ = l.serverAddr(r.Primary, key("primary"))
	s.Replicas = l.replicas(r.Replicas, key("replicas"), s.Primary)
	s.Database = c.ServerDatabase
	if db, ok := l.str(r.Database, key("database")); ok {
		if db == "" {
			l.errorf(key("database"), "must not be empty (leave it out to use the cluster's)")
		} else {
			s.Database = db
		}
	}

	kind := ""
	if c.Sharding != nil {
		kind = c.Sharding.Kind
	}
	switch {
	case kind == ShardHash && r.Range != nil:
		l.errorf(key("range"), "a hash-sharded cluster's shards have no range")
	case kind == ShardRange && r.Range == nil:
		l.errorf(key("range"), "a range-sharded cluster's shards each need range = [low, high]")
	case kind == ShardRange:
		s.Range = l.shardRange(r.Range, key("range"))
	}
}

// shardRange checks one range = [low, high): two integers or two strings,
// low < high. Strings compare bytewise.
func (l *loader) shardRange(v any, key string) []any {
	arr, ok := v.([]any)
	if !ok || len(arr) != 2 {
		l.errorf(key, "must be [low, high], two integers or two strings, not %s", describe(v))
		return nil
	}
	switch lo := arr[0].(type) {
	case int64:
		hi, ok := arr[1].(int64)
		if !ok {
			break
		}
		if lo >= hi {
			l.errorf(key, "low (%d) must be less than high (%d): high is exclusive", lo, hi)
			return nil
		}
		return []any{lo, hi}
	case string:
		hi, ok := arr[1].(string)
		if !ok {
			break
		}
		if lo >= hi {
			l.errorf(key, "low (%q) must be less than high (%q): high is exclusive", lo, hi)
			return nil
		}
		return []any{lo, hi}
	}
	l.errorf(key, "must be [low, high], two integers or two strings, not %s and %s", describe(arr[0]), describe(arr[1]))
	return nil
}

// rangesDisjoint refuses overlapping ranges, gaps between ranges and ranges
// of mixed types.
func (l *loader) rangesDisjoint(shards []Shard, k string) {
	type span struct {
		i      int
		lo, hi any
	}
	var spans []span
	for i, s := range shards {
		if s.Range == nil {
			continue
		}
		if len(spans) > 0 && fmt.Sprintf("%T", s.Range[0]) != fmt.Sprintf("%T", spans[0].lo) {
			l.errorf(fmt.Sprintf("%s[%d].range", k, i), "is %s but shards[%d].range is %s; all ranges of a cluster have one type",
				typeName(s.Range[0]), spans[0].i, typeName(spans[0].lo))
			continue
		}
		spans = append(spans, span{i, s.Range[0], s.Range[1]})
	}
	less := func(a, b any) bool {
		switch a := a.(type) {
		case int64:
			return a < b.(int64)
		case string:
			return a < b.(string)
		}
		return false
	}
	for x := range spans {
		for y := range x {
			a, b := spans[y], spans[x]
			if less(a.lo, b.hi) && less(b.lo, a.hi) {
				l.errorf(fmt.Sprintf("%s[%d].range", k, b.i), "[%v, %v) overlaps shards[%d].range [%v, %v)",
					show(b.lo), show(b.hi), a.i, show(a.lo), show(a.hi))
				return
			}
		}
	}
	// No gaps either: a key between two ranges would have no shard, and an
	// operator learns that at load, not from a failing query.
	sort.Slice(spans, func(x, y int) bool { return less(spans[x].lo, spans[y].lo) })
	for x := 1; x < len(spans); x++ {
		a, b := spans[x-1], spans[x]
		if a.hi != b.lo {
			l.errorf(fmt.Sprintf("%s[%d].range", k, b.i), "starts at %v but shards[%d].range ends at %v: keys in [%v, %v) would have no shard",
				show(b.lo), a.i, show(a.hi), show(a.hi), show(b.lo))
		}
	}
}

func show(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

func (l *loader) uniqueClusters(cs []Cluster) {
	names := map[string]int{}
	dbs := map[[2]string]int{}
	for i, c := range cs {
		k := fmt.Sprintf("clusters[%d]", i)
		if c.Name != "" {
			if prev, dup := names[c.Name]; dup {
				l.errorf(k+".name", "%q is also the name of clusters[%d]", c.Name, prev)
			} else {
				names[c.Name] = i
			}
		}
		if c.Protocol != "" && c.Database != "" {
			id := [2]string{string(c.Protocol), c.Database}
			if prev, dup := dbs[id]; dup {
				l.errorf(k+".database", "clusters[%d] (%q) already serves %s database %q", prev, cs[prev].Name, c.Protocol, c.Database)
			} else {
				dbs[id] = i
			}
		}
	}
}

func (l *loader) user(u *User, r *rawUser, k string, clusters []Cluster) {
	key := func(name string) string { return k + "." + name }
	u.Name, _ = l.str(r.Name, key("name"))
	if u.Name == "" && !l.hasErrorAt(key("name")) {
		l.errorf(key("name"), "a user needs a name")
	}
	u.Auth = DefaultAuth
	if s, ok := l.str(r.Auth, key("auth")); ok {
		switch s {
		case AuthSCRAM, AuthMD5, AuthTrust:
			u.Auth = s
		default:
			l.errorf(key("auth"), "%q is not an auth method (scram-sha-256, md5 or trust)", s)
		}
	}
	var passwordOK bool
	u.Password, passwordOK = l.secret(r.Password, key("password"))
	kind := KindOfPassword(u.Password)
	// A mismatch of auth and verifier is shown where auth is written, or at
	// the password when auth is left to its default.
	authKey := key("auth")
	if r.Auth == nil {
		authKey = key("password")
	}
	switch {
	case !passwordOK && r.Password != nil:
	case u.Password == "" && u.Auth != AuthTrust:
		l.errorf(key("password"), "a user needs a password unless auth = \"trust\"")
	case kind == PasswordSCRAM && !validSCRAM(u.Password):
		l.errorf(key("password"), "malformed SCRAM-SHA-256 verifier: want SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")
	case kind == PasswordSCRAM && u.Auth == AuthMD5:
		l.errorf(authKey, "md5 cannot check a SCRAM-SHA-256 verifier: use auth = \"scram-sha-256\", or a plain-text password")
	case kind == PasswordMD5 && u.Auth == AuthSCRAM:
		l.errorf(authKey, "scram-sha-256 cannot check an md5 verifier: set auth = \"md5\", or use a plain-text password")
	}

	u.ServerUser = u.Name
	if s, ok := l.str(r.ServerUser, key("server_user")); ok {
		if s == "" {
			l.errorf(key("server_user"), "must not be empty (leave it out to use name)")
		} else {
			u.ServerUser = s
		}
	}
	if s, ok := l.secret(r.ServerPassword, key("server_password")); ok {
		u.ServerPassword = s
	} else if r.ServerPassword == nil {
		if kind == PasswordPlain {
			u.ServerPassword = u.Password
		} else if u.Auth != AuthTrust {
			l.errorf(key("password"), "is a verifier, which cannot log in to the servers: set server_password")
		}
	}

	if r.PoolMode != nil {
		u.PoolMode, _ = l.poolMode(r.PoolMode, key("pool_mode"))
	}
	u.Admin, _ = l.boolean(r.Admin, key("admin"))

	dbs, _ := l.strings(r.Databases, key("databases"))
	for i, db := range dbs {
		dk := fmt.Sprintf("%s[%d]", key("databases"), i)
		switch {
		case db == "":
			l.errorf(dk, "must not be empty")
		case db == AdminDatabase:
		case !servesDatabase(clusters, db):
			l.errorf(dk, "no cluster serves database %q", db)
		}
	}
	if len(dbs) > 0 {
		u.Databases = dbs
	}
	if n, ok := l.integer(r.MaxClientConns, key("max_client_conns")); ok {
		if n < 0 {
			l.errorf(key("max_client_conns"), "must not be negative, not %d (0: no limit)", n)
		} else {
			u.MaxClientConns = n
		}
	}
}

// AdminDatabase is the database name of the admin console.
const AdminDatabase = "switchyard"

func servesDatabase(cs []Cluster, db string) bool {
	for _, c := range cs {
		if c.Database == db {
			return true
		}
	}
	return false
}

func (l *loader) uniqueUsers(us []User) {
	names := map[string]int{}
	for i, u := range us {
		if u.Name == "" {
			continue
		}
		if prev, dup := names[u.Name]; dup {
			l.errorf(fmt.Sprintf("users[%d].name", i), "%q is also the name of users[%d]", u.Name, prev)
			continue
		}
		names[u.Name] = i
	}
}

// serverAddr reads an optional host:port of a server. ok is false when it
// is absent or wrong (and then reported).
func (l *loader) serverAddr(v any, key string) (string, bool) {
	s, ok := l.str(v, key)
	if !ok {
		return "", false
	}
	if msg := checkAddr(s, false); msg != "" {
		l.errorf(key, "%s", msg)
		return "", false
	}
	return s, true
}

func (l *loader) replicas(v any, key, primary string) []string {
	list, _ := l.strings(v, key)
	var out []string
	seen := map[string]bool{}
	for i, s := range list {
		ek := fmt.Sprintf("%s[%d]", key, i)
		if msg := checkAddr(s, false); msg != "" {
			l.errorf(ek, "%s", msg)
			continue
		}
		switch {
		case s == primary:
			l.errorf(ek, "%q is the primary", s)
		case seen[s]:
			l.errorf(ek, "%q is listed twice", s)
		default:
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Typed getters. ok is true when the key is present and of the right type;
// a wrong type is reported, an absent key (nil) is not.

func (l *loader) str(v any, key string) (string, bool) {
	if v == nil {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		l.errorf(key, "must be a string, not %s", describe(v))
	}
	return s, ok
}

func (l *loader) integer(v any, key string) (int, bool) {
	if v == nil {
		return 0, false
	}
	n, ok := v.(int64)
	if !ok {
		l.errorf(key, "must be an integer, not %s", describe(v))
		return 0, false
	}
	if int64(int(n)) != n {
		l.errorf(key, "%d is too large", n)
		return 0, false
	}
	return int(n), true
}

// byteSize reads a positive number of bytes: an integer, or a string of
// an integer and a unit ("64KiB", "256MiB", "1GiB"; "B" or none: bytes).
func (l *loader) byteSize(v any, key string) (int64, bool) {
	var n int64
	switch v := v.(type) {
	case nil:
		return 0, false
	case int64:
		n = v
	case string:
		s := strings.TrimSpace(v)
		mult := int64(1)
		for _, u := range []struct {
			s string
			n int64
		}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
			if strings.HasSuffix(s, u.s) {
				s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.s)), u.n
				break
			}
		}
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil || x > (1<<62)/mult {
			l.errorf(key, "%q is not a size (such as 65536, \"64KiB\", \"256MiB\", \"1GiB\")", v)
			return 0, false
		}
		n = x * mult
	default:
		l.errorf(key, "must be a size such as \"256MiB\" or a number of bytes, not %s", describe(v))
		return 0, false
	}
	if n < 1 {
		l.errorf(key, "must be more than zero, not %v", v)
		return 0, false
	}
	return n, true
}

func (l *loader) boolean(v any, key string) (bool, bool) {
	if v == nil {
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		l.errorf(key, "must be true or false, not %s", describe(v))
	}
	return b, ok
}

func (l *loader) duration(v any, key string, zeroOK bool) (time.Duration, bool) {
	s, ok := v.(string)
	if v == nil {
		return 0, false
	}
	if !ok {
		l.errorf(key, "must be a duration string such as \"5s\", not %s", describe(v))
		return 0, false
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		l.errorf(key, "%q is not a duration (such as \"500ms\", \"5s\", \"1h\")", s)
		return 0, false
	case d < 0 || d == 0 && !zeroOK:
		if zeroOK {
			l.errorf(key, "must not be negative, not %s", s)
		} else {
			l.errorf(key, "must be more than zero, not %s", s)
		}
		return 0, false
	}
	return d, true
}

func (l *loader) strings(v any, key string) ([]string, bool) {
	if v == nil {
		return nil, false
	}
	arr, ok := v.([]any)
	if !ok {
		l.errorf(key, "must be a list of strings, not %s", describe(v))
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			l.errorf(fmt.Sprintf("%s[%d]", key, i), "must be a string, not %s", describe(e))
			continue
		}
		out = append(out, s)
	}
	return out, true
}

// describe names a decoded TOML value for a message, with the value when it
// is short, because "not a string" alone sends the reader looking.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		if len(v) <= 40 {
			return fmt.Sprintf("a string (%q)", v)
		}
		return "a string"
	case int64:
		return fmt.Sprintf("an integer (%d)", v)
	case float64:
		return fmt.Sprintf("a float (%v)", v)
	case bool:
		return fmt.Sprintf("a boolean (%v)", v)
	case []any:
		return fmt.Sprintf("an array of %d", len(v))
	case []map[string]any, map[string]any:
		return "a table"
	case nil:
		return "nothing"
	}
	return "a date or time"
}

func typeName(v any) string {
	switch v.(type) {
	case int64:
		return "integer"
	case string:
		return "string"
	}
	return "other"
}
