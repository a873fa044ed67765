package mysqlwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/shard"
)

// Statements on several shards: package scatter runs them (scatter.Run:
// the shards of the plan one after the other, the budget, OFFSET folded
// into each shard's LIMIT, text merged only in a collation it reproduces,
// the choice of error); this file leases each shard (a replica's when the
// shard has one caught up, as for any read) and reads its answer
// (myShards, readResult), reads and writes rows of the text protocol
// (COM_QUERY) and the binary protocol (COM_STMT_EXECUTE) (rowCodec), and
// answers the client: one result set (the first shard's column
// definitions, the merged rows, one terminator), or for a write without a
// key (allow_all_shard_writes), run on each shard in autocommit, one OK
// with the affected rows summed.

// shardResult is one shard's whole answer. Packets are copies.
type shardResult struct {
	cols [][]byte // column definition payloads
	rows [][]byte // row payloads
	ok   *OK      // for a statement without a result set
	err  []byte   // an ERR payload
}

// readResult reads one command's whole answer from be: an OK, an ERR, or
// one result set, its rows charged to budget (past it, an *scatter.Error;
// the rest of the answer is unread and be is broken).
func (be *backend) readResult(budget *scatter.Budget) (*shardResult, error) {
	res := &shardResult{}
	p, _, err := be.readPacket()
	if err != nil {
		be.broken = true
		return nil, serverIOError{err}
	}
	deof := be.caps&capDeprecateEOF != 0
	switch {
	case len(p) == 0:
		be.broken = true
		return nil, serverIOError{fmt.Errorf("%w: empty packet", errMalformed)}
	case p[0] == hdrERR:
		res.err = bytes.Clone(p)
		return res, nil
	case p[0] == hdrOK:
		ok, err := DecodeOK(p, be.caps)
		if err != nil {
			be.broken = true
			return nil, serverIOError{err}
		}
		ok.Info, ok.SessionState = nil, nil
		res.ok, be.status = &ok, ok.Status
		if ok.Status&statusMoreResults != 0 {
			be.broken = true
			return nil, serverIOError{errors.New("several results where one was expected")}
		}
		return res, nil
	case p[0] == hdrLocalInfil:
		be.broken = true
		return nil, newSQLError(erNotSupportedYet, "42000", "LOAD DATA LOCAL on several shards is not supported")
	}
	r := reader{b: p}
	n, _ := r.lenEnc()
	if r.err != nil || n == 0 || n > 4096 {
		be.broken = true
		return nil, serverIOError{fmt.Errorf("%w: bad column count", errMalformed)}
	}
	for i := uint64(0); i < n; i++ {
		if p, _, err = be.readPacket(); err != nil {
			be.broken = true
			return nil, serverIOError{err}
		}
		res.cols = append(res.cols, bytes.Clone(p))
	}
	if !deof {
		if _, _, err = be.readPacket(); err != nil {
			be.broken = true
			return nil, serverIOError{err}
		}
	}
	for {
		if p, _, err = be.readPacket(); err != nil {
			be.broken = true
			return nil, serverIOError{err}
		}
		if len(p) > 0 && terminator(p[0], len(p), deof) {
			st, _ := statusOf(p, be.caps)
			be.status = st
			if st&statusMoreResults != 0 {
				be.broken = true
				return nil, serverIOError{errors.New("several results where one was expected")}
			}
			return res, nil
		}
		if len(p) > 0 && p[0] == hdrERR {
			res.err = bytes.Clone(p)
			return res, nil
		}
		if err := budget.Take(len(p)); err != nil {
			// The rest of the answer is unread: the connection cannot
			// serve anyone else.
			be.broken = true
			return nil, err
		}
		res.rows = append(res.rows, bytes.Clone(p))
	}
}

// testHookShardLease, when set, runs before a scatter's shard i leases,
// with the pool of its primary (tests: a reload in between).
var testHookShardLease atomic.Pointer[func(i int, p *pool.Pool)]

