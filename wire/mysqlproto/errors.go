package mysqlproto

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

func NewSQLError(num uint16, state, format string, args ...any) *SQLError {
	return &SQLError{Num: num, State: state, Message: fmt.Sprintf(format, args...)}
}

func WrapSQLError(cause error, num uint16, state, format string, args ...any) *SQLError {
	return &SQLError{Num: num, State: state, Message: fmt.Sprintf(format, args...), cause: cause}
}

// Error numbers the proxy raises (MySQL's names).
const (
	ERConCount           = 1040 // ER_CON_COUNT_ERROR, 08004
	ERHandshake          = 1043 // ER_HANDSHAKE_ERROR, 08S01
	ERAccessDenied       = 1045 // ER_ACCESS_DENIED_ERROR, 28000
	ERDBAccessDenied     = 1044 // ER_DBACCESS_DENIED_ERROR, 42000
	ERBadDB              = 1049 // ER_BAD_DB_ERROR, 42000
	ERUnknownCom         = 1047 // ER_UNKNOWN_COM_ERROR, 08S01
	ERServerShutdown     = 1053 // ER_SERVER_SHUTDOWN, 08S01
	ERHostBlocked        = 1129 // ER_HOST_IS_BLOCKED, HY000
	ERNoSuchThread       = 1094 // ER_NO_SUCH_THREAD, HY000
	ERKillDenied         = 1095 // ER_KILL_DENIED_ERROR, HY000
	ERUnknown            = 1105 // ER_UNKNOWN_ERROR, HY000
	ERNetPacketTooLarge  = 1153 // ER_NET_PACKET_TOO_LARGE, 08S01
	ERNotSupportedYet    = 1235 // ER_NOT_SUPPORTED_YET, 42000
	ERTooBigSelect       = 1104 // ER_TOO_BIG_SELECT, 42000: a scatter over max_scatter_bytes
	ERUnknownStmtHandler = 1243 // ER_UNKNOWN_STMT_HANDLER, HY000
	ERNotSupportedAuth   = 1251 // ER_NOT_SUPPORTED_AUTH_MODE, 08004
	ERLockWaitTimeout    = 1205 // ER_LOCK_WAIT_TIMEOUT, HY000

	// Client-library numbers, for failures toward the server that a
	// client connected directly would have seen itself.
	CRConnHostError = 2003 // CR_CONN_HOST_ERROR: can't connect
	CRServerLost    = 2013 // CR_SERVER_LOST: lost connection
	// CR_AUTH_PLUGIN_ERR: an auth plugin refused, e.g. caching_sha2 full
	// authentication without a secure connection or a public key.
	CRAuthPluginErr = 2061
)

// ErrorFields turns any error into the ERR packet fields the client sees. Errors
// without a number become 1105 HY000, so nothing reaches a client untyped.
func ErrorFields(err error) (uint16, string, string) {
	var se *SQLError
	if errors.As(err, &se) {
		msg := se.Message
		if se.cause != nil {
			msg += ": " + se.cause.Error()
		}
		return se.Num, se.State, msg
	}
	var se2 *ServerError
	if errors.As(err, &se2) {
		return se2.Code, se2.State, se2.Message
	}
	return ERUnknown, "HY000", err.Error()
}

// ServerError is an ERR packet a server sent us outside a relayed response
// (authentication, replaying session state); it is passed on unchanged.
type ServerError ERR

func (e *ServerError) Error() string {
	return fmt.Sprintf("server error %d (%s): %s", e.Code, e.State, e.Message)
}

var ErrOldProtocol = NewSQLError(ERNotSupportedAuth, "08004",
	"client does not support protocol 4.1; upgrade the MySQL client")
