package mysqlwire

import (
	"testing"

	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// The decoders of the protocol are fuzzed in package mysqlproto; these
// are the proxy's own: commands (COM_STMT_EXECUTE parameters, statement
// scanning) and the shard router's reading of parameter values and rows.

func FuzzCommand(f *testing.F) {
	f.Add([]byte("\x03SELECT 1; SET NAMES utf8mb4; USE `x`"), uint16(0))
	f.Add([]byte{mysqlproto.ComStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0xfd, 0, 1, 'x'}, uint16(1))
	f.Add([]byte("\x03KILL QUERY 12"), uint16(0))
	f.Fuzz(func(t *testing.T, p []byte, params uint16) {
		if len(p) == 0 {
			return
		}
		switch p[0] {
		case mysqlproto.ComStmtExecute:
			pos, types, err := decodeExecute(p, params)
			if err == nil && types != nil && len(types) != 2*int(params) || pos > len(p) {
				t.Fatalf("bad decode: pos %d types %d", pos, len(types))
			}
		default:
			router.ScanMySQL(string(p[1:]))
		}
	})
}

// FuzzExecuteParams: the shard router reads COM_STMT_EXECUTE parameter
// values (for the shard key and LIMIT ?) and server rows (to merge the
// rows of several shards); neither may panic on any bytes.
func FuzzExecuteParams(f *testing.F) {
	// Two parameters, types bound: LONGLONG 42, VAR_STRING "abc".
	f.Add([]byte{mysqlproto.ComStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0x08, 0, 0xfd, 0,
		42, 0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c'}, uint8(2), []byte(nil))
	// NULL first parameter, types from an earlier execute.
	f.Add([]byte{mysqlproto.ComStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 3, 'x', 'y', 'z'}, uint8(2), []byte{0x08, 0, 0xfd, 0})
	// A DATETIME and an unsigned TINY.
	f.Add([]byte{mysqlproto.ComStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0x0c, 0, 0x01, 0x80, 4, 0xe8, 0x07, 1, 2, 200}, uint8(2), []byte(nil))
	f.Fuzz(func(t *testing.T, p []byte, n uint8, bound []byte) {
		dp, err := mysqlproto.DecodeExecParams(p, int(n), bound, func(i int) bool { return i == 3 })
		if err != nil {
			return
		}
		ep := execParams{dp}
		for k := 1; k <= int(n)+1; k++ {
			_, _ = ep.KeyParam(k)
			_, _ = ep.intParam(k)
		}
		// The same bytes as a row of n columns of the types given.
		cols := make([]mysqlproto.ColumnDef, n)
		for i := range cols {
			if 2*i < len(ep.Types) {
				cols[i].Type = ep.Types[2*i]
			}
		}
		for _, bin := range []bool{false, true} {
			vals, err := mysqlproto.SplitRow(p, cols, bin)
			if err != nil {
				continue
			}
			for i, v := range vals {
				if v != nil {
					_, _ = (&mysqlproto.RowCodec{Cols: cols, Binary: bin}).Key(i, v)
				}
			}
			_ = mysqlproto.EncodeRow(vals, cols, bin)
		}
		_, _ = mysqlproto.ParseColumnDef(p)
	})
}
