package pgwire

// The relay's books of what the server owes: one entry per message sent
// that the server answers, in order. They let the pump drop the replies to
// messages the proxy injected (a Parse for a statement the connection
// lacked, a Close for an evicted one) and synthesize the replies to client
// messages the proxy did not send (a Parse of a statement already prepared
// there, a Close of a client's statement name), each at the position the
// client expects it. An entry may also swap the server's reply for one the
// proxy words (a refused proxy statement name). During COPY FROM STDIN the
// server owes nothing for a Sync (copyInLocked).

type expectAct uint8

const (
	actRelay   expectAct = iota // the client asked; its reply is relayed
	actDrop                     // the proxy injected it; its reply is dropped
	actSynth                    // never sent; the proxy answers in its place
	actCapture                  // the proxy reads back settings; replies dropped, values kept
	// actMark is no message: a CopyDone or CopyFail the client sent while
	// the server may be in COPY FROM STDIN, so that the Syncs sent before
	// it can be told apart from those after (see copyInLocked).
	actMark
	// actPosition: the proxy reads the primary's position after a write
	// (causal.go); replies dropped, the position kept.
	actPosition
)

type expect struct {
	kind  byte // the message sent: 'P', 'B', 'D', 'E', 'C', 'S', 'Q' or 'F'
	act   expectAct
	synth byte         // for actSynth: '1' ParseComplete or '3' CloseComplete
	msg   []byte       // for actSynth: a whole message to send instead (a sharding refusal)
	g     *gstmt       // P: the statement being prepared; C with evict: the one being closed
	ud    *unnamedDesc // D of the unnamed statement: where its parameter types go
	evict bool
	// actCapture: the settings read back, and the values found
	names []string
	vals  [][2]string
	all   bool
	auth  bool // with all: DISCARD ALL (role and session_authorization reset too)
	// failed: the request before the read-back failed, so its RESET ALL
	// was rolled back with it, or will be (failedRequestLocked).
	failed bool
	// swap: the first server message of type swap booked against this
	// entry reaches the client as swapMsg instead (an error the proxy
	// words, a command tag for a statement it substituted).
	swap    byte
	swapMsg []byte
	// cname: a Query rewritten from DEALLOCATE of the client's statement
	// name cname, or the Execute of such an unnamed statement; g is the
	// global statement it names. For a Parse: the
	// client's name it binds to g, dropped if the server refuses or
	// skips the Parse.
	cname string
	// chain: a Query or Execute of COMMIT or ROLLBACK AND CHAIN, whose
	// command tag ends the transaction though the status stays 'T'.
	chain bool
}

// expectQueue is a FIFO that reuses its storage: no allocation per message
// once it has grown to the depth of the client's pipelines.
type expectQueue struct {
	buf  []expect
	head int
}

//go:noinline
func (q *expectQueue) push(e expect) { q.buf = append(q.buf, e) }

func (q *expectQueue) len() int { return len(q.buf) - q.head }

func (q *expectQueue) front() *expect {
	if q.head < len(q.buf) {
		return &q.buf[q.head]
	}
	return nil
}

func (q *expectQueue) back() *expect {
	if q.head < len(q.buf) {
		return &q.buf[len(q.buf)-1]
	}
	return nil
}

func (q *expectQueue) pop() {
	q.buf[q.head] = expect{}
	q.head++
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	}
}

// removeAt removes the i-th entry from the front (rare: COPY bookkeeping).
func (q *expectQueue) removeAt(i int) {
	j := q.head + i
	copy(q.buf[j:], q.buf[j+1:])
	q.buf[len(q.buf)-1] = expect{}
	q.buf = q.buf[:len(q.buf)-1]
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	}
}

// at returns the i-th entry from the front.
func (q *expectQueue) at(i int) *expect { return &q.buf[q.head+i] }

func (q *expectQueue) reset() {
	clear(q.buf)
	q.buf, q.head = q.buf[:0], 0
}
