// Package config is the operator's interface to Switchyard: the TOML schema,
// its defaults, validation that names the line of every problem, and the
// diff of two configs that a reload acts on.
//
// A *Config is an immutable snapshot: once Load returns it, nothing changes
// it, so it can be shared by every goroutine and swapped whole on reload.
package config

import "time"

// Config is one complete, validated configuration.
type Config struct {
	Proxy    Proxy
	Defaults Settings
	Users    []User
	Clusters []Cluster
	// Peers are the other instances of a fleet ([[peers]]), in file
	// order. An entry whose InstanceID is Proxy.InstanceID stays in the
	// list (one file serves every instance); Peer skips it.
	Peers []Peer

	// Path is the file the config was read from ("" when parsed from bytes).
	Path string

	idx *index // built by Load/Parse; nil in a Config built by hand
}

// Proxy holds the [proxy] table.
type Proxy struct {
	PostgresListen  string        // "" disables the PostgreSQL listener
	MySQLListen     string        // "" disables the MySQL listener
	AdminListen     string        // "" disables the admin HTTP listener
	MaxClientConns  int           // default 10000
	ShutdownTimeout time.Duration // default 30s
	TLSCert         string        // client-facing TLS; both or neither
	TLSKey          string
	// ClientLoginTimeout bounds the time a client has, from connect, to
	// finish its startup and authentication (default 15s).
	ClientLoginTimeout time.Duration
	// AuthFailuresPerMinute is how many failed logins one client address
	// may make in a minute; further attempts from it are refused at once
	// until the minute is over (default 20; 0: no limit).
	AuthFailuresPerMinute int
	// AdminToken, when set, is the bearer token the admin listener
	// requires for every request that changes state (POST /reload): the
	// header "Authorization: Bearer <token>". A secret: it may come from
	// ${ENV} or ${file:PATH}.
	AdminToken string
	// AdminTLS serves the admin listener over HTTPS with the certificate
	// and key of the client listener (TLSCert, TLSKey).
	AdminTLS bool
	// StatementRegistrySize bounds the PostgreSQL front end's proxy-wide
	// registry of prepared statements (one entry per distinct statement
	// text and parameter types, under its proxy name "sy_<n>"); beyond it,
	// the statements least recently used are forgotten (default 10000).
	// Unlike PgBouncer's max_prepared_statements this is not per server
	// connection: each server connection keeps at most 1000 statements.
	StatementRegistrySize int
	// MaxClientPreparedStatements caps the named prepared statements one
	// client may hold at once (PostgreSQL named statements, MySQL
	// COM_STMT_PREPARE statements); one more is refused with an error,
	// the session goes on (default 10000).
	MaxClientPreparedStatements int
	// InstanceID is this instance's number in a fleet of proxies behind
	// one address (1..MaxInstanceID); 0: no fleet. PostgreSQL cancel keys
	// and MySQL connection ids carry it, so that a cancel or KILL that
	// reaches another instance is forwarded to this one. The command
	// line (-instance-id) or SWITCHYARD_INSTANCE_ID may override it.
	InstanceID int
}

// MaxInstanceID is the largest proxy.instance_id: ten bits of a cancel
// key's process id and of a MySQL connection id carry it.
const MaxInstanceID = 1023

// Peer is one [[peers]] entry: another instance of the fleet and where it
// listens. Cancels and KILLs for its clients are sent there, and nowhere
// else: a client cannot make the proxy dial an address of its choosing.
type Peer struct {
	InstanceID     int
	PostgresListen string // "" : PostgreSQL cancels for it are dropped
	MySQLListen    string
	AdminListen    string // the peer channel (MySQL KILL, reload --all)
}

