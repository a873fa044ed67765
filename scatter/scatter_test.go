package scatter_test

import (
	"cmp"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/scatter"
	"github.com/switchyard/switchyard/scatter/scattertest"
)

// textCodec is the simplest codec: a row is its values joined by "|",
// NULL is "\x00". It checks the merge logic apart from any protocol.
type textCodec struct {
	cols []scattertest.Col
	fold bool
}

func (c *textCodec) Columns() int      { return len(c.cols) }
func (c *textCodec) Name(k int) string { return c.cols[k].Name }
func (c *textCodec) FoldNames() bool   { return c.fold }
func (c *textCodec) Split(row []byte) ([][]byte, error) {
	var out [][]byte
	for _, v := range strings.Split(string(row), "|") {
		if v == "\x00" {
			out = append(out, nil)
		} else {
			out = append(out, []byte(v))
		}
	}
	return out, nil
}
func (c *textCodec) Text(int) (scatter.TextColumn, bool) { return scatter.TextColumn{}, false }
func (c *textCodec) Key(k int, v []byte) (scatter.Key, error) {
	switch c.cols[k].Type {
	case scattertest.Int:
		n, err := strconv.ParseInt(string(v), 10, 64)
		return scatter.IntKey(n), err
	case scattertest.Decimal:
		r, _ := new(big.Rat).SetString(string(v))
		return scatter.DecKey(r, v), nil
	}
	return scatter.BytesKey(v), nil
}
func (c *textCodec) Add(k int, x, y []byte) ([]byte, error) {
	rx, _ := new(big.Rat).SetString(string(x))
	ry, _ := new(big.Rat).SetString(string(y))
	if c.cols[k].Type == scattertest.Decimal {
		return []byte(rx.Add(rx, ry).FloatString(2)), nil
	}
	return []byte(rx.Add(rx, ry).RatString()), nil
}
func (c *textCodec) Encode(vals [][]byte) []byte {
	var s []string
	for _, v := range vals {
		if v == nil {
			s = append(s, "\x00")
		} else {
			s = append(s, string(v))
		}
	}
	return []byte(strings.Join(s, "|"))
}

func textRow(_ []scattertest.Col, vals []string) []byte {
	var s []string
	for _, v := range vals {
		if v == scattertest.Null {
			v = "\x00"
		}
		s = append(s, v)
	}
	return []byte(strings.Join(s, "|"))
}

func TestMerge(t *testing.T) {
	for _, fold := range []bool{false, true} {
		t.Run("fold="+strconv.FormatBool(fold), func(t *testing.T) {
			scattertest.Run(t, func(cols []scattertest.Col) scatter.Codec { return &textCodec{cols: cols, fold: fold} }, textRow)
		})
	}
}

func TestBudget(t *testing.T) {
	b := scatter.NewBudget(1000)
	for i := 0; i < 10; i++ {
		if err := b.Take(100 - scatter.RowOverhead); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
	err := b.Take(0)
	se, ok := err.(*scatter.Error)
	if !ok || se.Reason != scatter.ReasonTooLarge || !strings.Contains(se.Msg, "max_scatter_bytes (1000 bytes)") {
		t.Fatalf("past the budget: %v", err)
	}
	if got := scatter.NewBudget(64 << 10).Take(64 << 10); got == nil || !strings.Contains(got.Error(), "(64KiB)") {
		t.Fatalf("64KiB budget: %v", got)
	}
	if b := scatter.NewBudget(0); b.Take(1<<20) != nil {
		t.Fatal("a zero budget is the default, 256MiB")
	}
}

// TestTextKey: PAD SPACE compares the shorter value padded with spaces
// (a tab sorts before the padding); ASCII folding refuses other bytes.
func TestTextKey(t *testing.T) {
	for _, tc := range []struct {
		o    scatter.TextOrder
		a, b string
		want int
	}{
		{scatter.TextBytes, "B", "a", -1},
		{scatter.TextBytes, "a", "a ", -1},
		{scatter.TextPadSpace, "a", "a  ", 0},
		{scatter.TextPadSpace, "a\t", "a", -1},
		{scatter.TextPadSpace, "a", "a b", -1},
		{scatter.TextPadSpace, "a \t", "a", -1},
		{scatter.TextFoldASCII, "a", "B", -1},
		{scatter.TextFoldASCII, "_", "a", 1},
		{scatter.TextFoldASCII, "ab ", "AB", 0},
	} {
		ka, ok1 := scatter.TextKey(tc.o, []byte(tc.a))
		kb, ok2 := scatter.TextKey(tc.o, []byte(tc.b))
		if !ok1 || !ok2 {
			t.Fatalf("%d %q %q: refused", tc.o, tc.a, tc.b)
		}
		if got := ka.Compare(kb); got != tc.want || kb.Compare(ka) != -tc.want {
			t.Errorf("%d: compare(%q, %q) = %d; want %d", tc.o, tc.a, tc.b, got, tc.want)
		}
	}
	if _, ok := scatter.TextKey(scatter.TextFoldASCII, []byte("é")); ok {
		t.Error("non-ASCII text under ASCII folding was not refused")
	}
	if _, ok := scatter.TextKey(scatter.TextUnknown, []byte("a")); ok {
		t.Error("text of an unknown collation was not refused")
	}
}

func TestAddDecimal(t *testing.T) {
	for _, tc := range []struct {
		x, y, want string
		ok         bool
	}{
		{"40", "2", "42", true},
		{"1.50", "2.25", "3.75", true},
		{"1.5", "-2", "-0.5", true},
		{"0.10", "0.2", "0.30", true},
		{"99999999999999999999", "1", "100000000000000000000", true},
		{"1e3", "1", "", false},
		{"3/2", "1", "", false},
		{"abc", "1", "", false},
	} {
		got, ok := scatter.AddDecimal([]byte(tc.x), []byte(tc.y))
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("AddDecimal(%s, %s) = %q, %v", tc.x, tc.y, got, ok)
		}
	}
}