// runShard runs one command on shard i on a lease of its own and returns
// its answer. build makes the command for a connection; its rows are
// charged to budget. An error is for the client (nothing was written to
// it).
func (s *session) runShard(rt *router.ShardCluster, i int, budget *scatter.Budget, build func(be *backend) ([]byte, error)) (*shardResult, error) {
	for attempt := 0; ; attempt++ {
		s.sh.next, s.sh.nextRT = i, rt
		if h := testHookShardLease.Load(); h != nil {
			(*h)(i, s.shardPool(rt, i))
		}
		if err := s.acquire(); err != nil {
			return nil, err
		}
		if s.curWrites && s.leaseNode == nil {
			s.leaseWrites = true
		}
		rt.Routed(i)
		be := s.be
		s.setBusy(true)
		p, err := build(be)
		if err == nil {
			if _, err = writePacket(be.bw, 0, p); err == nil {
				err = be.bw.Flush()
			}
			if err != nil {
				be.broken = true
				err = serverIOError{err}
			}
		}
		var res *shardResult
		if err == nil {
			res, err = be.readResult(budget)
		}
		s.setBusy(false)
		if err == nil {
			if be.status&statusInTrans != 0 {
				be.dirty = true // autocommit was expected: reset before reuse
			}
			s.release(true)
			return res, nil
		}
		var sio serverIOError
		if s.left.Load() {
			// The watch closed the server connection: the client is
			// gone; neither a retry nor a ban.
			be.broken = true
			s.release(false)
			return nil, fatalError{errClientLeft}
		}
		if errors.As(err, &sio) {
			be.broken = true
		}
		retry := errors.As(err, &sio) && s.lease.Reused() && attempt == 0
		if errors.As(err, &sio) && s.leaseNode != nil {
			s.leaseRT.Set.Ban(s.leaseNode.Name, err.Error())
			retry = attempt < 2
		}
		s.release(!be.broken)
		if retry {
			continue
		}
		if errors.As(err, &sio) {
			s.log.Warn("server connection lost during a statement on several shards", "shard", i, "err", err)
			return nil, errLostServer
		}
		return nil, err
	}
}

// shardMulti runs a statement that needs several shards (scatter.Run):
// a SELECT is merged, a write runs on each shard (allow_all_shard_writes)
// and answers with one OK whose affected rows are the sum; a shard's
// error stops it there, and says where the shards before it committed.
// binaryRows: the command is a COM_STMT_EXECUTE; limitParam reads a LIMIT
// given as a parameter; build makes the command for a connection, the
// statement's text being sql.
func (s *session) shardMulti(sql string, sk *router.ShardKeys, rt *router.ShardCluster, r shard.Route, rs uint8, binaryRows bool,
	limitParam func(int) (int64, error), build func(be *backend, sql string) ([]byte, error)) error {
	req := scatter.Request{Job: scatter.Job{Protocol: "mysql", Cluster: rt.Cluster.Name, Write: sk.Kind != router.StmtSelect, MaxBytes: rt.Cluster.Settings.MaxScatterBytes},
		SQL: sql, Unoffset: router.MySQLScatterLimit}
	if m, ok := r.(shard.Multi); ok {
		req.Shards = m.Shards
	} else {
		req.Shards = scatter.AllShards(rt.Map.Shards())
	}
	if !req.Write {
		req.Spec, req.LimitParam, req.OffsetParam, req.ReadParam = sk.MergeSpec(), sk.LimitParam, sk.OffsetParam, limitParam
	}
	res, err := scatter.Run(req, &myShards{s: s, rt: rt, binaryRows: binaryRows, build: build})
	switch {
	case res != nil && res.Failed != nil:
		p := res.Failed.Wire.(*shardResult).err
		if res.Partial != "" {
			e, _ := DecodeERR(p)
			p = appendERR(s.scratch[:0], e.Code, e.State, fmt.Sprintf("%s (%s)", e.Message, res.Partial))
		}
		_, err := s.writePacket(rs, p)
		return err
	case err != nil:
		if errors.As(err, new(*scatter.Error)) {
			s.shardRefused()
		}
		return s.sendErr(rs, scatterError(err))
	}
	first := res.Answers[0].Wire.(*shardResult)
	if req.Write {
		var warnings uint16
		for _, a := range res.Answers {
			if ok := a.Wire.(*shardResult).ok; ok != nil {
				warnings += ok.Warnings
			}
		}
		_, err = s.writePacket(rs, appendOK(s.scratch[:0], s.caps, hdrOK, uint64(res.Affected), 0, s.status(), warnings))
		return err
	}
	if first.ok != nil {
		// Not a result set after all: pass the first answer on.
		_, err := s.writePacket(rs, appendOK(s.scratch[:0], s.caps, hdrOK, first.ok.AffectedRows, first.ok.LastInsertID, s.status(), first.ok.Warnings))
		return err
	}
	return s.writeResultSet(rs, first.cols, res.Rows)
}

