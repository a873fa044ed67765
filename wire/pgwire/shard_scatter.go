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
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/replica"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/shard"
	"github.com/switchyard/switchyard/wire/pgframe"
)

// Scatter-gather: a SELECT without one shard key, sent outside a lease,
// runs on the shards the router's plan names, at once, merged by package
// scatter (scatter.Run: the budget, OFFSET folded into each shard's
// LIMIT, text merged only in a collation it reproduces, the choice of
// error); this file leases each shard (on a caught-up replica where the
// router allows) and reads its answer (pgShards); pgframe.RowCodec
// reads DataRows. The client sees one RowDescription, the merged rows, one CommandComplete
// and ReadyForQuery. An UPDATE or DELETE without a key, where
// allow_all_shard_writes says so, runs the same way on each shard's
// primary, each in its own implicit transaction: the command tags are
// summed, RETURNING rows concatenated, and a shard that fails stops it
// there, after a warning naming the shards where it already committed.

// shardResult is what one shard answered.
type shardResult struct {
	desc  []byte           // RowDescription
	rows  [][]byte         // DataRows, raw
	arena scatter.RowArena // holds rows
	err   []byte           // ErrorResponse, raw
	msgs  [][]byte         // everything else, in order (ReadyForQuery last)
	verb  string           // of the CommandComplete, without its count
	shard int              // the shard that answered (a scatter's)
}

// shardScatter runs a scatter SELECT or an all-shard write sent as a
// simple Query. Hook in forward; it reports whether it answered.
func (c *clientConn) shardScatter(raw []byte) bool {
	rt, req, as, ok := c.scatterRequest('Q', raw)
	if !ok {
		return false
	}
	status := c.localStatus()
	head, rows, tail := c.runScatter(rt, req, as, func(sql string) []byte {
		if sql == req.SQL {
			return raw
		}
		m, _ := (&pgproto3.Query{String: sql}).Encode(nil)
		return m
	}, func(out []byte, first *shardResult, rows [][]byte, tag string) ([]byte, [][]byte, []byte) {
		return append(out, first.desc...), rows, pgframe.AppendCommandComplete(nil, tag)
	})
	c.answerRows(head, rows, tail, status)
	return true
}

// scatterRequest is the plan of a request that runs on several shards
// outside a lease: a lone SELECT to merge, or an all-shard write outside
// a transaction, with the verdicts on a read (as) that may let replicas
// serve it. ok is false for anything else: acquire leases one shard or
// says why not.
func (c *clientConn) scatterRequest(typ byte, raw []byte) (rt *router.ShardCluster, req scatter.Request, as []*router.Analysis, ok bool) {
	if rt = c.srv.Shards.Get(c.cluster.Name); rt == nil {
		return nil, req, nil, false
	}
	t, sk, st, err := c.requestPlan(rt, c.requestStmts(typ, raw), c.shardSession(false))
	if err != nil {
		return nil, req, nil, false
	}
	if req, ok = rt.ScatterRequest(t, sk, st.sql); !ok {
		return nil, req, nil, false
	}
	req.Parallel = true
	if !req.Write {
		if bind := st.bind; bind != nil {
			req.ReadParam = func(n int) (int64, error) { return limitParam(bind, n) }
		}
		as = c.shardAnalyses(typ, raw)
	}
	return rt, req, as, true
}

