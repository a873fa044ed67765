package mysqlwire

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// One pool per node and user. A MySQL server connection takes some of its
// client's wishes only at the handshake; the pool does not split by them
// (pool_size caps the connections per node and user), so a lease brings
// its connection in line with the client (session.sync):
//
//   - collation: SET NAMES <charset> COLLATE <collation>, what the
//     handshake's collation byte does; COM_RESET_CONNECTION returns to the
//     handshake's.
//   - CLIENT_MULTI_STATEMENTS: COM_SET_OPTION, which a reset keeps.
//   - the other capabilities that shape what the server sends
//     (fixedCaps: FOUND_ROWS, DEPRECATE_EOF, SESSION_TRACK, IGNORE_SPACE,
//     MULTI_RESULTS, PS_MULTI_RESULTS, LOCAL_FILES) and, in session mode,
//     the connection attributes: the server takes them only at the
//     handshake, so a lease prefers an idle connection opened with the
//     client's (pool.Options.Prefer), and a connection opened with others
//     is closed and opened again in its pool slot, as the client needs it.
//     Clients that mix those flags on a busy pool pay a reconnect when no
//     fitting connection is idle.
//
// Connection attributes (CLIENT_CONNECT_ATTRS, performance_schema
// .session_connect_attrs): in session mode a server connection serves one
// client for the client's whole session, so it carries that client's
// attributes plus _proxy_name=switchyard, as if the client had connected
// itself. In transaction mode a server connection serves many clients in
// turn, and one client's transactions run on many connections: it carries
// the proxy's own attributes (proxyAttrs), never one client's, as
// ProxySQL's do (program_name=proxysql).

// connSpec is what a client needs of a server connection's handshake.
type connSpec struct {
	caps      uint32 // the client's mirrorCaps bits
	collation uint8
	attrs     map[string]string // nil: the proxy's own (proxyAttrs)
	attrsSig  string            // attrs, canonical; "" for the proxy's own
}

// specKey carries a *connSpec in the context of pool.Get, so that a dial
// for that lease is made as the client needs it.
type specKey struct{}

// fits reports whether be serves a client of sp without being re-opened
// (the pool prefers such idle connections). It reads only what the
// handshake fixed, which changes only while be is leased.
func (sp *connSpec) fits(be *backend) bool {
	return be.fixed == sp.caps&fixedCaps && be.attrsSig == sp.attrsSig
}

func (sp *connSpec) apply(dp *dialParams) {
	dp.caps, dp.collation = sp.caps, sp.collation
	dp.attrs, dp.attrsSig = sp.attrs, sp.attrsSig
}

// proxyAttrs are the attributes of server connections that serve many
// clients.
var proxyAttrs = map[string]string{
	"_client_name": "switchyard",
	"_proxy_name":  "switchyard",
	"program_name": "switchyard",
	"_pid":         strconv.Itoa(os.Getpid()),
	"_os":          runtime.GOOS,
	"_platform":    runtime.GOARCH,
}

// maxAttrsLen bounds the attributes sent to a server (MySQL's own cap on
// what it keeps is 64 KB; performance_schema keeps less).
const maxAttrsLen = 16 << 10

// newConnSpec is the spec of a client that negotiated caps and sent
// collation and attrs, served in pool mode mode.
func newConnSpec(caps uint32, collation uint8, attrs map[string]string, mode config.PoolMode) connSpec {
	sp := connSpec{caps: caps & mirrorCaps, collation: collation}
	if mode != config.PoolSession || len(attrs) == 0 {
		return sp
	}
	m := make(map[string]string, len(attrs)+1)
	keys := make([]string, 0, len(attrs)+1)
	size := 0
	for k, v := range attrs {
		if size += len(k) + len(v); size > maxAttrsLen {
			break
		}
		m[k] = v
		keys = append(keys, k)
	}
	m["_proxy_name"] = "switchyard"
	if _, ok := attrs["_proxy_name"]; !ok {
		keys = append(keys, "_proxy_name")
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(strconv.Quote(k))
		b.WriteByte('=')
		b.WriteString(strconv.Quote(m[k]))
		b.WriteByte(' ')
	}
	sp.attrs, sp.attrsSig = m, b.String()
	return sp
}

// reopen replaces be's server connection (in its pool slot) with one
// opened as the session's spec asks.
func (s *session) reopen(be *backend) error {
	dp := be.dp
	s.spec.apply(&dp)
	if dp.attrs == nil {
		dp.attrs = proxyAttrs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nb, err := dialBackend(ctx, dp)
	if err != nil {
		return err
	}
	metricReopens.Inc()
	return be.takeOver(nb)
}

// syncCollation makes be's collation the session's: SET NAMES, as the
// handshake's collation byte would. Names come from the server, once per
// collation id.
func (s *session) syncCollation(be *backend) error {
	q, err := s.srv.setNamesFor(be, s.spec.collation)
	if err != nil {
		return err
	}
	if err := be.roundTrip(append([]byte{mysqlproto.ComQuery}, q...)); err != nil {
		return err
	}
	be.collation = s.spec.collation
	return nil
}

// setNamesFor returns the SET NAMES statement for collation id, asking the
// server (over be) the first time.
func (srv *Server) setNamesFor(be *backend, id uint8) (string, error) {
	// Per server: MySQL and MariaDB number some collations differently.
	key := setNamesKey{be.addr, id}
	if v, ok := srv.setNames.Load(key); ok {
		return v.(string), nil
	}
	q := "SELECT CONCAT('SET NAMES ', CHARACTER_SET_NAME, ' COLLATE ', COLLATION_NAME) FROM information_schema.COLLATIONS WHERE ID = " + strconv.Itoa(int(id))
	v, ok, err := be.queryValue(context.Background(), q)
	if err != nil {
		return "", err
	}
	if !ok {
		// As a server does with an unknown collation at the handshake:
		// the server's default.
		v = "SET NAMES DEFAULT"
	}
	srv.setNames.Store(key, v)
	return v, nil
}

type setNamesKey struct {
	addr string
	id   uint8
}