// myShards is mysqlwire's side of a scatter: shard i's command is
// build's, on a lease of its own.
type myShards struct {
	s          *session
	rt         *router.ShardCluster
	binaryRows bool
	build      func(be *backend, sql string) ([]byte, error)
}

func (m *myShards) Run(i int, sql string, b *scatter.Budget) (*scatter.Answer, error) {
	res, err := m.s.runShard(m.rt, i, b, func(be *backend) ([]byte, error) { return m.build(be, sql) })
	if err != nil {
		return nil, err
	}
	a := &scatter.Answer{Rows: res.rows, Columns: -1, Failed: res.err != nil, Wire: res}
	if res.ok != nil {
		a.Affected, a.Counted = int64(res.ok.AffectedRows), true
	} else {
		a.Columns = len(res.cols)
	}
	return a, nil
}

func (m *myShards) Codec(first *scatter.Answer) (scatter.Codec, error) {
	res := first.Wire.(*shardResult)
	cols := make([]colDef, len(res.cols))
	for i, c := range res.cols {
		var err error
		if cols[i], err = parseColDef(c); err != nil {
			return nil, err
		}
	}
	return &rowCodec{cols: cols, binaryRows: m.binaryRows}, nil
}

func (m *myShards) Lookup(i int, q string) ([][]byte, error) {
	res, err := m.s.runShard(m.rt, i, scatter.NewBudget(1<<20), func(*backend) ([]byte, error) { return append([]byte{comQuery}, q...), nil })
	if err != nil || res.err != nil || len(res.rows) != 1 {
		return nil, err
	}
	return splitRow(res.rows[0], make([]colDef, len(res.cols)), false)
}

// writeResultSet answers with a result set: column definitions as a
// server sent them, then rows.
func (s *session) writeResultSet(seq uint8, cols, rows [][]byte) error {
	deof := s.caps&capDeprecateEOF != 0
	var err error
	if seq, err = s.writePacket(seq, appendLenEnc(s.scratch[:0], uint64(len(cols)))); err != nil {
		return err
	}
	for _, c := range cols {
		if seq, err = s.writePacket(seq, c); err != nil {
			return err
		}
	}
	if !deof {
		if seq, err = s.writePacket(seq, appendEOF(s.scratch[:0], s.status())); err != nil {
			return err
		}
	}
	for _, r := range rows {
		if seq, err = s.writePacket(seq, r); err != nil {
			return err
		}
	}
	if deof {
		_, err = s.writePacket(seq, appendOK(s.scratch[:0], s.caps, hdrEOF, 0, 0, s.status(), 0))
	} else {
		_, err = s.writePacket(seq, appendEOF(s.scratch[:0], s.status()))
	}
	return err
}

// Column definitions and values.

// MySQL column types.
const (
	tDecimal    = 0x00
	tTiny       = 0x01
	tShort      = 0x02
	tLong       = 0x03
	tFloat      = 0x04
	tDouble     = 0x05
	tNull       = 0x06
	tTimestamp  = 0x07
	tLongLong   = 0x08
	tInt24      = 0x09
	tDate       = 0x0a
	tTime       = 0x0b
	tDateTime   = 0x0c
	tYear       = 0x0d
	tNewDate    = 0x0e
	tNewDecimal = 0xf6
)

const flagUnsigned = 0x20

// binaryCollation is the character set number of binary strings.
const binaryCollation = 63

type colDef struct {
	name    string
	typ     byte
	flags   uint16
	charset uint16
	// schema, table and column of a table's column ("" for an
	// expression), where its collation is looked up.
	schema, orgTable, orgName string
}