// limitParam reads LIMIT $n of a scatter SELECT from its Bind: each shard
// gets the same LIMIT, the merge applies it again. NULL is LIMIT ALL (-1);
// a negative value is left to the shards, which refuse it.
func limitParam(bind []byte, n int) (int64, error) {
	v, bin, ok := pgframe.BindParam(bind, n)
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

// runScatter runs req (scatter.Run), each shard's request made by build
// for the statement's text, and returns the answer for the client: reply
// writes a read's or a write's, after out; a shard's own ErrorResponse is
// relayed as it is, after a warning for a write that committed on some
// shards already; a refusal or the proxy's error is an ErrorResponse.
//
// The answer is head, then rows, then tail: reply places the merged rows
// between the messages of the first shard's answer, and the caller writes
// them to the client one by one (answerRows) rather than copying all of
// them into one buffer, which doubled the memory of a large scatter.
func (c *clientConn) runScatter(rt *router.ShardCluster, req scatter.Request, as []*router.Analysis, build func(sql string) []byte,
	reply func(out []byte, first *shardResult, rows [][]byte, tag string) (head []byte, body [][]byte, tail []byte)) (head []byte, rows [][]byte, tail []byte) {
	res, err := scatter.Run(req, &pgShards{c: c, rt: rt, as: as, build: build})
	var out []byte
	if res != nil && res.Partial != "" {
		out, _ = (&pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: "01000", Message: res.Partial}).Encode(out)
	}
	switch {
	case res != nil && res.Failed != nil:
		return append(out, res.Failed.Wire.(*shardResult).err...), nil, nil
	case err == nil && !req.Write && res.Answers[0].Columns < 0:
		err = newError(codeFeatureNotSupported, "the scatter SELECT returned no row description")
	}
	if err != nil {
		rt.Refused()
		out, _ = toErrorResponse(scatterError(err)).Encode(out)
		return out, nil, nil
	}
	first := res.Answers[0].Wire.(*shardResult)
	tag := "SELECT " + strconv.Itoa(len(res.Rows))
	if req.Write {
		if tag = first.verb; res.Counted {
			tag += " " + strconv.FormatInt(res.Affected, 10)
		}
	}
	return reply(out, first, res.Rows, tag)
}

// pgShards is pgwire's side of a scatter: shard i's request is build's,
// on a lease of its own (a caught-up replica's when as lets one serve
// it). The shards of a read run at once (scatter.Job.Parallel).
type pgShards struct {
	mu    sync.Mutex // see runOnShard
	c     *clientConn
	rt    *router.ShardCluster
	as    []*router.Analysis
	build func(sql string) []byte
}

func (p *pgShards) Run(i int, sql string, b *scatter.Budget) (*scatter.Answer, error) {
	r := &shardResult{shard: i}
	if err := p.c.runOnShard(p.rt, i, p.build(sql), r, p.as, b, &p.mu); err != nil {
		return nil, err
	}
	return r.answer(), nil
}

func (p *pgShards) Codec(first *scatter.Answer) (scatter.Codec, error) {
	r := first.Wire.(*shardResult)
	c, err := pgframe.NewRowCodec(r.desc)
	if err != nil {
		return nil, err
	}
	// The session's extra_float_digits, as a shard's connection for it
	// has it (the client's SET, or a role's or database's default).
	c.FloatDigits = sync.OnceValues(func() (int, error) {
		vals, err := p.Lookup(r.shard, "SHOW extra_float_digits")
		if err != nil {
			return 0, err
		}
		d, convErr := 0, errors.New("no answer")
		if len(vals) == 1 {
			d, convErr = strconv.Atoi(string(vals[0]))
		}
		if convErr != nil {
			return 0, &pgframe.RowError{Msg: "a SELECT run on several shards adds floating-point sums, and the proxy could not read extra_float_digits on shard " + strconv.Itoa(r.shard)}
		}
		return d, nil
	})
	return c, nil
}

func (p *pgShards) Lookup(i int, q string) ([][]byte, error) {
	msg, _ := (&pgproto3.Query{String: q}).Encode(nil)
	var r shardResult
	if err := p.c.runOnShard(p.rt, i, msg, &r, p.as, scatter.NewBudget(1<<20), &p.mu); err != nil || r.err != nil || len(r.rows) != 1 {
		return nil, err
	}
	return pgframe.SplitDataRow(r.rows[0])
}

// testHookShardLease, when set, runs after a scatter's shard i looked up
// its pool e and before it leases from it (tests: a reload in between).
var testHookShardLease atomic.Pointer[func(i int, e *poolEntry)]

