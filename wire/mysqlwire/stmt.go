package mysqlwire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/frontend"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// Prepared statements under transaction pooling. A client's statement ids
// are the proxy's: COM_STMT_PREPARE goes to whichever server connection
// the client holds, and the id the server gave is swapped for a new client
// id in the reply. Each server connection keeps its own statements by
// query text; when an EXECUTE lands on a connection that has not prepared
// that text, the proxy prepares it there first (reading the metadata off
// and dropping it), then sends the EXECUTE with the server's id. Parameter
// types (sent by the client only when they change) and long data (sent
// before EXECUTE, without reply) are kept per client statement and
// replayed, so an EXECUTE is complete on any connection.

type clientStmt struct {
	query string
	// db is the client's database when it prepared the statement (empty
	// on a sharded cluster: each shard's own).
	db       string
	an       *router.Verdict // the router's verdict, for routing EXECUTE; none without replicas
	params   uint16
	columns  uint16
	types    []byte   // last bound parameter types, 2 bytes each
	long     [][]byte // COM_STMT_SEND_LONG_DATA packets since the last execute
	longSize int
	// sets are the session SETs the statement runs. Without parameters
	// they are remembered and replayed like the text protocol's; with
	// parameters (go-sql-driver's db.Exec("SET autocommit=?", 0), SET
	// time_zone=?) their values are not kept, so executing one pins the
	// session, as does a prepared USE.
	sets   []string
	use    bool
	txNext bool // SET TRANSACTION (next transaction only)
	// kill: the statement is a KILL, which the proxy serves at EXECUTE
	// as it does the text one: its id names a client, not a server thread.
	kill *router.Kill
	// diag: the statement reads diagnostics or LAST_INSERT_ID (only
	// those flags of its effects are kept; diag.go).
	diag router.MySQLEffects
}

// stmtKey names a server statement: its text and the database that was
// current when it was prepared. The server binds a statement's tables (and
// DATABASE()) at prepare time, so one text prepared in two databases is two
// statements: a client in orders_0 must never execute, on a pooled
// connection, the statement another client prepared there in app.
type stmtKey struct{ db, query string }

// prepared is what a COM_STMT_PREPARE reply said.
type prepared struct {
	clientID uint32
	srv      srvStmt
}

// maxLongData bounds the long data a client may stage for one execute.
const maxLongData = 64 << 20

// erMaxPreparedStmtCount is ER_MAX_PREPARED_STMT_COUNT_REACHED (42000).
const erMaxPreparedStmtCount = 1461

// stmtRoom refuses one more statement of len(query) bytes to a client at
// max_client_prepared_statements or frontend.MaxClientStmtBytes
// (frontend.StmtCap), as MySQL does at its max_prepared_stmt_count: ERR
// 1461, the session goes on.
func (s *session) stmtRoom(query []byte) error {
	why, figure := s.stmtCap.Room(s.srv.Config().Proxy.MaxClientPreparedStatements, len(s.stmts), false, len(query), func() (held int) {
		for _, cs := range s.stmts {
			held += len(cs.query)
		}
		return held
	})
	var err error
	switch why {
	case frontend.StmtFits:
		return nil
	case frontend.StmtTooMany:
		err = mysqlproto.NewSQLError(erMaxPreparedStmtCount, "42000",
			"Can't create more than max_prepared_stmt_count statements (current value: %d; switchyard's max_client_prepared_statements per connection)", figure)
	default:
		err = mysqlproto.NewSQLError(erMaxPreparedStmtCount, "42000",
			"Can't create more prepared statements: this connection's statements would hold %d bytes of SQL (switchyard's limit is %d)", figure, frontend.MaxClientStmtBytes)
	}
	if s.stmtCap.Refused(config.MySQL) {
		s.log.Warn("prepared statement refused: client over its cap (further refusals for this client are counted, not logged)", "err", err)
	}
	return err
}