func parseColDef(p []byte) (colDef, error) {
	r := reader{b: p}
	r.lenEncBytes() // catalog
	schema := r.lenEncBytes()
	r.lenEncBytes() // table
	orgTable := r.lenEncBytes()
	name := r.lenEncBytes()
	orgName := r.lenEncBytes()
	r.lenEnc()
	c := colDef{name: string(name), schema: string(schema), orgTable: string(orgTable), orgName: string(orgName)}
	c.charset = r.uint16()
	r.uint32()
	c.typ = r.byte()
	c.flags = r.uint16()
	if r.err != nil {
		return c, fmt.Errorf("%w: bad column definition", errMalformed)
	}
	return c, nil
}

// splitRow cuts a row into its values (nil for NULL): for the text
// protocol the strings, for the binary protocol each value's bytes
// without a length prefix.
func splitRow(p []byte, cols []colDef, binaryRows bool) ([][]byte, error) {
	out := make([][]byte, len(cols))
	bad := fmt.Errorf("%w: bad row", errMalformed)
	if !binaryRows {
		r := reader{b: p}
		for i := range cols {
			if len(r.b) > 0 && r.b[0] == 0xfb {
				r.b = r.b[1:]
				continue
			}
			v := r.lenEncBytes()
			if r.err != nil {
				return nil, bad
			}
			out[i] = v[:len(v):len(v)]
		}
		return out, nil
	}
	nb := (len(cols) + 7 + 2) / 8
	if len(p) < 1+nb || p[0] != 0 {
		return nil, bad
	}
	nulls := p[1 : 1+nb]
	r := reader{b: p[1+nb:]}
	for i, c := range cols {
		if nulls[(i+2)/8]&(1<<((i+2)%8)) != 0 {
			continue
		}
		var v []byte
		switch n := fixedSize(c.typ); {
		case n >= 0:
			v = r.bytes(n)
		case isTemporal(c.typ):
			v = r.bytes(int(r.byte()))
		default:
			v = r.lenEncBytes()
		}
		if r.err != nil {
			return nil, bad
		}
		out[i] = v[:len(v):len(v)]
	}
	return out, nil
}

// fixedSize is the size of a binary-protocol value of type t; -1 when it
// has a length prefix.
func fixedSize(t byte) int {
	switch t {
	case tTiny:
		return 1
	case tShort, tYear:
		return 2
	case tLong, tInt24, tFloat:
		return 4
	case tLongLong, tDouble:
		return 8
	case tNull:
		return 0
	}
	return -1
}

func isTemporal(t byte) bool {
	switch t {
	case tTimestamp, tDate, tTime, tDateTime, tNewDate:
		return true
	}
	return false
}

func isIntType(t byte) bool {
	switch t {
	case tTiny, tShort, tLong, tLongLong, tInt24, tYear:
		return true
	}
	return false
}

// encodeRow makes a row packet of values split by splitRow.
func encodeRow(vals [][]byte, cols []colDef, binaryRows bool) []byte {
	var out []byte
	if !binaryRows {
		for _, v := range vals {
			if v == nil {
				out = append(out, 0xfb)
				continue
			}
			out = appendLenEnc(out, uint64(len(v)))
			out = append(out, v...)
		}
		return out
	}
	nb := (len(cols) + 7 + 2) / 8
	out = append(out, 0)
	out = append(out, make([]byte, nb)...)
	for i, v := range vals {
		if v == nil {
			out[1+(i+2)/8] |= 1 << ((i + 2) % 8)
			continue
		}
		switch {
		case fixedSize(cols[i].typ) >= 0:
			out = append(out, v...)
		case isTemporal(cols[i].typ):
			out = append(out, byte(len(v)))
			out = append(out, v...)
		default:
			out = appendLenEnc(out, uint64(len(v)))
			out = append(out, v...)
		}
	}
	return out
}

// rowCodec is the MySQL row format for package scatter: rows of the text
// protocol (COM_QUERY) or of the binary protocol (COM_STMT_EXECUTE) of a
// result whose column definitions are cols.
type rowCodec struct {
	cols       []colDef
	binaryRows bool
}

var _ scatter.Codec = (*rowCodec)(nil)

func (c *rowCodec) Columns() int      { return len(c.cols) }
func (c *rowCodec) Name(k int) string { return c.cols[k].name }

// FoldNames: MySQL's column names are case-insensitive.
func (c *rowCodec) FoldNames() bool                    { return true }
func (c *rowCodec) Split(row []byte) ([][]byte, error) { return splitRow(row, c.cols, c.binaryRows) }
func (c *rowCodec) Encode(vals [][]byte) []byte        { return encodeRow(vals, c.cols, c.binaryRows) }

