package pgwire

import (
	"errors"

	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/wire/pgframe"
)

// scatterError turns a refusal of package scatter (counted there) or of
// the row codec (pgframe.RowCodec) into the client's error.
func scatterError(err error) error {
	var se *scatter.Error
	var re *pgframe.RowError
	switch {
	case errors.As(err, &re) && re.Malformed:
		return newError(codeProtocolViolation, "%s", re.Msg)
	case errors.As(err, &re):
		return newError(codeFeatureNotSupported, "%s", re.Msg)
	case !errors.As(err, &se):
		return err
	case se.Reason == scatter.ReasonTooLarge:
		return &pgError{Severity: "ERROR", Code: codeProgramLimitExceeded, Message: se.Msg,
			Hint: "max_scatter_bytes is set in [defaults] or per cluster in the proxy's config"}
	}
	return newError(codeFeatureNotSupported, "%s", se.Msg)
}
