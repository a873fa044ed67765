package mysqlproto

// ExecParams are the parameter values of a COM_STMT_EXECUTE, located
// (not converted): the proxy reads only the few it routes by (a shard
// key, LIMIT ?).
type ExecParams struct {
	Types []byte   // 2 bytes per parameter: type, flags (0x80: unsigned)
	Vals  [][]byte // the value bytes, without a length prefix; nil for NULL or long data
	Null  []bool
	Long  []bool // sent with COM_STMT_SEND_LONG_DATA: not in this packet
}

// DecodeExecParams locates the values of a COM_STMT_EXECUTE for a
// statement with n parameters. bound are the types the client bound on an
// earlier execute (used when this one does not send them); long says
// which parameters got long data. Every length is checked against p: a
// malformed packet is an error, never a panic.
func DecodeExecParams(p []byte, n int, bound []byte, long func(i int) bool) (*ExecParams, error) {
	if n == 0 {
		return &ExecParams{}, nil
	}
	nb := (n + 7) / 8
	if len(p) < 10+nb+1 {
		return nil, ErrMalformed
	}
	nullMap := p[10 : 10+nb]
	pos := 10 + nb
	ep := &ExecParams{Vals: make([][]byte, n), Null: make([]bool, n), Long: make([]bool, n)}
	switch p[pos] {
	case 1:
		if len(p) < pos+1+2*n {
			return nil, ErrMalformed
		}
		ep.Types = p[pos+1 : pos+1+2*n]
		pos += 1 + 2*n
	case 0:
		if len(bound) < 2*n {
			return nil, ErrMalformed
		}
		ep.Types = bound
		pos++
	default:
		return nil, ErrMalformed
	}
	r := NewReader(p[pos:])
	for i := range n {
		if nullMap[i/8]&(1<<(i%8)) != 0 {
			ep.Null[i] = true
			continue
		}
		if long != nil && long(i) {
			ep.Long[i] = true
			continue
		}
		t := ep.Types[2*i]
		var v []byte
		switch sz := FixedSize(t); {
		case sz >= 0:
			v = r.Bytes(sz)
		case IsTemporal(t):
			v = r.Bytes(int(r.Byte()))
		default:
			v = r.LenEncBytes()
		}
		if r.Err() != nil {
			return nil, ErrMalformed
		}
		ep.Vals[i] = v
	}
	return ep, nil
}
