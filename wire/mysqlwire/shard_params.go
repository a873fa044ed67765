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

// execParams are the parameter values of a COM_STMT_EXECUTE, located (not
// converted) for shard routing: the one that holds the shard key is read
// by KeyParam.
type execParams struct {
	types []byte   // 2 bytes per parameter: type, flags (0x80: unsigned)
	vals  [][]byte // the value bytes, without a length prefix; nil for NULL or long data
	null  []bool
	long  []bool // sent with COM_STMT_SEND_LONG_DATA: not in this packet
}

// decodeExecParams locates the values of a COM_STMT_EXECUTE for a
// statement with n parameters. bound are the types the client bound on an
// earlier execute (used when this one does not send them); long says
// which parameters got long data. Every length is checked against p: a
// malformed packet is an error, never a panic.
func decodeExecParams(p []byte, n int, bound []byte, long func(i int) bool) (*execParams, error) {
	if n == 0 {
		return &execParams{}, nil
	}
	nb := (n + 7) / 8
	if len(p) < 10+nb+1 {
		return nil, mysqlproto.ErrMalformed
	}
	nullMap := p[10 : 10+nb]
	pos := 10 + nb
	ep := &execParams{vals: make([][]byte, n), null: make([]bool, n), long: make([]bool, n)}
	switch p[pos] {
	case 1:
		if len(p) < pos+1+2*n {
			return nil, mysqlproto.ErrMalformed
		}
		ep.types = p[pos+1 : pos+1+2*n]
		pos += 1 + 2*n
	case 0:
		if len(bound) < 2*n {
			return nil, mysqlproto.ErrMalformed
		}
		ep.types = bound
		pos++
	default:
		return nil, mysqlproto.ErrMalformed
	}
	r := mysqlproto.NewReader(p[pos:])
	for i := range n {
		if nullMap[i/8]&(1<<(i%8)) != 0 {
			ep.null[i] = true
			continue
		}
		if long != nil && long(i) {
			ep.long[i] = true
			continue
		}
		t := ep.types[2*i]
		var v []byte
		switch sz := mysqlproto.FixedSize(t); {
		case sz >= 0:
			v = r.Bytes(sz)
		case mysqlproto.IsTemporal(t):
			v = r.Bytes(int(r.Byte()))
		default:
			v = r.LenEncBytes()
		}
		if r.Err() != nil {
			return nil, mysqlproto.ErrMalformed
		}
		ep.vals[i] = v
	}
	return ep, nil
}

// KeyParam reads the 1-based parameter k as a shard key (router.Params):
// integers as integers, strings and decimals as their text; other types
// (floats, dates, long data) are refused, as the router cannot know the
// key they stand for.
func (ep *execParams) KeyParam(k int) (router.KeyValue, error) {
	if k < 1 || k > len(ep.vals) {
		return router.KeyValue{}, mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "the shard key is parameter %d of a statement with %d", k, len(ep.vals))
	}
	i := k - 1
	switch {
	case ep.null[i]:
		return router.KeyValue{Null: true}, nil
	case ep.long[i]:
		return router.KeyValue{}, mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "the shard key (parameter %d) was sent as long data; send it as a plain value", k)
	}
	t, unsigned := ep.types[2*i], ep.types[2*i+1]&0x80 != 0
	v := ep.vals[i]
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
func (ep *execParams) intParam(k int) (int64, error) {
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
