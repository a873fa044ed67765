package pgwire

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/wire/pgframe"
)

// TestScatterErrorCodes: the refusals of the row codec and of package
// scatter reach the client with their SQLSTATE: a shard's message that
// cannot be decoded 08P01, values that cannot be merged 0A000, rows over
// max_scatter_bytes 54000 with the hint naming the setting.
func TestScatterErrorCodes(t *testing.T) {
	_, malformed := pgframe.SplitDataRow([]byte{'D', 0, 0, 0, 10, 0, 2, 0, 0, 0, 9})
	desc, _ := (&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("t"), DataTypeOID: 25}}}).Encode(nil)
	codec, err := pgframe.NewRowCodec(desc)
	if err != nil {
		t.Fatal(err)
	}
	_, unsupported := codec.Add(0, []byte("x"), []byte("y"))
	for _, tc := range []struct {
		err        error
		code, text string
	}{
		{malformed, codeProtocolViolation, "a shard's DataRow is malformed"},
		{unsupported, codeFeatureNotSupported, `SUM of column "t" (type OID 25)`},
		{&scatter.Error{Reason: scatter.ReasonTooLarge, Msg: "too many rows"}, codeProgramLimitExceeded, "too many rows"},
		{&scatter.Error{Reason: scatter.ReasonMerge, Msg: "cannot merge"}, codeFeatureNotSupported, "cannot merge"},
	} {
		er := toErrorResponse(scatterError(tc.err))
		if er.Code != tc.code || er.Severity != "ERROR" || !strings.Contains(er.Message, tc.text) {
			t.Errorf("%v: %s %s %q; want ERROR %s naming %q", tc.err, er.Severity, er.Code, er.Message, tc.code, tc.text)
		}
		if tc.code == codeProgramLimitExceeded && !strings.Contains(er.Hint, "max_scatter_bytes") {
			t.Errorf("%v: hint %q; want it to name max_scatter_bytes", tc.err, er.Hint)
		}
	}
}