// Settings are the per-cluster knobs. [defaults] sets them for every
// cluster; a cluster's own keys override them. After Load every cluster's
// Settings is complete (defaults applied), so callers never look at Defaults
// to resolve a value.
type Settings struct {
	PoolMode         PoolMode      // default transaction
	PoolSize         int           // default 20
	MinPoolSize      int           // default 0
	QueryWaitTimeout time.Duration // default 5s
	IdleTimeout      time.Duration // default 5m
	ServerLifetime   time.Duration // default 1h
	ServerCheckDelay time.Duration // default 30s: idle longer than this, a connection is health-checked before use; 0: always
	ConnectTimeout   time.Duration // default 5s: dialing and authenticating to a server
	MaxReplicaLag    time.Duration // default 1s; 0: only replicas that have replayed everything get reads
	ReadYourWrites   bool          // default true
	// LagPollInterval is how often the lag monitor reads the positions of
	// the primary and the replicas (default 50ms).
	LagPollInterval time.Duration
	// CausalReadTimeout is how long a read that must see the client's own
	// write may wait for a replica to replay it before it goes to the
	// primary (default 0: one round of fresh probes of the positions, at
	// most 25ms, then the primary).
	CausalReadTimeout time.Duration
	// WriteFunctions and ReadOnlyFunctions steer read/write splitting for
	// function calls: comma-separated lower-case names (a string, so that
	// Settings stays comparable). Unknown functions count as writes.
	WriteFunctions    string
	ReadOnlyFunctions string
	// SessionFunctions are functions and procedures that change session
	// state where the proxy cannot see it (a SET or set_config(...,
	// false) in their body): calling one pins the session
	// (comma-separated, lower-case).
	SessionFunctions string
	// MaxDBClientConns caps the client connections to this cluster's
	// database (0: no cap beyond proxy.max_client_conns).
	MaxDBClientConns int
	// MaxScatterBytes bounds the rows the proxy holds to merge one
	// SELECT run on several shards (default 256 MiB); a SELECT whose
	// rows exceed it is refused.
	MaxScatterBytes int64
	// MaxWaitClients caps the clients waiting in line for a connection of
	// one pool; a client beyond it gets an error at once (0: no cap beyond
	// the client limits).
	MaxWaitClients int
	// ServerTLS is TLS toward the servers, as libpq's sslmode: "disable",
	// "prefer" (default), "require", "verify-ca", "verify-full".
	ServerTLS string
	// ServerTLSCA is a PEM file of CA certificates that verify-ca and
	// verify-full check the server's certificate against (default: the
	// system's roots).
	ServerTLSCA string
	// ServerAllowCleartextPassword lets the proxy send server_password
	// as it is (PostgreSQL's password method, MySQL's mysql_clear_password,
	// caching_sha2_password's full authentication over TLS) over a
	// connection whose server is not verified (server_tls below
	// verify-ca). Default false: such a request is refused, as libpq's
	// require_auth=!password and MySQL's default without
	// --enable-cleartext-plugin.
	ServerAllowCleartextPassword bool
	// ServerPublicKeyPath is a PEM file holding the RSA public key of the
	// MySQL servers, for caching_sha2_password's full authentication over
	// plain TCP (MySQL's server-public-key-path). Without it the proxy
	// refuses to encrypt the password to a key the server sends.
	ServerPublicKeyPath string
	// AuthUser, when set, turns on passthrough authentication: a client
	// whose user is not in [[users]] is looked up with AuthQuery, run on
	// the primary as AuthUser, which names a [[users]] entry whose server
	// credentials are used. A MySQL cluster does not inherit it from
	// [defaults] (nor AuthQuery: its default is DefaultMySQLAuthQuery).
	AuthUser string
	// AuthQuery returns (name, password verifier) of the user in $1
	// (default PgBouncer's, on pg_shadow; for MySQL, the
	// mysql_native_password hash from mysql.user).
	AuthQuery string
	// AuthCacheTTL is how long a looked-up verifier (or its absence) is
	// reused (default 1m; 0: look up at every login).
	AuthCacheTTL time.Duration
}

// DefaultAuthQuery is auth_query when the file leaves it out: PgBouncer's.
const DefaultAuthQuery = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1"