// lastStmtID in a command's statement id names the client's last prepared
// statement (MariaDB: COM_STMT_PREPARE and COM_STMT_EXECUTE pipelined,
// Connector/C's mariadb_stmt_execute_direct, Connector/J, the Node.js
// connector).
const lastStmtID = 0xffffffff

func (s *session) prepare(p []byte, seq uint8) error {
	s.lastStmt = 0 // as the server: a failed prepare leaves no last statement
	if err := s.stmtRoom(p[1:]); err != nil {
		return s.sendErr(seq+1, err)
	}
	query := string(p[1:])
	var an *router.Analysis
	a := s.analyzer()
	if a != nil {
		an = a.Analyze(query)
	}
	// Prepared where it would run (a replica for a read, so that the
	// statement sees the same tables), but preparing writes nothing.
	s.setCommand(an, false)
	e, ok := an.MySQLEffects()
	if !ok {
		e = router.ScanMySQL(query)
	}
	if e.Pin != "" {
		s.pin(e.Pin)
	}
	var rl relay
	rl.stmt = &prepared{}
	s.preparing = true
	res, err := s.forwardWith(seq, respPrepare, &rl, func(*backend) ([]byte, error) { return p, nil })
	s.preparing = false
	if err != nil || res.noServer || res.sawErr {
		return err
	}
	st := rl.stmt
	if st.clientID == 0 {
		return nil
	}
	be := s.be
	if be != nil {
		k := stmtKey{be.db, query}
		if old := be.stmts[k]; old != nil {
			be.closeStmt(k)
		}
		be.addStmt(k, st.srv)
	}
	if s.stmts == nil {
		s.stmts = make(map[uint32]*clientStmt)
	}
	cs := &clientStmt{query: query, db: s.db, an: new(router.Verdict), params: st.srv.params, columns: st.srv.columns,
		sets: e.Sets, use: e.HasUse, txNext: e.TxNext,
		diag: router.MySQLEffects{DiagWarn: e.DiagWarn, DiagRows: e.DiagRows, ReadsID: e.ReadsID, SetsID: e.SetsID, Count: e.Count}}
	if a != nil {
		cs.an.Set(a, an)
	}
	if e.Kill != nil {
		k := *e.Kill
		cs.kill = &k
	}
	s.stmts[st.clientID] = cs
	s.lastStmt = st.clientID
	return nil
}

func (b *backend) addStmt(k stmtKey, st srvStmt) {
	if b.stmts == nil {
		b.stmts = make(map[stmtKey]*srvStmt)
	}
	if len(b.stmts) >= maxStmtsPerConn {
		for q := range b.stmts { // map order: an arbitrary victim
			b.closeStmt(q)
			break
		}
	}
	b.stmts[k] = &st
}

