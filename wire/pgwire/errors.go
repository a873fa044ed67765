package pgwire

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// pgError is an error with a SQLSTATE from birth, so the edge of the proxy
// can send it to the client as an ErrorResponse without guessing.
type pgError struct {
	Severity string // ERROR or FATAL
	Code     string // SQLSTATE
	Message  string
	Detail   string
	Hint     string
	cause    error
}

func (e *pgError) Error() string {
	if e.cause != nil {
		return e.Message + ": " + e.cause.Error()
	}
	return e.Message
}

func (e *pgError) Unwrap() error { return e.cause }

func newError(code, format string, args ...any) *pgError {
	return &pgError{Severity: "ERROR", Code: code, Message: fmt.Sprintf(format, args...)}
}

func newFatal(code, format string, args ...any) *pgError {
	return &pgError{Severity: "FATAL", Code: code, Message: fmt.Sprintf(format, args...)}
}

// SQLSTATEs the proxy itself raises.
const (
	codeProtocolViolation    = "08P01"
	codeConnectionFailure    = "08006"
	codeCannotConnectNow     = "57P03"
	codeAdminShutdown        = "57P01"
	codeCrashShutdown        = "57P02" // raised by servers only
	codeInvalidPassword      = "28P01"
	codeInvalidAuthorization = "28000"
	codeUnknownDatabase      = "3D000"
	codeTooManyConnections   = "53300"
	codeFeatureNotSupported  = "0A000"
	codeProgramLimitExceeded = "54000"
	codeConfigLimitExceeded  = "53400"
	codeInternalError        = "XX000"
	// codeInvalidSQLStatementName: a prepared statement that does not exist.
	codeInvalidSQLStatementName = "26000"
	codeReservedName            = "42939"
)

// toErrorResponse turns any error into the message the client sees. Errors
// without a SQLSTATE become XX000 so nothing reaches a client untyped.
func toErrorResponse(err error) *pgproto3.ErrorResponse {
	var pe *pgError
	if !errors.As(err, &pe) {
		pe = &pgError{Severity: "ERROR", Code: codeInternalError, Message: err.Error()}
	}
	msg := pe.Message
	if pe.cause != nil {
		msg += ": " + pe.cause.Error()
	}
	return &pgproto3.ErrorResponse{
		Severity:            pe.Severity,
		SeverityUnlocalized: pe.Severity,
		Code:                pe.Code,
		Message:             msg,
		Detail:              pe.Detail,
		Hint:                pe.Hint,
	}
}
