package router

import (
	"strconv"
	"strings"
)

// Kill is a MySQL KILL statement as the proxy serves it: the connection
// ids a client sees are the proxy's, so the proxy answers KILL itself
// (and forwards it to the server connection that client holds) instead of
// sending it to a server, where the id would name somebody else's thread.
type Kill struct {
	// Query: KILL QUERY n (stop the statement); else KILL [CONNECTION] n
	// (close the connection).
	Query bool
	// ID is the connection id n; 0 when the statement is a KILL of
	// another form (KILL QUERY ID n names a query id, KILL USER a user,
	// or the text is malformed), which the caller refuses as unknown.
	ID uint64
	// Param: the id is a parameter (KILL [QUERY] ?, prepared); ID is 0.
	Param bool
}

// ParseKill reports whether stmt, one MySQL statement (no ';' separating
// several; a trailing one is fine), is a KILL, and which:
//
//	KILL [HARD | SOFT] [CONNECTION | QUERY] n
//	KILL [HARD | SOFT] [CONNECTION | QUERY] ?   (prepared: Param)
//
// Comments and blanks may appear between the words. isKill is false for
// any statement that does not start with the word KILL; a KILL of another
// form is isKill with k.ID == 0.
func ParseKill(stmt string) (k Kill, isKill bool) {
	words := killWords(stmt, 6)
	if len(words) == 0 || !strings.EqualFold(words[0], "kill") {
		return Kill{}, false
	}
	w := words[1:]
	if len(w) > 0 && (strings.EqualFold(w[0], "hard") || strings.EqualFold(w[0], "soft")) {
		w = w[1:]
	}
	if len(w) > 0 {
		switch {
		case strings.EqualFold(w[0], "connection"):
			w = w[1:]
		case strings.EqualFold(w[0], "query"):
			k.Query = true
			w = w[1:]
		}
	}
	if len(w) == 1 && w[0] == "?" {
		k.Param = true
		return k, true
	}
	if len(w) != 1 {
		return Kill{}, true
	}
	id, err := strconv.ParseUint(w[0], 10, 64)
	if err != nil || id == 0 {
		return Kill{}, true
	}
	k.ID = id
	return k, true
}

// killWords splits stmt into at most max words (runs of letters, digits,
// '_' and '$'), skipping blanks, comments (/* */, -- , #) and a trailing
// ';'; the content of an executable comment (/*! */, /*M! */) counts, as
// the server runs it. Anything else (punctuation, quotes) ends the
// scan with a word that matches nothing, so that a statement ParseKill
// does not understand is never read as a KILL of some id.
func killWords(s string, max int) []string {
	var out []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '#' || c == '-' && strings.HasPrefix(s[i:], "-- "):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return out
			}
			i += j + 1
		case strings.HasPrefix(s[i:], "/*!") || strings.HasPrefix(s[i:], "/*M!"):
			// An executable comment: its content is code to the server.
			i += strings.IndexByte(s[i:], '!') + 1
			for i < len(s) && '0' <= s[i] && s[i] <= '9' {
				i++
			}
		case strings.HasPrefix(s[i:], "*/"):
			i += 2 // the end of an executable comment
		case c == '/' && strings.HasPrefix(s[i:], "/*"):
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return out
			}
			i += 2 + j + 2
		case c == ';' && strings.TrimSpace(s[i+1:]) == "":
			return out
		case c == '?':
			// A parameter marker, a word of its own (KILL ?, prepared).
			if len(out) == max {
				return append(out, "")
			}
			out = append(out, "?")
			i++
		case killWordByte(c):
			j := i
			for j < len(s) && killWordByte(s[j]) {
				j++
			}
			if len(out) == max {
				return append(out, "")
			}
			out = append(out, s[i:j])
			i = j
		default:
			return append(out, "\x00")
		}
	}
	return out
}

func killWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}