// prepareResponse relays a COM_STMT_PREPARE reply, giving the client a
// proxy statement id.
func (r *relay) prepareResponse() error {
	p, err := r.next()
	if err != nil {
		return err
	}
	if len(p) > 0 && p[0] == mysqlproto.HeaderERR && !r.large {
		r.res.sawErr = true
		return r.forward()
	}
	if r.large || len(p) < 12 || p[0] != mysqlproto.HeaderOK {
		return fmt.Errorf("%w: bad COM_STMT_PREPARE reply", mysqlproto.ErrMalformed)
	}
	st := srvStmt{
		id:      binary.LittleEndian.Uint32(p[1:]),
		columns: binary.LittleEndian.Uint16(p[5:]),
		params:  binary.LittleEndian.Uint16(p[7:]),
	}
	r.s.nextStmt++
	if r.s.nextStmt == 0 || r.s.nextStmt == lastStmtID {
		r.s.nextStmt = 1
	}
	cid := r.s.nextStmt
	putUint32(p[1:], cid) // p aliases the read buffer: rewritten in place
	if err := r.forward(); err != nil {
		return err
	}
	deof := r.be.caps&mysqlproto.CapDeprecateEOF != 0
	for _, n := range []uint16{st.params, st.columns} {
		if n == 0 {
			continue
		}
		for i := 0; i < int(n)+boolInt(!deof); i++ {
			if _, err := r.next(); err != nil {
				return err
			}
			if err := r.forward(); err != nil {
				return err
			}
		}
	}
	r.stmt.clientID, r.stmt.srv = cid, st
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ensurePrepared returns be's statement for cs, preparing it there if
// needed, in the database the client prepared it in (as the server would
// have kept it, should the client have changed database since). An ERR
// from the server comes back as *mysqlproto.ServerError.
func (be *backend) ensurePrepared(cs *clientStmt) (*srvStmt, error) {
	k := stmtKey{cs.db, cs.query}
	if k.db == "" {
		k.db = be.db
	}
	if st := be.stmts[k]; st != nil {
		return st, nil
	}
	metricReprepares.Inc()
	if k.db == be.db {
		return be.prepareHere(k)
	}
	// The client has changed database since it prepared: prepare where
	// it did, then come back.
	useDB := func(db string) error {
		err := be.roundTrip(append([]byte{mysqlproto.ComInitDB}, db...))
		var se *mysqlproto.ServerError
		if err != nil && !errors.As(err, &se) {
			return serverIOError{err}
		}
		return err
	}
	cur := be.db
	if err := useDB(k.db); err != nil {
		return nil, err
	}
	st, err := be.prepareHere(k)
	if berr := useDB(cur); berr != nil {
		be.broken = true // left in the other database: never reused
		if err == nil {
			err = berr
		}
	}
	return st, err
}

// prepareHere prepares k.query on be, whose database is k.db.
func (be *backend) prepareHere(k stmtKey) (*srvStmt, error) {
	p := make([]byte, 0, 1+len(k.query))
	p = append(p, mysqlproto.ComStmtPrepare)
	p = append(p, k.query...)
	if _, err := mysqlproto.WritePacket(be.bw, 0, p); err != nil {
		return nil, serverIOError{err}
	}
	if err := be.bw.Flush(); err != nil {
		return nil, serverIOError{err}
	}
	pkt, _, err := be.readPacket()
	if err != nil {
		return nil, serverIOError{err}
	}
	if len(pkt) > 0 && pkt[0] == mysqlproto.HeaderERR {
		e, _ := mysqlproto.DecodeERR(pkt)
		return nil, &mysqlproto.ServerError{Code: e.Code, State: e.State, Message: e.Message}
	}
	if len(pkt) < 12 || pkt[0] != mysqlproto.HeaderOK {
		be.broken = true
		return nil, serverIOError{fmt.Errorf("%w: bad COM_STMT_PREPARE reply", mysqlproto.ErrMalformed)}
	}
	st := srvStmt{
		id:      binary.LittleEndian.Uint32(pkt[1:]),
		columns: binary.LittleEndian.Uint16(pkt[5:]),
		params:  binary.LittleEndian.Uint16(pkt[7:]),
	}
	deof := be.caps&mysqlproto.CapDeprecateEOF != 0
	skip := 0
	for _, n := range []uint16{st.params, st.columns} {
		if n > 0 {
			skip += int(n) + boolInt(!deof)
		}
	}
	for i := 0; i < skip; i++ {
		if _, _, err := be.readPacket(); err != nil {
			return nil, serverIOError{err}
		}
	}
	be.addStmt(k, st)
	return be.stmts[k], nil
}

func (s *session) stmtOf(p []byte) *clientStmt {
	if len(p) < 5 {
		return nil
	}
	return s.stmts[s.stmtID(p)]
}

// stmtID is the client statement id a COM_STMT_* command p names.
func (s *session) stmtID(p []byte) uint32 {
	id := binary.LittleEndian.Uint32(p[1:])
	if id == lastStmtID {
		return s.lastStmt
	}
	return id
}

func (s *session) execute(p []byte, seq uint8) error {
	rs := seq + 1
	cs := s.stmtOf(p)
	if len(p) < 10 {
		return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERUnknownCom, "08S01", "malformed COM_STMT_EXECUTE"))
	}
	if cs == nil {
		return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERUnknownStmtHandler, "HY000",
			"Unknown prepared statement handler (%d) given to mysqld_stmt_execute", binary.LittleEndian.Uint32(p[1:])))
	}
	// Server-side cursors would tie the statement to one connection
	// across commands; without the flag the server sends all rows now,
	// which clients accept (no SERVER_STATUS_CURSOR_EXISTS comes back).
	p[5] &^= 0x07
	pos, types, err := decodeExecute(p, cs.params)
	if err != nil {
		return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERUnknownCom, "08S01", "malformed COM_STMT_EXECUTE"))
	}
	if types != nil {
		cs.types = append(cs.types[:0], types...)
	} else if pos != 0 && cs.types == nil {
		return s.sendErr(rs, mysqlproto.NewSQLError(1210, "HY000", "Incorrect arguments to mysqld_stmt_execute (no parameter types were ever bound)"))
	}
	// Refused before anything else: a refused EXECUTE pins nothing.
	defer func() { cs.long, cs.longSize = nil, 0 }()
	if cs.kill != nil {
		return s.kill(cs.killReq(p), rs)
	}
	if cs.longSize > maxLongData {
		return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERNetPacketTooLarge, "08S01",
			"Parameter of prepared statement which is set through mysql_send_long_data() is longer than switchyard's limit of %d bytes of long data per execute", maxLongData))
	}
	track := len(cs.sets) > 0 && cs.params == 0 && !cs.use
	if (len(cs.sets) > 0 || cs.use) && !track {
		// Bound to parameter values the proxy does not keep: the session
		// keeps its server connection (reset when the session ends).
		s.pin("SET in a prepared statement")
	}
	if cs.txNext && s.hold < 2 {
		s.hold = 2 // this command and the next
	}
	s.txNext = s.txNext || cs.txNext
	s.planDiag(&cs.diag, s.lease != nil, false) // a prelude only: no answer of the proxy's in the binary protocol
	s.setCommand(nil, false)
	if an := s.analyzer(); an != nil && s.needsAnalysis() {
		// Judged again after a reload gave the cluster replicas or other
		// function lists.
		s.setCommand(cs.an.Of(an, cs.query), true)
	}
	build := func(be *backend) ([]byte, error) { return s.executePacket(be, cs, p, pos) }
	if s.sh != nil {
		dp, perr := mysqlproto.DecodeExecParams(p, int(cs.params), cs.types, cs.longParams())
		ep := execParams{dp}
		var params router.Params = ep
		if perr != nil {
			params = malformedParams{}
		}
		sk, rt, r, err := s.shardStatement(cs.query, params)
		if err != nil {
			return s.sendErr(rs, err)
		}
		if r != nil {
			var limitParam func(int) (int64, error)
			if perr == nil {
				limitParam = ep.intParam
			}
			return s.shardMulti(cs.query, sk, rt, r, rs, true, limitParam, func(be *backend, q string) ([]byte, error) {
				if q == cs.query {
					return s.executePacket(be, cs, p, pos)
				}
				rcs := *cs
				rcs.query = q
				return s.executePacket(be, &rcs, p, pos)
			})
		}
		build = s.withBegin(build)
	}
	res, err := s.forwardWith(seq, respQuery, nil, build)
	if err == nil && !res.noServer {
		// One statement: tracked if it is a SET, USE or SET TRANSACTION.
		s.stateChanged(res.stateChanged, len(cs.sets) > 0 || cs.use || cs.txNext)
		if cs.use && s.be != nil {
			s.be.dbLost = true // a prepared USE (its session pinned) is not followed
		}
	}
	if track && err == nil && !res.noServer && !res.sawErr {
		s.addSets(cs.sets)
	}
	return err
}

