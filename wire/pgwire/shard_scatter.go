package pgwire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/shard"
)

// Scatter-gather: a SELECT without a shard key, sent outside a lease, runs
// on every shard (one after the other; on a caught-up replica of a shard
// where the router allows) and the results are merged by package scatter
// as the extractor says: rows concatenated, sorted by the ORDER BY
// columns, cut to LIMIT after OFFSET, or aggregates combined into one row
// (rowCodec is how it reads DataRows; text it compares only in a
// byte-order collation, looked up by textOrders). A literal OFFSET is folded into
// each shard's row count (router.PostgresScatterLimit) and applied after
// the merge. The rows held are charged to the cluster's
// max_scatter_bytes; past it the SELECT is refused (54000) and the shard's
// server connection, its answer unread, is closed. The client sees one
// RowDescription, the merged rows, one CommandComplete and ReadyForQuery.
//
// An UPDATE or DELETE without a key, where allow_all_shard_writes says
// so, runs the same way on every shard's primary, each shard in its own
// implicit transaction: the command tags are summed, RETURNING rows
// concatenated, and a shard that fails stops it there, with a warning
// naming the shards where it already committed.

// shardResult is what one shard answered.
type shardResult struct {
	desc []byte   // RowDescription
	rows [][]byte // DataRows, raw
	err  []byte   // ErrorResponse, raw
	msgs [][]byte // everything else, in order (ReadyForQuery last)
	verb string   // of the CommandComplete, without its count
}

// shardScatter runs a scatter SELECT. Hook in forward; it reports whether
// it answered the query.
func (c *clientConn) shardScatter(raw []byte) bool {
	rt := c.srv.shardRT(c.cluster.Name)
	if rt == nil {
		return false
	}
	_, err := c.requestShard(rt, 'Q', raw)
	write := errors.Is(err, errAllShards)
	if !write && !errors.Is(err, errScatter) {
		return false // one shard, or an error: acquire says so
	}
	if write && c.sh.begin != nil {
		return false // inside a transaction: acquire refuses it
	}
	sk, err := rt.x.Extract(queryText(raw))
	if err != nil || (!write && sk.Kind != router.StmtSelect) {
		return false
	}
	status := c.localStatus()
	var as []*router.Analysis
	if !write {
		as = c.shardAnalyses('Q', raw)
	}
	var out []byte
	if perr := c.scatter(rt, raw, sk, as, write, &out); perr != nil {
		shardRefusedMetric(c.cluster.Name)
		out, _ = toErrorResponse(perr).Encode(nil)
	}
	c.answer(out, status)
	return true
}

// limitParam reads LIMIT $n of a scatter SELECT from its Bind: each shard
// gets the same LIMIT, the merge applies it again. NULL is LIMIT ALL (-1);
// a negative value is left to the shards, which refuse it.
func limitParam(bind []byte, n int) (int64, error) {
	v, bin, ok := bindParam(bind, n)
	switch {
	case ok && v == nil:
		return -1, nil
	case ok && bin:
		if x, ok := shard.IntFromBinary(v); ok {
			return max(x, 0), nil
		}
	case ok:
		if x, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64); err == nil {
			return max(x, 0), nil
		}
	}
	return 0, newError(codeFeatureNotSupported, "LIMIT $%d of a SELECT run on every shard: the proxy cannot read its value as an integer", n)
}

// withoutOffset folds a literal OFFSET of a scatter SELECT into its row
// count (router.PostgresScatterLimit): each shard must return the rows
// the offset skips, known only after the merge, which applies it.
func withoutOffset(spec *scatter.Spec, sql string) (string, error) {
	if spec.Offset == 0 {
		return sql, nil
	}
	q, ok := router.PostgresScatterLimit(sql)
	if !ok {
		return "", newError(codeFeatureNotSupported, "the OFFSET of this SELECT run on every shard cannot be folded into its LIMIT")
	}
	return q, nil
}

func (c *clientConn) scatter(rt *shardRT, raw []byte, sk *router.ShardKeys, as []*router.Analysis, write bool, out *[]byte) error {
	var spec *scatter.Spec
	if !write {
		spec = sk.MergeSpec()
		if err := spec.BindPaging(sk.LimitParam, sk.OffsetParam, nil); err != nil {
			return scatterError(err)
		}
		sql := queryText(raw)
		q, err := withoutOffset(spec, sql)
		if err != nil {
			return err
		}
		if q != sql {
			raw, _ = (&pgproto3.Query{String: q}).Encode(nil)
		}
	}
	results, rows, tag, errReply, err := c.gatherShards(rt, raw, queryText(raw), spec, as, write)
	if err != nil || errReply != nil {
		*out = append(*out, errReply...)
		return err
	}
	*out = append(*out, results[0].desc...)
	for _, r := range rows {
		*out = append(*out, r...)
	}
	*out = appendTag(*out, tag)
	return nil
}

