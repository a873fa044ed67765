package metrics

import "github.com/prometheus/client_golang/prometheus"

// Client limits and login protection, for both protocols.
var (
	// LimitRefusals counts clients refused because a cap was reached:
	// limit is "max_client_conns", "user", "database" (client caps) or
	// "wait_queue" (max_wait_clients of a pool; the statement is refused,
	// the client stays), or a per-client memory cap: "auth_message" (a
	// message before authentication over its cap; the client is closed),
	// "prepared_statements" (max_client_prepared_statements or the bytes
	// of a client's statements; the statement is refused, the client
	// stays), "pending_messages" (extended-protocol messages held without a
	// Sync over their cap; the client is closed), "long_data" (MySQL long
	// data staged on one connection over 64 MB; that EXECUTE is refused).
	LimitRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_client_limit_refusals_total",
		Help: "Clients or requests refused by a limit, by protocol and limit (max_client_conns, user, database, wait_queue, auth_message, prepared_statements, pending_messages, long_data).",
	}, []string{"protocol", "limit"})
	// AuthFailures counts failed password checks (wrong password or
	// unknown user).
	AuthFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_auth_failures_total",
		Help: "Failed client authentications (wrong password, unknown user), by protocol.",
	}, []string{"protocol"})
	// AuthRefusals counts logins refused without a password check because
	// the client's address failed auth_failures_per_minute times.
	AuthRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_auth_refusals_total",
		Help: "Logins refused at once because the client address failed too often (auth_failures_per_minute), by protocol.",
	}, []string{"protocol"})
	// LoginTimeouts counts clients closed because they did not finish the
	// login within client_login_timeout.
	LoginTimeouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_client_login_timeouts_total",
		Help: "Clients closed for not finishing startup and authentication within client_login_timeout, by protocol.",
	}, []string{"protocol"})
)

func init() { Registry.MustRegister(LimitRefusals, AuthFailures, AuthRefusals, LoginTimeouts) }
