package config

import (
	"cmp"
	"fmt"
	"slices"
)

// Error is one problem found in a config file. Load and Parse report every
// problem they find, each an *Error, joined with errors.Join, so an operator
// fixes the whole file in one pass instead of one line per reload.
type Error struct {
	File string // the path given to Load or Parse; "" when none was given
	Line int    // 1-based; 0 when the problem has no line of its own
	Key  string // the offending key, e.g. "clusters[1].primary"; "" for syntax errors
	Msg  string
}

func (e *Error) Error() string {
	var where string
	switch {
	case e.File != "" && e.Line > 0:
		where = fmt.Sprintf("%s:%d: ", e.File, e.Line)
	case e.File != "":
		where = e.File + ": "
	case e.Line > 0:
		where = fmt.Sprintf("line %d: ", e.Line)
	}
	if e.Key != "" {
		return where + e.Key + ": " + e.Msg
	}
	return where + e.Msg
}

// sortErrors orders problems as they appear in the file, which is how an
// operator reads them; problems without a line go last.
func sortErrors(errs []*Error) {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		la, lb := a.Line, b.Line
		if la == 0 {
			la = int(^uint(0) >> 1)
		}
		if lb == 0 {
			lb = int(^uint(0) >> 1)
		}
		return cmp.Compare(la, lb)
	})
}
