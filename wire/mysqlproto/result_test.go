package mysqlproto

import (
	"errors"
	"reflect"
	"testing"
)

// A result set written by WriteResultSet reads back whole with
// ReadResult, with and without CLIENT_DEPRECATE_EOF; a row over the
// budget stops the read there.
func TestResultRoundTrip(t *testing.T) {
	cols := [][]byte{AppendTextColumn(nil, "a", 33), AppendTextColumn(nil, "b", 33)}
	rows := [][]byte{AppendLenEncString(AppendLenEncString(nil, "1"), "x"), AppendLenEncString(AppendLenEncString(nil, "2"), "y")}
	for _, caps := range []uint32{CapProtocol41, CapProtocol41 | CapDeprecateEOF} {
		var out [][]byte
		err := WriteResultSet(nil, caps, StatusAutocommit, cols, rows, func(p []byte) error {
			out = append(out, append([]byte(nil), p...))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		next := func() func() ([]byte, error) {
			i := 0
			return func() ([]byte, error) {
				if i == len(out) {
					return nil, errors.New("no more packets")
				}
				i++
				return out[i-1], nil
			}
		}
		res, err := ReadResult(next(), caps, func(int) error { return nil })
		if err != nil || !reflect.DeepEqual(res.Cols, cols) || !reflect.DeepEqual(res.Rows, rows) || res.Status != StatusAutocommit {
			t.Fatalf("caps %#x: %+v, %v", caps, res, err)
		}
		over := errors.New("over budget")
		n := 0
		_, err = ReadResult(next(), caps, func(int) error {
			if n++; n == 2 {
				return over
			}
			return nil
		})
		if err != over {
			t.Fatalf("caps %#x: over budget: %v", caps, err)
		}
	}
	res, err := ReadResult(func() ([]byte, error) { return AppendERR(nil, 1064, "42000", "syntax"), nil }, CapProtocol41, nil)
	if err != nil || res.ERR == nil {
		t.Fatalf("ERR: %+v, %v", res, err)
	}
}