// Text: the string types order in their collation, unless binary (a
// BINARY, VARBINARY or BLOB column) or an ENUM or SET; where it comes from
// is in the column definition (its charset is the connection's result
// charset, not the column's collation).
func (rc *rowCodec) Text(k int) (scatter.TextColumn, bool) {
	c := rc.cols[k]
	if !isTextType(c.typ) || c.charset == binaryCollation || c.flags&(flagEnum|flagSet) != 0 {
		return scatter.TextColumn{}, false
	}
	return scatter.TextColumn{Schema: c.schema, Table: c.orgTable, Column: c.orgName}, true
}

// Key reads a value of column k for ordering. An error means the proxy
// cannot order it as the server would.
func (rc *rowCodec) Key(k int, v []byte) (scatter.Key, error) {
	c, binaryRows := rc.cols[k], rc.binaryRows
	unsigned := c.flags&flagUnsigned != 0
	switch {
	case c.typ == tDecimal || c.typ == tNewDecimal || !binaryRows && (isIntType(c.typ) || c.typ == tFloat || c.typ == tDouble):
		// Numbers as text (a DECIMAL in the binary protocol too).
		if key, ok := scatter.NumberKey(v); ok {
			return key, nil
		}
	case isIntType(c.typ):
		return binaryInt(v, c.typ, unsigned).key(), nil
	case c.typ == tFloat && len(v) == 4:
		return scatter.FloatKey(float64(math.Float32frombits(binary.LittleEndian.Uint32(v)))), nil
	case c.typ == tDouble && len(v) == 8:
		return scatter.FloatKey(math.Float64frombits(binary.LittleEndian.Uint64(v))), nil
	case isTemporal(c.typ):
		if !binaryRows {
			if c.typ == tTime {
				if us, ok := textTime(v); ok {
					return scatter.IntKey(us), nil
				}
				break
			}
			return scatter.BytesKey(v), nil // fixed-width text: orders as bytes
		}
		if t, ok := binaryTemporal(v, c.typ); ok {
			return t, nil
		}
	case c.flags&(flagEnum|flagSet) != 0:
		// An ENUM orders by its index in the column's list, not as text.
	case c.typ == 0x10: // BIT: big-endian bytes of one length
		return scatter.BytesKey(v), nil
	case c.charset == binaryCollation && isTextType(c.typ):
		return scatter.BytesKey(v), nil
	}
	return scatter.Key{}, newSQLError(erNotSupportedYet, "42000", "column %s (type %#x): the proxy cannot order or combine its values across shards", c.name, c.typ)
}

const (
	flagEnum = 0x100
	flagSet  = 0x800
)

// isTextType reports the string types (CHAR, VARCHAR, the TEXT and BLOB
// types), which order in their collation.
func isTextType(t byte) bool {
	switch t {
	case 0x0f, 0xfd, 0xfe, 0xf9, 0xfa, 0xfb, 0xfc:
		return true
	}
	return false
}

// binInt is a binary-protocol integer.
type binInt struct {
	i        int64
	u        uint64
	unsigned bool
}

func (b binInt) key() scatter.Key {
	if b.unsigned {
		return scatter.UintKey(b.u)
	}
	return scatter.IntKey(b.i)
}

func binaryInt(v []byte, t byte, unsigned bool) binInt {
	var u uint64
	var i int64
	switch len(v) {
	case 1:
		u, i = uint64(v[0]), int64(int8(v[0]))
	case 2:
		x := binary.LittleEndian.Uint16(v)
		u, i = uint64(x), int64(int16(x))
	case 4:
		x := binary.LittleEndian.Uint32(v)
		u, i = uint64(x), int64(int32(x))
	case 8:
		u = binary.LittleEndian.Uint64(v)
		i = int64(u)
	}
	return binInt{i: i, u: u, unsigned: unsigned || t == tYear}
}

