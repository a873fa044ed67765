package scatter

import (
	"bytes"
	"cmp"
	"fmt"
	"math/big"
	"math/bits"
	"slices"
	"strings"
	"sync/atomic"
)

// DefaultMaxBytes is max_scatter_bytes when the config leaves it out.
const DefaultMaxBytes = 256 << 20

// RowOverhead is what a Budget charges for each row on top of its bytes:
// the slice header and allocation that hold it. Without it a result of
// many tiny rows could take many times the budget.
const RowOverhead = 32

// Reasons of an Error, also the "reason" label of the refusal metric.
const (
	ReasonTooLarge = "max_scatter_bytes" // the rows exceed the budget
	ReasonMerge    = "merge"             // the rows cannot be merged as one database would
)

// Error is a refusal of a scatter, for the client.
type Error struct {
	Reason string // ReasonTooLarge or ReasonMerge
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func mergeError(format string, args ...any) *Error {
	return &Error{Reason: ReasonMerge, Msg: fmt.Sprintf(format, args...)}
}

// Budget bounds the bytes of rows one scatter holds. Safe for concurrent
// use: the shards of a parallel read charge one budget.
type Budget struct {
	max  int64
	used atomic.Int64
}

// NewBudget returns a budget of max bytes (DefaultMaxBytes when max <= 0).
func NewBudget(max int64) *Budget {
	if max <= 0 {
		max = DefaultMaxBytes
	}
	return &Budget{max: max}
}

// Take charges one row of n bytes. Past the budget it returns an *Error
// with ReasonTooLarge; the caller must stop holding rows (and the rest of
// that shard's answer is unread: its server connection cannot be reused
// as it is).
func (b *Budget) Take(n int) error {
	if b.used.Add(int64(n)+RowOverhead) > b.max {
		return &Error{Reason: ReasonTooLarge, Msg: fmt.Sprintf(
			"the rows of a SELECT run on several shards exceed max_scatter_bytes (%s), which the proxy will not hold to merge; add the shard key, a LIMIT, or raise max_scatter_bytes",
			FormatBytes(b.max))}
	}
	return nil
}

// Used is what the rows charged so far take.
func (b *Budget) Used() int64 { return b.used.Load() }

// FormatBytes writes n as the config takes it: "256MiB", "64KiB", "1000".
func FormatBytes(n int64) string {
	for _, u := range []struct {
		s string
		n int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.n && n%u.n == 0 {
			return fmt.Sprintf("%d%s", n/u.n, u.s)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// AggFunc is an aggregate whose per-shard answers combine into one.
type AggFunc uint8

const (
	Count AggFunc = iota + 1
	Sum
	Min
	Max
)

// Agg is one aggregate output column.
type Agg struct {
	Func AggFunc
	Col  int // 0-based output column
}

// Order is one ORDER BY item.
type Order struct {
	// Col is the 0-based output column, or -1: look Name up among the
	// result's columns (a * before it hides the position).
	Col  int
	Name string
	Desc bool
	// NullsFirst is where NULLs go in the output, whatever the direction.
	NullsFirst bool
}

// Spec says how to merge.
type Spec struct {
	Order []Order // sort by these; empty: concatenate
	Aggs  []Agg   // fold one-row answers into one row; excludes Order
	// Limit < 0: none. Offset rows are skipped after the merge: each
	// shard must have been asked for Limit+Offset rows without offset.
	Limit, Offset int64
}

// BindPaging completes a read's Spec with its paging parameters: a LIMIT
// given as bind parameter limitParam (1-based; 0: none) is read with read
// (nil: the request has no parameters, and it is refused); an OFFSET given
// as a parameter is refused, because each shard must be asked for
// LIMIT+OFFSET rows in the statement's text, where a parameter cannot be
// folded.
func (s *Spec) BindPaging(limitParam, offsetParam int, read func(n int) (int64, error)) error {
	if offsetParam > 0 {
		return mergeError("OFFSET given as a parameter in a SELECT run on several shards is not supported: write it as a literal")
	}
	if limitParam == 0 {
		return nil
	}
	if read == nil {
		return mergeError("LIMIT given as a parameter in a SELECT run on several shards needs a prepared statement")
	}
	n, err := read(limitParam)
	s.Limit = n
	return err
}

// Codec is a protocol's row format for one result (its columns known).
type Codec interface {
	// Columns is the number of columns of the result.
	Columns() int
	// Name is column k's name, as the server reported it.
	Name(k int) string
	// FoldNames: column names match case-insensitively (MySQL). Where
	// the SQL parser has already folded unquoted names as the server
	// does (PostgreSQL), names match exactly.
	FoldNames() bool
	// Split cuts a row into its values, nil for NULL. The values may
	// alias row.
	Split(row []byte) ([][]byte, error)
	// Text says whether column k holds text in a collation, and where
	// it comes from: its values order as the collation says, which Run
	// looks up (textorder.go); Key is not asked about them.
	Text(k int) (TextColumn, bool)
	// Key reads the non-NULL value v of column k as it orders. An error
	// (an *Error or the protocol's own) means the proxy cannot order it
	// as the server would.
	Key(k int, v []byte) (Key, error)
	// Add adds two COUNT or SUM values of column k, in its encoding.
	Add(k int, x, y []byte) ([]byte, error)
	// Encode makes a row of values split by Split.
	Encode(vals [][]byte) []byte
}

// Key is a value as the merge orders it. Keys of the same kind compare
// by value; otherwise by the bytes they were made with.
type Key struct {
	kind uint8
	i    int64
	u    uint64
	f    float64
	r    *big.Rat
	b    []byte
}

const (
	kInt = iota + 1
	kUint
	kFloat
	kDec
	kBytes
	kPad
	kFixed // NumberKey's decimal of at most 18 digits: i / 10^u
)

// IntKey orders as a signed integer.
func IntKey(i int64) Key { return Key{kind: kInt, i: i} }

// UintKey orders as an unsigned integer.
func UintKey(u uint64) Key { return Key{kind: kUint, u: u} }

// FloatKey orders as a float.
func FloatKey(f float64) Key { return Key{kind: kFloat, f: f} }

// DecKey orders as an exact number; raw is its text, for comparisons
// with keys of other kinds.
func DecKey(r *big.Rat, raw []byte) Key { return Key{kind: kDec, r: r, b: raw} }

// NumberKey reads a number written as text ("42", "-1.50", "1e+20", as
// both protocols' text formats write integers, decimals and floats) as
// an exact number; ok is false when v is not one ("NaN", "Infinity").
func NumberKey(v []byte) (k Key, ok bool) {
	if m, scale, ok := smallDecimal(v); ok {
		// Most numbers are integers or decimals of a few digits: no
		// big.Rat, whose parse and normalization cost some 40
		// allocations and microseconds per value (a scatter ordered by a
		// numeric column spent 8-16 us a row on it). Compare orders
		// these keys against each other and against decimal ones
		// exactly.
		if scale == 0 {
			return Key{kind: kInt, i: m, b: v}, true
		}
		return Key{kind: kFixed, i: m, u: uint64(scale), b: v}, true
	}
	r, ok := new(big.Rat).SetString(string(v))
	if !ok || bytes.ContainsRune(v, '/') {
		return Key{}, false
	}
	return DecKey(r, v), true
}

// smallDecimal reads an optional minus sign, 1 to 18 decimal digits and
// at most one decimal point among them (digits on both sides when there
// is one, as the servers write them): the number m / 10^scale, m always
// fitting an int64.
func smallDecimal(v []byte) (m int64, scale int, ok bool) {
	neg := len(v) > 0 && v[0] == '-'
	d := v
	if neg {
		d = v[1:]
	}
	digits, point := 0, -1
	for i, c := range d {
		switch {
		case c >= '0' && c <= '9':
			digits++
			m = m*10 + int64(c-'0')
		case c == '.' && point < 0 && i > 0 && i < len(d)-1:
			point = i
		default:
			return 0, 0, false
		}
		if digits > 18 {
			return 0, 0, false
		}
	}
	if digits == 0 {
		return 0, 0, false
	}
	if point >= 0 {
		scale = len(d) - 1 - point
	}
	if neg {
		m = -m
	}
	return m, scale, true
}

// pow10 are the powers of ten up to 10^19, which fit a uint64.
var pow10 = func() (p [20]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// fixedOf reads k as m / 10^scale when it is an integer or a small
// decimal.
func (k Key) fixedOf() (m int64, scale uint64, ok bool) {
	switch k.kind {
	case kInt:
		return k.i, 0, true
	case kFixed:
		return k.i, k.u, true
	}
	return 0, 0, false
}

// cmpFixed compares m1 / 10^s1 and m2 / 10^s2 (scales of at most 18)
// exactly, in 128 bits.
func cmpFixed(m1 int64, s1 uint64, m2 int64, s2 uint64) int {
	sg1, sg2 := cmp.Compare(m1, 0), cmp.Compare(m2, 0)
	if sg1 != sg2 || sg1 == 0 {
		return cmp.Compare(sg1, sg2)
	}
	abs := func(m int64) uint64 {
		if m < 0 {
			return uint64(-(m + 1)) + 1
		}
		return uint64(m)
	}
	var ahi, bhi uint64
	alo, blo := abs(m1), abs(m2)
	if s1 < s2 {
		ahi, alo = bits.Mul64(alo, pow10[s2-s1])
	} else if s2 < s1 {
		bhi, blo = bits.Mul64(blo, pow10[s1-s2])
	}
	c := cmp.Compare(ahi, bhi)
	if c == 0 {
		c = cmp.Compare(alo, blo)
	}
	return c * sg1
}

// rat is k as an exact number (kInt, kFixed or kDec).
func (k Key) rat() *big.Rat {
	if k.kind == kDec {
		return k.r
	}
	m, scale, _ := k.fixedOf()
	return new(big.Rat).SetFrac(big.NewInt(m), new(big.Int).SetUint64(pow10[scale]))
}

// BytesKey orders as bytes.
func BytesKey(b []byte) Key { return Key{kind: kBytes, b: b} }

// Compare orders two keys.
func (a Key) Compare(b Key) int {
	if a.kind == b.kind {
		switch a.kind {
		case kInt:
			return cmp3(a.i < b.i, a.i > b.i)
		case kUint:
			return cmp3(a.u < b.u, a.u > b.u)
		case kFloat:
			return cmp3(a.f < b.f, a.f > b.f)
		case kDec:
			return a.r.Cmp(b.r)
		case kFixed:
			return cmpFixed(a.i, a.u, b.i, b.u)
		case kPad:
			return padCompare(a.b, b.b)
		}
	}
	// NumberKey's integers, small decimals and other decimals, in one
	// column ("1", "1.5" and "1e+20" of a float column).
	if m1, s1, ok1 := a.fixedOf(); ok1 {
		if m2, s2, ok2 := b.fixedOf(); ok2 {
			return cmpFixed(m1, s1, m2, s2)
		}
	}
	if a.exact() && b.exact() {
		return a.rat().Cmp(b.rat())
	}
	return bytes.Compare(a.b, b.b)
}

// exact reports whether k is an exact number: an integer or a decimal.
func (k Key) exact() bool { return k.kind == kInt || k.kind == kFixed || k.kind == kDec }

// padCompare compares as PAD SPACE collations do: the shorter value as if
// padded with spaces. Where one is a prefix of the other, the first byte
// of the rest that is not a space decides: a tab or newline sorts before
// the padding, so 'a\t' < 'a'.
func padCompare(a, b []byte) int {
	n := min(len(a), len(b))
	if d := bytes.Compare(a[:n], b[:n]); d != 0 {
		return d
	}
	sign := 1
	rest := b[n:]
	if len(a) > n {
		rest, sign = a[n:], -1
	}
	for _, ch := range rest {
		switch {
		case ch < ' ':
			return sign
		case ch > ' ':
			return -sign
		}
	}
	return 0
}

// TextOrder is how a server orders the text of one column, as far as the
// proxy can order it the same way. A codec learns it from the column's
// collation (which the wire package looks up: neither protocol's row
// description says it reliably) and orders text through TextKey.
type TextOrder uint8

const (
	// TextUnknown: the collation is not known, or the proxy cannot
	// reproduce it (a locale, ICU, a UCA or case-sensitive
	// non-binary collation). Text of such a column is never compared:
	// the merge is refused.
	TextUnknown TextOrder = iota
	// TextBytes: the bytes order (PostgreSQL C and POSIX, MySQL binary
	// strings and the NO PAD _bin collations).
	TextBytes
	// TextPadSpace: the bytes order, the shorter value padded with
	// spaces (MySQL's PAD SPACE _bin collations, PostgreSQL char(n)).
	TextPadSpace
	// TextFoldASCII: ASCII letters compare as their upper case, PAD
	// SPACE (MySQL's *_general_ci and latin1_swedish_ci, whose weights
	// for ASCII are its upper case). A value with a byte beyond ASCII
	// cannot be compared: its weight is the server's table.
	TextFoldASCII
)

// TextKey reads a value of a text column ordered as o. ok is false when
// the proxy cannot order it as the server does: the merge must be
// refused, never answered in another order.
func TextKey(o TextOrder, v []byte) (k Key, ok bool) {
	switch o {
	case TextBytes:
		return BytesKey(v), true
	case TextPadSpace:
		return Key{kind: kPad, b: v}, true
	case TextFoldASCII:
		for _, ch := range v {
			if ch >= 0x80 {
				return Key{}, false
			}
		}
		return Key{kind: kPad, b: bytes.ToUpper(v)}, true
	}
	return Key{}, false
}

// Compared lists the output columns a merge of s compares (ORDER BY and
// MIN/MAX columns): those whose text order the wire package must know.
func (s *Spec) Compared(c Codec) []int {
	var out []int
	for _, o := range s.Order {
		if k, err := column(o, c); err == nil && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for _, a := range s.Aggs {
		if (a.Func == Min || a.Func == Max) && a.Col >= 0 && a.Col < c.Columns() && !slices.Contains(out, a.Col) {
			out = append(out, a.Col)
		}
	}
	return out
}

func cmp3(less, more bool) int {
	switch {
	case less:
		return -1
	case more:
		return 1
	}
	return 0
}

// Merge merges the rows of every shard (each shard's in its own order,
// one after the other) as s says.
func Merge(s *Spec, c Codec, rows [][]byte) ([][]byte, error) {
	if s.Limit == 0 {
		// LIMIT 0 (which every shard was asked for too): no rows, even
		// of an aggregate, as from one server.
		return nil, nil
	}
	switch {
	case len(s.Aggs) > 0:
		row, err := combine(s.Aggs, c, rows)
		if err != nil {
			return nil, err
		}
		rows = [][]byte{row}
	case len(s.Order) > 0:
		var err error
		if rows, err = sortRows(s.Order, c, rows); err != nil {
			return nil, err
		}
	}
	if s.Offset > 0 {
		rows = rows[min(s.Offset, int64(len(rows))):]
	}
	if s.Limit >= 0 && int64(len(rows)) > s.Limit {
		rows = rows[:s.Limit]
	}
	return rows, nil
}

// column resolves an ORDER BY item to its output column.
func column(o Order, c Codec) (int, error) {
	k := o.Col
	if k < 0 {
		for j := range c.Columns() {
			n := c.Name(j)
			if n == o.Name || c.FoldNames() && strings.EqualFold(n, o.Name) {
				if k >= 0 {
					return -1, mergeError("ORDER BY %s is ambiguous in the merged result", o.Name)
				}
				k = j
			}
		}
	}
	if k < 0 || k >= c.Columns() {
		name := o.Name
		if name == "" {
			name = fmt.Sprint(o.Col + 1)
		}
		return -1, mergeError("ORDER BY %s: the column is not in the result, so the shards' rows cannot be merged", name)
	}
	return k, nil
}

func sortRows(order []Order, c Codec, rows [][]byte) ([][]byte, error) {
	idx := make([]int, len(order))
	for j, o := range order {
		k, err := column(o, c)
		if err != nil {
			return nil, err
		}
		idx[j] = k
	}
	type sortKey struct {
		k    Key
		null bool
	}
	// Row i's keys are keys[i*n : (i+1)*n]: one allocation for all rows.
	n := len(idx)
	keys := make([]sortKey, len(rows)*n)
	for i, r := range rows {
		vals, err := c.Split(r)
		if err != nil {
			return nil, err
		}
		rk := keys[i*n : (i+1)*n]
		for j, k := range idx {
			if k >= len(vals) || vals[k] == nil {
				rk[j].null = true
				continue
			}
			if rk[j].k, err = c.Key(k, vals[k]); err != nil {
				return nil, err
			}
		}
	}
	perm := make([]int, len(rows))
	for i := range perm {
		perm[i] = i
	}
	slices.SortStableFunc(perm, func(a, b int) int {
		for j, o := range order {
			x, y := keys[a*n+j], keys[b*n+j]
			switch {
			case x.null && y.null:
				continue
			case x.null || y.null:
				if x.null == o.NullsFirst {
					return -1
				}
				return 1
			}
			d := x.k.Compare(y.k)
			if o.Desc {
				d = -d
			}
			if d != 0 {
				return d
			}
		}
		return 0
	})
	sorted := make([][]byte, len(rows))
	for i, p := range perm {
		sorted[i] = rows[p]
	}
	return sorted, nil
}

// combine folds the one-row answers of the shards into one row.
func combine(aggs []Agg, c Codec, rows [][]byte) ([]byte, error) {
	if len(rows) == 0 {
		return nil, mergeError("aggregate SELECT: no shard returned a row")
	}
	acc, err := c.Split(rows[0])
	if err != nil {
		return nil, err
	}
	for _, r := range rows[1:] {
		vals, err := c.Split(r)
		if err != nil {
			return nil, err
		}
		for _, a := range aggs {
			k := a.Col
			if k < 0 || k >= len(acc) || k >= len(vals) {
				return nil, mergeError("aggregate column %d is not in the result", k+1)
			}
			x, y := acc[k], vals[k]
			switch {
			case y == nil:
				continue
			case x == nil:
				acc[k] = y
				continue
			}
			switch a.Func {
			case Count, Sum:
				if acc[k], err = c.Add(k, x, y); err != nil {
					return nil, err
				}
			case Min, Max:
				kx, err := c.Key(k, x)
				if err != nil {
					return nil, err
				}
				ky, err := c.Key(k, y)
				if err != nil {
					return nil, err
				}
				if d := ky.Compare(kx); d < 0 && a.Func == Min || d > 0 && a.Func == Max {
					acc[k] = y
				}
			}
		}
	}
	return c.Encode(acc), nil
}

// AddDecimal adds two decimal numbers written as text (the answers of
// COUNT or SUM from two shards: "42", "-1.50"), keeping as many decimals
// as the more precise of them, as a single server's SUM would. ok is false
// when either is not a decimal number (an exponent, "NaN", a fraction).
func AddDecimal(x, y []byte) (sum []byte, ok bool) {
	rx, ok1 := new(big.Rat).SetString(string(x))
	ry, ok2 := new(big.Rat).SetString(string(y))
	if !ok1 || !ok2 || bytes.ContainsAny(x, "eE/") || bytes.ContainsAny(y, "eE/") {
		return nil, false
	}
	r := rx.Add(rx, ry)
	scale := max(decimals(x), decimals(y))
	if scale == 0 && r.IsInt() {
		return []byte(r.Num().String()), true
	}
	return []byte(r.FloatString(scale)), true
}

func decimals(v []byte) int {
	if i := bytes.IndexByte(v, '.'); i >= 0 {
		return len(v) - i - 1
	}
	return 0
}

// RowArena keeps a shard's rows: it copies them into shared chunks (a
// scatter holds many small rows, and one allocation each, rounded up to
// its size class, costs time and about a seventh more memory) and grows
// the list of them by doubling (append grows a long slice by a quarter,
// allocating five times the final list on the way). A row stays valid
// while any row of its chunk is referenced. The zero value is ready to
// use.
type RowArena struct{ buf []byte }

// Append appends a copy of p to rows.
func (a *RowArena) Append(rows [][]byte, p []byte) [][]byte {
	if len(rows) == cap(rows) {
		rows = slices.Grow(rows, len(rows)+64)
	}
	return append(rows, a.clone(p))
}

const (
	arenaChunk = 64 << 10
	arenaAlone = 16 << 10 // rows this large get an allocation of their own
)

// clone returns a copy of p.
func (a *RowArena) clone(p []byte) []byte {
	if len(p) > arenaAlone {
		return bytes.Clone(p)
	}
	if cap(a.buf)-len(a.buf) < len(p) {
		a.buf = make([]byte, 0, arenaChunk)
	}
	n := len(a.buf)
	a.buf = append(a.buf, p...)
	return a.buf[n:len(a.buf):len(a.buf)]
}
