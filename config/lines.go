package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// lineIndex knows the line of every key, table header and array element of a
// TOML file, under the paths that error messages use
// ("clusters[1].shards[0].range[1]").
//
// BurntSushi/toml keeps key positions private, and keys them without array
// indices, so every [[clusters]] would share one line. Hence this small
// scanner. It only ever reads text that toml.Decode accepted, so it need not
// diagnose anything, but it must not panic or loop on any input.
type lineIndex struct {
	lines    map[string]int
	explicit map[string]bool // written out, not only implied by a longer key
	keys     []indexedKey    // keys and tables, each once, in file order
}

type indexedKey struct {
	path string // with array indices
	key  string // toml.Key.String() of the path without indices, as MetaData reports it
	line int
}

// lineOf returns the line of path, or of its closest ancestor that is
// written in the file (a missing key is reported at its table's header), or
// 0 when there is none.
func (x *lineIndex) lineOf(path string) int {
	for path != "" {
		if n, ok := x.lines[path]; ok {
			return n
		}
		path = parentPath(path)
	}
	return 0
}

// parentPath strips the last ".key" or "[n]" from path, minding quoted keys.
func parentPath(path string) string {
	cut := 0
	inQuote := false
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case (c == '.' || c == '[') && !inQuote:
			cut = i
		}
	}
	return path[:cut]
}

// joinPath appends one key to a path, quoting it the way toml.Key does so
// that paths of odd keys stay unambiguous.
func joinPath(base, key string) string {
	k := toml.Key{key}.String()
	if base == "" {
		return k
	}
	return base + "." + k
}

func indexPath(base string, i int) string { return base + "[" + strconv.Itoa(i) + "]" }

func indexLines(src []byte) *lineIndex {
	s := &lineScanner{
		src:  src,
		line: 1,
		x:    &lineIndex{lines: map[string]int{}, explicit: map[string]bool{}},
		aot:  map[string]int{},
	}
	s.run()
	return s.x
}

type lineScanner struct {
	src  []byte
	i    int
	line int
	x    *lineIndex
	// aot counts the tables of each array of tables seen so far, keyed by
	// the indexed path of the array ("clusters", "clusters[2].shards"), so
	// that a header refers to the last element, as TOML says.
	aot map[string]int
}

func (s *lineScanner) eof() bool { return s.i >= len(s.src) }

func (s *lineScanner) peek(off int) byte {
	if j := s.i + off; j >= 0 && j < len(s.src) {
		return s.src[j]
	}
	return 0
}

func (s *lineScanner) next() {
	if s.i < len(s.src) {
		if s.src[s.i] == '\n' {
			s.line++
		}
		s.i++
	}
}

func (s *lineScanner) skipSpace() {
	for c := s.peek(0); !s.eof() && (c == ' ' || c == '\t' || c == '\r'); c = s.peek(0) {
		s.next()
	}
}

func (s *lineScanner) skipComment() {
	if s.peek(0) == '#' {
		for !s.eof() && s.peek(0) != '\n' {
			s.next()
		}
	}
}

// skipBlank skips spaces, comments and newlines.
func (s *lineScanner) skipBlank() {
	for !s.eof() {
		s.skipSpace()
		s.skipComment()
		if s.peek(0) != '\n' {
			return
		}
		s.next()
	}
}

// skipLine consumes the rest of the line, and always at least one byte, so
// that the main loop makes progress on input it does not understand.
func (s *lineScanner) skipLine() {
	for !s.eof() && s.peek(0) != '\n' {
		s.next()
	}
	s.next()
}

// record notes the line of path. A path written out (explicit) wins over
// one only implied by a longer key or header; parts, the path without
// indices, is nil for array elements, which are no keys.
func (s *lineScanner) record(path string, parts []string, line int, explicit bool) {
	_, seen := s.x.lines[path]
	if !seen && parts != nil {
		s.x.keys = append(s.x.keys, indexedKey{path: path, key: toml.Key(parts).String(), line: line})
	}
	if explicit && !s.x.explicit[path] {
		s.x.explicit[path] = true
		s.x.lines[path] = line
	} else if !seen {
		s.x.lines[path] = line
	}
}

func (s *lineScanner) run() {
	var table string // indexed path of the current table
	var tableParts []string
	for {
		s.skipBlank()
		if s.eof() {
			return
		}
		line := s.line
		if s.peek(0) == '[' {
			array := s.peek(1) == '['
			s.next()
			if array {
				s.next()
			}
			keys := s.readKey()
			table, tableParts = s.header(keys, array, line)
		} else {
			keys := s.readKey()
			if len(keys) == 0 {
				s.skipLine()
				continue
			}
			s.skipSpace()
			if s.peek(0) == '=' {
				s.next()
			}
			s.keyValue(table, tableParts, keys, line)
		}
		// The rest of the line is a closing bracket, spaces or a comment.
		s.skipLine()
	}
}

