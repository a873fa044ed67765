package mysqlwire

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// malformedParams stands for the parameters of a COM_STMT_EXECUTE that
// could not be decoded: the plan gets the error if it asks for a key.
type malformedParams struct{}

func (malformedParams) KeyParam(int) (router.KeyValue, error) {
	return router.KeyValue{}, mysqlproto.NewSQLError(mysqlproto.ERUnknownCom, "08S01", "malformed COM_STMT_EXECUTE parameters")
}

// execParams are the parameter values of a COM_STMT_EXECUTE
// (mysqlproto.DecodeExecParams) as router.Params: the one that holds the
// shard key is read by KeyParam.
type execParams struct{ *mysqlproto.ExecParams }

// KeyParam reads the 1-based parameter k as a shard key (router.Params):
// integers as integers, strings and decimals as their text; other types
// (floats, dates, long data) are refused, as the router cannot know the
// key they stand for.
func (ep execParams) KeyParam(k int) (router.KeyValue, error) {
	if k < 1 || k > len(ep.Vals) {
		return router.KeyValue{}, mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "the shard key is parameter %d of a statement with %d", k, len(ep.Vals))
	}
	i := k - 1
	switch {
	case ep.Null[i]:
		return router.KeyValue{Null: true}, nil
	case ep.Long[i]:
		return router.KeyValue{}, mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "the shard key (parameter %d) was sent as long data; send it as a plain value", k)
	}
	t, unsigned := ep.Types[2*i], ep.Types[2*i+1]&0x80 != 0
	v := ep.Vals[i]
	if mysqlproto.IsIntType(t) {
		m := mysqlproto.ReadBinaryInt(v, t, unsigned)
		if m.Unsigned {
			if m.Uint > math.MaxInt64 {
				return router.KeyValue{Text: []byte(strconv.FormatUint(m.Uint, 10))}, nil
			}
			return router.KeyValue{Int: true, N: int64(m.Uint)}, nil
		}
		return router.KeyValue{Int: true, N: m.Int}, nil
	}
	if mysqlproto.FixedSize(t) >= 0 || mysqlproto.IsTemporal(t) {
		return router.KeyValue{}, mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "the shard key (parameter %d) has type %#x, which is not a usable shard key: bind an integer or a string", k, t)
	}
	return router.KeyValue{Text: v}, nil
}

// intParam reads parameter k as a non-negative integer (LIMIT ?).
func (ep execParams) intParam(k int) (int64, error) {
	v, err := ep.KeyParam(k)
	if err != nil {
		return 0, err
	}
	if v.Int && v.N >= 0 {
		return v.N, nil
	}
	if !v.Null && !v.Int {
		if n, err := strconv.ParseInt(string(v.Text), 10, 64); err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "LIMIT parameter %d is not a non-negative integer", k)
}

// longParams says which parameters of cs got long data since its last
// execute.
func (cs *clientStmt) longParams() func(i int) bool {
	if len(cs.long) == 0 {
		return nil
	}
	return func(i int) bool {
		for _, lp := range cs.long {
			if len(lp) >= 7 && int(binary.LittleEndian.Uint16(lp[5:])) == i {
				return true
			}
		}
		return false
	}
}
