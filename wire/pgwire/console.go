package pgwire

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
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
			c.sendFromProxy(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case 'P', 'B', 'D', 'E', 'C', 'H', 'F':
			c.skipToSync = true
			c.sendFromProxy(toErrorResponse(newError(codeFeatureNotSupported, "the admin console speaks the simple query protocol only (psql does)")))
		}
	}
}

type table struct {
	cols []string
	rows [][]string
}

func (t *table) add(vals ...any) {
	row := make([]string, len(vals))
	for i, v := range vals {
		row[i] = fmt.Sprint(v)
	}
	t.rows = append(t.rows, row)
}

func (c *clientConn) consoleQuery(q string) {
	f := strings.Fields(strings.ToUpper(q))
	var out []pgproto3.BackendMessage
	reply := func(t *table, tag string) {
		fields := make([]pgproto3.FieldDescription, len(t.cols))
		for i, col := range t.cols {
			fields[i] = pgproto3.FieldDescription{Name: []byte(col), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}
		}
		out = append(out, &pgproto3.RowDescription{Fields: fields})
		for _, r := range t.rows {
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
			cluster = strings.ToLower(strings.Fields(q)[1])
		}
		n := 0
		for _, pi := range metrics.Pools() {
			if cluster != "" && pi.Cluster != cluster {
				continue
			}
			if f[0] == "PAUSE" {
				pi.Pool.Pause()
			} else {
				pi.Pool.Resume()
			}
			n++
		}
		if n == 0 && cluster != "" {
			fail("no pools of cluster %q", cluster)
		} else {
			c.log.Info("admin console: "+strings.ToLower(f[0]), "cluster", cluster, "pools", n)
			out = append(out, &pgproto3.CommandComplete{CommandTag: []byte(f[0])})
		}
	default:
		fail("unknown admin command %q; try SHOW HELP", q)
	}
	out = append(out, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	c.sendFromProxy(out...)
}

// consoleShow builds the table of one SHOW command.
func (s *Server) consoleShow(what string) (*table, bool) {
	t := &table{}
	switch what {
	case "HELP":
		t.cols = []string{"command", "what"}
		t.add("SHOW POOLS", "every pool: connections active, idle, dialing; clients waiting; refusals by wait timeout and by max_wait_clients")
		t.add("SHOW CLIENTS", "PostgreSQL client sessions")
		t.add("SHOW SERVERS", "server connections leased now, and by whom")
		t.add("SHOW REPLICAS", "replicas with health, lag and load")
		t.add("SHOW SHARDS", "shards of the sharded clusters")
		t.add("SHOW STATS", "transactions, queries and routing per cluster")
		t.add("RELOAD", "reload the config file")
		t.add("PAUSE [cluster]", "stop handing out server connections")
		t.add("RESUME [cluster]", "resume after PAUSE")
	case "POOLS":
		t.cols = []string{"protocol", "cluster", "node", "user", "size", "active", "idle", "dialing", "waiting", "leases", "wait_timeouts", "queue_full", "max_wait"}
		for _, pi := range metrics.Pools() {
			st := pi.Pool.Stats()
			t.add(pi.Protocol, pi.Cluster, pi.Node, pi.User, pi.Size, st.Active, st.Idle, st.Dialing, st.Waiting, st.Gets, st.WaitTimeouts, st.QueueFull, st.MaxWait)
		}
	case "CLIENTS", "SERVERS":
		clients := s.fe.Clients()
		sort.Slice(clients, func(i, j int) bool { return clients[i].start.Before(clients[j].start) })
		if what == "CLIENTS" {
			t.cols = []string{"id", "user", "database", "state", "address", "age", "pool_mode", "pinned", "target"}
		} else {
			t.cols = []string{"server", "backend_pid", "client_id", "user", "database", "tx_status"}
		}
		for _, c := range clients {
			if c.user == nil || c.cluster == nil {
				continue
			}
			c.mu.Lock()
			state, pin, sc, tx, pref := c.state, c.pinReason, c.server, c.txStatus, c.routing.Pref
			c.mu.Unlock()
			if what == "CLIENTS" {
				t.add(c.pid, c.user.Name, c.cluster.Database, state, c.conn.RemoteAddr(), time.Since(c.start).Round(time.Second), c.mode, pin, pref)
			} else if sc != nil {
				t.add(sc.addr, sc.pid, c.pid, c.user.Name, c.cluster.Database, string(tx))
			}
		}
	case "REPLICAS":
		t.cols = []string{"cluster", "replica", "healthy", "eligible", "lag", "lag_bytes", "outstanding", "banned", "ban_reason", "error"}
		rts := s.Rts.All()
		for _, n := range slices.Sorted(maps.Keys(rts)) {
			for _, st := range rts[n].Set.Status() {
				errText := ""
				if st.Err != nil {
					errText = st.Err.Error()
				}
				t.add(n, st.Name, st.Healthy, st.Eligible, st.Lag.Round(time.Millisecond), st.LagBytes, st.Outstanding, st.Banned, st.BanReason, errText)
			}
		}
	case "SHARDS":
		t.cols = []string{"cluster", "kind", "key", "shard", "primary", "replicas", "database", "range"}
		cfg := s.Config()
		for _, cl := range cfg.Clusters {
			if cl.Sharding == nil {
				continue
			}
			for i, sh := range cl.Shards {
				r := ""
				if len(sh.Range) == 2 {
					r = fmt.Sprintf("[%v, %v)", sh.Range[0], sh.Range[1])
				}
				t.add(cl.Name, cl.Sharding.Kind, cl.Sharding.Key, i, sh.Primary, strings.Join(sh.Replicas, ","), sh.Database, r)
			}
		}
	case "STATS":
		t.cols = []string{"metric", "labels", "value"}
		mfs, err := metrics.Registry.Gather()
		if err != nil {
			return t, true
		}
		for _, mf := range mfs {
			name := mf.GetName()
			if !strings.HasPrefix(name, "switchyard_") || !strings.HasSuffix(name, "_total") {
				continue
			}
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, lp := range m.GetLabel() {
					labels = append(labels, lp.GetName()+"="+lp.GetValue())
				}
				t.add(name, strings.Join(labels, ","), strconv.FormatFloat(m.GetCounter().GetValue(), 'f', -1, 64))
			}
		}
	default:
		return nil, false
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
		rows := make([]map[string]string, 0, len(t.rows))
		for _, r := range t.rows {
			m := make(map[string]string, len(r))
			for i, v := range r {
				m[t.cols[i]] = v
			}
			rows = append(rows, m)
		}
		out[strings.ToLower(what)] = rows
	}
	return out
}
