package mysqlwire

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// The shared metrics (internal/metrics, registered by the admin listener)
// carry protocol="mysql"; the ones below are MySQL-only and come from
// Collectors().

// clientStates are the gauges of the clients by state.
var clientStates = frontend.NewClientStates(config.MySQL)

var (
	loginOK       = metrics.ClientLogins.WithLabelValues("mysql", "ok")
	loginFailed   = metrics.ClientLogins.WithLabelValues("mysql", "auth_failed")
	loginRejected = metrics.ClientLogins.WithLabelValues("mysql", "rejected")
)

// Metrics are package-level: one proxy process has one MySQL front end.
// The admin package registers Collectors() on its registry.
var (
	metricCommands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "switchyard", Subsystem: "mysql", Name: "commands_total",
		Help: "Commands received from MySQL clients, by command.",
	}, []string{"command"})
	metricProxyErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "switchyard", Subsystem: "mysql", Name: "proxy_errors_total",
		Help: "ERR packets raised by the proxy itself (not relayed from a server), by error number.",
	}, []string{"errno"})
	metricPinned = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "switchyard", Subsystem: "mysql", Name: "pinned_sessions_total",
		Help: "Sessions pinned to one server connection under transaction pooling, by reason.",
	}, []string{"reason"})
	metricResets = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "switchyard", Subsystem: "mysql", Name: "server_resets_total",
		Help: "COM_RESET_CONNECTION sent to servers to clean a connection before reuse.",
	})
	metricReopens = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "switchyard", Subsystem: "mysql", Name: "server_reopens_total",
		Help: "Server connections closed and opened again in their pool slot because a client needed other handshake-only capabilities (FOUND_ROWS, DEPRECATE_EOF, ...) or, in session mode, its own connection attributes.",
	})
	metricCompressed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "switchyard", Subsystem: "mysql", Name: "compressed_clients_total",
		Help: "Client connections that use the compressed protocol (CLIENT_COMPRESS) with the proxy.",
	})
	metricReprepares = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "switchyard", Subsystem: "mysql", Name: "lazy_prepares_total",
		Help: "Prepared statements prepared on a server connection because the client's lease moved.",
	})
	metricKills = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "switchyard", Subsystem: "mysql", Name: "kills_total",
		Help: "KILL requests from clients, by result.",
	}, []string{"result"})
)

// Collectors returns the MySQL front end's metrics for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		metricCommands, metricProxyErrors, metricPinned, metricResets,
		metricReprepares, metricKills, metricReopens, metricCompressed,
	}
}

var commandNames = map[byte]string{
	mysqlproto.ComQuit: "quit", mysqlproto.ComInitDB: "init_db", mysqlproto.ComQuery: "query", mysqlproto.ComFieldList: "field_list",
	mysqlproto.ComStatistics: "statistics", mysqlproto.ComProcessKill: "process_kill", mysqlproto.ComPing: "ping",
	mysqlproto.ComChangeUser: "change_user", mysqlproto.ComStmtPrepare: "stmt_prepare", mysqlproto.ComStmtExecute: "stmt_execute",
	mysqlproto.ComStmtSendLongData: "stmt_send_long_data", mysqlproto.ComStmtClose: "stmt_close",
	mysqlproto.ComStmtReset: "stmt_reset", mysqlproto.ComSetOption: "set_option", mysqlproto.ComStmtFetch: "stmt_fetch",
	mysqlproto.ComResetConnection: "reset_connection",
}

// commandCounters are resolved once so the hot path does no label lookup.
var commandCounters = func() [256]prometheus.Counter {
	var cs [256]prometheus.Counter
	other := metricCommands.WithLabelValues("other")
	for i := range cs {
		cs[i] = other
	}
	for c, name := range commandNames {
		cs[c] = metricCommands.WithLabelValues(name)
	}
	return cs
}()
