package mysqlwire

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/switchyard/switchyard/pool"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// Statements on several shards: package scatter runs them (scatter.Run:
// the shards of the plan one after the other, the budget, OFFSET folded
// into each shard's LIMIT, text merged only in a collation it reproduces,
// the choice of error); this file leases each shard (a replica's when the
// shard has one caught up, as for any read) and reads its answer
// (myShards, readResult), reads and writes rows of the text protocol
// (COM_QUERY) and the binary protocol (COM_STMT_EXECUTE) (mysqlproto.RowCodec), and
// answers the client: one result set (the first shard's column
// definitions, the merged rows, one terminator), or for a write without a
// key (allow_all_shard_writes), run on each shard in autocommit, one OK
// with the affected rows summed.

// readResult reads one command's whole answer from be
// (mysqlproto.ReadResult), its rows charged to budget (past it, an
// *scatter.Error; the rest of the answer is unread and be is broken).
func (be *backend) readResult(budget *scatter.Budget) (*mysqlproto.Result, error) {
	var over error
	res, err := mysqlproto.ReadResult(func() ([]byte, error) {
		p, _, err := be.readPacket()
		return p, err
	}, be.caps, func(n int) error {
		over = budget.Take(n)
		return over
	})
	if res != nil && res.ERR == nil {
		be.status = res.Status
	}
	switch {
	case err == nil:
		return res, nil
	case over != nil:
		// The rest of the answer is unread: the connection cannot serve
		// anyone else.
		be.broken = true
		return nil, over
	case errors.Is(err, mysqlproto.ErrLocalInfile):
		be.broken = true
		return nil, mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "LOAD DATA LOCAL on several shards is not supported")
	}
	be.broken = true
	return nil, serverIOError{err}
}

// testHookShardLease, when set, runs before a scatter's shard i leases,
// with the pool of its primary (tests: a reload in between).
var testHookShardLease atomic.Pointer[func(i int, p *pool.Pool)]

// runShard runs one command on shard i on a lease of its own and returns
// its answer. build makes the command for a connection; its rows are
// charged to budget. An error is for the client (nothing was written to
// it).
func (s *session) runShard(rt *router.ShardCluster, i int, budget *scatter.Budget, build func(be *backend) ([]byte, error)) (*mysqlproto.Result, error) {
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
			if _, err = mysqlproto.WritePacket(be.bw, 0, p); err == nil {
				err = be.bw.Flush()
			}
			if err != nil {
				be.broken = true
				err = serverIOError{err}
			}
		}
		var res *mysqlproto.Result
		if err == nil {
			res, err = be.readResult(budget)
		}
		s.setBusy(false)
		if err == nil {
			if be.status&mysqlproto.StatusInTrans != 0 {
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
func (s *session) shardMulti(sql string, sk *router.ShardKeys, rt *router.ShardCluster, t router.ShardTarget, rs uint8, binaryRows bool,
	limitParam func(int) (int64, error), build func(be *backend, sql string) ([]byte, error)) error {
	req, ok := rt.ScatterRequest(t, sk, sql)
	if !ok {
		return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "this statement cannot run on several shards"))
	}
	if !req.Write {
		req.ReadParam = limitParam
	}
	res, err := scatter.Run(req, &myShards{s: s, rt: rt, binaryRows: binaryRows, build: build})
	switch {
	case res != nil && res.Failed != nil:
		p := res.Failed.Wire.(*mysqlproto.Result).ERR
		if res.Partial != "" {
			e, _ := mysqlproto.DecodeERR(p)
			p = mysqlproto.AppendERR(s.scratch[:0], e.Code, e.State, fmt.Sprintf("%s (%s)", e.Message, res.Partial))
		}
		_, err := s.writePacket(rs, p)
		return err
	case err != nil:
		if errors.As(err, new(*scatter.Error)) {
			s.srv.Shards.Refused(s.cluster.Name)
		}
		return s.sendErr(rs, scatterError(err))
	}
	first := res.Answers[0].Wire.(*mysqlproto.Result)
	if req.Write {
		var warnings uint16
		for _, a := range res.Answers {
			if ok := a.Wire.(*mysqlproto.Result).OK; ok != nil {
				warnings += ok.Warnings
			}
		}
		_, err = s.writePacket(rs, mysqlproto.AppendOK(s.scratch[:0], s.caps, mysqlproto.HeaderOK, uint64(res.Affected), 0, s.status(), warnings))
		return err
	}
	if first.OK != nil {
		// Not a result set after all: pass the first answer on.
		_, err := s.writePacket(rs, mysqlproto.AppendOK(s.scratch[:0], s.caps, mysqlproto.HeaderOK, first.OK.AffectedRows, first.OK.LastInsertID, s.status(), first.OK.Warnings))
		return err
	}
	return s.writeResultSet(rs, first.Cols, res.Rows)
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
	a := &scatter.Answer{Rows: res.Rows, Columns: -1, Failed: res.ERR != nil, Wire: res}
	if res.OK != nil {
		a.Affected, a.Counted = int64(res.OK.AffectedRows), true
	} else {
		a.Columns = len(res.Cols)
	}
	return a, nil
}

func (m *myShards) Codec(first *scatter.Answer) (scatter.Codec, error) {
	res := first.Wire.(*mysqlproto.Result)
	cols := make([]mysqlproto.ColumnDef, len(res.Cols))
	for i, c := range res.Cols {
		var err error
		if cols[i], err = mysqlproto.ParseColumnDef(c); err != nil {
			return nil, err
		}
	}
	return &mysqlproto.RowCodec{Cols: cols, Binary: m.binaryRows}, nil
}

func (m *myShards) Lookup(i int, q string) ([][]byte, error) {
	res, err := m.s.runShard(m.rt, i, scatter.NewBudget(1<<20), func(*backend) ([]byte, error) { return append([]byte{mysqlproto.ComQuery}, q...), nil })
	if err != nil || res.ERR != nil || len(res.Rows) != 1 {
		return nil, err
	}
	return mysqlproto.SplitRow(res.Rows[0], make([]mysqlproto.ColumnDef, len(res.Cols)), false)
}

// writeResultSet answers with a result set: column definitions as a
// server sent them, then rows.
func (s *session) writeResultSet(seq uint8, cols, rows [][]byte) error {
	return mysqlproto.WriteResultSet(s.scratch[:0], s.caps, s.status(), cols, rows, func(p []byte) (err error) {
		seq, err = s.writePacket(seq, p)
		return err
	})
}

// scatterError turns a refusal of package scatter (counted there) into
// the client's error.
func scatterError(err error) error {
	var se *scatter.Error
	if !errors.As(err, &se) {
		return err
	}
	if se.Reason == scatter.ReasonTooLarge {
		return mysqlproto.NewSQLError(mysqlproto.ERTooBigSelect, "42000", "%s", se.Msg)
	}
	return mysqlproto.NewSQLError(mysqlproto.ERNotSupportedYet, "42000", "%s", se.Msg)
}