// gatherShards runs one request on every shard in turn (scatter.Gather).
// A read's rows are merged as spec says, and as (the verdicts on the
// request) may let replicas serve it; a write's rows are concatenated and
// its command tags summed. A shard's own ErrorResponse comes back as
// errReply, to be relayed as it is (after a warning, for a write that
// committed on some shards already).
func (c *clientConn) gatherShards(rt *shardRT, req []byte, sql string, spec *scatter.Spec, as []*router.Analysis, write bool) (results []shardResult, rows [][]byte, tag string, errReply []byte, err error) {
	results = make([]shardResult, rt.m.Shards())
	job := scatter.Job{Protocol: "postgres", Cluster: c.cluster.Name, Shards: scatter.AllShards(len(results)), Write: write, MaxBytes: rt.cl.Settings.MaxScatterBytes}
	g, err := scatter.Gather(job, func(i int, b *scatter.Budget) (*scatter.Answer, error) {
		r := &results[i]
		if err := c.runOnShard(rt, i, req, 1, r, as, b); err != nil {
			return nil, err
		}
		return r.answer(), nil
	})
	if k := g.Failed(); err != nil || k >= 0 {
		if k < 0 {
			k = len(g.Answers)
		}
		if write && k > 0 {
			w := &pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: "01000", Message: scatter.PartialWrite(job.Shards, k)}
			errReply, _ = w.Encode(nil)
		}
		if err == nil {
			return nil, nil, "", append(errReply, results[k].err...), nil
		}
		if err = scatterError(err); errReply != nil {
			e, _ := toErrorResponse(err).Encode(nil)
			return nil, nil, "", append(errReply, e...), nil
		}
		return nil, nil, "", nil, err
	}
	if write {
		tag = results[0].verb
		if g.Counted {
			tag += " " + strconv.FormatInt(g.Affected, 10)
		}
		return results, g.Rows, tag, nil, nil
	}
	if results[0].desc == nil {
		return nil, nil, "", nil, newError(codeFeatureNotSupported, "the scatter SELECT returned no row description")
	}
	codec := newRowCodec(results[0].desc)
	if err := c.textOrders(rt, as, codec, spec.Compared(codec), sql); err != nil {
		return nil, nil, "", nil, scatterError(err)
	}
	if rows, err = g.Merge(spec, codec); err != nil {
		return nil, nil, "", nil, scatterError(err)
	}
	return results, rows, "SELECT " + strconv.Itoa(len(rows)), nil, nil
}

// answer is what package scatter needs of a shard's answer: its rows,
// the number of columns of its RowDescription, the count of its
// CommandComplete ("UPDATE 3"; the verb is kept for the summed tag).
func (r *shardResult) answer() *scatter.Answer {
	a := &scatter.Answer{Rows: r.rows, Columns: -1, Failed: r.err != nil}
	if len(r.desc) >= 7 {
		a.Columns = int(binary.BigEndian.Uint16(r.desc[5:]))
	}
	for _, m := range r.msgs {
		if m[0] != 'C' {
			continue
		}
		t, _, _ := cstring(m[5:])
		r.verb = string(t)
		if i := bytes.LastIndexByte(t, ' '); i >= 0 {
			if n, err := strconv.ParseInt(string(t[i+1:]), 10, 64); err == nil {
				r.verb, a.Affected, a.Counted = string(t[:i]), a.Affected+n, true
			}
		}
	}
	return a
}