// killReq is the KILL a prepared KILL statement's EXECUTE p asks for: the
// id of its text, or its parameter's (an integer, or a string of digits).
// An id that cannot be read is 0, which kill refuses as unknown.
func (cs *clientStmt) killReq(p []byte) *killReq {
	k := &killReq{query: cs.kill.Query, id: cs.kill.ID}
	if cs.kill.Param && cs.params == 1 {
		if dp, err := mysqlproto.DecodeExecParams(p, 1, cs.types, cs.longParams()); err == nil {
			if n, err := (execParams{dp}).intParam(1); err == nil {
				k.id = uint64(n)
			}
		}
	}
	return k
}

// executePacket makes a client's COM_STMT_EXECUTE p (new-params-bound flag
// at pos) fit be: the statement prepared there, its id, its long data
// replayed, its parameter types bound.
func (s *session) executePacket(be *backend, cs *clientStmt, p []byte, pos int) ([]byte, error) {
	st, err := be.ensurePrepared(cs)
	if err != nil {
		return nil, err
	}
	for _, lp := range cs.long {
		putUint32(lp[1:], st.id)
		if _, err := mysqlproto.WritePacket(be.bw, 0, lp); err != nil {
			return nil, serverIOError{err}
		}
	}
	putUint32(p[1:], st.id)
	if pos == 0 || p[pos] == 1 {
		return p, nil
	}
	// Types were bound on another connection: bind them here.
	q := append(s.scratch[:0], p[:pos]...)
	q = append(q, 1)
	q = append(q, cs.types...)
	q = append(q, p[pos+1:]...)
	s.scratch = q
	return q, nil
}

