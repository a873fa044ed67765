package mysqlproto

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/scatter"
)

// Result is one command's whole answer, as ReadResult reads it: an OK,
// an ERR, or one result set. Payloads are copies.
type Result struct {
	Cols [][]byte // column definition payloads
	Rows [][]byte // row payloads
	OK   *OK      // for a command without a result set (Info and SessionState dropped)
	ERR  []byte   // an ERR payload
	// Status is the server's status flags after the answer; not known
	// after an ERR.
	Status uint16
}

// ErrLocalInfile: the server asked for a LOAD DATA LOCAL file, which
// ReadResult cannot answer.
var ErrLocalInfile = errors.New("LOAD DATA LOCAL request")

// ReadResult reads one command's whole answer with next (the next
// payload), on a connection with capabilities caps. Each row's size is
// charged to take before it is kept; take's error stops the read there,
// with the rest of the answer unread. Any error leaves the connection out
// of step: next's own, take's, ErrLocalInfile, a malformed answer
// (ErrMalformed) or more than one result.
func ReadResult(next func() ([]byte, error), caps uint32, take func(n int) error) (*Result, error) {
	res := &Result{}
	var arena scatter.RowArena // the rows: many small ones
	p, err := next()
	if err != nil {
		return nil, err
	}
	deof := caps&CapDeprecateEOF != 0
	switch {
	case len(p) == 0:
		return nil, fmt.Errorf("%w: empty packet", ErrMalformed)
	case p[0] == HeaderERR:
		res.ERR = bytes.Clone(p)
		return res, nil
	case p[0] == HeaderOK:
		ok, err := DecodeOK(p, caps)
		if err != nil {
			return nil, err
		}
		ok.Info, ok.SessionState = nil, nil
		res.OK, res.Status = &ok, ok.Status
		return res, oneResult(ok.Status)
	case p[0] == HeaderLocalInfile:
		return nil, ErrLocalInfile
	}
	r := NewReader(p)
	n, _ := r.LenEnc()
	if r.Err() != nil || n == 0 || n > 4096 {
		return nil, fmt.Errorf("%w: bad column count", ErrMalformed)
	}
	for i := uint64(0); i < n; i++ {
		if p, err = next(); err != nil {
			return nil, err
		}
		res.Cols = append(res.Cols, bytes.Clone(p))
	}
	if !deof {
		if _, err = next(); err != nil {
			return nil, err
		}
	}
	for {
		if p, err = next(); err != nil {
			return nil, err
		}
		if len(p) > 0 && IsTerminator(p[0], len(p), deof) {
			res.Status, _ = StatusOf(p, caps)
			return res, oneResult(res.Status)
		}
		if len(p) > 0 && p[0] == HeaderERR {
			res.ERR = bytes.Clone(p)
			return res, nil
		}
		if err := take(len(p)); err != nil {
			return nil, err
		}
		res.Rows = arena.Append(res.Rows, p)
	}
}

func oneResult(status uint16) error {
	if status&StatusMoreResults != 0 {
		return errors.New("several results where one was expected")
	}
	return nil
}