// binaryTemporal orders a binary DATE/DATETIME/TIMESTAMP (as a byte key)
// or TIME (as signed microseconds).
func binaryTemporal(v []byte, t byte) (scatter.Key, bool) {
	if t == tTime {
		if len(v) != 0 && len(v) != 8 && len(v) != 12 {
			return scatter.Key{}, false
		}
		var us int64
		if len(v) >= 8 {
			days := int64(binary.LittleEndian.Uint32(v[1:]))
			us = (((days*24+int64(v[5]))*60+int64(v[6]))*60 + int64(v[7])) * 1e6
			if len(v) == 12 {
				us += int64(binary.LittleEndian.Uint32(v[8:]))
			}
			if v[0] == 1 {
				us = -us
			}
		}
		return scatter.IntKey(us), true
	}
	var k [11]byte // year (BE), month, day, hour, minute, second, microseconds (BE)
	switch len(v) {
	case 11:
		binary.BigEndian.PutUint32(k[7:], binary.LittleEndian.Uint32(v[7:]))
		fallthrough
	case 7:
		copy(k[4:7], v[4:7])
		fallthrough
	case 4:
		binary.BigEndian.PutUint16(k[0:], binary.LittleEndian.Uint16(v))
		k[2], k[3] = v[2], v[3]
	case 0:
	default:
		return scatter.Key{}, false
	}
	return scatter.BytesKey(k[:]), true
}

// Add adds two COUNT or SUM values of column k, in its encoding.
func (rc *rowCodec) Add(k int, x, y []byte) ([]byte, error) {
	c, binaryRows := rc.cols[k], rc.binaryRows
	switch {
	case binaryRows && isIntType(c.typ) && len(x) == len(y):
		a, b := binaryInt(x, c.typ, c.flags&flagUnsigned != 0), binaryInt(y, c.typ, c.flags&flagUnsigned != 0)
		out := make([]byte, 8)
		if a.unsigned {
			binary.LittleEndian.PutUint64(out, a.u+b.u)
		} else {
			binary.LittleEndian.PutUint64(out, uint64(a.i+b.i))
		}
		return out[:len(x)], nil
	case binaryRows && c.typ == tDouble && len(x) == 8 && len(y) == 8:
		f := math.Float64frombits(binary.LittleEndian.Uint64(x)) + math.Float64frombits(binary.LittleEndian.Uint64(y))
		return binary.LittleEndian.AppendUint64(nil, math.Float64bits(f)), nil
	case c.typ == tDouble || c.typ == tFloat:
		fx, err1 := strconv.ParseFloat(string(x), 64)
		fy, err2 := strconv.ParseFloat(string(y), 64)
		if err1 != nil || err2 != nil {
			break
		}
		return []byte(strconv.FormatFloat(fx+fy, 'g', -1, 64)), nil
	}
	if sum, ok := scatter.AddDecimal(x, y); ok {
		return sum, nil
	}
	return nil, newSQLError(erNotSupportedYet, "42000", "cannot add the values %q and %q of column %s from two shards", x, y, c.name)
}

// scatterError turns a refusal of package scatter (counted there) into
// the client's error.
func scatterError(err error) error {
	var se *scatter.Error
	if !errors.As(err, &se) {
		return err
	}
	if se.Reason == scatter.ReasonTooLarge {
		return newSQLError(erTooBigSelect, "42000", "%s", se.Msg)
	}
	return newSQLError(erNotSupportedYet, "42000", "%s", se.Msg)
}

// textTime reads a TIME as text, [-]H:MM:SS[.ffffff], into signed
// microseconds: the hours have no fixed width and may be negative, so the
// bytes do not order.
func textTime(v []byte) (int64, bool) {
	t := string(v)
	neg := strings.HasPrefix(t, "-")
	t = strings.TrimPrefix(t, "-")
	frac := ""
	if i := strings.IndexByte(t, '.'); i >= 0 {
		t, frac = t[:i], t[i+1:]
	}
	parts := strings.Split(t, ":")
	if len(parts) != 3 || len(frac) > 6 {
		return 0, false
	}
	var hms [3]int64
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return 0, false
		}
		hms[i] = int64(n)
	}
	us := ((hms[0]*60+hms[1])*60 + hms[2]) * 1e6
	if frac != "" {
		f, err := strconv.ParseUint((frac + "000000")[:6], 10, 32)
		if err != nil {
			return 0, false
		}
		us += int64(f)
	}
	if neg {
		us = -us
	}
	return us, true
}