// runOnShard sends the query to shard i and reads its answer: to a
// caught-up replica of the shard when as (the verdicts on the request)
// lets a replica serve it, else to the shard's primary. Its rows are
// charged to budget; past it the server connection is closed (the rest
// of its answer is unread) and the error is a *scatter.Error.
func (c *clientConn) runOnShard(rt *shardRT, i int, raw []byte, syncs int, res *shardResult, as []*router.Analysis, budget *scatter.Budget) error {
	e, node, rep := c.shardPool(rt, i), (*replica.Node)(nil), (*replica.Runtime)(nil)
	if as != nil {
		e, node, rep, _ = c.shardRead(rt, i, as)
	}
	if node != nil {
		defer rep.Set.Done(node)
	}
	ps, p, err := c.getShardConn(rt, i, e, node, rep)
	retryUntil := time.Now().Add(rt.cl.Settings.QueryWaitTimeout)
	for errors.Is(err, pool.ErrClosed) && time.Now().Before(retryUntil) {
		// A reload closed the pool meanwhile: the shard's primary in the
		// config in force, if the shards still hold the same rows.
		nrt := c.srv.shardRT(c.cluster.Name)
		if nrt == nil || !shard.SamePlacement(nrt.cl, rt.cl) {
			break
		}
		p = c.shardPool(nrt, i).p
		ps, err = p.Get(context.Background())
	}
	if err != nil {
		return poolError(err)
	}
	sc := ps.Conn.(*serverConn)
	if err := c.syncParams(sc); err != nil {
		var pe *pgError
		p.Put(ps, errors.As(err, &pe))
		return err
	}
	shardStatement(rt, i)
	_, err = sc.bw.Write(raw)
	if err == nil {
		err = sc.bw.Flush()
	}
	for err == nil {
		var typ byte
		var m []byte
		typ, m, err = sc.rd.next()
		if err == nil && typ == 'Z' && len(m) != 6 {
			err = fmt.Errorf("ReadyForQuery of %d bytes", len(m))
		}
		if err != nil {
			break
		}
		switch typ {
		case 'T':
			// The last one: a Describe of the portal follows one of the
			// statement.
			res.desc = bytes.Clone(m)
		case 'D':
			if err := budget.Take(len(m)); err != nil {
				p.Put(ps, false)
				return err
			}
			res.rows = append(res.rows, bytes.Clone(m))
		case 'E':
			if res.err == nil {
				res.err = bytes.Clone(m)
			}
		case 'S':
			sc.noteParameter(m[5:])
		}
		if typ != 'D' && typ != 'S' && typ != 'N' && typ != 'A' {
			res.msgs = append(res.msgs, bytes.Clone(m))
		}
		switch typ {
		case 'Z':
			if syncs--; syncs > 0 {
				continue
			}
			p.Put(ps, m[5] == 'I')
			return nil
		}
	}
	p.Put(ps, false)
	return &pgError{Severity: "ERROR", Code: codeConnectionFailure, Message: "shard " + strconv.Itoa(i) + ": server connection lost", cause: err}
}

