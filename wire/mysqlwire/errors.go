package mysqlwire

import (
	"errors"
	"fmt"
)

// SQLError is an error with a MySQL error number and SQLSTATE from birth,
// so the edge of the proxy sends it as an ERR packet without guessing.
type SQLError struct {
	Num     uint16
	State   string
	Message string
	cause   error
}

func (e *SQLError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s (errno %d): %v", e.Message, e.Num, e.cause)
	}
	return fmt.Sprintf("%s (errno %d)", e.Message, e.Num)
}

func (e *SQLError) Unwrap() error { return e.cause }

func newSQLError(num uint16, state, format string, args ...any) *SQLError {
	return &SQLError{Num: num, State: state, Message: fmt.Sprintf(format, args...)}
}

func wrapSQLError(cause error, num uint16, state, format string, args ...any) *SQLError {
	return &SQLError{Num: num, State: state, Message: fmt.Sprintf(format, args...), cause: cause}
}

// Error numbers the proxy raises (MySQL's names).
const (
	erConCount         = 1040 // ER_CON_COUNT_ERROR, 08004
	erHandshake        = 1043 // ER_HANDSHAKE_ERROR, 08S01
	erAccessDenied     = 1045 // ER_ACCESS_DENIED_ERROR, 28000
	erDBAccessDenied   = 1044 // ER_DBACCESS_DENIED_ERROR, 42000
	erBadDB            = 1049 // ER_BAD_DB_ERROR, 42000
	erUnknownCom       = 1047 // ER_UNKNOWN_COM_ERROR, 08S01
	erServerShutdown   = 1053 // ER_SERVER_SHUTDOWN, 08S01
	erHostBlocked      = 1129 // ER_HOST_IS_BLOCKED, HY000
	erNoSuchThread     = 1094 // ER_NO_SUCH_THREAD, HY000
	erKillDenied       = 1095 // ER_KILL_DENIED_ERROR, HY000
	erUnknown          = 1105 // ER_UNKNOWN_ERROR, HY000
	erNetPacketTooLarg = 1153 // ER_NET_PACKET_TOO_LARGE, 08S01
	erNotSupportedYet  = 1235 // ER_NOT_SUPPORTED_YET, 42000
	erTooBigSelect     = 1104 // ER_TOO_BIG_SELECT, 42000: a scatter over max_scatter_bytes
	erUnknownStmt      = 1243 // ER_UNKNOWN_STMT_HANDLER, HY000
	erNotSupportedAuth = 1251 // ER_NOT_SUPPORTED_AUTH_MODE, 08004
	erLockWaitTimeout  = 1205 // ER_LOCK_WAIT_TIMEOUT, HY000

	// Client-library numbers, for failures toward the server that a
	// client connected directly would have seen itself.
	crConnError  = 2003 // CR_CONN_HOST_ERROR: can't connect
	crServerLost = 2013 // CR_SERVER_LOST: lost connection
	// CR_AUTH_PLUGIN_ERR: an auth plugin refused, e.g. caching_sha2 full
	// authentication without a secure connection or a public key.
	crAuthPluginErr = 2061
)

// toERR turns any error into the ERR packet fields the client sees. Errors
// without a number become 1105 HY000, so nothing reaches a client untyped.
func toERR(err error) (uint16, string, string) {
	var se *SQLError
	if errors.As(err, &se) {
		msg := se.Message
		if se.cause != nil {
			msg += ": " + se.cause.Error()
		}
		return se.Num, se.State, msg
	}
	var se2 *serverError
	if errors.As(err, &se2) {
		return se2.Code, se2.State, se2.Message
	}
	return erUnknown, "HY000", err.Error()
}

// serverError is an ERR packet a server sent us outside a relayed response
// (authentication, replaying session state); it is passed on unchanged.
type serverError ERR

func (e *serverError) Error() string {
	return fmt.Sprintf("server error %d (%s): %s", e.Code, e.State, e.Message)
}

var errOldProtocol = newSQLError(erNotSupportedAuth, "08004",
	"client does not support protocol 4.1; upgrade the MySQL client")
