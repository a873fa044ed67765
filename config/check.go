package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// PasswordKind says what a User.Password holds.
type PasswordKind int

const (
	PasswordPlain PasswordKind = iota // plain text
	PasswordSCRAM                     // "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>"
	PasswordMD5                       // "md5" + 32 hex digits
)

// KindOfPassword classifies a password the way PostgreSQL does: by its
// shape. A plain-text password that happens to look like a verifier is taken
// for one, as PostgreSQL would.
func KindOfPassword(p string) PasswordKind {
	switch {
	case strings.HasPrefix(p, "SCRAM-SHA-256$"):
		return PasswordSCRAM
	case len(p) == 35 && strings.HasPrefix(p, "md5") && isHex(p[3:]):
		return PasswordMD5
	}
	return PasswordPlain
}

// PasswordKind classifies u.Password.
func (u *User) PasswordKind() PasswordKind { return KindOfPassword(u.Password) }

// ServerCreds are the credentials the proxy logs in to the servers with
// for u, in both protocols: ServerUser (default Name) and ServerPassword
// (default Password when it is plain text; the loader sets that default,
// this one holds for a User made in code too).
func (u *User) ServerCreds() (user, password string) {
	user, password = u.ServerUser, u.ServerPassword
	if user == "" {
		user = u.Name
	}
	if password == "" && u.PasswordKind() == PasswordPlain {
		password = u.Password
	}
	return user, password
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// validSCRAM checks the shape of a SCRAM-SHA-256 verifier as PostgreSQL
// stores it, so that a mangled copy is refused at load and not at the
// first login.
func validSCRAM(v string) bool {
	rest, ok := strings.CutPrefix(v, "SCRAM-SHA-256$")
	if !ok {
		return false
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return false
	}
	iter, salt, ok := strings.Cut(params, ":")
	if !ok {
		return false
	}
	if n, err := strconv.Atoi(iter); err != nil || n <= 0 {
		return false
	}
	if s, err := base64.StdEncoding.DecodeString(salt); err != nil || len(s) == 0 {
		return false
	}
	stored, server, ok := strings.Cut(keys, ":")
	if !ok {
		return false
	}
	for _, k := range []string{stored, server} {
		if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) != 32 {
			return false
		}
	}
	return true
}

// checkAddr returns why s is not a usable host:port, or "". A listener may
// leave the host out (all interfaces) and use port 0 (any free port, which
// tests use); a server address needs both.
func checkAddr(s string, listen bool) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not host:port", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || !listen && n == 0 {
		lo := 1
		if listen {
			lo = 0
		}
		return fmt.Sprintf("%q is not host:port: the port must be a number from %d to 65535", s, lo)
	}
	if host == "" && !listen {
		return fmt.Sprintf("%q is not host:port: the host is missing", s)
	}
	return ""
}