// shardScatterExt runs a scatter SELECT sent in the extended protocol: a
// batch of one Bind and one Execute (with its Parse and Describes) up to
// the current Sync, outside a lease. Each shard gets the batch with the
// statement parsed unnamed (so no statement cache is involved) and a
// Describe of the portal, whose row description tells the merge the
// columns' types and formats. Hook in forward; it reports whether it
// answered the batch.
func (c *clientConn) shardScatterExt(syncRaw []byte) bool {
	rt := c.srv.shardRT(c.cluster.Name)
	if rt == nil {
		return false
	}
	_, err := c.requestShard(rt, 'S', syncRaw)
	write := errors.Is(err, errAllShards)
	if !write && !errors.Is(err, errScatter) || write && c.sh.begin != nil {
		return false
	}
	var batch []byte
	var dropParse []bool // per Parse sent: its ParseComplete is the proxy's
	var sql string
	var named []byte // a named Parse of the client's, registered once the batch is accepted
	var unnamedParse []byte
	var namedRest []byte
	nBind, nExec := 0, 0
	var bind []byte
	injectDescribe := false
	descPortal := false
	parseAt, parseEnd := 0, 0 // the Parse in batch
	var parseRest []byte
	putParse := func(rest []byte, injected bool) {
		parseAt, parseRest = len(batch), rest
		defer func() { parseEnd = len(batch) }()
		n := 4 + 1 + len(rest)
		batch = append(batch, 'P', byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0)
		batch = append(batch, rest...)
		dropParse = append(dropParse, injected)
		q, _, _ := cstring(rest)
		sql = string(q)
	}
	parsedHere := false
	// ensureParse parses the client's statement name unnamed, for a
	// Describe or Bind of a statement not parsed in this batch.
	ensureParse := func(stmt []byte) bool {
		if parsedHere {
			return true
		}
		var prest []byte
		if len(stmt) == 0 {
			if len(c.lastUnnamed) < 6 {
				return false
			}
			_, prest, _ = cstring(c.lastUnnamed[5:])
		} else if g := c.stmts[string(stmt)]; g != nil {
			prest = g.parse[5+len(g.name)+1:]
		} else {
			return false
		}
		putParse(prest, true)
		parsedHere = true
		return true
	}
	for b := c.pending; len(b) >= 5; {
		n := int(binary.BigEndian.Uint32(b[1:])) + 1
		m := b[:n]
		b = b[n:]
		switch m[0] {
		case 'P':
			name, rest, ok := cstring(m[5:])
			if !ok || parsedHere {
				return false
			}
			parsedHere = true
			if len(name) > 0 {
				named, namedRest = name, rest
			} else {
				unnamedParse = m
			}
			putParse(rest, false)
		case 'D':
			if len(m) < 6 {
				return false
			}
			if m[5] == 'S' {
				if name, _, ok := cstring(m[6:]); !ok || !ensureParse(name) {
					return false
				}
				batch = append(batch, 'D', 0, 0, 0, 6, 'S', 0)
			} else {
				descPortal = true
				batch = append(batch, m...)
			}
		case 'B':
			bind = m
			portal, rest, ok1 := cstring(m[5:])
			stmt, after, ok2 := cstring(rest)
			if !ok1 || !ok2 || nBind > 0 {
				return false
			}
			nBind++
			if !ensureParse(stmt) {
				return false
			}
			n := 4 + len(portal) + 1 + 1 + len(after)
			batch = append(batch, 'B', byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
			batch = append(append(batch, portal...), 0, 0)
			batch = append(batch, after...)
			if !descPortal {
				// Ask for the portal's row description; dropped unless the
				// client asks too (after the Bind).
				injectDescribe = true
				batch = append(batch, 'D', 0, 0, 0, 6, 'P', 0)
			}
		case 'E':
			if nBind != 1 || nExec > 0 || len(m) < 9 || binary.BigEndian.Uint32(m[len(m)-4:]) != 0 {
				return false
			}
			nExec++
		default:
			return false
		}
		if m[0] == 'E' {
			batch = append(batch, m...)
		}
	}
	if nBind != 1 || nExec != 1 {
		return false
	}
	batch = append(batch, 'S', 0, 0, 0, 4)
	sk, err := rt.x.Extract(sql)
	if err != nil || (!write && sk.Kind != router.StmtSelect) {
		return false
	}
	var as []*router.Analysis
	var offErr error
	var spec *scatter.Spec
	if !write {
		as = c.shardAnalyses('S', syncRaw)
		spec = sk.MergeSpec()
		if offErr = spec.BindPaging(sk.LimitParam, sk.OffsetParam, func(n int) (int64, error) { return limitParam(bind, n) }); offErr != nil {
			offErr = scatterError(offErr)
		}
		var q string
		if offErr == nil {
			q, offErr = withoutOffset(spec, sql)
		}
		if offErr == nil && q != sql {
			_, params, _ := cstring(parseRest)
			n := 4 + 1 + len(q) + 1 + len(params)
			p := append([]byte{'P', byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 0}, q...)
			p = append(append(p, 0), params...)
			batch = slices.Concat(batch[:parseAt], p, batch[parseEnd:])
		}
	}
	if named != nil {
		if perr := c.stmtRoom(named, namedRest); perr != nil {
			c.pending = c.pending[:0]
			out, _ := toErrorResponse(perr).Encode(nil)
			c.answer(out, c.localStatus())
			return true
		}
		c.stmts[string(named)] = c.srv.stmts.get(namedRest, c.srv.cfg.Load().Proxy.StatementRegistrySize)
	}
	if unnamedParse != nil {
		c.lastUnnamed = append(c.lastUnnamed[:0], unnamedParse...)
	}
	status := c.localStatus()
	c.pending = c.pending[:0]
	var out []byte
	perr := offErr
	if perr == nil {
		perr = c.scatterExt(rt, batch, sql, spec, as, write, dropParse, injectDescribe, &out)
	}
	if perr != nil {
		shardRefusedMetric(c.cluster.Name)
		out, _ = toErrorResponse(perr).Encode(nil)
	}
	c.answer(out, status)
	return true
}

func (c *clientConn) scatterExt(rt *shardRT, batch []byte, sql string, spec *scatter.Spec, as []*router.Analysis, write bool, dropParse []bool, injectDescribe bool, out *[]byte) error {
	results, rows, tag, errReply, err := c.gatherShards(rt, batch, sql, spec, as, write)
	if err != nil || errReply != nil {
		*out = append(*out, errReply...)
		return err
	}
	parses, dropT := 0, false
	for _, m := range results[0].msgs {
		switch m[0] {
		case '1':
			drop := parses < len(dropParse) && dropParse[parses]
			parses++
			if drop {
				continue
			}
		case '2':
			dropT = injectDescribe
		case 'T', 'n':
			if dropT {
				dropT = false
				continue
			}
		case 'C':
			for _, r := range rows {
				*out = append(*out, r...)
			}
			*out = appendTag(*out, tag)
			continue
		case 'Z':
			continue
		}
		*out = append(*out, m...)
	}
	return nil
}