// answer is what package scatter needs of a shard's answer: its rows,
// the number of columns of its RowDescription, the count of its
// CommandComplete ("UPDATE 3"; the verb is kept for the summed tag).
func (r *shardResult) answer() *scatter.Answer {
	a := &scatter.Answer{Rows: r.rows, Columns: -1, Failed: r.err != nil, Wire: r}
	if len(r.desc) >= 7 {
		a.Columns = int(binary.BigEndian.Uint16(r.desc[5:]))
	}
	for _, m := range r.msgs {
		if m[0] != 'C' {
			continue
		}
		t, _, _ := pgframe.CString(m[5:])
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
func (c *clientConn) runOnShard(rt *router.ShardCluster, i int, raw []byte, res *shardResult, as []*router.Analysis, budget *scatter.Budget, mu *sync.Mutex) error {
	// The lease is taken under mu: the shards of a parallel read share
	// the client's pool cache and replica picks, which are not safe for
	// concurrent use. The round trip runs without it.
	mu.Lock()
	e, node, rep := c.shardPool(rt, i), (*replica.Node)(nil), (*replica.Runtime)(nil)
	if as != nil {
		e, node, rep, _ = c.shardRead(rt, i, as)
	}
	if node != nil {
		defer rep.Set.Done(node)
	}
	if h := testHookShardLease.Load(); h != nil {
		(*h)(i, e)
	}
	ps, p, err := c.getShardConn(rt, i, e, node, rep)
	retryUntil := time.Now().Add(rt.Cluster.Settings.QueryWaitTimeout)
	for errors.Is(err, pool.ErrClosed) && time.Now().Before(retryUntil) {
		// A reload closed the pool meanwhile (nothing was sent yet): the
		// statement was planned on rt and runs there, on the pool the
		// config in force has for shard i's primary and database. A
		// reload that only changes the sharding keys or settings (a new
		// map version) does not move rows, so this is the same shard;
		// one that puts another server or database at i ends it.
		nrt := c.srv.Shards.Get(c.cluster.Name)
		if nrt == nil || !nrt.SameServer(rt, i) {
			break
		}
		p = c.shardPool(nrt, i).p
		ps, err = p.Get(context.Background())
	}
	mu.Unlock()
	if err != nil {
		return poolError(err)
	}
	sc := ps.Conn.(*serverConn)
	if err := c.syncParams(sc); err != nil {
		var pe *pgError
		p.Put(ps, errors.As(err, &pe))
		return err
	}
	rt.Routed(i)
	_, err = sc.bw.Write(raw)
	if err == nil {
		err = sc.bw.Flush()
	}
	for err == nil {
		var typ byte
		var m []byte
		typ, m, err = sc.rd.Next()
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
			res.rows = res.arena.Append(res.rows, m)
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
		if typ == 'Z' {
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
// statement parsed unnamed first (so no statement cache is involved) and
// a Describe of the portal, whose row description tells the merge the
// columns' types and formats. Hook in forward; it reports whether it
// answered the batch.
func (c *clientConn) shardScatterExt(syncRaw []byte) bool {
	rt, req, as, ok := c.scatterRequest('S', syncRaw)
	if !ok {
		return false
	}
	var parse []byte          // the Parse's body after the statement name: query, parameter types
	var injectedParse bool    // the Parse is the proxy's: its ParseComplete is not the client's
	var named, unnamed []byte // the client's Parse, registered once the batch is accepted
	var body []byte           // the batch after the Parse
	nBind, nExec, injectDescribe, descPortal := 0, 0, false, false
	// ensureParse parses the client's statement name unnamed, for a
	// Describe or Bind of a statement not parsed in this batch.
	var parsed []byte // the name of the statement parsed
	ensureParse := func(stmt []byte) bool {
		if parse != nil {
			return bytes.Equal(stmt, parsed)
		}
		if g := c.stmts[string(stmt)]; len(stmt) > 0 && g != nil {
			parse = g.parse[5+len(g.name)+1:]
		} else if len(stmt) > 0 || len(c.lastUnnamed) < 6 {
			return false
		} else {
			_, parse, _ = pgframe.CString(c.lastUnnamed[5:])
		}
		parsed, injectedParse = stmt, true
		return true
	}
	for b := c.pending; len(b) >= 5; {
		n := int(binary.BigEndian.Uint32(b[1:])) + 1
		m := b[:n]
		b = b[n:]
		switch m[0] {
		case 'P':
			name, rest, ok := pgframe.CString(m[5:])
			if !ok || parse != nil {
				return false
			}
			if parse, parsed = rest, name; len(name) > 0 {
				named = name
			} else {
				unnamed = m
			}
		case 'D':
			if len(m) < 6 || m[5] != 'S' && nBind == 0 { // a portal not bound here
				return false
			}
			if m[5] == 'S' {
				if name, _, ok := pgframe.CString(m[6:]); !ok || !ensureParse(name) {
					return false
				}
				body = append(body, 'D', 0, 0, 0, 6, 'S', 0)
			} else {
				descPortal = true
				body = append(body, m...)
			}
		case 'B':
			portal, rest, ok1 := pgframe.CString(m[5:])
			stmt, after, ok2 := pgframe.CString(rest)
			if !ok1 || !ok2 || nBind > 0 || !ensureParse(stmt) {
				return false
			}
			nBind++
			n := 4 + len(portal) + 1 + 1 + len(after)
			body = append(body, 'B', byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
			body = append(append(append(body, portal...), 0, 0), after...)
			if !descPortal {
				// Ask for the portal's row description; dropped unless the
				// client asks too (after the Bind).
				injectDescribe = true
				body = append(body, 'D', 0, 0, 0, 6, 'P', 0)
			}
		case 'E':
			if nBind != 1 || nExec > 0 || len(m) < 9 || binary.BigEndian.Uint32(m[len(m)-4:]) != 0 {
				return false
			}
			nExec++
			body = append(body, m...)
		default:
			return false
		}
	}
	if nBind != 1 || nExec != 1 {
		return false
	}
	body = append(body, 'S', 0, 0, 0, 4)
	if named != nil {
		if perr := c.stmtRoom(named, parse); perr != nil {
			c.pending = c.pending[:0]
			out, _ := toErrorResponse(perr).Encode(nil)
			c.answer(out, c.localStatus())
			return true
		}
		c.mu.Lock()
		scope := c.stmtScopeLocked()
		c.mu.Unlock()
		c.stmts[string(named)] = c.srv.stmts.get(parse, scope, c.srv.Config().Proxy.StatementRegistrySize)
	}
	if unnamed != nil {
		c.lastUnnamed = append(c.lastUnnamed[:0], unnamed...)
		c.mu.Lock()
		c.unnamedDesc = &unnamedDesc{}
		c.mu.Unlock()
	}
	status := c.localStatus()
	c.pending = c.pending[:0]
	head, rows, tail := c.runScatter(rt, req, as, func(q string) []byte {
		// q: the statement, or rewritten (its OFFSET folded into the LIMIT).
		_, params, _ := pgframe.CString(parse)
		n := 4 + 1 + len(q) + 1 + len(params)
		p := append([]byte{'P', byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 0}, q...)
		return slices.Concat(p, []byte{0}, params, body)
	}, func(out []byte, first *shardResult, rows [][]byte, tag string) ([]byte, [][]byte, []byte) {
		// The first shard's replies to the batch, less those to the
		// messages the proxy added, with the merged rows before its
		// CommandComplete: out up to the rows, tail after them.
		dropT := false
		var tail []byte
		for _, m := range first.msgs {
			switch m[0] {
			case '1':
				if injectedParse {
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
				tail = pgframe.AppendCommandComplete([]byte{}, tag)
				continue
			case 'Z':
				continue
			}
			if tail != nil {
				tail = append(tail, m...)
			} else {
				out = append(out, m...)
			}
		}
		if tail == nil {
			return out, nil, nil // no CommandComplete: no rows go out
		}
		return out, rows, tail
	})
	c.answerRows(head, rows, tail, status)
	return true
}