func TestBindPaging(t *testing.T) {
	read := func(n int) (int64, error) { return int64(10 * n), nil }
	s := scatter.Spec{Limit: -1}
	if err := s.BindPaging(2, 0, read); err != nil || s.Limit != 20 {
		t.Errorf("LIMIT $2: %v, limit %d", err, s.Limit)
	}
	for _, tc := range []struct {
		limit, offset int
		read          func(int) (int64, error)
		want          string
	}{
		{0, 1, read, "OFFSET given as a parameter"},
		{1, 0, nil, "needs a prepared statement"},
	} {
		s := scatter.Spec{Limit: -1}
		err := s.BindPaging(tc.limit, tc.offset, tc.read)
		var se *scatter.Error
		if !errors.As(err, &se) || !strings.Contains(se.Msg, tc.want) {
			t.Errorf("BindPaging(%d, %d): %v; want a refusal naming %q", tc.limit, tc.offset, err, tc.want)
		}
	}
}

// TestNumberKey: numbers written as text order as numbers, whatever
// their form; what is not a finite number is not one.
func TestNumberKey(t *testing.T) {
	// Every pair, in both directions: integers (read without big.Rat)
	// against decimals and integers too long for that.
	order := []string{"-1e+20", "-1000000000000000000", "-999999999999999999", "-99999999999999999.9", "-3", "-2.5", "-2.4999",
		"-0.000000000000000001", "0", "0.000000000000000001", "0.10", "0.100000000000000000001", "1", "1.5", "2", "20", "99.99", "100",
		"999999999999999999", "1000000000000000000", "18446744073709551615", "1.5e+20"}
	for i := range order {
		for j := range order {
			a, ok1 := scatter.NumberKey([]byte(order[i]))
			b, ok2 := scatter.NumberKey([]byte(order[j]))
			if want := cmp.Compare(i, j); !ok1 || !ok2 || a.Compare(b) != want {
				t.Errorf("%s vs %s: %v %v %d, want %d", order[i], order[j], ok1, ok2, a.Compare(b), want)
			}
		}
	}
	for _, eq := range [][2]string{{"2", "2.0"}, {"-0", "0.00"}, {"10", "1e1"}, {"007", "7"}, {"-2.50", "-2.5"}, {"0.1", "0.100000000000000000000"}} {
		a, _ := scatter.NumberKey([]byte(eq[0]))
		b, _ := scatter.NumberKey([]byte(eq[1]))
		if a.Compare(b) != 0 || b.Compare(a) != 0 {
			t.Errorf("%s vs %s: %d, %d; want equal", eq[0], eq[1], a.Compare(b), b.Compare(a))
		}
	}
	for _, v := range []string{"NaN", "Infinity", "1/2", "", "x", "-", "--1", "1-"} {
		if _, ok := scatter.NumberKey([]byte(v)); ok {
			t.Errorf("NumberKey(%q) ok", v)
		}
	}
}

// TestNumberKeyMatchesRat: NumberKey's keys compare as the exact numbers
// their text names (big.Rat), whichever of its forms each one takes:
// integers and decimals of up to 18 digits (read without big.Rat), longer
// ones, exponents.
func TestNumberKeyMatchesRat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func() string {
		var b strings.Builder
		if rng.IntN(2) == 0 {
			b.WriteByte('-')
		}
		intDigits := 1 + rng.IntN(20)
		for i := 0; i < intDigits; i++ {
			b.WriteByte(byte('0' + rng.IntN(10)))
		}
		switch rng.IntN(4) {
		case 0, 1:
			b.WriteByte('.')
			for i, n := 0, 1+rng.IntN(20); i < n; i++ {
				b.WriteByte(byte('0' + rng.IntN(10)))
			}
		case 2:
			fmt.Fprintf(&b, "e%+d", rng.IntN(40)-20)
		}
		return b.String()
	}
	for range 50000 {
		x, y := gen(), gen()
		if rng.IntN(8) == 0 {
			y = x // equal texts
		}
		a, ok1 := scatter.NumberKey([]byte(x))
		b, ok2 := scatter.NumberKey([]byte(y))
		rx, _ := new(big.Rat).SetString(x)
		ry, _ := new(big.Rat).SetString(y)
		if !ok1 || !ok2 {
			t.Fatalf("NumberKey(%q) %v, NumberKey(%q) %v", x, ok1, y, ok2)
		}
		if got, want := a.Compare(b), rx.Cmp(ry); got != want {
			t.Fatalf("%s vs %s: %d, want %d", x, y, got, want)
		}
	}
}

// RowArena's rows are the rows as they were, own no byte of each other
// (appending to one never changes the next) nor of the source, and stay
// in order.
func TestRowArena(t *testing.T) {
	var a scatter.RowArena
	src := make([]byte, 20<<10)
	var got [][]byte
	var want []string
	for i := 0; i < 3000; i++ {
		n := i % 300
		if i%1000 == 999 {
			n = len(src) // over arenaAlone: a copy of its own
		}
		for j := range n {
			src[j] = byte(i + j)
		}
		got = a.Append(got, src[:n])
		want = append(want, string(src[:n]))
	}
	for j := range src {
		src[j] = 0
	}
	for i := range got {
		_ = append(got[i], 0xff) // must not write into the next row
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if string(got[i]) != want[i] {
			t.Fatalf("row %d changed", i)
		}
	}
}