// decodeExecute reads the parts of a COM_STMT_EXECUTE the proxy needs,
// for a statement with params parameters: the offset of the
// new-params-bound flag (0 when there are no parameters) and, when the
// flag is set, the parameter types (aliasing p). Values are not decoded.
func decodeExecute(p []byte, params uint16) (pos int, types []byte, err error) {
	if len(p) < 10 || p[0] != mysqlproto.ComStmtExecute {
		return 0, nil, mysqlproto.ErrMalformed
	}
	if params == 0 {
		return 0, nil, nil
	}
	pos = 10 + (int(params)+7)/8
	if len(p) <= pos {
		return 0, nil, mysqlproto.ErrMalformed
	}
	switch p[pos] {
	case 0:
		return pos, nil, nil
	case 1:
		end := pos + 1 + 2*int(params)
		if len(p) < end {
			return 0, nil, mysqlproto.ErrMalformed
		}
		return pos, p[pos+1 : end], nil
	}
	return 0, nil, mysqlproto.ErrMalformed
}

func (s *session) longData(p []byte) error {
	cs := s.stmtOf(p)
	if cs == nil || len(p) < 7 {
		return nil // no reply to this command; the server would ignore it too
	}
	cs.longSize += len(p)
	if cs.longSize > maxLongData {
		// No reply to this command: the EXECUTE that follows says it.
		cs.long = nil
		return nil
	}
	// The bound holds for the client, not only per statement: long data
	// staged for many statements at once counts together. Over it, this
	// statement's is dropped and its EXECUTE refused, as above.
	total := 0
	for _, o := range s.stmts {
		if o.long != nil || o == cs {
			total += o.longSize
		}
	}
	if total > maxLongData {
		metrics.LimitRefusals.WithLabelValues("mysql", "long_data").Inc()
		cs.long, cs.longSize = nil, maxLongData+1
		return nil
	}
	cs.long = append(cs.long, append([]byte(nil), p...))
	return nil
}

func (s *session) closeStmt(p []byte) error {
	if len(p) >= 5 {
		id := s.stmtID(p)
		delete(s.stmts, id)
		if id == s.lastStmt {
			s.lastStmt = 0
		}
	}
	// The server statements stay: the next client preparing the same text
	// on that connection gets them without a round trip... on EXECUTE.
	return nil
}

func (s *session) resetStmt(p []byte, rs uint8) error {
	cs := s.stmtOf(p)
	if cs == nil {
		return s.sendErr(rs, mysqlproto.NewSQLError(mysqlproto.ERUnknownStmtHandler, "HY000", "Unknown prepared statement handler given to mysqld_stmt_reset"))
	}
	cs.long, cs.longSize = nil, 0
	return s.sendOK(rs)
}
