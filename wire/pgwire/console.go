package pgwire

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
)

// The admin console: an admin user connecting to database "switchyard"
// (psql -d switchyard) gets PgBouncer-style commands instead of a server:
// SHOW POOLS, SHOW CLIENTS, SHOW SERVERS, SHOW REPLICAS, SHOW SHARDS,
// SHOW STATS, SHOW HELP, RELOAD, PAUSE [cluster], RESUME [cluster]. Simple
// query protocol only, as PgBouncer's console.

// runConsole serves an admin session until the client leaves.
func (c *clientConn) runConsole() {
	for {
		typ, raw, err := c.rd.Next()
		if err != nil {
			return
		}
		switch typ {
		case 'X':
			return
		case 'Q':
			c.consoleQuery(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(queryText(raw)), ";")))
		case 'S':
			c.skipToSync = false
			c.sendFromProxy(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case 'P', 'B', 'D', 'E', 'C', 'H', 'F':
			// One error for the batch, as a server answers an extended
			// protocol error: the rest of it is skipped up to Sync.
			if !c.skipToSync {
				c.skipToSync = true
				c.sendFromProxy(toErrorResponse(newError(codeFeatureNotSupported, "the admin console speaks the simple query protocol only (psql does)")))
			}
		}
	}
}

func (c *clientConn) consoleQuery(q string) {
	f := strings.Fields(strings.ToUpper(q))
	var out []pgproto3.BackendMessage
	reply := func(t *frontend.Table, tag string) {
		fields := make([]pgproto3.FieldDescription, len(t.Cols))
		for i, col := range t.Cols {
			fields[i] = pgproto3.FieldDescription{Name: []byte(col), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}
		}
		out = append(out, &pgproto3.RowDescription{Fields: fields})
		for _, r := range t.Rows {
			vals := make([][]byte, len(r))
			for i, v := range r {
				vals[i] = []byte(v)
			}
			out = append(out, &pgproto3.DataRow{Values: vals})
		}
		out = append(out, &pgproto3.CommandComplete{CommandTag: []byte(tag)})
	}
	fail := func(format string, args ...any) {
		out = append(out, toErrorResponse(newError("42601", format, args...)))
	}
	switch {
	case len(f) == 0:
		out = append(out, &pgproto3.EmptyQueryResponse{})
	case f[0] == "SHOW" && len(f) == 2:
		t, ok := c.srv.consoleShow(f[1])
		if !ok {
			fail("unknown SHOW command %q; try SHOW HELP", f[1])
		} else {
			reply(t, "SHOW")
		}
	case f[0] == "RELOAD" && len(f) == 1:
		if c.srv.OnReload == nil {
			fail("reload is not available")
		} else if err := c.srv.OnReload(); err != nil {
			out = append(out, toErrorResponse(newError("F0000", "reload rejected; the running config stays: %v", err)))
		} else {
			out = append(out, &pgproto3.CommandComplete{CommandTag: []byte("RELOAD")})
		}
	case (f[0] == "PAUSE" || f[0] == "RESUME") && len(f) <= 2:
		cluster := ""
		if len(f) == 2 {
			cluster = strings.Fields(q)[1]
		}
		// A cluster of the config may have no pool yet (pools open on
		// first use): PAUSE holds it all the same. Its name is matched
		// whatever its case (the command's words are), and used as the
		// config spells it: "PAUSE Orders" holds cluster "Orders".
		known := cluster == ""
		for _, cl := range c.srv.Config().Clusters {
			if !known && strings.EqualFold(cl.Name, cluster) {
				cluster, known = cl.Name, true
			}
		}
		if !known {
			fail("no cluster %q", cluster)
		} else {
			n := frontend.PausePools(cluster, f[0] == "PAUSE")
			if f[0] == "PAUSE" {
				out = append(out, c.waitPaused(cluster)...)
			}
			c.log.Info("admin console: "+strings.ToLower(f[0]), "cluster", cluster, "pools", n)
			out = append(out, &pgproto3.CommandComplete{CommandTag: []byte(f[0])})
		}
	default:
		fail("unknown admin command %q; try SHOW HELP", q)
	}
	out = append(out, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	c.sendFromProxy(out...)
}

// waitPaused is PAUSE's wait, as PgBouncer's: the command returns once the
// transactions in flight on the paused pools have ended and given their
// server connections back, so that nothing runs on the servers when the
// operator goes on (a switchover, a restart). Connections held longer than
// shutdown_timeout (a pinned or session-pooled client holds its connection
// while idle, a transaction may never end) do not hold the command
// forever: it returns with a warning that counts them; the pools stay
// paused either way.
func (c *clientConn) waitPaused(cluster string) []pgproto3.BackendMessage {
	deadline := time.Now().Add(c.srv.Config().Proxy.ShutdownTimeout)
	for {
		n := frontend.PoolsLeased(cluster)
		if n == 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			return []pgproto3.BackendMessage{&pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: "01000",
				Message: fmt.Sprintf("paused, but %d server connection(s) are still in use after shutdown_timeout: transactions still running, or pinned or session-pooled clients holding their connection; they finish, no new transaction starts", n)}}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// consoleShow builds the table of one SHOW command: the front end's
// clients and their server connections here, the rest in frontend.
func (s *Server) consoleShow(what string) (*frontend.Table, bool) {
	if what != "CLIENTS" && what != "SERVERS" {
		return s.ConsoleTable(what, "PostgreSQL client sessions")
	}
	t := &frontend.Table{Cols: []string{"server", "backend_pid", "client_id", "user", "database", "tx_status"}}
	if what == "CLIENTS" {
		t.Cols = []string{"id", "user", "database", "state", "address", "age", "pool_mode", "pinned", "target"}
	}
	clients := s.fe.Clients()
	sort.Slice(clients, func(i, j int) bool { return clients[i].start.Before(clients[j].start) })
	for _, c := range clients {
		if c.user == nil || c.cluster == nil {
			continue
		}
		c.mu.Lock()
		state, pin, sc, tx, pref := c.state, c.pinReason, c.server, c.txStatus, c.routing.Pref
		c.mu.Unlock()
		if what == "CLIENTS" {
			t.Add(c.pid, c.user.Name, c.cluster.Database, state, c.conn.RemoteAddr(), time.Since(c.start).Round(time.Second), c.mode, pin, pref)
		} else if sc != nil {
			t.Add(sc.addr, sc.pid, c.pid, c.user.Name, c.cluster.Database, string(tx))
		}
	}
	return t, true
}

// isConsole says whether a login is for the admin console.
func isConsole(db string) bool { return db == config.AdminDatabase }

// Status is the JSON view of the PostgreSQL side for the admin /status
// page: the tables of the console, as rows of name/value objects.
func (s *Server) Status() any {
	out := map[string]any{}
	for _, what := range []string{"REPLICAS", "CLIENTS", "SHARDS"} {
		t, _ := s.consoleShow(what)
		out[strings.ToLower(what)] = t.Maps()
	}
	return out
}