// DefaultMySQLAuthQuery is a MySQL cluster's auth_query when its table
// leaves it out. $1 becomes the user name as a hex literal.
const DefaultMySQLAuthQuery = "SELECT user, authentication_string FROM mysql.user WHERE user = $1 LIMIT 1"

// Values of Settings.ServerTLS.
const (
	TLSDisable    = "disable"
	TLSPrefer     = "prefer"
	TLSRequire    = "require"
	TLSVerifyCA   = "verify-ca"
	TLSVerifyFull = "verify-full"
)

// PoolMode says how long a client keeps a server connection.
type PoolMode string

const (
	PoolTransaction PoolMode = "transaction"
	PoolSession     PoolMode = "session"
)

// User is one [[users]] entry.
type User struct {
	Name string
	// Password is plain text, a SCRAM-SHA-256 verifier
	// ("SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>") or an md5
	// verifier ("md5" + hex(md5(password+user))).
	Password string
	// Auth is how clients authenticate: "scram-sha-256" (default), "md5",
	// "trust" (password ignored).
	Auth string
	// ServerUser/ServerPassword are the credentials toward the servers;
	// they default to Name/Password (Password only when it is plain text).
	ServerUser     string
	ServerPassword string
	// PoolMode, when set, overrides the cluster's pool mode for this user.
	PoolMode PoolMode
	// Admin users may connect to the admin console (database "switchyard").
	Admin bool
	// Databases, when non-empty, lists the client-facing database names this
	// user may connect to; empty means all.
	Databases []string
	// MaxClientConns caps this user's client connections (0: no cap beyond
	// the proxy's and the databases').
	MaxClientConns int
}

// Cluster is one [[clusters]] entry.
type Cluster struct {
	Name     string
	Protocol Protocol
	// Database is the name clients connect to.
	Database string
	// ServerDatabase is the database on the servers (default: Database).
	ServerDatabase string
	Primary        string   // host:port
	Replicas       []string // host:port each
	Settings       Settings // complete: defaults applied, then the cluster's overrides
	// MonitorUser/MonitorPassword are the credentials the lag monitor
	// uses on every node (default: the first user's server credentials).
	MonitorUser     string
	MonitorPassword string
	// Sharding is nil for an unsharded cluster.
	Sharding *Sharding
	Shards   []Shard
}

// Protocol is the wire protocol of a cluster.
type Protocol string

const (
	Postgres Protocol = "postgres"
	MySQL    Protocol = "mysql"
)

// Sharding is a cluster's [clusters.sharding] table.
type Sharding struct {
	Kind   string            // "hash" | "range"
	Key    string            // default key column
	Tables map[string]string // table -> key column where it differs
	// Buckets is the number of virtual buckets of a hash map (default 1024).
	Buckets int
	// AllowAllShardWrites lets a write without a shard key run on every
	// shard, each shard in its own transaction (default false: refused).
	// Transactions that touch two shards are refused either way.
	AllowAllShardWrites bool
}

// Shard is one [[clusters.shards]] entry.
type Shard struct {
	Primary  string
	Replicas []string
	Database string // on the shard's servers (default: the cluster's ServerDatabase)
	// Range is [low, high) for kind = "range"; nil for hash. Elements are
	// int64 or string, both of one kind.
	Range []any
}

// PoolIdentity is the part of s that makes server connections
// interchangeable: both front ends key their pools by it (with the node,
// database and credentials), so a reload that changes only the rest (pool
// limits, which a pool takes in place, and routing knobs) keeps the pools
// and their connections.
func (s Settings) PoolIdentity() Settings {
	s.PoolSize, s.MinPoolSize, s.MaxWaitClients, s.QueryWaitTimeout = 0, 0, 0, 0
	s.MaxReplicaLag, s.ReadYourWrites, s.LagPollInterval, s.CausalReadTimeout = 0, false, 0, 0
	s.WriteFunctions, s.ReadOnlyFunctions, s.SessionFunctions, s.MaxDBClientConns = "", "", "", 0
	s.MaxScatterBytes = 0 // the proxy's own budget for merging, not the servers'
	return s
}
