package mysqlwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/shard"
)

// Statements on several shards.
//
// A SELECT without one shard key runs on every shard it may touch, one
// shard after the other, each on a lease of its own (a replica's when the
// shard has one caught up, as for any read); the proxy reads each shard's
// whole result set and answers the client with one: the first shard's
// column definitions, the rows merged as the extractor says (concatenated,
// sorted by the ORDER BY columns, cut to LIMIT after OFFSET, or one row of
// combined COUNT/SUM/MIN/MAX, by package scatter through rowCodec), and
// one terminator. The rows held are charged to the cluster's
// max_scatter_bytes; past it the SELECT is refused (1104) and the shard's
// server connection, its answer unread, is closed. A literal OFFSET is
// folded into each shard's LIMIT (router.MySQLScatterLimit) and applied
// after the merge. Rows of the text protocol (COM_QUERY) and of the binary
// protocol (COM_STMT_EXECUTE) are both understood; a value the proxy could
// order differently from the server (text in a collation it does not
// reproduce, looked up by textOrders; types it does not know) refuses the
// statement rather than answer it wrongly.
//
// A write without a key (allow_all_shard_writes) runs on every shard the
// same way, in autocommit; the client gets one OK with the affected rows
// summed.

// shardResult is one shard's whole answer. Packets are copies.
type shardResult struct {
	cols   [][]byte // column definition payloads
	rows   [][]byte // row payloads
	ok     *OK      // for a statement without a result set
	err    []byte   // an ERR payload
	status uint16
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
		res.ok, res.status = &ok, ok.Status
		be.status = ok.Status
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
			be.status, res.status = st, st
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

// runShard runs one command on shard i on a lease of its own and returns
// its answer. build makes the command for a connection; its rows are
// charged to budget. An error is for the client (nothing was written to
// it).
func (s *session) runShard(rt *shardRT, i int, budget *scatter.Budget, build func(be *backend) ([]byte, error)) (*shardResult, error) {
	for attempt := 0; ; attempt++ {
		s.sh.next, s.sh.nextRT = i, rt
		if err := s.acquire(); err != nil {
			return nil, err
		}
		if s.curWrites && s.leaseNode == nil {
			s.leaseWrites = true
		}
		shardStatementMetric(rt, i)
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

// gather runs one command on the shards of r (scatter.Gather), each on a
// lease of its own.
func (s *session) gather(rt *shardRT, r shard.Route, write bool, build func(be *backend) ([]byte, error)) ([]*shardResult, scatter.Job, *scatter.Gathered, error) {
	job := scatter.Job{Protocol: "mysql", Cluster: rt.cl.Name, Write: write, MaxBytes: rt.cl.Settings.MaxScatterBytes}
	if m, ok := r.(shard.Multi); ok {
		job.Shards = m.Shards
	} else {
		job.Shards = scatter.AllShards(rt.m.Shards())
	}
	var results []*shardResult
	g, err := scatter.Gather(job, func(i int, b *scatter.Budget) (*scatter.Answer, error) {
		res, err := s.runShard(rt, i, b, build)
		if err != nil {
			return nil, err
		}
		results = append(results, res)
		a := &scatter.Answer{Rows: res.rows, Columns: -1, Failed: res.err != nil}
		if res.ok != nil {
			a.Affected, a.Counted = int64(res.ok.AffectedRows), true
		} else {
			a.Columns = len(res.cols)
		}
		return a, nil
	})
	return results, job, g, err
}

// scatter answers a SELECT run on the shards of r, merged as sk says.
// binaryRows: the command is a COM_STMT_EXECUTE (rows in the binary
// protocol); limitParam reads a LIMIT given as a parameter.
func (s *session) scatter(rt *shardRT, sql string, sk *router.ShardKeys, r shard.Route, rs uint8, binaryRows bool,
	limitParam func(n int) (int64, error), build func(be *backend, withoutOffset bool) ([]byte, error)) error {
	spec := sk.MergeSpec()
	if err := spec.BindPaging(sk.LimitParam, sk.OffsetParam, limitParam); err != nil {
		s.shardRefused()
		return s.sendErr(rs, scatterError(err))
	}
	results, job, g, err := s.gather(rt, r, false, func(be *backend) ([]byte, error) { return build(be, spec.Offset != 0) })
	if err != nil {
		return s.sendErr(rs, scatterError(err))
	}
	if k := g.Failed(); k >= 0 {
		_, err := s.writePacket(rs, results[k].err)
		return err
	}
	first := results[0]
	if first.ok != nil {
		// Not a result set after all: pass the first answer on.
		_, err := s.writePacket(rs, appendOK(s.scratch[:0], s.caps, hdrOK, first.ok.AffectedRows, first.ok.LastInsertID, s.status(), first.ok.Warnings))
		return err
	}
	cols := make([]colDef, len(first.cols))
	for i, c := range first.cols {
		if cols[i], err = parseColDef(c); err != nil {
			return s.sendErr(rs, err)
		}
	}
	codec := &rowCodec{cols: cols, binaryRows: binaryRows}
	if err := s.textOrders(rt, job.Shards, codec, spec.Compared(codec), sql); err != nil {
		return s.sendErr(rs, scatterError(err))
	}
	rows, err := g.Merge(spec, codec)
	if err != nil {
		s.shardRefused()
		return s.sendErr(rs, scatterError(err))
	}
	return s.writeResultSet(rs, first.cols, rows)
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

// allShardWrite runs a write without one shard key on the shards of r
// (allow_all_shard_writes), each in autocommit, and answers with one OK
// whose affected rows are the sum. A shard's error stops it there; the
// shards before it have committed, which the message says.
func (s *session) allShardWrite(rt *shardRT, r shard.Route, rs uint8, build func(be *backend) ([]byte, error)) error {
	results, job, g, err := s.gather(rt, r, true, build)
	if err != nil {
		return s.sendErr(rs, scatterError(err))
	}
	if k := g.Failed(); k >= 0 {
		e, _ := DecodeERR(results[k].err)
		if k > 0 {
			e.Message = fmt.Sprintf("%s (%s)", e.Message, scatter.PartialWrite(job.Shards, k))
		}
		_, err := s.writePacket(rs, appendERR(s.scratch[:0], e.Code, e.State, e.Message))
		return err
	}
	var warnings uint16
	for _, res := range results {
		if res.ok != nil {
			warnings += res.ok.Warnings
		}
	}
	_, err = s.writePacket(rs, appendOK(s.scratch[:0], s.caps, hdrOK, uint64(g.Affected), 0, s.status(), warnings))
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
	// text is how each text column orders and coll its collation (for
	// the refusal), as textOrders looked them up: the charset of a
	// column definition is the connection's result charset, not the
	// column's collation. A text column not looked up is never compared.
	text []scatter.TextOrder
	coll []string
}

var _ scatter.Codec = (*rowCodec)(nil)

func (c *rowCodec) Columns() int      { return len(c.cols) }
func (c *rowCodec) Name(k int) string { return c.cols[k].name }

// FoldNames: MySQL's column names are case-insensitive.
func (c *rowCodec) FoldNames() bool                    { return true }
func (c *rowCodec) Split(row []byte) ([][]byte, error) { return splitRow(row, c.cols, c.binaryRows) }
func (c *rowCodec) Encode(vals [][]byte) []byte        { return encodeRow(vals, c.cols, c.binaryRows) }

// Key reads a value of column k for ordering. An error means the proxy
// cannot order it as the server would.
func (rc *rowCodec) Key(k int, v []byte) (scatter.Key, error) {
	c, binaryRows := rc.cols[k], rc.binaryRows
	unsigned := c.flags&flagUnsigned != 0
	switch {
	case isIntType(c.typ):
		if binaryRows {
			return binaryInt(v, c.typ, unsigned).key(), nil
		}
		if unsigned {
			u, err := strconv.ParseUint(string(v), 10, 64)
			if err == nil {
				return scatter.UintKey(u), nil
			}
		} else if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return scatter.IntKey(n), nil
		}
	case c.typ == tFloat || c.typ == tDouble:
		if binaryRows {
			if c.typ == tFloat && len(v) == 4 {
				return scatter.FloatKey(float64(math.Float32frombits(binary.LittleEndian.Uint32(v)))), nil
			}
			if len(v) == 8 {
				return scatter.FloatKey(math.Float64frombits(binary.LittleEndian.Uint64(v))), nil
			}
		} else if f, err := strconv.ParseFloat(string(v), 64); err == nil {
			return scatter.FloatKey(f), nil
		}
	case c.typ == tDecimal || c.typ == tNewDecimal:
		if r, ok := new(big.Rat).SetString(string(v)); ok {
			return scatter.DecKey(r, nil), nil
		}
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
	case isTextType(c.typ):
		if k < len(rc.text) {
			if key, ok := scatter.TextKey(rc.text[k], v); ok {
				return key, nil
			}
		}
		if k < len(rc.text) && rc.text[k] == scatter.TextFoldASCII {
			return scatter.Key{}, newSQLError(erNotSupportedYet, "42000", "column %s has non-ASCII text, which the proxy cannot order across shards as collation %s does; add the shard key", c.name, rc.coll[k])
		}
		coll := "whose collation the proxy cannot tell (an expression, and the tables or the connection use several collations, or the statement names one)"
		if k < len(rc.coll) && rc.coll[k] != "" {
			coll = "in collation " + rc.coll[k]
		}
		return scatter.Key{}, newSQLError(erNotSupportedYet, "42000", "column %s is text %s: across shards the proxy merges ORDER BY, MIN and MAX of text only in a _bin or binary collation, or in a _general_ci one for ASCII text, as one database would order it; add the shard key", c.name, coll)
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

// textOrderOf says how a collation orders text received in the result
// charset utf8 (whether the connection's results are UTF-8). Collations
// not named here (UCA: _unicode_ci, _uca1400_, _0900_; case-sensitive
// _cs; the national ones) have weights the proxy does not reproduce.
func textOrderOf(coll string, utf8Results bool) scatter.TextOrder {
	coll = strings.ToLower(coll)
	switch {
	case coll == "binary":
		return scatter.TextBytes
	case coll == "utf8mb4_general_ci", coll == "utf8mb3_general_ci", coll == "utf8_general_ci",
		coll == "latin1_swedish_ci", coll == "ascii_general_ci":
		// Their weights for ASCII are its upper case (checked against
		// the server by TestTextOrderMySQL); other text is refused.
		return scatter.TextFoldASCII
	case !utf8Results:
	case coll == "utf8mb4_nopad_bin", coll == "utf8mb3_nopad_bin", coll == "utf8mb4_0900_bin":
		// Code points, whose order is the order of their UTF-8 bytes.
		return scatter.TextBytes
	case coll == "utf8mb4_bin", coll == "utf8mb3_bin", coll == "utf8_bin", coll == "ascii_bin":
		return scatter.TextPadSpace
	}
	return scatter.TextUnknown
}

// textOrders looks up, on the first shard of shards (they share one
// schema), how the text columns among cols (those a merge compares)
// order. A column definition does not say: its charset is the
// connection's result charset. A table's column has its collation in
// information_schema.COLUMNS; an expression (MIN(note), a CASE) has the
// collation of what it is made of, known only when every string column
// of the schemas the statement names and the connection's collation are
// one collation and the statement converts nothing (COLLATE, CONVERT,
// CAST, an introducer). Anything else stays TextUnknown, and the merge
// is refused rather than answered in another order than one database
// (issue 13).
func (s *session) textOrders(rt *shardRT, shards []int, codec *rowCodec, cols []int, sql string) error {
	codec.text = make([]scatter.TextOrder, len(codec.cols))
	codec.coll = make([]string, len(codec.cols))
	var need []int
	for _, k := range cols {
		if c := codec.cols[k]; isTextType(c.typ) && c.charset != binaryCollation && c.flags&(flagEnum|flagSet) == 0 {
			need = append(need, k)
		}
	}
	if len(need) == 0 {
		return nil
	}
	hexStr := func(v string) string { return fmt.Sprintf("CONVERT(X'%x' USING utf8mb4)", v) }
	// One round trip: the connection's charsets; the collations of the
	// schemas' columns (only for an expression: it reads every table's
	// definition); each table column's.
	expr := false
	for _, k := range need {
		expr = expr || codec.cols[k].orgTable == ""
	}
	q := "SELECT @@character_set_results, @@collation_connection, NULL"
	if expr && !convertsText(sql) {
		text := "LOWER(" + hexStr(sql) + ")"
		q = "SELECT @@character_set_results, @@collation_connection, (SELECT GROUP_CONCAT(DISTINCT COLLATION_NAME) FROM information_schema.COLUMNS WHERE COLLATION_NAME IS NOT NULL AND (TABLE_SCHEMA = DATABASE() OR INSTR(" +
			text + ", CONCAT(LOWER(TABLE_SCHEMA), '.')) > 0 OR INSTR(" + text + ", CONCAT(LOWER(TABLE_SCHEMA), '`.')) > 0))"
	}
	for _, k := range need {
		c := codec.cols[k]
		if c.orgTable == "" {
			q += ", NULL"
			continue
		}
		q += fmt.Sprintf(", (SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND COLUMN_NAME = %s)",
			hexStr(c.schema), hexStr(c.orgTable), hexStr(c.orgName))
	}
	res, err := s.runShard(rt, shards[0], scatter.NewBudget(1<<20), func(*backend) ([]byte, error) {
		return append([]byte{comQuery}, q...), nil
	})
	if err != nil {
		return err
	}
	var vals [][]byte
	if res.err == nil && len(res.rows) == 1 {
		vals, _ = splitRow(res.rows[0], make([]colDef, 3+len(need)), false)
	}
	if len(vals) != 3+len(need) {
		return newSQLError(erNotSupportedYet, "42000", "a SELECT run on several shards compares text, and the proxy could not look up its collation")
	}
	rs := strings.ToLower(string(vals[0]))
	utf8Results := vals[0] == nil || strings.HasPrefix(rs, "utf8")
	// One collation for every expression: the columns' and the
	// connection's, when the statement converts nothing.
	var exprColl string
	if set := strings.Split(string(vals[2]), ","); expr && !convertsText(sql) && (vals[2] == nil || len(set) == 1 && strings.EqualFold(set[0], string(vals[1]))) {
		exprColl = string(vals[1])
	}
	for j, k := range need {
		coll := string(vals[3+j])
		if vals[3+j] == nil || codec.cols[k].orgTable == "" {
			coll = exprColl
		}
		codec.text[k] = textOrderOf(coll, utf8Results)
		codec.coll[k] = coll
	}
	return nil
}

// convertsText reports a statement that may give text another collation
// or charset than its columns' (COLLATE, CONVERT ... USING, CAST, BINARY,
// an introducer such as _latin1'x').
func convertsText(sql string) bool {
	l := strings.ToLower(sql)
	for _, w := range []string{"collate", "convert", "cast", "binary", "using", "charset", "_utf8", "_latin", "_ascii", "_binary", "_ucs", "_utf"} {
		if strings.Contains(l, w) {
			return true
		}
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