// header resolves a table header to its indexed path and records it.
func (s *lineScanner) header(keys []string, array bool, line int) (string, []string) {
	path := ""
	for j, k := range keys {
		path = joinPath(path, k)
		if j == len(keys)-1 && array {
			s.record(path, keys, line, false)
			n := s.aot[path]
			s.aot[path] = n + 1
			path = indexPath(path, n)
		} else if n := s.aot[path]; n > 0 {
			path = indexPath(path, n-1)
		}
		s.record(path, keys[:j+1], line, j == len(keys)-1)
	}
	return path, keys
}

func (s *lineScanner) keyValue(base string, baseParts, keys []string, line int) {
	path := base
	parts := append([]string(nil), baseParts...)
	for j, k := range keys {
		path = joinPath(path, k)
		parts = append(parts, k)
		s.record(path, parts, line, j == len(keys)-1)
	}
	s.skipSpace()
	s.value(path, parts)
}

func (s *lineScanner) value(path string, parts []string) {
	switch s.peek(0) {
	case '"', '\'':
		s.skipString()
	case '[':
		s.next()
		for k := 0; ; {
			s.skipBlank()
			switch s.peek(0) {
			case 0:
				if s.eof() {
					return
				}
			case ']':
				s.next()
				return
			case ',':
				s.next()
				continue
			}
			elem := indexPath(path, k)
			s.record(elem, nil, s.line, false)
			s.value(elem, parts)
			k++
		}
	case '{':
		s.next()
		for {
			s.skipBlank()
			switch s.peek(0) {
			case 0:
				if s.eof() {
					return
				}
			case '}':
				s.next()
				return
			case ',':
				s.next()
				continue
			}
			line := s.line
			keys := s.readKey()
			if len(keys) == 0 {
				s.next()
				continue
			}
			s.skipSpace()
			if s.peek(0) == '=' {
				s.next()
			}
			s.keyValue(path, parts, keys, line)
		}
	default:
		// Numbers, booleans and dates (which may contain a space).
		start := s.i
		for !s.eof() && !strings.ContainsRune(",]}#\n", rune(s.peek(0))) {
			s.next()
		}
		if s.i == start {
			s.next()
		}
	}
}

// skipString skips one string of any of TOML's four kinds and returns its
// raw content (escapes not interpreted).
func (s *lineScanner) skipString() string {
	q := s.peek(0)
	basic := q == '"'
	if s.peek(1) == q && s.peek(2) == q {
		s.next()
		s.next()
		s.next()
		start := s.i
		for !s.eof() {
			if basic && s.peek(0) == '\\' {
				s.next()
				s.next()
				continue
			}
			if s.peek(0) == q && s.peek(1) == q && s.peek(2) == q {
				end := s.i
				s.next()
				s.next()
				s.next()
				// Up to two more quotes belong to the content: """a""""".
				for extra := 0; extra < 2 && s.peek(0) == q; extra++ {
					end++
					s.next()
				}
				return string(s.src[start:end])
			}
			s.next()
		}
		return string(s.src[start:])
	}
	s.next()
	start := s.i
	for !s.eof() && s.peek(0) != '\n' {
		if basic && s.peek(0) == '\\' {
			s.next()
			s.next()
			continue
		}
		if s.peek(0) == q {
			end := s.i
			s.next()
			return string(s.src[start:end])
		}
		s.next()
	}
	return string(s.src[start:s.i])
}

// readKey reads a possibly dotted key: bare, "basic" or 'literal' parts.
func (s *lineScanner) readKey() []string {
	var keys []string
	for {
		s.skipSpace()
		var k string
		switch c := s.peek(0); {
		case s.eof():
			return keys
		case c == '"':
			raw := s.skipString()
			k = raw
			if u, err := strconv.Unquote(`"` + raw + `"`); err == nil {
				k = u
			}
		case c == '\'':
			k = s.skipString()
		case isBareKeyByte(c):
			start := s.i
			for !s.eof() && isBareKeyByte(s.peek(0)) {
				s.next()
			}
			k = string(s.src[start:s.i])
		default:
			return keys
		}
		keys = append(keys, k)
		s.skipSpace()
		if s.peek(0) != '.' {
			return keys
		}
		s.next()
	}
}

// isBareKeyByte accepts TOML 1.0 bare key bytes, and any non-ASCII byte
// because TOML 1.1 allows Unicode letters in bare keys.
func isBareKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c >= 0x80
}

// String renders the index for test failures.
func (x *lineIndex) String() string {
	var b strings.Builder
	for _, k := range x.keys {
		fmt.Fprintf(&b, "%d %s\n", k.line, k.path)
	}
	return b.String()
}
